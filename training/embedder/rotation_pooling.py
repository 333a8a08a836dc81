"""Test-time rotation pooling (issue 9): does averaging a wheel crop's embeddings over R rotations pay
for its R-fold embedding cost?

Each validation wheel crop (classes 79-98, the crops of ``designsearch eval-embedder``) is embedded at
R angles ``a + 360·k/R`` (k = 0..R-1) about its centre; the R vectors are averaged and re-normalised
(a group-averaged, "orbit-pooled" embedding, cf. Cohen & Welling, "Group Equivariant CNNs", ICML 2016,
and the test-time augmentation of Simonyan & Zisserman, ICLR 2015). Gallery items use ``a = 0``;
the rotated queries of ``wheel_partner_rot`` use the same seeded random angle as the evaluation.
R = 1 reproduces the evaluation's ``wheel``, ``wheel_partner`` and ``wheel_partner_rot`` rows.

``--query-turns T`` also measures the rule FindSimilar serves for close-up queries: the gallery embedded
once, each query at ``T`` quarter turns of its model input (``EmbedRequest.rotated_copies``), a gallery item
scored by its best cosine over the turns (no averaging, so the plain query's own match is kept).

    python -m designsearch.training.embedder.rotation_pooling --rotations 1 4 8 [--query-turns 4]

Writes ``benchmarks/results/rotation_pooling.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from designsearch.images import to_model_input
from designsearch.settings import EMBEDDER_MODEL, REPO_ROOT

from . import data as D
from .augment import rotate_about_centre
from .evaluate import _metrics, _session, partner_recall, rotation_angles

DEFAULT_OUT = REPO_ROOT / "benchmarks" / "results" / "rotation_pooling.json"


def pooled_embeddings(sess, rgbs: list[np.ndarray], base_angles: np.ndarray, rotations: int, batch: int = 32) -> np.ndarray:
    """Mean over ``rotations`` evenly spaced rotations (from ``base_angles[i]``) of item ``i``'s
    embedding, re-normalised: float32 ``(N, D)``."""
    size = int(sess.get_inputs()[0].shape[2])
    out = []
    for start in range(0, len(rgbs), batch):
        chunk, angles = rgbs[start : start + batch], base_angles[start : start + batch]
        acc = None
        for k in range(rotations):
            views = [rotate_about_centre(rgb, float(a) + 360.0 * k / rotations) if (a or k) else rgb
                     for rgb, a in zip(chunk, angles)]
            e = sess.run(None, {"pixels": to_model_input(views, size)})[0].astype(np.float64)
            e /= np.linalg.norm(e, axis=1, keepdims=True)
            acc = e if acc is None else acc + e
        out.append((acc / np.linalg.norm(acc, axis=1, keepdims=True)).astype(np.float32))
    return np.concatenate(out)


def turned_embeddings(sess, rgbs: list[np.ndarray], turns: int, batch: int = 32) -> np.ndarray:
    """Embeddings of each item's model input turned by ``k`` quarter turns, k = 0..turns-1 (as the embedder
    service turns ``rotated_copies``): float32 ``(turns, N, D)``, unit rows."""
    size = int(sess.get_inputs()[0].shape[2])
    parts = []
    for start in range(0, len(rgbs), batch):
        inputs = to_model_input(rgbs[start : start + batch], size)  # (B, 3, S, S)
        e = np.stack([sess.run(None, {"pixels": np.ascontiguousarray(np.rot90(inputs, k, axes=(2, 3)))})[0]
                      for k in range(turns)])
        parts.append(e / np.linalg.norm(e, axis=2, keepdims=True))
    return np.concatenate(parts, axis=1).astype(np.float32)


def class_recall_max(query: np.ndarray, gallery: np.ndarray, labels: np.ndarray, groups: np.ndarray) -> float:
    """Wheel-crop class R@1 (the evaluation's ``wheel`` row: crops of the query's own photo excluded) with
    ``query`` float ``(T, N, D)``: a gallery item scored by its best cosine over the ``T`` query views."""
    sims = np.max(query @ gallery.T, axis=0)
    sims[groups[:, None] == groups[None, :]] = -np.inf
    return round(float(np.mean(labels[sims.argmax(axis=1)] == labels)), 4)


def run(model: Path, rotations: list[int], data: Path = D.DEFAULT_DATA, threads: int = 2,
        query_turns: int = 0) -> dict:
    """The wheel rows with and without rotation pooling, and the cost (embeddings per crop, seconds); with
    ``query_turns``, also the rows under the served close-up rule (:func:`turned_embeddings`)."""
    crop_dir = D.DEFAULT_RUNS / "crops" / "segmenter"
    _, val_rows = D.split_rows(D.load_rows(data), D.TRAIN_MAX_CLASS)
    keep = {r["image_id"] for r in val_rows}
    wheels = [w for w in D.wheel_items(crop_dir) if w.image_id in keep]
    rgbs = [D.load_rgb(w) for w in wheels]
    labels = np.array([w.class_id for w in wheels])
    groups = np.array([w.image_id for w in wheels])
    angles = rotation_angles(len(wheels))
    sess = _session(model, threads)
    results = {}
    for r in rotations:
        t0 = time.time()
        gallery = pooled_embeddings(sess, rgbs, np.zeros(len(rgbs)), r)
        rotated = pooled_embeddings(sess, rgbs, angles, r)
        seconds = time.time() - t0
        wheel = _metrics(gallery, labels, groups)
        results[str(r)] = {"embeddings_per_crop": r, "wheel_R@1": wheel["R@1"], "wheel_mAP@R": wheel["mAP@R"],
                           "wheel_partner_R@1": partner_recall(gallery, gallery, labels, groups)["R@1"],
                           "wheel_partner_rot_R@1": partner_recall(rotated, gallery, labels, groups)["R@1"],
                           "seconds": round(seconds, 1)}
        print(f"R={r}: {results[str(r)]}", flush=True)
    if query_turns:
        t0 = time.time()
        gallery = pooled_embeddings(sess, rgbs, np.zeros(len(rgbs)), 1)
        plain = turned_embeddings(sess, rgbs, query_turns)
        rotated = turned_embeddings(sess, [rotate_about_centre(rgb, float(a)) for rgb, a in zip(rgbs, angles)],
                                    query_turns)
        results[f"query_turns_{query_turns}"] = {
            "embeddings_per_query": query_turns, "wheel_R@1": class_recall_max(plain, gallery, labels, groups),
            "wheel_partner_R@1": partner_recall(plain, gallery, labels, groups)["R@1"],
            "wheel_partner_rot_R@1": partner_recall(rotated, gallery, labels, groups)["R@1"],
            "seconds": round(time.time() - t0, 1)}
        print(f"query turns {query_turns}: {results[f'query_turns_{query_turns}']}", flush=True)
    return {"model": str(model), "crops": len(wheels), "threads": threads, "query_turns": query_turns,
            "results": results}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, default=EMBEDDER_MODEL)
    p.add_argument("--rotations", type=int, nargs="+", default=[1, 4, 8])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--query-turns", type=int, default=0,
                   help="also the served close-up rule: queries at this many quarter turns, best cosine (0 = off)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = p.parse_args(argv)
    out = run(args.model, args.rotations, threads=args.threads, query_turns=args.query_turns)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
