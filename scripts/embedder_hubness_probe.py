"""Does hubness reduction help the embedder's leave-one-out rows? (issue 9, tenth session; measured, not adopted)

CSLS (cross-domain similarity local scaling; Conneau et al., "Word translation without parallel data", ICLR 2018):
a gallery item j's score for query i is ``2·cos(i, j) − r(j)``, with ``r(j)`` the mean cosine of j to its K
nearest gallery items of other photos — items that are near everything ("hubs") lose rank. On the rows of
``designsearch eval-embedder`` (classes 79-98, embeddings from its cache ``runs/embedder/evalcache``; the
query's own photo excluded), plain R@1 vs CSLS for K = 5-50, and the drawing → photo and rotated → photo
top-1 with K = 10.

    python scripts/embedder_hubness_probe.py [MODEL]     (default: the served INT8 embedder)
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from designsearch.settings import REPO_ROOT
from designsearch.training.embedder import data as D
from designsearch.training.embedder.evaluate import DEFAULT_EVAL_CACHE, embed_cached, rotation_angles


def top1(q: np.ndarray, g: np.ndarray, labels: np.ndarray, groups: np.ndarray, penalty: np.ndarray | None = None) -> float:
    """Share of queries whose best gallery item (other photos only) has their class; CSLS if ``penalty``."""
    s = (q / np.linalg.norm(q, axis=1, keepdims=True)) @ (g / np.linalg.norm(g, axis=1, keepdims=True)).T
    if penalty is not None:
        s = 2 * s - penalty[None, :]
    s[groups[:, None] == groups[None, :]] = -np.inf
    return float(np.mean(labels[s.argmax(1)] == labels))


def hubness(g: np.ndarray, groups: np.ndarray, k: int) -> np.ndarray:
    """``r(j)``: mean cosine of each gallery item to its ``k`` nearest items of other photos."""
    g = g / np.linalg.norm(g, axis=1, keepdims=True)
    s = g @ g.T
    s[groups[:, None] == groups[None, :]] = -np.inf
    return np.sort(s, axis=1)[:, -k:].mean(1)


def main() -> None:
    model = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO_ROOT / "models" / "embedder" / "wheelembed-lite0-512-int8.onnx"
    _, val_rows = D.split_rows(D.load_rows(D.DEFAULT_DATA), D.TRAIN_MAX_CLASS)
    keep = {r["image_id"] for r in val_rows}
    cars = D.car_items(val_rows)
    wheels = [w for w in D.wheel_items(D.DEFAULT_RUNS / "crops" / "segmenter") if w.image_id in keep]
    emb = {"car": embed_cached({"m": model}, cars, 2, cache_dir=DEFAULT_EVAL_CACHE)["m"],
           "wheel": embed_cached({"m": model}, wheels, 2, angles=rotation_angles(len(wheels)),
                                 cache_dir=DEFAULT_EVAL_CACHE)["m"]}
    for name, items in (("wheel", wheels), ("car", cars)):
        labels = np.array([it.class_id for it in items])
        groups = np.array([it.image_id for it in items])
        g = emb[name]["photo"]
        row = [f"plain {top1(g, g, labels, groups):.4f}"]
        row += [f"CSLS K={k} {top1(g, g, labels, groups, hubness(g, groups, k)):.4f}" for k in (5, 10, 20, 50)]
        print(f"{name} R@1: " + ", ".join(row))
        for view in ("edge", "rotated"):
            if view in emb[name]:
                q = emb[name][view]
                print(f"{name} {view} -> photo R@1: plain {top1(q, g, labels, groups):.4f}, "
                      f"CSLS K=10 {top1(q, g, labels, groups, hubness(g, groups, 10)):.4f}")


if __name__ == "__main__":
    main()
