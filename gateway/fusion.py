"""Query fusion: one ranked list of designs from the hit lists of several query vectors (no grpc, no I/O).

A query image is searched with several vectors: one per wheel crop the segmenter found, and one of
the whole picture. Each vector returns its own list of designs (best hit per design). This module
merges those lists into one ranking so that a single bad crop (a false detection, a hub cap that
happens to resemble another design) cannot push the right design down when the whole picture and
the other crops agree on it.

The rule is CombMAX with a CombMNZ-style agreement bonus (Fox & Shaw, "Combination of Multiple
Searches", TREC-2, 1994): see :func:`fuse_max_agreement`. The caller's "not similar" feedback moves
the query vectors before they are searched (:func:`away_from`, Rocchio's negative term).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from designsearch.domain import Hit



@dataclass(frozen=True)
class FusedMatch:
    """One design after fusion.

    Attributes:
        design_id: the design (``hit.payload["design_id"]``).
        score: fused score, ``best + bonus * (votes - 1) / (n - 1)``; in ``[-1, 1 + bonus]``.
        best: the design's best score over all query vectors' lists, in ``[-1, 1]``: a cosine similarity
            when the lists hold plain hits, the mean of a design's best points when they come from
            :func:`design_scores` with ``top_m`` > 1.
        query_index: index (into the input lists) of the query vector that gave ``best``.
        hit: the catalogue hit that gave ``best`` (its point id names the catalogue crop).
        votes: number of query vectors whose top ``depth`` hits contain the design (0 when the
            design was only found below ``depth``).
    """

    design_id: str
    score: float
    best: float
    query_index: int
    hit: Hit
    votes: int


def fuse_max_agreement(per_query: Sequence[Sequence[Hit]], bonus: float,
                       depth: int | None = None) -> list[FusedMatch]:
    """Fuse the hit lists of ``n`` query vectors into one ranking of designs.

    Rule (CombMAX plus an agreement bonus in the spirit of CombMNZ; Fox & Shaw, TREC-2, 1994)::

        score(d) = max_i cos_i(d) + bonus * (votes(d) - 1) / (n - 1)      (n > 1)
        score(d) = cos_1(d)                                                 (n = 1)

    where ``cos_i(d)`` is the cosine similarity of query vector ``i``'s best hit on design ``d``
    (designs missing from list ``i`` do not contribute to the max), ``n = len(per_query)`` counts
    every query vector, including those whose list is empty, and ``votes(d)`` is the number of
    lists whose first ``depth`` hits (after sorting each list by descending score) contain ``d``,
    with the bonus term floored at 0. So a design found by one vector only keeps its plain cosine,
    one found by every vector gains the full ``bonus``; with a small bonus (0.02-0.05) agreement
    only reorders designs whose best cosines are that close, and a strong single match still wins.
    Unlike CombSUM/CombMNZ the fused score stays on the cosine scale (at most ``bonus`` above it),
    so it is comparable across queries with different numbers of crops.

    Ties are broken deterministically: higher fused score (compared after rounding to 9 decimals,
    so that ``0.80 + 0.03`` ties with ``0.83``), then higher best cosine, then more votes, then
    ascending ``design_id``. Within a design, the query vector with the higher cosine
    gives ``best``/``hit``; on equal scores the lower query index (the earlier list) wins.

    Args:
        per_query: one list of hits per query vector; each hit needs ``score`` (cosine) and
            ``payload["design_id"]``. A design may appear several times in a list (its best hit
            counts, and it votes once).
        bonus: agreement bonus in cosine units, ``>= 0``.
        depth: leading hits of each list that count as votes; ``None`` = the whole list.

    Returns:
        One :class:`FusedMatch` per design found in any list, best first.

    Raises:
        ValueError: ``bonus < 0`` or ``depth < 1``.
    """
    if bonus < 0:
        raise ValueError(f"bonus must be >= 0, got {bonus}")
    if depth is not None and depth < 1:
        raise ValueError(f"depth must be >= 1 or None, got {depth}")
    n = len(per_query)
    best: dict[str, tuple[float, int, Hit]] = {}
    votes: dict[str, int] = {}
    for qi, hits in enumerate(per_query):
        ranked = sorted(hits, key=lambda h: -h.score)  # stable: equal scores keep their order
        voted: set[str] = set()
        for rank, h in enumerate(ranked):
            d = h.payload["design_id"]
            score = float(h.score)
            if d not in best or score > best[d][0]:
                best[d] = (score, qi, h)
            if (depth is None or rank < depth) and d not in voted:
                voted.add(d)
                votes[d] = votes.get(d, 0) + 1
    out = []
    for d, (cosine, qi, h) in best.items():
        v = votes.get(d, 0)
        extra = bonus * max(0, v - 1) / (n - 1) if n > 1 else 0.0
        out.append(FusedMatch(d, cosine + extra, cosine, qi, h, v))
    out.sort(key=lambda m: (-round(m.score, 9), -m.best, -m.votes, m.design_id))
    return out


def design_scores(lists: Sequence[Sequence[Hit]], top_m: int = 1, near_copy: float = 0.9) -> list[Hit]:
    """One hit list from the hit lists of one query region (its searches in several catalogue views, its
    rotated copies), each list holding up to ``top_m`` hits per design: every catalogue point keeps its
    best score over the lists, and a design scores the mean of its ``top_m`` best points (all of them when
    it has fewer) — or its best point's cosine when that reaches ``near_copy`` (a near-copy of one of its
    pictures is always that design, at its true similarity) — as a hit of its best point; best first.

    ``top_m = 1`` is :func:`best_per_design` (CombMAX). With more, a design is scored by how much of it
    looks like the query rather than by its single closest picture (the class-level aggregation of
    nearest-neighbour hits in instance retrieval, e.g. the "mean of the top-k" class score of Boiman
    et al., "In Defense of Nearest-Neighbor Based Image Classification", CVPR 2008): one look-alike
    picture of another design weighs less against several close pictures of the right one.

    Args:
        lists: hit lists, designs named by ``hit.payload["design_id"]``, points by ``hit.id``.
        top_m: points averaged per design, >= 1.
        near_copy: cosine at or above which a design scores its best point alone.

    Returns:
        One hit per design (id and payload of its best point, score the mean), by descending score
        (ties: design id).

    Raises:
        ValueError: ``top_m`` < 1.
    """
    if top_m < 1:
        raise ValueError(f"top_m must be >= 1, got {top_m}")
    if top_m == 1:
        return best_per_design(lists)
    points: dict[str, Hit] = {}
    for hits in lists:
        for h in hits:
            if h.id not in points or h.score > points[h.id].score:
                points[h.id] = h
    by_design: dict[str, list[Hit]] = {}
    for h in points.values():
        by_design.setdefault(h.payload["design_id"], []).append(h)
    out = []
    for d, hits in by_design.items():
        hits.sort(key=lambda h: (-h.score, h.id))
        best = hits[0].score
        score = best if best >= near_copy else sum(h.score for h in hits[:top_m]) / min(top_m, len(hits))
        out.append(Hit(hits[0].id, score, hits[0].payload))
    out.sort(key=lambda h: (-h.score, h.payload["design_id"]))
    return out


def best_per_design(lists: Sequence[Sequence[Hit]]) -> list[Hit]:
    """One hit list from several lists of the same query region (its rotated copies, its searches in two
    catalogue views): each design's best-scoring hit (CombMAX over the lists), best first — the hits of
    :func:`fuse_max_agreement` without a bonus (same tie rules: on equal scores the earlier list's hit).

    Args:
        lists: hit lists, designs named by ``hit.payload["design_id"]``.

    Returns:
        At most one hit per design, by descending score.
    """
    return [m.hit for m in fuse_max_agreement(lists, bonus=0.0, depth=None)]


def away_from(vectors: np.ndarray, crop_mask: np.ndarray, negatives: list[tuple[bool, np.ndarray]],
              weight: float) -> np.ndarray:
    """Move query vectors away from disliked examples (the negative term of Rocchio's relevance
    feedback, Rocchio 1971: ``q' = normalise(q − γ · mean(negatives))``).

    Args:
        vectors: float32 ``(R, D)`` unit query vectors, one per region.
        crop_mask: bool ``(R,)``, True for crop regions (compared with crop negatives), False for the
            whole picture (compared with whole-picture negatives).
        negatives: ``(is_crop, unit vector (D,))`` of the disliked designs' catalogue points.
        weight: γ ≥ 0.

    Returns:
        float32 ``(R, D)`` unit vectors (rows without negatives of their kind are unchanged).
    """
    out = vectors.astype(np.float32).copy()
    for is_crop in (True, False):
        neg = [v for c, v in negatives if c == is_crop]
        rows = np.where(crop_mask == is_crop)[0]
        if not neg or not len(rows):
            continue
        moved = out[rows] - weight * np.mean(neg, axis=0)
        out[rows] = moved / np.maximum(np.linalg.norm(moved, axis=1, keepdims=True), 1e-12)
    return out
