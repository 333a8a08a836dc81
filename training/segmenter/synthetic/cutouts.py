"""Wheel cut-outs: an RGB patch and its soft alpha mask, from annotations or segmenter masks."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from designsearch.training.segmenter.dataset import WheelSample


@dataclass
class WheelCutout:
    """One wheel cut out of a photo.

    Attributes:
        rgb: ``uint8 (h, w, 3)`` patch around the wheel (with a margin).
        alpha: ``float32 (h, w)`` in [0, 1], 1 on the wheel (rim + tyre).
        source: source photo id (file name), for splitting by photo.
    """

    rgb: np.ndarray
    alpha: np.ndarray
    source: str


def cutouts_from_sample(sample: WheelSample, min_side: int = 24, margin: float = 0.15) -> list[WheelCutout]:
    """Every annotated wheel of one Car-Parts photo as a :class:`WheelCutout`.

    Args:
        sample: the annotated photo.
        min_side: wheels whose box is smaller than this on either side (pixels) are skipped (too
            small to fill a frame).
        margin: context kept around the box, fraction of the box side.

    Returns:
        One cut-out per instance (see :meth:`WheelSample.instances`), possibly empty.
    """
    boxes = sample.instances()
    if not boxes:
        return []
    rgb = sample.read_rgb()
    mask = sample.mask()
    out = []
    for box in boxes:
        c = cutout_from_mask(rgb, mask, box, sample.file_name, min_side, margin)
        if c is not None:
            out.append(c)
    return out


def cutout_from_mask(rgb: np.ndarray, mask: np.ndarray, box: tuple[int, int, int, int], source: str,
                     min_side: int = 24, margin: float = 0.15, min_roundness: float = 0.55,
                     min_fill: float = 0.85, min_contrast: float = 22.0) -> WheelCutout | None:
    """Cut one wheel: the patch around ``box`` and the mask restricted to the box.

    Args:
        rgb: ``uint8 (H, W, 3)`` photo.
        mask: ``uint8 (H, W)`` binary wheel mask (0/1 or 0/255) of the photo.
        box: the wheel's box ``(x1, y1, x2, y2)`` pixels.
        source: source photo id.
        min_side: smallest accepted box side, pixels.
        margin: context kept around the box, fraction of its longest side.
        min_roundness, min_fill: the mask must look like a wheel face (see
            :func:`wheel_face_shape`): minor/major axis ratio and ellipse fill at least these.
        min_contrast: smallest grey-level standard deviation inside the rim (:func:`_rim_contrast`);
            rejects tyres seen from behind.

    Returns:
        The cut-out, or ``None`` when the box is too small, holds too few mask pixels, or is not
        a wheel face.
    """
    x1, y1, x2, y2 = (int(v) for v in box)
    if min(x2 - x1, y2 - y1) < min_side:
        return None
    h, w = mask.shape
    m = int(round(margin * max(x2 - x1, y2 - y1)))
    X1, Y1, X2, Y2 = max(0, x1 - m), max(0, y1 - m), min(w, x2 + m), min(h, y2 + m)
    inside = np.zeros((Y2 - Y1, X2 - X1), np.float32)
    inside[y1 - Y1:y2 - Y1, x1 - X1:x2 - X1] = (mask[y1:y2, x1:x2] > 0)
    if inside.sum() < 0.2 * (x2 - x1) * (y2 - y1):
        return None
    shape = wheel_face_shape(inside)
    if shape is None or shape[0] < min_roundness or shape[1] < min_fill:
        return None
    patch = rgb[Y1:Y2, X1:X2]
    if _rim_contrast(patch, inside) < min_contrast:
        return None
    return WheelCutout(patch.copy(), inside, source)


def _rim_contrast(rgb: np.ndarray, alpha: np.ndarray) -> float:
    """Standard deviation of the grey level inside the inner 60 % of the wheel's fitted ellipse.

    A rim (spokes, holes, a hub) is textured; a tyre seen from behind (all tread) is not.
    """
    binary = (alpha > 0.5).astype(np.uint8)
    contours, _ = cv2.findContours(binary, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    c = max(contours, key=cv2.contourArea)
    (cx, cy), (ax, ay), ang = cv2.fitEllipse(c)
    inner = np.zeros_like(binary)
    cv2.ellipse(inner, ((cx, cy), (ax * 0.6, ay * 0.6), ang), 1, -1)
    sel = (inner > 0) & (binary > 0)
    if sel.sum() < 16:
        return 0.0
    return float(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)[sel].std())


def wheel_face_shape(alpha: np.ndarray) -> tuple[float, float] | None:
    """How much a mask looks like a wheel seen face-on: ``(roundness, fill)``.

    ``roundness`` = minor / major axis of the ellipse fitted to the largest outer contour
    (``cv2.fitEllipse``, Fitzgibbon et al., PAMI 1999); ``fill`` = mask area / ellipse area.
    A tyre seen edge-on (front and rear views of a car) is a thin sliver (roundness < 0.4) and
    shows no design, so such wheels are not made into close-ups.

    Returns:
        The pair, or ``None`` when no ellipse can be fitted.
    """
    binary = (alpha > 0.5).astype(np.uint8)
    contours, _ = cv2.findContours(binary, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    if not contours:
        return None
    c = max(contours, key=cv2.contourArea)
    if len(c) < 5:
        return None
    (_, _), (ax, ay), _ = cv2.fitEllipse(c)
    if min(ax, ay) <= 0:
        return None
    return float(min(ax, ay) / max(ax, ay)), float(binary.sum() / (np.pi * ax * ay / 4))
