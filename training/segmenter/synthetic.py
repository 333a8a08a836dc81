"""Synthetic pictures of the kinds designers send: wheel close-ups, renderings, line drawings, negatives.

Car-Parts-Segmentation and Stanford Cars show wheels small, inside whole cars; a designer's draft
is most often ONE wheel filling the frame (a rendering, a studio shot, a photo of a wheel on a
table, a line drawing). This module makes such pictures, with exact wheel masks, from the same
public data (NumPy/OpenCV only, seeded):

* :class:`WheelCutout` — one annotated (or confidently segmented) wheel: an RGB patch and its
  soft alpha mask (wheel + tyre).
* :func:`render_closeup` — a cut-out scaled to fill 40-100 % of the frame, rotated 0-360° about its
  centre, seen at an angle (random anisotropic squash and a mild projective warp: a wheel seen
  obliquely is an ellipse), optionally without its tyre (the rim only: the wheel mask cut by its
  fitted ellipse shrunk to 60-76 %), recoloured (finish), pasted with a feathered edge on a plain
  white / grey / black, gradient, noise or photographic background. The label is the warped alpha,
  so image and mask agree by construction. Partly cut-off wheels are made too.
* :func:`line_drawing` — line-drawing versions: the product's Canny edge map
  (:func:`designsearch.images.edge_map`) with thinner or thicker strokes, a pencil-sketch filter
  (colour dodge of the grey image by its blurred negative), adaptive-threshold ink, and hand-drawn
  jitter (a smooth random displacement field, as in elastic distortion, Simard et al., ICDAR 2003).
* :func:`render_negative` — pictures with no wheel: flat colours, gradients, noise, textures, car
  photos with the wheels removed (OpenCV inpainting, Telea 2004), logos (text and polygons).
* :func:`build_validation_sets` — the fixed validation sets of the segmenter: (b) close-ups,
  renderings on white and line drawings made ONLY from wheels of validation-split photos, and
  (c) negatives, every background taken from validation-split photos too, so no source photo is in
  both training and validation.

Background photos for training come from training-split photos only (regions free of wheels).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from training.segmenter.dataset import WheelSample

#: Close-up styles of validation set (b).
VAL_STYLES = ("closeup", "rendering", "line_drawing")
#: Negative kinds of validation set (c).
NEGATIVE_KINDS = ("flat", "gradient", "noise", "texture", "car_no_wheels", "logo")
#: The negative kinds made without a car photo.
SYNTHETIC_NEGATIVE_KINDS = tuple(k for k in NEGATIVE_KINDS if k != "car_no_wheels")
#: Background kinds of a close-up.
BACKGROUNDS = ("white", "grey", "black", "gradient", "photo", "noise")


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


# ------------------------------------------------------------------------------------------------
# Backgrounds
# ------------------------------------------------------------------------------------------------


def _gradient(size: int, rng: np.random.Generator) -> np.ndarray:
    """Linear gradient between two random colours at a random angle, ``uint8 (size, size, 3)``."""
    a, b = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    theta = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    t = (np.cos(theta) * (xx - 0.5) + np.sin(theta) * (yy - 0.5)) + 0.5
    t = np.clip(t, 0, 1)[..., None]
    return (a * (1 - t) + b * t).astype(np.uint8)


def _noise(size: int, rng: np.random.Generator) -> np.ndarray:
    """Random noise: white Gaussian, or smooth (blurred) coloured noise, ``uint8 (size, size, 3)``."""
    if rng.random() < 0.5:
        base = rng.uniform(40, 215)
        img = base + rng.normal(0, rng.uniform(10, 60), (size, size, 3))
    else:
        small = rng.uniform(0, 255, (max(2, size // int(rng.integers(8, 48))),) * 2 + (3,)).astype(np.float32)
        img = cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC)
        img = img + rng.normal(0, 8, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def _texture(size: int, rng: np.random.Generator) -> np.ndarray:
    """Procedural texture: stripes, checkerboard or wood-like rings-free grain, ``uint8 (size, size, 3)``."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    kind = rng.integers(3)
    theta = rng.uniform(0, np.pi)
    u = np.cos(theta) * xx + np.sin(theta) * yy
    v = -np.sin(theta) * xx + np.cos(theta) * yy
    period = rng.uniform(6, 40)
    if kind == 0:  # stripes
        t = (np.sin(2 * np.pi * u / period) > 0).astype(np.float32)
    elif kind == 1:  # checkerboard
        t = ((np.floor(u / period) + np.floor(v / period)) % 2).astype(np.float32)
    else:  # grain: stretched smooth noise
        small = rng.uniform(0, 1, (4, int(rng.integers(40, 120)))).astype(np.float32)
        t = cv2.resize(small, (size * 2, size * 2), interpolation=cv2.INTER_CUBIC)
        rot = cv2.getRotationMatrix2D((size, size), float(np.degrees(theta)), 1.0)
        t = cv2.warpAffine(t, rot, (size * 2, size * 2))[size // 2:size // 2 + size, size // 2:size // 2 + size]
    a, b = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    img = a * (1 - t[..., None]) + b * t[..., None] + rng.normal(0, 6, (size, size, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


class PhotoBackgrounds:
    """Wheel-free regions of car photos, used as photographic backgrounds.

    Args:
        samples: Car-Parts photos (use only the split the generated pictures belong to).

    A background is a random square crop (25-100 % of the photo side) whose overlap with any
    wheel is under 1 % of its area, or, failing that after a few tries, the photo with its wheels
    inpainted (:func:`remove_wheels`).
    """

    def __init__(self, samples: list[WheelSample]) -> None:
        if not samples:
            raise ValueError("PhotoBackgrounds needs at least one photo")
        self.samples = samples
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def _photo(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        if i not in self._cache:
            s = self.samples[i]
            self._cache[i] = (s.read_rgb(), s.mask())
        return self._cache[i]

    def sample(self, size: int, rng: np.random.Generator) -> np.ndarray:
        """A wheel-free photographic background ``uint8 (size, size, 3)``."""
        rgb, mask = self._photo(int(rng.integers(len(self.samples))))
        h, w = mask.shape
        for _ in range(8):
            side = int(rng.uniform(0.25, 1.0) * min(h, w))
            y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
            if mask[y:y + side, x:x + side].mean() < 0.01:
                return cv2.resize(rgb[y:y + side, x:x + side], (size, size), interpolation=cv2.INTER_LINEAR)
        return cv2.resize(remove_wheels(rgb, mask), (size, size), interpolation=cv2.INTER_AREA)


def remove_wheels(rgb: np.ndarray, mask: np.ndarray, dilate_px: int = 5) -> np.ndarray:
    """The photo with its wheels painted out (OpenCV Telea inpainting; Telea, J. Graphics Tools 2004).

    Args:
        rgb: ``uint8 (H, W, 3)``.
        mask: ``uint8 (H, W)`` wheel mask (nonzero = wheel).
        dilate_px: the mask is grown by this many pixels first, so no rim edge is left.

    Returns:
        ``uint8 (H, W, 3)``.
    """
    m = (mask > 0).astype(np.uint8) * 255
    if not m.any():
        return rgb.copy()
    m = cv2.dilate(m, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * dilate_px + 1,) * 2))
    return cv2.inpaint(rgb, m, 5, cv2.INPAINT_TELEA)


def background(kind: str, size: int, rng: np.random.Generator, photos: PhotoBackgrounds | None) -> np.ndarray:
    """A background of ``kind`` (one of :data:`BACKGROUNDS`), ``uint8 (size, size, 3)``.

    Raises:
        ValueError: unknown kind.
    """
    if kind == "white":
        return np.full((size, size, 3), rng.uniform(232, 255), np.uint8)
    if kind == "grey":
        return np.full((size, size, 3), rng.uniform(90, 200), np.uint8)
    if kind == "black":
        return np.full((size, size, 3), rng.uniform(0, 30), np.uint8)
    if kind == "gradient":
        return _gradient(size, rng)
    if kind == "noise":
        return _noise(size, rng) if rng.random() < 0.5 else _texture(size, rng)
    if kind == "photo":
        if photos is None:
            return _gradient(size, rng)
        return photos.sample(size, rng)
    raise ValueError(f"unknown background {kind!r}; expected one of {BACKGROUNDS}")


# ------------------------------------------------------------------------------------------------
# Close-ups
# ------------------------------------------------------------------------------------------------


def rim_only(alpha: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The rim without its tyre: the wheel mask cut by its fitted ellipse shrunk to 60-76 %.

    The ellipse is fitted to the outer contour of the wheel (``cv2.fitEllipse``, Fitzgibbon et
    al., PAMI 1999); tyre sidewalls of road wheels are roughly a quarter to a third of the radius.

    Args:
        alpha: ``float32 (h, w)`` wheel alpha.
        rng: generator for the shrink factor.

    Returns:
        ``float32 (h, w)`` alpha of the rim; ``alpha`` unchanged when no ellipse can be fitted.
    """
    binary = (alpha > 0.5).astype(np.uint8)
    contours, _ = cv2.findContours(binary, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    if not contours:
        return alpha
    c = max(contours, key=cv2.contourArea)
    if len(c) < 5:
        return alpha
    (cx, cy), (ax, ay), ang = cv2.fitEllipse(c)
    f = rng.uniform(0.60, 0.76)
    inner = np.zeros_like(binary)
    cv2.ellipse(inner, ((cx, cy), (ax * f, ay * f), ang), 1, -1)
    out = alpha * inner
    return out if out.sum() > 0.15 * alpha.sum() else alpha


def _recolour(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Change the finish of the wheel: brightness/contrast/gamma, desaturation or a tint."""
    x = rgb.astype(np.float32) / 255.0
    x = np.clip((x - 0.5) * rng.uniform(0.7, 1.4) + 0.5 + rng.uniform(-0.15, 0.15), 0, 1) ** rng.uniform(0.7, 1.4)
    r = rng.random()
    if r < 0.3:  # desaturated (silver, gunmetal)
        g = x.mean(axis=2, keepdims=True)
        x = g + (x - g) * rng.uniform(0, 0.5)
    elif r < 0.45:  # dark (black) finish
        x = x * rng.uniform(0.25, 0.6)
    elif r < 0.55:  # tint (bronze, gold, coloured)
        x = x * rng.uniform(0.6, 1.2, 3)
    return np.clip(x * 255, 0, 255).astype(np.uint8)


def _homography(cx: float, cy: float, rng: np.random.Generator, angle: float | None, squash: float | None,
                perspective: float) -> np.ndarray:
    """3x3 matrix: move the wheel centre to the origin, rotate, squash along an axis, warp mildly."""
    t0 = np.array([[1, 0, -cx], [0, 1, -cy], [0, 0, 1]], np.float64)
    a = np.radians(rng.uniform(0, 360) if angle is None else angle)
    rot = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    if squash is None:
        squash = 1.0
    b = rng.uniform(0, np.pi)
    axis = np.array([[np.cos(b), -np.sin(b), 0], [np.sin(b), np.cos(b), 0], [0, 0, 1]])
    sq = axis @ np.diag([squash, 1.0, 1.0]) @ axis.T
    persp = np.eye(3)
    persp[2, 0], persp[2, 1] = rng.uniform(-perspective, perspective, 2)
    return persp @ sq @ rot @ t0


def render_closeup(
    cutout: WheelCutout,
    rng: np.random.Generator,
    size: int = 384,
    *,
    fill: tuple[float, float] = (0.4, 1.0),
    background_kind: str | None = None,
    photos: PhotoBackgrounds | None = None,
    angle: float | None = None,
    oblique_p: float = 0.5,
    tyre_p: float = 0.75,
    cut_off_p: float = 0.12,
    recolour_p: float = 0.6,
) -> tuple[np.ndarray, np.ndarray]:
    """One wheel filling the frame, with its exact mask.

    Args:
        cutout: the wheel.
        rng: NumPy generator (all randomness comes from it).
        size: output side, pixels.
        fill: range of the wheel's box side (the larger one) as a fraction of the frame side.
        background_kind: one of :data:`BACKGROUNDS`; random when ``None``.
        photos: source of photographic backgrounds (``"photo"``); gradients are used without it.
        angle: in-plane rotation in degrees about the wheel centre; random 0-360 when ``None``.
        oblique_p: probability of an oblique view (squash 0.55-0.95 along a random axis plus a
            mild projective term).
        tyre_p: probability of keeping the tyre (else the rim only, :func:`rim_only`).
        cut_off_p: probability that the wheel is partly outside the frame (up to 25 % of its side).
        recolour_p: probability of a new finish (:func:`_recolour`).

    Returns:
        ``(rgb uint8 (size, size, 3), mask uint8 (size, size) 0/1)``.
    """
    rgb, alpha = cutout.rgb, cutout.alpha
    if rng.random() >= tyre_p:
        alpha = rim_only(alpha, rng)
    if rng.random() < recolour_p:
        rgb = _recolour(rgb, rng)
    ys, xs = np.nonzero(alpha > 0.5)
    cx, cy = float(xs.mean()), float(ys.mean())
    shape = wheel_face_shape(alpha)
    oblique = rng.random() < oblique_p and shape is not None and shape[0] > 0.8
    h0 = _homography(cx, cy, rng, angle, rng.uniform(0.55, 0.95) if oblique else rng.uniform(0.95, 1.05),
                     0.0015 * 64 / max(8.0, np.sqrt(len(xs))) if oblique else 0.0)
    # Extent of the transformed wheel (its contour points), to scale it to the wanted fill.
    contours, _ = cv2.findContours((alpha > 0.5).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    pts = np.concatenate([c.reshape(-1, 2) for c in contours]).astype(np.float64)
    proj = cv2.perspectiveTransform(pts[None], h0)[0]
    ext = max(np.ptp(proj[:, 0]), np.ptp(proj[:, 1]), 1.0)
    target = rng.uniform(*fill) * size
    s = target / ext
    proj_s = proj * s
    lo, hi = proj_s.min(axis=0), proj_s.max(axis=0)
    span = hi - lo
    if rng.random() < cut_off_p:
        out_frac = rng.uniform(0.08, 0.25)
        free = np.maximum(size - span, 0) + 2 * out_frac * span
        off = -lo - out_frac * span + rng.uniform(0, 1, 2) * free
    else:
        free = np.maximum(size - span, 0)
        off = -lo + rng.uniform(0, 1, 2) * free - np.maximum(span - size, 0) / 2
    place = np.array([[s, 0, off[0]], [0, s, off[1]], [0, 0, 1]])
    hmat = place @ h0
    fg = cv2.warpPerspective(rgb, hmat, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    a = cv2.warpPerspective(alpha.astype(np.float32), hmat, (size, size), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    kind = background_kind or BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))]
    bg = background(kind, size, rng, photos)
    soft = cv2.GaussianBlur(a, (0, 0), rng.uniform(0.6, 1.6))[..., None]
    out = fg.astype(np.float32) * soft + bg.astype(np.float32) * (1 - soft)
    if kind in ("white", "grey", "black", "gradient") and rng.random() < 0.5:  # soft contact shadow
        sh = cv2.GaussianBlur(a, (0, 0), size * 0.03)[..., None] * rng.uniform(0.1, 0.35)
        sh = np.roll(sh, (int(size * 0.02), int(size * 0.01)), axis=(0, 1))
        out = out * (1 - sh * (1 - soft))
    out = np.clip(out, 0, 255).astype(np.uint8)
    return out, (a > 0.5).astype(np.uint8)


# ------------------------------------------------------------------------------------------------
# Line drawings
# ------------------------------------------------------------------------------------------------


def _jitter(img: np.ndarray, rng: np.random.Generator, amplitude: float, smooth: float) -> np.ndarray:
    """Warp ``img`` by a smooth random displacement field (elastic distortion, Simard et al. 2003)."""
    h, w = img.shape[:2]
    dx = cv2.GaussianBlur(rng.uniform(-1, 1, (h, w)).astype(np.float32), (0, 0), smooth)
    dy = cv2.GaussianBlur(rng.uniform(-1, 1, (h, w)).astype(np.float32), (0, 0), smooth)
    dx *= amplitude / (np.abs(dx).max() + 1e-6)
    dy *= amplitude / (np.abs(dy).max() + 1e-6)
    xx, yy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(img, xx + dx, yy + dy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def line_drawing(rgb: np.ndarray, rng: np.random.Generator, style: str | None = None) -> np.ndarray:
    """A line-drawing version of a picture (dark strokes on white), same size.

    Styles: ``canny`` (:func:`designsearch.images.edge_map`, the product's own sketch view),
    ``thick`` (its strokes dilated 1-2 px), ``thin`` (edges at twice the resolution, downscaled),
    ``pencil`` (colour dodge of the grey image by its blurred negative, the classic pencil-sketch
    filter), ``ink`` (adaptive-threshold ink). Half of the drawings get hand-drawn jitter
    (:func:`_jitter`).

    Args:
        rgb: ``uint8 (H, W, 3)``.
        rng: generator.
        style: one of the styles above; random when ``None``.

    Returns:
        ``uint8 (H, W, 3)`` grey drawing.
    """
    from designsearch.images import edge_map

    h, w = rgb.shape[:2]
    style = style or ("canny", "thick", "thin", "pencil", "ink")[int(rng.integers(5))]
    if style in ("canny", "thick"):
        g = edge_map(rgb, size=max(h, w))[..., 0]
        if style == "thick":
            k = int(rng.integers(2, 4))
            g = cv2.erode(g, np.ones((k, k), np.uint8))
    elif style == "thin":
        g = edge_map(cv2.resize(rgb, (2 * w, 2 * h), interpolation=cv2.INTER_LINEAR), size=2 * max(h, w))[..., 0]
        g = cv2.resize(g, (w, h), interpolation=cv2.INTER_AREA)
    elif style == "pencil":
        grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
        blur = cv2.GaussianBlur(255 - grey, (0, 0), rng.uniform(3, 8))
        g = np.clip(grey * 255 / np.maximum(255 - blur, 1), 0, 255)
        g = np.clip((g - 255) * rng.uniform(1.5, 3) + 255, 0, 255).astype(np.uint8)
    elif style == "ink":
        grey = cv2.GaussianBlur(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), (0, 0), 1.0)
        g = cv2.adaptiveThreshold(grey, 255, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY, 2 * int(rng.integers(4, 9)) + 1, 6)
    else:
        raise ValueError(f"unknown line style {style!r}")
    if style != "ink" and (g < 128).mean() < 0.004:  # too few strokes (a blurry, flat picture): ink instead
        return line_drawing(rgb, rng, "ink")
    if rng.random() < 0.5:
        g = _jitter(g, rng, amplitude=rng.uniform(1.0, 3.0) * max(h, w) / 384, smooth=max(h, w) / 40)
    return np.repeat(g[..., None], 3, axis=2)


# ------------------------------------------------------------------------------------------------
# Negatives
# ------------------------------------------------------------------------------------------------


def _logo(size: int, rng: np.random.Generator) -> np.ndarray:
    """Text and polygons on a plain background (a logo or a label)."""
    bg = rng.uniform(0, 255, 3)
    img = np.full((size, size, 3), bg, np.uint8)
    fg = tuple(float(v) for v in (255 - bg + rng.uniform(-40, 40, 3)) % 256)
    for _ in range(int(rng.integers(1, 4))):
        n = int(rng.integers(3, 7))
        c = rng.uniform(0.2, 0.8, 2) * size
        r = rng.uniform(0.05, 0.3) * size
        ang = np.sort(rng.uniform(0, 2 * np.pi, n))
        pts = np.stack([c[0] + r * np.cos(ang), c[1] + r * np.sin(ang)], 1).astype(np.int32)
        if rng.random() < 0.5:
            cv2.fillPoly(img, [pts], fg)
        else:
            cv2.polylines(img, [pts], True, fg, int(rng.integers(1, 6)))
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    text = "".join(letters[int(i)] for i in rng.integers(0, len(letters), int(rng.integers(2, 8))))
    font = (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_TRIPLEX, cv2.FONT_HERSHEY_COMPLEX)[int(rng.integers(4))]
    scale = rng.uniform(0.8, 3.0) * size / 384
    thick = int(rng.integers(1, 6))
    (tw, th), _ = cv2.getTextSize(text, font, scale, thick)
    org = (int(rng.uniform(0, max(1, size - tw))), int(rng.uniform(th, size)))
    cv2.putText(img, text, org, font, scale, fg, thick, cv2.LINE_AA)
    return img


def render_negative(kind: str, size: int, rng: np.random.Generator, photos: list[WheelSample] | None = None) -> np.ndarray:
    """A picture without any wheel, ``uint8 (size, size, 3)``.

    Args:
        kind: one of :data:`NEGATIVE_KINDS`.
        size: output side, pixels.
        rng: generator.
        photos: Car-Parts photos for ``car_no_wheels`` (the photo with wheels painted out, whole
            or a random zoomed square); required for that kind.

    Raises:
        ValueError: unknown kind, or ``car_no_wheels`` without photos.
    """
    if kind == "flat":
        return np.full((size, size, 3), rng.uniform(0, 255, 3) if rng.random() < 0.5 else rng.uniform(0, 255), np.uint8)
    if kind == "gradient":
        return _gradient(size, rng)
    if kind == "noise":
        return _noise(size, rng)
    if kind == "texture":
        return _texture(size, rng)
    if kind == "logo":
        return _logo(size, rng)
    if kind == "car_no_wheels":
        if not photos:
            raise ValueError("car_no_wheels needs photos")
        s = photos[int(rng.integers(len(photos)))]
        img = remove_wheels(s.read_rgb(), s.mask())
        if rng.random() < 0.5:
            h, w = img.shape[:2]
            side = int(rng.uniform(0.3, 0.8) * min(h, w))
            y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
            img = img[y:y + side, x:x + side]
        return cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA if img.shape[0] > size else cv2.INTER_LINEAR)
    raise ValueError(f"unknown negative kind {kind!r}; expected one of {NEGATIVE_KINDS}")


# ------------------------------------------------------------------------------------------------
# Validation sets (b) and (c)
# ------------------------------------------------------------------------------------------------


@dataclass
class ValItem:
    """One validation picture.

    Attributes:
        name: unique id, ``"<style>/<source photo>#<k>"``.
        style: one of :data:`VAL_STYLES` (set b) or :data:`NEGATIVE_KINDS` (set c).
        rgb: ``uint8 (S, S, 3)``.
        mask: ``uint8 (S, S)`` 0/1 true wheel mask (all zero for negatives).
        box: true wheel box ``(x1, y1, x2, y2)`` pixels (x2/y2 exclusive), ``None`` for negatives.
    """

    name: str
    style: str
    rgb: np.ndarray
    mask: np.ndarray
    box: tuple[int, int, int, int] | None


def mask_box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """Bounding box ``(x1, y1, x2, y2)`` (x2/y2 exclusive) of the nonzero pixels, or ``None``."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return None
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def closeup_set(samples: list[WheelSample], seed: int = 0, size: int = 512, min_side: int = 28,
                per_wheel: int = 2) -> list[ValItem]:
    """Validation set (b): every wheel of ``samples`` as a close-up, a rendering on white and a line drawing.

    ``closeup``: random background (photographic ones from ``samples`` only), rotation 0-360,
    oblique view half of the time, 40-100 % fill, a tenth partly cut off; ``rendering``: on white,
    tyre kept, no cut-off, 50-95 % fill; ``line_drawing``: a :func:`line_drawing` of a close-up on
    a plain background.

    Args:
        samples: validation-split photos (never training ones).
        seed: one seed for the whole set.
        size: picture side, pixels.
        min_side: wheels smaller than this (box side, pixels) in their photo are skipped.
        per_wheel: pictures of each style per wheel.

    Returns:
        Items ordered by source photo, wheel, style.
    """
    rng = np.random.default_rng(seed)
    photos = PhotoBackgrounds(samples)
    items: list[ValItem] = []
    for s in samples:
        cuts = cutouts_from_sample(s, min_side=min_side)
        for k, c in [(f"{i}.{j}", c) for i, c in enumerate(cuts) for j in range(per_wheel)]:
            rgb, mask = render_closeup(c, rng, size, photos=photos, cut_off_p=0.1)
            items.append(ValItem(f"closeup/{s.file_name}#{k}", "closeup", rgb, mask, mask_box(mask)))
            rgb, mask = render_closeup(c, rng, size, fill=(0.5, 0.95), background_kind="white", tyre_p=1.0, cut_off_p=0.0,
                                       oblique_p=0.3, recolour_p=0.3)
            items.append(ValItem(f"rendering/{s.file_name}#{k}", "rendering", rgb, mask, mask_box(mask)))
            bgk = ("white", "grey", "gradient")[int(rng.integers(3))]
            rgb, mask = render_closeup(c, rng, size, background_kind=bgk, cut_off_p=0.0, recolour_p=0.0)
            items.append(ValItem(f"line_drawing/{s.file_name}#{k}", "line_drawing", line_drawing(rgb, rng), mask,
                                 mask_box(mask)))
    return items


def negative_set(samples: list[WheelSample], seed: int = 0, size: int = 512, per_kind: int = 30) -> list[ValItem]:
    """Validation set (c): ``per_kind`` pictures of each of :data:`NEGATIVE_KINDS`, no wheel in any.

    ``car_no_wheels`` uses ``samples`` (validation-split photos) with the wheels painted out.
    """
    rng = np.random.default_rng(seed + 1)
    items = []
    for kind in NEGATIVE_KINDS:
        for k in range(per_kind):
            rgb = render_negative(kind, size, rng, samples)
            items.append(ValItem(f"{kind}#{k}", kind, rgb, np.zeros((size, size), np.uint8), None))
    return items


def build_validation_sets(val_samples: list[WheelSample], seed: int = 0, size: int = 512) -> dict[str, list[ValItem]]:
    """Sets (b) ``closeups`` and (c) ``negatives`` from validation-split photos only.

    Returns:
        ``{"closeups": [...], "negatives": [...]}``.
    """
    return {"closeups": closeup_set(val_samples, seed, size), "negatives": negative_set(val_samples, seed, size)}


def write_validation_sets(sets: dict[str, list[ValItem]], out: str | Path) -> Path:
    """Write the pictures (``<out>/<set>/<style>/<k>.jpg``) and masks (``..._mask.png``) for people to look at.

    Returns:
        ``out``.
    """
    out = Path(out)
    for set_name, items in sets.items():
        for i, it in enumerate(items):
            d = out / set_name / it.style
            d.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(d / f"{i:04d}.jpg"), cv2.cvtColor(it.rgb, cv2.COLOR_RGB2BGR))
            cv2.imwrite(str(d / f"{i:04d}_mask.png"), it.mask * 255)
    return out


# ------------------------------------------------------------------------------------------------
# Wheels of Stanford Cars found by the current segmenter (training only)
# ------------------------------------------------------------------------------------------------


def stanford_cutouts(data: str | Path, segmenter: str | Path, cache: str | Path, max_class: int = 78,
                     min_score: float = 0.9, min_side: int = 40, log=print) -> list[WheelCutout]:
    """Wheels of Stanford Cars classes ``1..max_class`` that the current segmenter finds confidently.

    The issue's recipe: "segmenter-found wheels of Stanford Cars classes 1-78, kept only where the
    current model is confident". A detection is kept when it is of kind ``wheel``, scores at least
    ``min_score``, both box sides are at least ``min_side`` px and its mask passes the wheel-face
    checks of :func:`cutout_from_mask`. The result is cached (pickle) under ``cache`` keyed by the
    segmenter's sha256 and the parameters.

    Args:
        data: shared data folder holding ``stanford-cars/``.
        segmenter: ONNX file of the segmenter used to find the wheels.
        cache: cache folder.
        max_class: highest class id used (classes above stay unseen).
        min_score, min_side: detection filters.
        log: progress callback.

    Returns:
        The cut-outs (``source`` = the Stanford file name).

    Raises:
        FileNotFoundError: labels or segmenter missing.
    """
    import csv
    import hashlib
    import pickle

    from services.segmenter.detection import KIND_WHEEL
    from services.segmenter.learned import LearnedWheelDetector

    data, segmenter = Path(data), Path(segmenter)
    sha = hashlib.sha256(segmenter.read_bytes()).hexdigest()[:16]
    path = Path(cache) / f"stanford-cutouts-{sha}-c{max_class}-s{min_score}-m{min_side}.pkl"
    if path.is_file():
        with open(path, "rb") as f:
            return pickle.load(f)
    with open(data / "stanford-cars" / "labels.csv", newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if int(r["class_id"]) <= max_class]
    det = LearnedWheelDetector(segmenter, threads=2)
    out: list[WheelCutout] = []
    for i, r in enumerate(rows):
        bgr = cv2.imread(str(data / "stanford-cars" / r["file"]), cv2.IMREAD_COLOR)
        if bgr is None:
            continue
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        for d in det.detect(rgb):
            if d.kind != KIND_WHEEL or d.score < min_score or d.mask is None:
                continue
            full = np.zeros(rgb.shape[:2], np.uint8)
            x1, y1, x2, y2 = d.box
            full[y1:y2, x1:x2] = d.mask > 0
            c = cutout_from_mask(rgb, full, d.box, r["file"], min_side=min_side)
            if c is not None:
                out.append(c)
        if log and (i + 1) % 500 == 0:
            log(f"stanford cut-outs: {i + 1}/{len(rows)} photos, {len(out)} wheels")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(out, f)
    return out


# ------------------------------------------------------------------------------------------------
# Training mixture
# ------------------------------------------------------------------------------------------------


def _photometric(size: int):
    """Photometric-only augmentation (albumentations) for synthetic pictures, which are already placed."""
    import albumentations as A

    return A.Compose([
        A.ColorJitter(brightness=0.25, contrast=0.25, saturation=0.3, hue=0.04, p=0.6),
        A.OneOf([A.GaussianBlur(blur_limit=(3, 7)), A.MotionBlur(blur_limit=(3, 7))], p=0.25),
        A.GaussNoise(std_range=(0.01, 0.05), p=0.15),
        A.ImageCompression(quality_range=(40, 95), p=0.3),
        A.ToGray(p=0.1),
    ])


class DesignerMixDataset:
    """Torch dataset mixing car photos with the synthetic pictures designers send.

    Each item is, with probability ``photo_p``, a car photo item of
    :class:`~training.segmenter.dataset.WheelSegDataset` (whole photo, context close-up or
    zoomed negative, with its augmentation); with probability ``closeup_p`` a synthetic close-up
    (:func:`render_closeup`) of a random training cut-out, a ``line_p`` share of them turned into
    line drawings (:func:`line_drawing`); otherwise a negative (:func:`render_negative`, kinds
    uniform, car photos from the training split; a third of the flat ones pure white). Synthetic
    pictures get :func:`_photometric` augmentation.

    Args:
        photos: :class:`WheelSegDataset` over the training photos.
        cutouts: training cut-outs (Car-Parts training split and Stanford classes 1-78).
        backgrounds: photographic backgrounds from the training split.
        negative_photos: training-split photos for ``car_no_wheels`` negatives.
        size: picture side ``S``, pixels.
        epoch_items: items per epoch (the mixture is sampled, not enumerated).
        photo_p, closeup_p: mixture weights (negatives get the rest).
        line_p: share of close-ups drawn as line drawings.
        car_negative_p: share of negatives that are car photos with the wheels masked out (the
            hardest kind); ``None``: all negative kinds equally likely.
        seed: generator seed.

    Returns per item:
        ``pixels`` float32 ``(3, S, S)`` raw RGB 0..255 and ``mask`` float32 ``(1, S, S)`` 0/1.

    Raises:
        ValueError: no cut-outs, or probabilities outside [0, 1] / summing over 1.
    """

    def __init__(self, photos, cutouts: list[WheelCutout], backgrounds: PhotoBackgrounds,
                 negative_photos: list[WheelSample], size: int, epoch_items: int = 640, photo_p: float = 0.4,
                 closeup_p: float = 0.4, line_p: float = 0.3, car_negative_p: float | None = None,
                 seed: int = 0) -> None:
        if not cutouts:
            raise ValueError("DesignerMixDataset needs wheel cut-outs")
        if not (0 <= photo_p <= 1 and 0 <= closeup_p <= 1 and photo_p + closeup_p <= 1):
            raise ValueError(f"bad mixture photo_p={photo_p} closeup_p={closeup_p}")
        self.photos, self.cutouts, self.backgrounds = photos, cutouts, backgrounds
        self.size, self.epoch_items = size, epoch_items
        if car_negative_p is not None and not 0 <= car_negative_p <= 1:
            raise ValueError(f"bad car_negative_p={car_negative_p}")
        self.photo_p, self.closeup_p, self.line_p = photo_p, closeup_p, line_p
        self.car_negative_p = car_negative_p
        self.rng = np.random.default_rng(seed + 7)
        self.aug = _photometric(size)
        self._neg_photos = negative_photos
        self._inpainted: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return self.epoch_items

    def _negative(self) -> np.ndarray:
        rng, size = self.rng, self.size
        if self.car_negative_p is None:
            kind = NEGATIVE_KINDS[int(rng.integers(len(NEGATIVE_KINDS)))]
        elif rng.random() < self.car_negative_p:
            kind = "car_no_wheels"
        else:
            kind = SYNTHETIC_NEGATIVE_KINDS[int(rng.integers(len(SYNTHETIC_NEGATIVE_KINDS)))]
        if kind == "flat" and rng.random() < 0.33:
            return np.full((size, size, 3), rng.uniform(235, 255), np.uint8)
        if kind == "car_no_wheels":
            i = int(rng.integers(len(self._neg_photos)))
            if i not in self._inpainted:
                s = self._neg_photos[i]
                self._inpainted[i] = remove_wheels(s.read_rgb(), s.mask())
            img = self._inpainted[i]
            if rng.random() < 0.5:
                h, w = img.shape[:2]
                side = int(rng.uniform(0.3, 0.8) * min(h, w))
                y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
                img = img[y:y + side, x:x + side]
            return cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
        return render_negative(kind, size, rng)

    def __getitem__(self, i: int):
        import torch

        rng = self.rng
        r = rng.random()
        if r < self.photo_p:
            return self.photos[int(rng.integers(len(self.photos)))]
        if r < self.photo_p + self.closeup_p:
            c = self.cutouts[int(rng.integers(len(self.cutouts)))]
            rgb, mask = render_closeup(c, rng, self.size, photos=self.backgrounds)
            if rng.random() < self.line_p:
                rgb = line_drawing(rgb, rng)
        else:
            rgb, mask = self._negative(), np.zeros((self.size, self.size), np.uint8)
        rgb = self.aug(image=rgb)["image"]
        pixels = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1))).float()
        target = torch.from_numpy(np.ascontiguousarray(mask)).float()[None]
        return pixels, target
