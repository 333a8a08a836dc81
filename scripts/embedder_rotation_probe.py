"""Rotation without retraining: what the served embedder gives under test-time rules (issue 9, twelfth session).

Rows of ``designsearch eval-embedder`` on the validation wheel crops (Stanford Cars classes 79-98, the
segmenter crops under ``runs/embedder/crops/segmenter``): same-photo partner R@1, the same with every query
rotated by the evaluation's seeded angle (border replicated), and wheel-crop class R@1 (other photos only).
Probes, each on the same crops and angles:

1. **protocol** — how much a perfect rotation rule could recover: the rotated query turned back by exactly
   its angle (the border replication and two resamplings remain), and the query cut from the source photo
   rotated about the crop's centre (real pixels in the corners instead of replicated ones);
2. **query turns with a margin** — the query embedded at R turns, a gallery item scored by
   ``max(cos(q_0, g), max_{k>0} cos(q_k, g) - δ)`` (δ = 0: the gateway's close-up rule);
3. **orbit pooling** — the normalised mean of the embeddings over R turns (the Reynolds operator; the
   orbit target of ``train_distill --target-rotations``) on both sides, or on the gallery only;
4. **plain + orbit** — one vector ``[√w · plain, √(1-w) · orbit]``, whose cosine is
   ``w · cos_plain + (1 - w) · cos_orbit`` (both sides, R turns); or both vectors kept, a gallery item
   scored by ``max(cos_plain, cos_orbit - δ)`` (the orbit match must beat the plain one by δ);
5. **disk mask** — everything outside the inscribed disk (or the wheel's 0.86 disk) set to grey on both sides,
   so that rotation moves nothing but the wheel;
6. **geometric verification** — the top 10 re-ranked by ``cos + λ · inliers``, inliers of a RANSAC homography
   between SIFT features of the two crops at 192 px (Lowe, IJCV 2004; Philbin et al., CVPR 2007 re-ranking).

    python scripts/embedder_rotation_probe.py [MODEL]     (default: the served INT8 embedder; ~8 min on 2 cores)

Writes ``benchmarks/results/embedder_rotation_probe.json``.
"""

from __future__ import annotations

import csv
import functools
import json
import os
import sys
import time

import cv2
import numpy as np

from designsearch.images import edge_map, read_image, to_model_input
from designsearch.onnx import make_session
from designsearch.settings import EMBEDDER_MODEL_INT8, REPO_ROOT, repo_relative
from designsearch.training.embedder import data as D
from designsearch.training.embedder.augment import rotate_about_centre
from designsearch.training.embedder.evaluate import _metrics, partner_recall, rotation_angles

OUT = REPO_ROOT / "benchmarks" / "results" / "embedder_rotation_probe.json"
TURNS = 8


def unit(x: np.ndarray) -> np.ndarray:
    """Rows (last axis) scaled to unit L2 norm."""
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def disk_mask(rgb: np.ndarray, radius: float) -> np.ndarray:
    """``rgb`` with the pixels outside the centred disk (ellipse on a non-square crop) of relative ``radius``
    (1 = inscribed) set to grey 128."""
    h, w = rgb.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w]
    d = np.hypot((xx - (w - 1) / 2) / (w / 2), (yy - (h - 1) / 2) / (h / 2))
    out = rgb.copy()
    out[d > radius] = 128
    return out


class Probe:
    """The validation crops, their seeded rotation angles and the model; the three rows of any scoring."""

    def __init__(self, model: str) -> None:
        self.sess = make_session(model, 2)
        self.size = int(self.sess.get_inputs()[0].shape[2])
        rows = D.load_rows(D.DEFAULT_DATA)
        _, val_rows = D.split_rows(rows, D.TRAIN_MAX_CLASS)
        keep = {r["image_id"] for r in val_rows}
        self.files = {r["image_id"]: r["file"] for r in rows}
        self.crop_dir = D.DEFAULT_RUNS / "crops" / "segmenter"
        self.wheels = [w for w in D.wheel_items(self.crop_dir) if w.image_id in keep]
        self.angles = rotation_angles(len(self.wheels))
        self.labels = np.array([w.class_id for w in self.wheels])
        self.groups = np.array([w.image_id for w in self.wheels])
        self.rgbs = [D.load_rgb(w) for w in self.wheels]
        self.rotated = [rotate_about_centre(x, float(a)) for x, a in zip(self.rgbs, self.angles)]
        _, inv, cnt = np.unique(self.groups, return_inverse=True, return_counts=True)
        self.partner_queries = np.flatnonzero(cnt[inv] >= 2)  # crops whose photo has another crop
        with open(self.crop_dir / "manifest.csv", newline="") as f:  # crop file -> its square box in the photo
            self.boxes = {r["file"]: tuple(int(r[k]) for k in ("x1", "y1", "x2", "y2")) for r in csv.DictReader(f)}

    def embed(self, images: list[np.ndarray]) -> np.ndarray:
        """float32 ``(N, D)`` unit embeddings."""
        return np.concatenate([self.sess.run(None, {"pixels": to_model_input(images[i:i + 32], self.size)})[0]
                               for i in range(0, len(images), 32)])

    def rows(self, gallery: np.ndarray, query: np.ndarray, rotated: np.ndarray) -> dict[str, float]:
        """Partner / rotated-partner / class R@1 with ``gallery`` vectors, ``query`` (upright) and ``rotated``
        query vectors, each ``(N, D)`` or ``(T, N, D)`` (a gallery item scored by its best cosine over T)."""
        rot = partner_recall(rotated, gallery, self.labels, self.groups)["R@1"]
        out = {"partner": partner_recall(query, gallery, self.labels, self.groups)["R@1"], "rotated": rot}
        out["gap_points"] = round(100 * (out["partner"] - rot), 1)
        out["wheel_R@1"] = self.class_r1(query, gallery)
        return out

    def partner_top1(self, scores: np.ndarray) -> float:
        """Partner R@1 from ``scores`` ``(N, N)`` (query row, gallery column; the query itself excluded): the best
        item is of the query's photo or class, over the queries whose photo has >= 2 crops (as
        :func:`partner_recall`)."""
        s = scores[self.partner_queries].copy()
        s[np.arange(len(self.partner_queries)), self.partner_queries] = -np.inf
        top = s.argmax(1)
        q = self.partner_queries
        return round(float(np.mean((self.groups[top] == self.groups[q]) | (self.labels[top] == self.labels[q]))), 4)

    def class_top1(self, scores: np.ndarray) -> float:
        """Class R@1 from ``scores`` ``(N, N)``, the query's own photo excluded."""
        s = np.where(self.groups[:, None] == self.groups[None, :], -np.inf, scores)
        return round(float(np.mean(self.labels[s.argmax(1)] == self.labels)), 4)

    def class_r1(self, query: np.ndarray, gallery: np.ndarray, margin: float = 0.0) -> float:
        """Class R@1 over other photos; ``query`` ``(N, D)`` or ``(T, N, D)`` (views k > 0 pay ``margin``)."""
        q = query[None] if query.ndim == 2 else query
        sims = q @ gallery.T
        return self.class_top1(sims[0] if len(q) == 1 else np.maximum(sims[0], sims[1:].max(0) - margin))

    def max_rows(self, plain: np.ndarray, orbit: np.ndarray, plain_rot: np.ndarray, orbit_rot: np.ndarray,
                 margin: float) -> dict[str, float]:
        """The three rows when a gallery item scores ``max(cos_plain, cos_orbit - margin)``; ``plain`` / ``orbit``
        ``(N, D)`` of the upright crops (gallery and upright queries), ``*_rot`` of the rotated queries."""
        upright = np.maximum(plain @ plain.T, orbit @ orbit.T - margin)
        out = {"partner": self.partner_top1(upright),
               "rotated": self.partner_top1(np.maximum(plain_rot @ plain.T, orbit_rot @ orbit.T - margin))}
        out["gap_points"] = round(100 * (out["partner"] - out["rotated"]), 1)
        out["wheel_R@1"] = self.class_top1(upright)
        return out

    def partner_margin(self, query: np.ndarray, gallery: np.ndarray, margin: float) -> float:
        """Partner R@1 with ``query`` ``(T, N, D)``, views k > 0 paying ``margin``."""
        sims = query @ gallery.T
        return self.partner_top1(np.maximum(sims[0], sims[1:].max(0) - margin))

    def photo_rotated_crop(self, i: int, angle: float) -> np.ndarray:
        """Crop ``i`` cut from its source photo rotated by ``angle`` degrees about the crop's centre."""
        rgb = _read_photo(self.files[self.wheels[i].image_id])
        x1, y1, x2, y2 = self.boxes[os.path.basename(self.wheels[i].path)]
        m = cv2.getRotationMatrix2D(((x1 + x2 - 1) / 2, (y1 + y2 - 1) / 2), float(angle), 1.0)
        m[0, 2] -= x1
        m[1, 2] -= y1
        return cv2.warpAffine(rgb, m, (x2 - x1, y2 - y1), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


@functools.lru_cache(maxsize=8)
def _read_photo(path: str) -> np.ndarray:
    """A source photo, read once for its (consecutive) crops."""
    return read_image(path)


def sift_rerank(p: Probe, gallery: np.ndarray, rotated: np.ndarray, lambdas: tuple[float, ...], k: int = 10) -> dict:
    """Probe 6: the rows after re-ranking each query's top ``k`` by ``cos + λ · inliers``."""
    sift = cv2.SIFT_create(nfeatures=300)
    bf = cv2.BFMatcher(cv2.NORM_L2)

    def feats(img):
        g = cv2.cvtColor(cv2.resize(img, (192, 192), interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2GRAY)
        kp, des = sift.detectAndCompute(g, None)
        return np.float32([kk.pt for kk in kp]), des

    def inliers(a, b) -> int:
        (pa, da), (pb, db) = a, b
        if da is None or db is None or len(da) < 4 or len(db) < 4:
            return 0
        good = [m[0] for m in bf.knnMatch(da, db, k=2) if len(m) == 2 and m[0].distance < 0.8 * m[1].distance]
        if len(good) < 4:
            return 0
        _, mask = cv2.findHomography(pa[[g.queryIdx for g in good]], pb[[g.trainIdx for g in good]], cv2.RANSAC, 6.0)
        return int(mask.sum()) if mask is not None else 0

    t0 = time.time()
    fg, fr = [feats(x) for x in p.rgbs], [feats(x) for x in p.rotated]
    q_idx, all_idx = p.partner_queries, np.arange(len(p.wheels))
    shortlists = {}
    for row, q, fq, idx, other_photos in (("partner", gallery, fg, q_idx, False), ("rotated", rotated, fr, q_idx, False),
                                          ("wheel_R@1", gallery, fg, all_idx, True)):
        s = q[idx] @ gallery.T
        s[np.arange(len(idx)), idx] = -np.inf
        if other_photos:
            s[p.groups[idx][:, None] == p.groups[None, :]] = -np.inf
        top = np.argsort(-s, axis=1)[:, :k]
        inl = np.array([[inliers(fq[i], fg[j]) for j in t] for i, t in zip(idx, top)])
        shortlists[row] = (idx, top, np.take_along_axis(s, top, 1), inl, not other_photos)
    out = {"seconds": round(time.time() - t0, 1), "ms_per_query_and_candidate": None}
    n_pairs = sum(len(v[0]) * k for v in shortlists.values())
    out["ms_per_query_and_candidate"] = round(1000 * out["seconds"] / n_pairs, 2)
    for lam in lambdas:
        res = {}
        for row, (idx, top, cos, inl, partner) in shortlists.items():
            best = top[np.arange(len(top)), (cos + lam * inl).argmax(1)]
            ok = p.labels[best] == p.labels[idx]
            if partner:
                ok |= p.groups[best] == p.groups[idx]
            res[row] = round(float(ok.mean()), 4)
        res["gap_points"] = round(100 * (res["partner"] - res["rotated"]), 1)
        out[f"lambda={lam}"] = res
    return out


def main() -> None:
    model = sys.argv[1] if len(sys.argv) > 1 else str(EMBEDDER_MODEL_INT8)
    t0 = time.time()
    p = Probe(model)
    g = p.embed(p.rgbs)
    r = p.embed(p.rotated)
    report: dict = {"model": repo_relative(model), "crops": len(p.wheels), "served": p.rows(g, g, r)}

    back = p.embed([rotate_about_centre(x, -float(a)) for x, a in zip(p.rotated, p.angles)])
    photo_rot = p.embed([p.photo_rotated_crop(i, a) for i, a in enumerate(p.angles)])
    report["1_protocol"] = {
        "rotated query turned back by its angle (oracle)": p.rows(g, g, back),
        "query cut from the photo rotated about the crop": p.rows(g, g, photo_rot),
    }
    print("protocol done", round(time.time() - t0), flush=True)

    turns_g = np.stack([p.embed([rotate_about_centre(x, 360 * k / TURNS) for x in p.rgbs]) for k in range(TURNS)])
    turns_r = np.stack([p.embed([rotate_about_centre(x, 360 * k / TURNS) for x in p.rotated]) for k in range(TURNS)])
    print("turns done", round(time.time() - t0), flush=True)
    probe2, probe3, probe4 = {}, {}, {}
    for n in (2, 4, 8):
        ks = list(range(0, TURNS, TURNS // n))
        for margin in (0.0, 0.02, 0.04, 0.06):
            part, rot = p.partner_margin(turns_g[ks], g, margin), p.partner_margin(turns_r[ks], g, margin)
            probe2[f"R={n} delta={margin}"] = {"partner": part, "rotated": rot, "gap_points": round(100 * (part - rot), 1),
                                               "wheel_R@1": p.class_r1(turns_g[ks], g, margin)}
        og, orr = unit(turns_g[ks].mean(0)), unit(turns_r[ks].mean(0))
        probe3[f"R={n} both sides"] = p.rows(og, og, orr)
        probe3[f"R={n} gallery only"] = p.rows(og, g, r)
        if n >= 4:
            for w in (0.1, 0.2, 0.3, 0.4, 0.5):
                cat = lambda a, b: np.concatenate([np.sqrt(w) * a, np.sqrt(1 - w) * b], 1)  # noqa: E731
                probe4[f"R={n} w={w}"] = p.rows(cat(g, og), cat(g, og), cat(r, orr))
            for margin in (0.04, 0.08, 0.1, 0.12, 0.15):
                probe4[f"R={n} max(plain, orbit - {margin})"] = p.max_rows(g, og, r, orr, margin)
    report["2_query_turns_margin"], report["3_orbit_pooling"], report["4_plain_plus_orbit"] = probe2, probe3, probe4

    probe5 = {}
    for radius in (1.0, 0.86):
        mg = p.embed([disk_mask(x, radius) for x in p.rgbs])
        row = p.rows(mg, mg, p.embed([disk_mask(x, radius) for x in p.rotated]))
        edges = p.embed([edge_map(disk_mask(x, radius)) for x in p.rgbs])
        row["wheel_sketch_R@5"] = _metrics(edges, p.labels, p.groups, gallery=mg, ks=(5,))["R@5"]
        probe5[f"radius {radius}"] = row
    report["served"]["wheel_sketch_R@5"] = _metrics(p.embed([edge_map(x) for x in p.rgbs]), p.labels, p.groups,
                                                    gallery=g, ks=(5,))["R@5"]
    report["5_disk_mask"] = probe5
    print("masks done", round(time.time() - t0), flush=True)
    report["6_sift_rerank_top10"] = sift_rerank(p, g, r, (0.0, 0.005, 0.01, 0.02, 0.05, 1.0))
    report["seconds"] = round(time.time() - t0)
    report["command"] = " ".join(["python scripts/embedder_rotation_probe.py", *sys.argv[1:]])
    OUT.write_text(json.dumps(report, indent=1) + "\n")
    for section, rows in report.items():
        if isinstance(rows, dict) and section[0].isdigit():
            print(section)
            for name, row in rows.items():
                print(f"  {name}: {row}")
    print("served:", report["served"], f"\nwrote {repo_relative(OUT)} in {report['seconds']} s")


if __name__ == "__main__":
    main()
