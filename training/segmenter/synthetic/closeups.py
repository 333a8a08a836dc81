"""Synthetic close-ups: a wheel cut-out filling the frame, rotated, seen at an angle, with or without tyre."""

from __future__ import annotations

import cv2
import numpy as np

from designsearch.training.segmenter.synthetic.constants import BACKGROUNDS
from designsearch.training.segmenter.synthetic.backgrounds import PhotoBackgrounds, background
from designsearch.training.segmenter.synthetic.cutouts import WheelCutout, wheel_face_shape


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
