"""Wheel-DESIGN retrieval rows of an embedder (issue 31): the engine's validation designs, the 15 real rim
models, ``wheel-vision`` and ``car-parts-50`` — real pictures first, with 95 % intervals.

Rows (cosine similarity of the ONNX embeddings, i.e. what the service serves; Recall@K from
:func:`designsearch.training.metrics.recall_at_k`; Wilson 95 % intervals of R@1):

* ``engine <split> render->views``: every studio render of a design queries the other renders of ALL designs of
  the split (itself excluded); ``drawing->renders``: its line drawings against the renders;
  ``oncar->renders``: the wheel of its on-car composite (the box of the rendered wheel, squared with the
  segmenter service's margin) against the renders; ``… rotated``: the same queries spun about their centre by
  a seeded random angle. Splits: ``val`` (validation designs, never trained on) and ``real`` (the 15 real
  rim models' renders).
* ``car-parts-50 val new picture``: each validation rim re-shot (pasted on another plain or graded
  background through its derived mask, spun, finish shifted in hue/brightness, a perspective warp, JPEG 60-85)
  queries the originals of all 189 rims (train and val).
* ``wheel-vision caliper+on-car``: its 13 with-caliper pictures and 12 on-car composites query its 16
  cut-outs plus all 189 ``car-parts-50`` rims as distractors, through the product path: each query is the
  served segmenter's best crop AND the whole picture, a gallery design scored by the better of the two
  cosine similarities (the max-fusion of FindSimilar without its agreement bonus); the right design first
  counts a hit (``hits`` of 25).

CLI::

    python -m designsearch.training.embedder.wheel_rows --model models/embedder/wheelembed-lite0-512-int8.onnx \\
        --engine-set var/wheelgen/set-v1 --out runs/embedder/wheel-rows.json
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import cv2
import numpy as np

from designsearch.images import to_model_input
from designsearch.onnx import make_session
from designsearch.training.metrics import recall_at_k
from designsearch.training.segmenter.real_sets import (carparts50_items, plain_background_mask, wheel_vision_items,
                                                       wilson_interval)

from .augment import rotate_about_centre

KS = (1, 5)
#: Seed of the query rotations and of the car-parts-50 re-shots.
SEED = 0


class Embedder:
    """An ONNX embedder file: ``embed(list of uint8 (H, W, 3)) -> float32 (N, D)`` L2-normalised."""

    def __init__(self, path: str | Path, threads: int = 2) -> None:
        self.session = make_session(Path(path), threads)
        self.size = int(self.session.get_inputs()[0].shape[2])
        self.name = Path(path).name

    def embed(self, rgbs: list[np.ndarray], batch: int = 32) -> np.ndarray:
        out = []
        for i in range(0, len(rgbs), batch):
            out.append(self.session.run(None, {"pixels": to_model_input(rgbs[i:i + batch], self.size)})[0])
        e = np.concatenate(out).astype(np.float32)
        return e / np.linalg.norm(e, axis=1, keepdims=True)


def _row(name: str, recall: dict[int, float], n: int) -> dict:
    k = round(recall[1] * n)
    return {"row": name, "n": n, **{f"R@{kk}": v for kk, v in recall.items()}, "R@1_ci95": wilson_interval(k, n)}


def square_crop(rgb: np.ndarray, box, margin: float = 0.1) -> np.ndarray:
    """The square around ``box`` (x1, y1, x2, y2) grown by ``margin`` per side, clipped to the picture."""
    h, w = rgb.shape[:2]
    x1, y1, x2, y2 = box
    side = max(x2 - x1, y2 - y1) * (1 + 2 * margin)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    a, b = int(max(0, cx - side / 2)), int(max(0, cy - side / 2))
    return np.ascontiguousarray(rgb[b:int(min(h, cy + side / 2)), a:int(min(w, cx + side / 2))])


def engine_rows(model: Embedder, set_dir: str | Path, split: str = "val", seed: int = SEED) -> list[dict]:
    """The engine rows of one split (see the module docstring).

    Raises:
        FileNotFoundError: no manifest in ``set_dir``.
    """
    set_dir = Path(set_dir)
    with (set_dir / "manifest.csv").open(encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r["split"] == split]

    def read(r):
        return cv2.cvtColor(cv2.imread(str(set_dir / r["file"])), cv2.COLOR_BGR2RGB)

    renders = [r for r in rows if r["kind"] == "render"]
    drawings = [r for r in rows if r["kind"] == "drawing"]
    oncar = [r for r in rows if r["kind"] == "oncar"]
    g_img = [read(r) for r in renders]
    g_lab = np.array([r["design_id"] for r in renders])
    g = model.embed(g_img)
    rng = np.random.default_rng(seed)
    out = []
    q_sets = {
        "render->views": (g_img, g_lab, True),
        "drawing->renders": ([read(r) for r in drawings], np.array([r["design_id"] for r in drawings]), False),
        "oncar->renders": ([square_crop(read(r), (int(r["x1"]), int(r["y1"]), int(r["x2"]), int(r["y2"]))) for r in oncar],
                           np.array([r["design_id"] for r in oncar]), False),
    }
    for name, (imgs, labels, loo) in q_sets.items():
        for rotated in (False, True):
            q_imgs = [rotate_about_centre(im, float(a)) for im, a in zip(imgs, rng.uniform(0, 360, len(imgs)))] \
                if rotated else imgs
            q = g if (loo and not rotated) else model.embed(q_imgs)
            if loo:  # the other views of its design: the query itself (same index) is excluded
                rec = recall_at_k(q, labels, KS, gallery=g, gallery_labels=g_lab, groups=np.arange(len(labels)),
                                  gallery_groups=np.arange(len(g_lab)))
            else:
                rec = recall_at_k(q, labels, KS, gallery=g, gallery_labels=g_lab)
            out.append(_row(f"engine {split} {name}{' rotated' if rotated else ''}", rec, len(labels)))
    return out


def reshoot(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A new picture of a product-shot rim: its plain-background mask pasted on another plain or graded
    background, spun 0-360°, hue/brightness shifted (finish), a perspective warp, JPEG 60-85."""
    h, w = rgb.shape[:2]
    mask = plain_background_mask(rgb).astype(np.float32)
    top, bottom = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    if rng.random() < 0.5:
        bottom = top
    t = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    bg = (top * (1 - t) + bottom * t) * np.ones((1, w, 1), np.float32)
    angle = float(rng.uniform(0, 360))
    rot = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    img = cv2.warpAffine(rgb, rot, (w, h), borderMode=cv2.BORDER_REPLICATE)
    m = cv2.warpAffine(mask, rot, (w, h))[..., None]
    hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV).astype(np.float32)
    hsv[..., 0] = (hsv[..., 0] + rng.uniform(-12, 12)) % 180
    hsv[..., 2] = np.clip(hsv[..., 2] * rng.uniform(0.8, 1.2), 0, 255)
    img = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB).astype(np.float32)
    img = img * m + bg * (1 - m)
    d = 0.06 * w
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    dst = (src + rng.uniform(-d, d, (4, 2))).astype(np.float32)
    img = cv2.warpPerspective(np.clip(img, 0, 255).astype(np.uint8), cv2.getPerspectiveTransform(src, dst), (w, h),
                              borderMode=cv2.BORDER_REPLICATE)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(60, 86))])
    return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def all_rims(data=None) -> list:
    """The 189 ``car-parts-50`` rims, train then val (:func:`carparts50_items`)."""
    return carparts50_items(data, "train", "rim") + carparts50_items(data, "val", "rim")


def carparts50_row(model: Embedder, data=None, seed: int = SEED, rims: list | None = None) -> dict:
    """``car-parts-50 val new picture`` (see the module docstring); ``rims`` default :func:`all_rims`."""
    rims = rims if rims is not None else all_rims(data)
    g = model.embed([it.rgb for it in rims])
    g_lab = np.array([it.name for it in rims])
    rng = np.random.default_rng(seed)
    val = [it for it in rims if "val" in it.set]
    q = model.embed([reshoot(it.rgb, rng) for it in val])
    rec = recall_at_k(q, np.array([it.name for it in val]), KS, gallery=g, gallery_labels=g_lab)
    return _row("car-parts-50 val new picture -> 189 rims", rec, len(val))


def wheel_vision_row(model: Embedder, segmenter_model: str | Path, data=None, rims: list | None = None) -> dict:
    """``wheel-vision caliper+on-car`` through the product path (see the module docstring); ``rims`` (the
    distractors) default :func:`all_rims`."""
    from designsearch.services.segmenter.learned import LearnedWheelDetector
    from designsearch.training.segmenter.real_sets import wheel_vision_rows

    labels = {r["file"]: r["design_id"] for r in wheel_vision_rows(data)}
    sets = wheel_vision_items(data)
    cut = sets["wheel-vision cut-outs"]
    rims = rims if rims is not None else all_rims(data)
    g = model.embed([it.rgb for it in cut] + [it.rgb for it in rims])
    g_lab = np.array([labels[it.name] for it in cut] + [it.name for it in rims])
    det = LearnedWheelDetector(segmenter_model, threads=2)
    queries = sets["wheel-vision with caliper"] + sets["wheel-vision on-car"]
    hits, misses = 0, []
    for it in queries:
        views = [it.rgb]
        dets = det.detect(it.rgb)
        if dets:
            views.insert(0, square_crop(it.rgb, dets[0].box))
        sims = (model.embed(views) @ g.T).max(axis=0)
        top = g_lab[int(np.argmax(sims))]
        ok = top == labels[it.name]
        hits += ok
        if not ok:
            misses.append({"query": it.name, "top": str(top)})
    n = len(queries)
    return {"row": "wheel-vision caliper+on-car -> cut-outs + 189 rims (crop + whole)", "n": n, "hits": int(hits),
            "R@1": hits / n, "R@1_ci95": wilson_interval(hits, n), "misses": misses}


def wheel_rows(model_path: str | Path, engine_set: str | Path | None, segmenter_model: str | Path, data=None,
               threads: int = 2) -> list[dict]:
    """Every row of the module docstring for one embedder file."""
    model = Embedder(model_path, threads)
    rims = all_rims(data)  # read (and their masks derived) once for both rows
    rows = [carparts50_row(model, data, rims=rims), wheel_vision_row(model, segmenter_model, data, rims=rims)]
    if engine_set is not None:
        for split in ("val", "real"):
            rows += engine_rows(model, engine_set, split)
    for r in rows:
        r["model"] = model.name
    return rows


def format_rows(rows: list[dict]) -> str:
    """Plain-text table: row, model, n, R@1 [95 % CI], R@5."""
    lines = [f"{'row':<58}{'model':<34}{'n':>6}{'R@1':>8}{'95% CI':>14}{'R@5':>8}"]
    for r in rows:
        lo, hi = r["R@1_ci95"]
        r5 = f"{r['R@5']:>8.3f}" if "R@5" in r else f"{'—':>8}"
        lines.append(f"{r['row'][:57]:<58}{r['model'][:33]:<34}{r['n']:>6}{r['R@1']:>8.3f}{f'[{lo:.2f},{hi:.2f}]':>14}{r5}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """CLI; see the module docstring."""
    from designsearch.settings import EMBEDDER_MODEL_INT8, SEGMENTER_MODEL_INT8

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", action="append", default=None, help="embedder ONNX file (repeatable)")
    p.add_argument("--engine-set", default="var/wheelgen/set-v1")
    p.add_argument("--segmenter", default=str(SEGMENTER_MODEL_INT8))
    p.add_argument("--data", default=None)
    p.add_argument("--out", default=None)
    a = p.parse_args(argv)
    engine = a.engine_set if a.engine_set and (Path(a.engine_set) / "manifest.csv").is_file() else None
    rows = []
    for m in a.model or [str(EMBEDDER_MODEL_INT8)]:
        rows += wheel_rows(m, engine, a.segmenter, a.data)
    print(format_rows(rows))
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps(rows, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
