"""The regions an image is embedded as (its crops, then the whole picture), their cut-outs, and the
ids of the catalogue points they become. Queries and ingestion share these rules.
"""

from __future__ import annotations

import uuid

import cv2
import numpy as np

from designsearch.domain import KIND_WHOLE_IMAGE
from designsearch.errors import InvalidImage
from designsearch.images import MIN_SIDE, cutout_on_white, decode_mask, encode_jpeg
from designsearch.gateway.ports import Region

#: The whole picture is sent to the embedder at most this many px on its longest side (larger
#: images are shrunk first; the embedder's input is 224 px). Queries and ingestion must agree, so
#: this is a constant, not a setting; it is part of the query cache key.
WHOLE_PICTURE_MAX_SIDE = 1024

#: Side of the square crops the gateway asks the segmenter for (as pixels) and of its cut-outs, px: the
#: embedder's input size, so crops go to the embedder neither encoded nor resized. Queries and ingestion
#: must agree (a catalogue's vectors were computed from crops of this size), so this is a constant.
CROP_SIZE = 224

POINT_NAMESPACE = uuid.UUID("6f0c2a4e-8b1d-4e4a-9a57-2f1f0d7f5b10")


def point_id(image_id: str, crop_index: int, model_version: str) -> str:
    """Deterministic point id (UUID5) of region ``crop_index`` of an image under one model version.

    Regions are numbered as :func:`query_regions` orders them: the crops 0..n-1, then the whole
    picture n (so the whole picture is 0 when the segmenter found nothing).
    """
    return str(uuid.uuid5(POINT_NAMESPACE, f"{image_id}:{crop_index}:{model_version}"))


def whole_picture_bytes(image: bytes, rgb: np.ndarray, max_side: int = WHOLE_PICTURE_MAX_SIDE) -> bytes:
    """The encoded whole picture to embed: ``image`` itself, or a JPEG (quality 92) of ``rgb``
    shrunk (area interpolation) to ``max_side`` px on its longest side when it is larger. The short
    side never drops below :data:`designsearch.images.MIN_SIDE` (a thin 8 x 4000 px image becomes
    8 x 1024, not 2 x 1024, which the embedder would refuse: the rule the gateway checked holds).

    Args:
        image: the encoded image.
        rgb: ``uint8`` ``(H, W, 3)`` decoding of ``image``, at least ``MIN_SIDE`` px per side.
        max_side: longest side sent to the embedder, px.
    """
    h, w = rgb.shape[:2]
    if max(h, w) <= max_side:
        return image
    scale = max_side / max(h, w)
    size = (max(MIN_SIDE, round(w * scale)), max(MIN_SIDE, round(h * scale)))
    small = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    return encode_jpeg(small, quality=92)


def query_regions(crops: list[Region], image: bytes, rgb: np.ndarray,
                  max_side: int = WHOLE_PICTURE_MAX_SIDE) -> list[Region]:
    """The regions an image is embedded as: the segmenter's crops, then the whole picture.

    The whole picture (kind ``whole_image``, box ``(0, 0, W, H)``, score 0) is always last; when
    the segmenter found nothing it is the only region (no duplicate).

    Args:
        crops: the segmenter's crops (maybe empty).
        image: the encoded image.
        rgb: ``uint8`` ``(H, W, 3)`` decoding of ``image``.
        max_side: longest side of the whole picture embedded, px (:func:`whole_picture_bytes`).
    """
    h, w = rgb.shape[:2]
    return [*crops, Region((0, 0, w, h), KIND_WHOLE_IMAGE, 0.0, whole_picture_bytes(image, rgb, max_side))]


def region_cutout(rgb: np.ndarray, region: Region, size: int = CROP_SIZE) -> np.ndarray | None:
    """A crop region's object alone on white (:func:`designsearch.images.cutout_on_white` with the
    segmenter's mask), ``uint8`` ``(size, size, 3)`` RGB, or None for the whole picture and for crops
    without a usable mask.

    Args:
        rgb: ``uint8`` ``(H, W, 3)`` decoding of the image the region was cut from.
        region: one of :func:`query_regions`.
        size: side of the cut-out, px.
    """
    if region.kind == KIND_WHOLE_IMAGE or not region.mask:
        return None
    try:
        mask = decode_mask(region.mask)
        if not mask.any():
            return None
        return cutout_on_white(rgb, region.box, mask, size=size)
    except (ValueError, InvalidImage):  # a mask that does not fit its box: index the crop without a cut-out
        return None
