"""Retrieval metrics for embeddings: Recall@K and mAP@R (NumPy only).

Both metrics rank a gallery by cosine similarity to each query (embeddings are L2-normalised
here, so unnormalised input is fine). Two protocols are supported:

* **Leave-one-out** (the CARS196 / CUB metric-learning protocol): every item is a query and the
  gallery is every *other* item (``gallery=None``).
* **Query vs gallery**: separate query and gallery sets, e.g. edge-map (sketch) queries against a
  photo catalogue.

Optional *groups* exclude pairs that share a source, e.g. two wheel crops cut from the same car
photo, or a sketch and the photo it was drawn from: a gallery item whose group equals the query's
group is never retrieved and never counted as relevant. In leave-one-out mode an item is always
excluded from its own gallery, groups or not.

Sources:
    * Recall@K: Jegou et al., "Product Quantization for Nearest Neighbor Search", TPAMI 2011;
      as used for metric learning by Song et al., "Deep Metric Learning via Lifted Structured
      Feature Embedding", CVPR 2016: the fraction of queries whose K nearest neighbours contain at
      least one item of the query's class.
    * mAP@R: Musgrave, Belongie, Lim, "A Metric Learning Reality Check", ECCV 2020, eq. (1):
      for a query with ``R`` relevant gallery items, ``MAP@R = 1/R * sum_{i=1..R} P(i) * rel(i)``
      over the top ``R`` results, where ``P(i)`` is the precision at rank ``i``; averaged over
      queries.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: Queries are scored against the gallery in chunks of this many rows (bounds memory to
#: ``chunk * n_gallery`` floats).
_CHUNK = 1024


def _normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"embeddings must be 2-D (N, D); got shape {x.shape}")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def _prepare(
    embeddings: np.ndarray,
    labels: Sequence | np.ndarray,
    gallery: np.ndarray | None,
    gallery_labels: Sequence | np.ndarray | None,
    groups: Sequence | np.ndarray | None,
    gallery_groups: Sequence | np.ndarray | None,
):
    q = _normalise(embeddings)
    q_labels = np.asarray(labels)
    if q_labels.shape != (q.shape[0],):
        raise ValueError(f"labels must have shape ({q.shape[0]},); got {q_labels.shape}")
    leave_one_out = gallery is None
    if leave_one_out:
        if gallery_labels is not None or gallery_groups is not None:
            raise ValueError("gallery_labels/gallery_groups need a gallery")
        g, g_labels = q, q_labels
        q_groups = None if groups is None else np.asarray(groups)
        g_groups = q_groups
    else:
        g = _normalise(gallery)
        if g.shape[1] != q.shape[1]:
            raise ValueError(f"query dim {q.shape[1]} != gallery dim {g.shape[1]}")
        if gallery_labels is None:
            raise ValueError("gallery_labels is required with a gallery")
        g_labels = np.asarray(gallery_labels)
        if g_labels.shape != (g.shape[0],):
            raise ValueError(f"gallery_labels must have shape ({g.shape[0]},); got {g_labels.shape}")
        if (groups is None) != (gallery_groups is None):
            raise ValueError("give both groups and gallery_groups, or neither")
        q_groups = None if groups is None else np.asarray(groups)
        g_groups = None if gallery_groups is None else np.asarray(gallery_groups)
    if q_groups is not None and q_groups.shape != (q.shape[0],):
        raise ValueError(f"groups must have shape ({q.shape[0]},); got {q_groups.shape}")
    if g_groups is not None and g_groups.shape != (g.shape[0],):
        raise ValueError(f"gallery_groups must have shape ({g.shape[0]},); got {g_groups.shape}")
    return q, q_labels, q_groups, g, g_labels, g_groups, leave_one_out


def _scored_chunks(q, q_groups, g, g_groups, leave_one_out):
    """Yield ``(start, sims)``: cosine similarities ``(chunk, n_gallery)``, excluded pairs at -inf."""
    for start in range(0, q.shape[0], _CHUNK):
        stop = min(q.shape[0], start + _CHUNK)
        sims = q[start:stop] @ g.T
        if leave_one_out:
            rows = np.arange(stop - start)
            sims[rows, rows + start] = -np.inf
        if q_groups is not None:
            sims[q_groups[start:stop, None] == g_groups[None, :]] = -np.inf
        yield start, sims


def recall_at_k(
    embeddings: np.ndarray,
    labels: Sequence | np.ndarray,
    ks: Sequence[int] = (1, 2, 4, 8),
    *,
    gallery: np.ndarray | None = None,
    gallery_labels: Sequence | np.ndarray | None = None,
    groups: Sequence | np.ndarray | None = None,
    gallery_groups: Sequence | np.ndarray | None = None,
) -> dict[int, float]:
    """Recall@K: fraction of queries with at least one same-label item among their K nearest.

    Args:
        embeddings: query embeddings, float ``(N, D)``; cosine similarity (normalised here).
        labels: class of each query, shape ``(N,)``, any hashable dtype.
        ks: the K values (positive ints).
        gallery: optional gallery embeddings ``(M, D)``; ``None`` = leave-one-out over
            ``embeddings``.
        gallery_labels: class of each gallery item ``(M,)``; required with ``gallery``.
        groups: optional source id per query ``(N,)``; gallery items of the same group are
            excluded (in leave-one-out mode they double as ``gallery_groups``).
        gallery_groups: source id per gallery item ``(M,)``; required with ``groups`` when a
            gallery is given.

    Returns:
        ``{k: recall}`` with recalls in [0, 1]. Queries with no relevant gallery item count as
        misses (they cannot be hit); ties in similarity are broken by gallery order.

    Raises:
        ValueError: shape mismatches, non-positive K, or an empty query set.
    """
    ks = [int(k) for k in ks]
    if not ks or min(ks) < 1:
        raise ValueError(f"ks must be positive ints; got {ks}")
    q, q_labels, q_groups, g, g_labels, g_groups, loo = _prepare(
        embeddings, labels, gallery, gallery_labels, groups, gallery_groups
    )
    if q.shape[0] == 0:
        raise ValueError("no queries")
    kmax = min(max(ks), g.shape[0])
    hits = {k: 0 for k in ks}
    for start, sims in _scored_chunks(q, q_groups, g, g_groups, loo):
        # Stable top-kmax by descending similarity (ties keep gallery order).
        top = np.argsort(-sims, axis=1, kind="stable")[:, :kmax]
        top_sims = np.take_along_axis(sims, top, axis=1)
        match = (g_labels[top] == q_labels[start : start + sims.shape[0], None]) & np.isfinite(top_sims)
        for k in ks:
            hits[k] += int(match[:, :k].any(axis=1).sum())
    return {k: hits[k] / q.shape[0] for k in ks}


def map_at_r(
    embeddings: np.ndarray,
    labels: Sequence | np.ndarray,
    *,
    gallery: np.ndarray | None = None,
    gallery_labels: Sequence | np.ndarray | None = None,
    groups: Sequence | np.ndarray | None = None,
    gallery_groups: Sequence | np.ndarray | None = None,
) -> float:
    """mAP@R (Musgrave et al., ECCV 2020), cosine similarity.

    For each query, ``R`` is the number of gallery items with its label (after exclusions); the
    score is ``1/R * sum_{i<=R} P(i) * rel(i)`` over the top ``R`` results. Queries with
    ``R = 0`` are skipped.

    Args:
        embeddings, labels, gallery, gallery_labels, groups, gallery_groups: as in
            :func:`recall_at_k`.

    Returns:
        Mean over queries with ``R >= 1``, in [0, 1].

    Raises:
        ValueError: shape mismatches, or no query has a relevant gallery item.
    """
    q, q_labels, q_groups, g, g_labels, g_groups, loo = _prepare(
        embeddings, labels, gallery, gallery_labels, groups, gallery_groups
    )
    total, counted = 0.0, 0
    for start, sims in _scored_chunks(q, q_groups, g, g_groups, loo):
        chunk_labels = q_labels[start : start + sims.shape[0]]
        relevant = (g_labels[None, :] == chunk_labels[:, None]) & np.isfinite(sims)
        r_counts = relevant.sum(axis=1)
        order = np.argsort(-sims, axis=1, kind="stable")
        rel_sorted = np.take_along_axis(relevant, order, axis=1)
        for row in range(sims.shape[0]):
            r = int(r_counts[row])
            if r == 0:
                continue
            rel = rel_sorted[row, :r].astype(np.float64)
            precision = np.cumsum(rel) / np.arange(1, r + 1)
            total += float((precision * rel).sum() / r)
            counted += 1
    if counted == 0:
        raise ValueError("no query has a relevant gallery item")
    return total / counted
