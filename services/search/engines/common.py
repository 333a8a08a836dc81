"""Engine-neutral helpers shared by the vector-index engines: ids, vector checks, limits, grouping."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from designsearch.domain import Hit, Point
from designsearch.errors import InvalidArgument


def canonical_id(point_id: str) -> str:
    """Return the canonical (lower-case, hyphenated) form of a UUID string.

    Qdrant stores UUID ids in this form and returns them so; canonicalising on the way in makes
    every engine return the same strings.

    Raises:
        InvalidArgument: ``point_id`` is not a UUID.
    """
    try:
        return str(uuid.UUID(str(point_id)))
    except (ValueError, AttributeError, TypeError) as exc:
        raise InvalidArgument(f"point id {point_id!r} is not a UUID", field="id") from exc


def prepare_vector(vector: Any, name: str, dims: dict[str, int]) -> np.ndarray:
    """Check a vector against a collection's named-vector dims and L2-normalise it.

    Args:
        vector: array-like, shape ``(D,)``.
        name: vector name (``photo``/``edge``).
        dims: the collection's ``{name: D}``.

    Returns:
        float32 ``(D,)`` with unit L2 norm (cosine distance works on normalised vectors).

    Raises:
        InvalidArgument: unknown name, wrong shape/dimension, non-finite values or zero norm.
    """
    if name not in dims:
        raise InvalidArgument(f"unknown vector name {name!r}; collection has {sorted(dims)}", field="using")
    arr = np.asarray(vector, dtype=np.float32)
    if arr.ndim != 1 or arr.shape[0] != dims[name]:
        raise InvalidArgument(
            f"vector {name!r} must have shape ({dims[name]},), got {tuple(arr.shape)}", field="vector"
        )
    if not np.all(np.isfinite(arr)):
        raise InvalidArgument(f"vector {name!r} has non-finite values", field="vector")
    norm = float(np.linalg.norm(arr))
    if norm == 0.0:
        raise InvalidArgument(f"vector {name!r} has zero norm (cosine undefined)", field="vector")
    return (arr / norm).astype(np.float32)


def check_limit(limit: int, field: str = "limit") -> int:
    """Validate a positive result count.

    Raises:
        InvalidArgument: ``limit`` is not a positive integer.
    """
    if not isinstance(limit, (int, np.integer)) or isinstance(limit, bool) or limit <= 0:
        raise InvalidArgument(f"{field} must be a positive integer, got {limit!r}", field=field)
    return int(limit)


def group_hits(hits: Iterable[Hit], group_by: str, limit: int, group_size: int) -> list[list[Hit]]:
    """Group score-ordered hits by payload ``group_by`` value (first-seen order = best score).

    Hits whose payload lacks ``group_by`` are skipped, as Qdrant's ``query_points_groups`` does.

    Returns:
        up to ``limit`` groups, each with up to ``group_size`` hits, best first.
    """
    groups: dict[Any, list[Hit]] = {}
    for hit in hits:
        key = hit.payload.get(group_by)
        if key is None or isinstance(key, (list, dict)):
            continue
        bucket = groups.get(key)
        if bucket is None:
            if len(groups) >= limit:
                continue
            bucket = groups[key] = []
        if len(bucket) < group_size:
            bucket.append(hit)
    return list(groups.values())


def records_to_points(records: Iterable[Any], wanted: Sequence[str]) -> list[Point]:
    """Engine records (``.id``, ``.vector`` dict, ``.payload``) → :class:`Point` in ``wanted`` order.

    Ids missing from ``records`` are skipped; duplicates in ``wanted`` are returned once.
    """
    by_id = {str(r.id): r for r in records}
    out = []
    for i in dict.fromkeys(wanted):
        r = by_id.get(i)
        if r is None:
            continue
        vecs = r.vector if isinstance(r.vector, dict) else {}
        out.append(Point(id=i, vectors={n: np.asarray(v, dtype=np.float32) for n, v in vecs.items()},
                         payload=dict(r.payload or {})))
    return out
