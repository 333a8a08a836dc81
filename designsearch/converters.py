"""Every protobuf ⇄ domain conversion, in one module (the pattern of MLServer's ``grpc/converters.py``).

Servicers and gRPC clients call these; cores and engines see only :mod:`designsearch.domain` types.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from designsearch.domain import Box, Hit, Point, SearchFilter, check_filter
from designsearch.v1 import common_pb2, search_pb2

#: Payload keys carried by ``search_pb2.Payload`` besides ``box``.
PAYLOAD_KEYS = ("design_id", "brand", "model", "year", "kind", "model_version", "image_id")


def box_to_proto(box: Sequence[int]) -> common_pb2.BoundingBox:
    """``(x1, y1, x2, y2)`` pixels → ``BoundingBox``."""
    return common_pb2.BoundingBox(x1=int(box[0]), y1=int(box[1]), x2=int(box[2]), y2=int(box[3]))


def box_from_proto(b: common_pb2.BoundingBox) -> Box:
    """``BoundingBox`` → ``(x1, y1, x2, y2)`` pixels."""
    return (b.x1, b.y1, b.x2, b.y2)


def vector_to_proto(v: np.ndarray) -> common_pb2.Vector:
    """float32 ``(D,)`` → ``Vector``."""
    return common_pb2.Vector(values=np.asarray(v, dtype=np.float32).tolist())


def vector_from_proto(v: common_pb2.Vector) -> np.ndarray:
    """``Vector`` → float32 ``(D,)``."""
    return np.asarray(v.values, dtype=np.float32)


def vectors_from_proto(vectors: Mapping[str, common_pb2.Vector]) -> dict[str, np.ndarray]:
    """``map<string, Vector>`` → view name → float32 ``(D,)``."""
    return {name: vector_from_proto(v) for name, v in vectors.items()}


def filter_from_proto(f: common_pb2.Filters) -> SearchFilter:
    """Protobuf ``Filters`` → :class:`SearchFilter` (unset years stay open).

    Raises:
        InvalidArgument: reversed year range.
    """
    return check_filter(
        SearchFilter(
            brands=tuple(f.brands),
            year_min=f.year_min if f.HasField("year_min") else None,
            year_max=f.year_max if f.HasField("year_max") else None,
            kinds=tuple(f.kinds),
            exclude_design_ids=tuple(f.exclude_design_ids),
        )
    )


def filter_to_proto(flt: SearchFilter) -> common_pb2.Filters:
    """:class:`SearchFilter` → protobuf ``Filters``."""
    f = common_pb2.Filters(brands=flt.brands, kinds=flt.kinds, exclude_design_ids=flt.exclude_design_ids)
    if flt.year_min is not None:
        f.year_min = flt.year_min
    if flt.year_max is not None:
        f.year_max = flt.year_max
    return f


def payload_from_proto(p: search_pb2.Payload) -> dict[str, Any]:
    """Protobuf payload → payload dict (box as ``[x1, y1, x2, y2]``)."""
    d: dict[str, Any] = {k: getattr(p, k) for k in PAYLOAD_KEYS}
    d["box"] = list(box_from_proto(p.box))
    return d


def payload_to_proto(d: Mapping[str, Any]) -> search_pb2.Payload:
    """Payload dict → protobuf payload (missing keys stay unset; missing box = zeros)."""
    return search_pb2.Payload(
        **{k: d[k] for k in PAYLOAD_KEYS if k in d and d[k] is not None},
        box=box_to_proto(d.get("box") or (0, 0, 0, 0)),
    )


def point_to_proto(p: Point) -> search_pb2.Point:
    """:class:`Point` → protobuf."""
    return search_pb2.Point(id=p.id, vectors={k: vector_to_proto(v) for k, v in p.vectors.items()},
                            payload=payload_to_proto(p.payload))


def point_from_proto(p: search_pb2.Point) -> Point:
    """Protobuf → :class:`Point`."""
    return Point(id=p.id, vectors=vectors_from_proto(p.vectors), payload=payload_from_proto(p.payload))


def hit_to_proto(h: Hit) -> search_pb2.ScoredPoint:
    """:class:`Hit` → protobuf."""
    return search_pb2.ScoredPoint(id=h.id, score=h.score, payload=payload_to_proto(h.payload))


def hit_from_proto(h: search_pb2.ScoredPoint) -> Hit:
    """Protobuf → :class:`Hit`."""
    return Hit(h.id, h.score, payload_from_proto(h.payload))
