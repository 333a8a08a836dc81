"""Domain types shared by every layer (no grpc, no torch): views, crop kinds, points, hits, filters.

One vocabulary in one place. The services, the gateway, the CLI and the training code import these
names; protobuf messages are converted to and from them in :mod:`designsearch.converters` only.

Glossary (the names the code uses, one meaning each):

* **design** — one product (a wheel design, or in the car catalogues a car model); ``design_id``.
* **image** — one catalogue picture of a design; ``image_id`` = sha256 hex of its bytes.
* **region** — a part of an image that gets embedded: each **crop** the segmenter finds (kind ``wheel``, or
  ``closeup`` when one wheel fills the frame), then the **whole picture** (kind ``whole_image``).
  ``gateway.ports.Region`` holds one; a query has regions too.
* **cut-out** — a crop's wheel alone on white (its segmentation mask); the ``cutout`` view.
* **view** — a named vector of a point: ``photo`` (the region as it is), ``lines`` (its Canny **line
  drawing**) and ``cutout``. "edge" names only the Qdrant Edge engine, never a view.
* **domain** — what a query picture is: ``photo`` or ``sketch`` (a line drawing; ``auto`` decides); a sketch
  is embedded as drawn (``photo`` view) and searched against the views the query policy names.
* **point** — one region stored in the index: its vectors per view and its **payload** (below).
* **hit** — a point found by a search, with its cosine similarity ``score``.
* **design score** — a design's score for one query region: its best point's cosine, or for a designer
  query the mean cosine of its best ``design_top_m`` points (``gateway.fusion.design_scores``).
* **fused score** — a design's design score over the query's regions plus the agreement bonus
  (``gateway.fusion.fuse_max_agreement``); the API's ``score``. ``cosine`` is always a plain cosine.
* **query policy** — every rule of one FindSimilar (``gateway.plan.QueryPolicy``); both cache keys hash it.
* **model version** — ``sha256:`` + 16 hex of an ONNX file; the segmenter's adds ``+pp:`` and 8 hex of its
  crop and post-processing settings. A collection is named ``<prefix>_<embedder version>``; the alias
  names the live one.

Semantics:

* a catalogue image is stored as one *point* per region (each crop the segmenter finds, plus the
  whole picture), each with one vector per *view* and a *payload*;
* distance is cosine: ``score = cosine similarity`` in [-1, 1], higher is closer;
* the payload has at least ``design_id`` (str), ``brand`` (str), ``model`` (str), ``year`` (int),
  ``kind`` (a crop kind), ``model_version`` (str), ``image_id`` (sha256 hex) and ``box``
  (``[x1, y1, x2, y2]`` pixels of the region in its image).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from designsearch.errors import InvalidArgument

#: Views: the named vectors of a point. ``photo`` embeds the region as it is; ``lines`` embeds its
#: line drawing (Canny edge map, :func:`designsearch.images.edge_map`), the view sketches are
#: compared with (Kang et al., IAAI 2023, index Canny edge maps of the catalogue for sketches).
#: ("edge" is kept for the Qdrant Edge engine.)
VIEW_PHOTO = "photo"
VIEW_LINES = "lines"
VIEWS = (VIEW_PHOTO, VIEW_LINES)
#: A third named vector of catalogue crop points, made by the gateway rather than by an embedder view:
#: the crop's object alone on white (its segmentation mask, :func:`designsearch.images.cutout_on_white`),
#: embedded as a photo. Close-up, rendering and sketch queries show one wheel on a plain background,
#: which the catalogue's wheels on cars never do; they are searched against it as well.
VIEW_CUTOUT = "cutout"
#: Every named vector a collection may hold (:data:`VIEWS` are also what the embedder computes).
VECTOR_NAMES = (VIEW_PHOTO, VIEW_LINES, VIEW_CUTOUT)

#: Crop kinds (``Detection.kind``, payload ``kind``).
KIND_WHEEL = "wheel"  # an object found inside a larger photo
KIND_CLOSEUP = "closeup"  # the image is a close-up of one object: the object fills the frame
KIND_WHOLE_IMAGE = "whole_image"  # the whole picture (always indexed and searched besides the crops)
CROP_KINDS_ALL = (KIND_WHEEL, KIND_CLOSEUP, KIND_WHOLE_IMAGE)

#: A bounding box ``(x1, y1, x2, y2)`` in pixels, x2/y2 exclusive.
Box = tuple[int, int, int, int]

_NAME_RE = re.compile(r"[A-Za-z0-9_.\-]{1,64}")


@dataclass
class Point:
    """A stored vector set with its payload.

    Attributes:
        id: UUID string.
        vectors: view name → float32 array ``(D,)``; stored normalised (cosine distance).
        payload: JSON-able dict (see the module docstring for its keys).
    """

    id: str
    vectors: dict[str, np.ndarray]
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SearchFilter:
    """Payload filter; every set condition must hold (AND). Empty filter = everything.

    Attributes:
        brands: keep points whose ``brand`` is one of these (exact match); empty = any.
        year_min, year_max: inclusive range on ``year``; ``None`` = open.
        kinds: keep points whose ``kind`` is one of these; empty = any.
        exclude_design_ids: drop points whose ``design_id`` is one of these.
        design_ids: keep points whose ``design_id`` is one of these; empty = any.
    """

    brands: tuple[str, ...] = ()
    year_min: int | None = None
    year_max: int | None = None
    kinds: tuple[str, ...] = ()
    exclude_design_ids: tuple[str, ...] = ()
    design_ids: tuple[str, ...] = ()

    def is_empty(self) -> bool:
        """True when the filter keeps every point."""
        return (not (self.brands or self.kinds or self.exclude_design_ids or self.design_ids)
                and self.year_min is None and self.year_max is None)


@dataclass(frozen=True)
class Hit:
    """One search result: point id, cosine similarity and payload."""

    id: str
    score: float
    payload: dict[str, Any]


def check_collection_name(name: str, field: str = "collection") -> str:
    """Collection/alias names: 1-64 chars of letters, digits, ``_``, ``-``, ``.``.

    Raises:
        InvalidArgument: empty or malformed name.
    """
    if not name or not _NAME_RE.fullmatch(name):
        raise InvalidArgument(f"bad {field} name {name!r}: 1-64 letters, digits, '_', '-', '.'", field=field)
    return name


#: Control characters (C0 with NUL, DEL, C1): never part of a label. PostgreSQL cannot store NUL in
#: text at all, so a catalogue on it and one on SQLite would otherwise disagree.
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f]")
#: The same without tab, line feed and carriage return (allowed in free text: attribute values).
_CONTROL_NOT_SPACE_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def check_text(value: str, field: str, *, free_text: bool = False) -> str:
    """Refuse control characters in a label (design id, brand, model, source, attribute key), or in
    free text (``free_text``: an attribute value, where tab and line breaks are allowed).

    Raises:
        InvalidArgument: ``value`` holds one; the message names ``field`` and the character's code
            and position, never the value itself.
    """
    bad = (_CONTROL_NOT_SPACE_RE if free_text else _CONTROL_RE).search(value)
    if bad:
        raise InvalidArgument(f"{field} contains a control character (U+{ord(bad.group()):04X} at position "
                              f"{bad.start()}); only printable text is accepted", field=field)
    return value


def check_filter(flt: SearchFilter) -> SearchFilter:
    """Reject a reversed year range and control characters in brands and design ids.

    Raises:
        InvalidArgument: ``year_min > year_max``; a brand or design id with a control character.
    """
    if flt.year_min is not None and flt.year_max is not None and flt.year_min > flt.year_max:
        raise InvalidArgument(
            f"year range reversed: year_min {flt.year_min} > year_max {flt.year_max}", field="filters.year_min"
        )
    for name, values in (("brands", flt.brands), ("design_ids", flt.design_ids),
                         ("exclude_design_ids", flt.exclude_design_ids)):
        for v in values:
            check_text(v, f"filters.{name}")
    return flt


def check_view(name: str, field: str = "vectors") -> str:
    """A named vector of a collection must be one of :data:`VECTOR_NAMES`.

    Raises:
        InvalidArgument: unknown vector name.
    """
    if name not in VECTOR_NAMES:
        raise InvalidArgument(f"unknown vector name {name!r}; expected one of {list(VECTOR_NAMES)}", field=field)
    return name
