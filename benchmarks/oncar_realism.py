"""Realism of the on-car composites where it matters: at the WHEEL, not the whole car photo.

A whole car photo is mostly car, so the photo-level FID of the composites against real car photos sits at
the real-vs-real floor whatever the pasted wheel looks like (docs/wheelgen.md). This benchmark compares
wheel CROPS instead: every pasted wheel of a set's on-car composites (its labelled box, a 10 % margin,
squared) against the real wheels of the same kind of photo —

* composites on Car-Parts-Segmentation photos vs the annotated wheels of Car-Parts-Seg TRAIN photos;
* composites on Stanford Cars photos vs the wheels the served segmenter finds in Stanford Cars photos of
  classes 1-78 (:mod:`designsearch.training.wheelgen.stanford_slots`), the originals the composites cover;

each beside its real-vs-real floor (the real crops split in two halves) and, as the far end, the real crops
against the car-parts-50 product shots (a real wheel in another context). FID/KID of ImageNet-Lite0
features (:mod:`designsearch.training.wheelgen.realism`), bootstrap interval over the composites.

Usage::

    designsearch render-wheels --designs 100 --views 1 --seed 7 --oncar 2 --oncar-photos car-parts,stanford \\
        --no-drawings --out var/wheelgen/oncar-realism
    python benchmarks/oncar_realism.py --set var/wheelgen/oncar-realism

writes ``benchmarks/results/oncar_realism.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import cv2
import numpy as np

from designsearch.settings import REPO_ROOT, default_data_dir
from designsearch.training.wheelgen.realism import (distance_row, lite0_features, markdown_table,
                                                    reference_features)

MIN_SIDE = 40


def wheel_crop(rgb: np.ndarray, box, margin: float = 0.1) -> np.ndarray | None:
    """The square crop ``uint8 (s, s, 3)`` around ``box`` (x1, y1, x2, y2) with ``margin`` of its side on each
    side, clipped to the picture; ``None`` when a box side is under :data:`MIN_SIDE` px."""
    x1, y1, x2, y2 = (int(v) for v in box)
    if min(x2 - x1, y2 - y1) < MIN_SIDE:
        return None
    cx, cy, half = (x1 + x2) / 2, (y1 + y2) / 2, max(x2 - x1, y2 - y1) * (0.5 + margin)
    h, w = rgb.shape[:2]
    a, b = int(max(0, cx - half)), int(max(0, cy - half))
    c, d = int(min(w, cx + half)), int(min(h, cy + half))
    return np.ascontiguousarray(rgb[b:d, a:c])


def _read(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise OSError(f"cannot read {path}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def composite_crops(set_dir: Path) -> dict[str, list[np.ndarray]]:
    """Pasted-wheel crops of the set's on-car rows, by photo source (``car-parts``, ``stanford``)."""
    out: dict[str, list[np.ndarray]] = {"car-parts": [], "stanford": []}
    with open(set_dir / "manifest.csv", newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r["kind"] == "oncar"]
    for r in rows:
        rgb = _read(set_dir / r["file"])
        source = "stanford" if r["background"].startswith("stanford-cars/") else "car-parts"
        out[source] += [c for b in json.loads(r["boxes"]) if (c := wheel_crop(rgb, b)) is not None]
    return out


def real_crops(data_dir: Path, set_dir: Path, limit: int) -> dict[str, list[np.ndarray]]:
    """Real wheel crops: annotated Car-Parts-Seg TRAIN wheels and segmenter-found Stanford Cars wheels."""
    from designsearch.training.segmenter.dataset import load_samples, split_samples
    from designsearch.training.wheelgen.stanford_slots import find_stanford_wheels

    train, _ = split_samples(load_samples(data_dir))
    cp: list[np.ndarray] = []
    for s in train:
        if s.polygons and len(cp) < limit:
            rgb = s.read_rgb()
            cp += [c for b in s.instances() if (c := wheel_crop(rgb, b)) is not None]
    st: list[np.ndarray] = []
    segmenter = REPO_ROOT / "models" / "segmenter" / "wheelseg-lite0-int8.onnx"
    for p in find_stanford_wheels(data_dir, segmenter, set_dir):  # the set's cache when it used Stanford
        if len(st) >= limit:
            break
        rgb = p.read_rgb()
        st += [c for b in p.boxes if (c := wheel_crop(rgb, b)) is not None]
    return {"car-parts": cp[:limit], "stanford": st[:limit]}


def main() -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--set", type=Path, required=True, help="a render-wheels set with on-car rows of both sources")
    ap.add_argument("--limit", type=int, default=400, help="real crops per source")
    ap.add_argument("--bootstrap", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks" / "results" / "oncar_realism")
    a = ap.parse_args()
    data_dir = Path(default_data_dir())
    fake = composite_crops(a.set)
    real = real_crops(data_dir, a.set, a.limit)
    rims = reference_features("real_rims", data_dir)
    rows = []
    for source in ("car-parts", "stanford"):
        if not fake[source] or len(real[source]) < 4:
            continue
        f, r = lite0_features(fake[source]), lite0_features(real[source])
        name = f"real {source} wheel crops"
        rows.append(distance_row(f"composite wheel crops on {source} photos", f, name, r, a.bootstrap, a.seed))
        perm = np.random.default_rng(a.seed).permutation(len(r))
        half_a, half_b = r[perm[: len(r) // 2]], r[perm[len(r) // 2:]]
        rows.append(distance_row(f"{name} half A (real floor)", half_a, f"{name} half B", half_b, a.bootstrap, a.seed))
        rows.append(distance_row(name, r, "car-parts-50 rims (product shots)", rims, a.bootstrap, a.seed))
    a.out.parent.mkdir(parents=True, exist_ok=True)
    Path(str(a.out) + ".json").write_text(json.dumps({"set": str(a.set), "rows": rows}, indent=1) + "\n")
    Path(str(a.out) + ".md").write_text(markdown_table(rows) + "\n")
    print(markdown_table(rows))
    return rows


if __name__ == "__main__":
    main()
