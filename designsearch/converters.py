"""Every protobuf ⇄ domain conversion, in one module (the pattern of MLServer's ``grpc/converters.py``).

Servicers and gRPC clients call these; cores and engines see only :mod:`designsearch.domain` types.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from designsearch.domain import (KIND_CLOSEUP, KIND_WHEEL, KIND_WHOLE_IMAGE, VIEW_CUTOUT, VIEW_LINES, VIEW_PHOTO, Box,
                                 Hit, Point, SearchFilter, check_filter)
from designsearch.errors import InvalidArgument, InvalidImage
from designsearch.images import MAX_PIXELS, MAX_SIDE
from designsearch.internal.v1 import search_pb2, types_pb2
from designsearch.v1 import common_pb2

#: Payload keys carried by ``search_pb2.Payload`` as they are (``kind`` and ``box`` are converted).
PAYLOAD_KEYS = ("design_id", "brand", "model", "year", "model_version", "image_id")


_KIND_OUT = {KIND_WHEEL: common_pb2.CROP_KIND_WHEEL, KIND_CLOSEUP: common_pb2.CROP_KIND_CLOSEUP,
             KIND_WHOLE_IMAGE: common_pb2.CROP_KIND_WHOLE_IMAGE}
_KIND_IN = {v: k for k, v in _KIND_OUT.items()}
_VIEW_OUT = {VIEW_PHOTO: types_pb2.VIEW_PHOTO, VIEW_LINES: types_pb2.VIEW_LINES, VIEW_CUTOUT: types_pb2.VIEW_CUTOUT}
_VIEW_IN = {v: k for k, v in _VIEW_OUT.items()}


def kind_to_proto(kind: str) -> int:
    """Crop kind (``designsearch.domain.KIND_*``) → ``CropKind``; unknown → ``CROP_KIND_UNSPECIFIED``."""
    return _KIND_OUT.get(kind, common_pb2.CROP_KIND_UNSPECIFIED)


def kind_from_proto(kind: int, field: str = "kind") -> str:
    """``CropKind`` → crop kind string.

    Raises:
        InvalidArgument: ``CROP_KIND_UNSPECIFIED`` or a value this version does not know.
    """
    try:
        return _KIND_IN[kind]
    except KeyError:
        raise InvalidArgument(f"crop kind {kind} is not one of {sorted(_KIND_IN)}", field=field) from None


def view_to_proto(view: str) -> int:
    """View or vector name (``designsearch.domain.VECTOR_NAMES``) → ``View``.

    Raises:
        InvalidArgument: unknown view name.
    """
    try:
        return _VIEW_OUT[view]
    except KeyError:
        raise InvalidArgument(f"unknown view {view!r}; expected one of {list(_VIEW_OUT)}", field="views") from None


def view_from_proto(view: int, field: str = "view") -> str:
    """``View`` → view name; ``VIEW_UNSPECIFIED`` = ``photo``.

    Raises:
        InvalidArgument: a value this version does not know.
    """
    if view == types_pb2.VIEW_UNSPECIFIED:
        return VIEW_PHOTO
    try:
        return _VIEW_IN[view]
    except KeyError:
        raise InvalidArgument(f"view {view} is not one of {sorted(_VIEW_IN)}", field=field) from None


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


def pixels_to_proto(rgb: np.ndarray) -> types_pb2.Pixels:
    """``uint8`` ``(H, W, 3)`` RGB → ``Pixels`` (its bytes, row-major).

    Raises:
        ValueError: not a ``uint8`` ``(H, W, 3)`` array.
    """
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"pixels must be uint8 (H, W, 3); got {rgb.dtype} {rgb.shape}")
    return types_pb2.Pixels(width=rgb.shape[1], height=rgb.shape[0], rgb=np.ascontiguousarray(rgb).tobytes())


def pixels_from_proto(p: types_pb2.Pixels, field: str = "pixels") -> np.ndarray:
    """``Pixels`` → ``uint8`` ``(H, W, 3)`` RGB, a read-only view of the message's bytes (no copy).

    Raises:
        InvalidImage: a side under 8 px or over :data:`designsearch.images.MAX_SIDE`, more than
            :data:`designsearch.images.MAX_PIXELS` pixels, or ``len(rgb) != width * height * 3``.
    """
    w, h = p.width, p.height
    if min(w, h) < 8 or max(w, h) > MAX_SIDE or w * h > MAX_PIXELS:
        raise InvalidImage(f"pixels of {w}x{h}: each side must be 8-{MAX_SIDE} px and at most {MAX_PIXELS} px in all",
                           field=field)
    if len(p.rgb) != w * h * 3:
        raise InvalidImage(f"pixels of {w}x{h} need {w * h * 3} bytes of RGB; got {len(p.rgb)}", field=field)
    return np.frombuffer(p.rgb, dtype=np.uint8).reshape(h, w, 3)


def vectors_from_proto(vectors: Mapping[str, common_pb2.Vector]) -> dict[str, np.ndarray]:
    """``map<string, Vector>`` → view name → float32 ``(D,)``."""
    return {name: vector_from_proto(v) for name, v in vectors.items()}


def filter_from_proto(f: common_pb2.Filters) -> SearchFilter:
    """Protobuf ``Filters`` → :class:`SearchFilter` (unset years stay open).

    Raises:
        InvalidArgument: reversed year range, unknown crop kind.
    """
    return check_filter(
        SearchFilter(
            brands=tuple(f.brands),
            year_min=f.year_min if f.HasField("year_min") else None,
            year_max=f.year_max if f.HasField("year_max") else None,
            kinds=tuple(kind_from_proto(k, "filters.kinds") for k in f.kinds),
            exclude_design_ids=tuple(f.exclude_design_ids),
            design_ids=tuple(f.design_ids),
        )
    )


def filter_to_proto(flt: SearchFilter) -> common_pb2.Filters:
    """:class:`SearchFilter` → protobuf ``Filters``."""
    f = common_pb2.Filters(brands=flt.brands, kinds=[kind_to_proto(k) for k in flt.kinds],
                           exclude_design_ids=flt.exclude_design_ids, design_ids=flt.design_ids)
    if flt.year_min is not None:
        f.year_min = flt.year_min
    if flt.year_max is not None:
        f.year_max = flt.year_max
    return f


def payload_from_proto(p: search_pb2.Payload) -> dict[str, Any]:
    """Protobuf payload → payload dict (box as ``[x1, y1, x2, y2]``)."""
    d: dict[str, Any] = {k: getattr(p, k) for k in PAYLOAD_KEYS}
    d["kind"] = _KIND_IN.get(p.kind, "")
    d["box"] = list(box_from_proto(p.box))
    return d


def payload_to_proto(d: Mapping[str, Any]) -> search_pb2.Payload:
    """Payload dict → protobuf payload (missing keys stay unset; missing box = zeros)."""
    return search_pb2.Payload(
        **{k: d[k] for k in PAYLOAD_KEYS if k in d and d[k] is not None},
        kind=kind_to_proto(d.get("kind", "")),
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
