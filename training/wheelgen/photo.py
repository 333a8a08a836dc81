"""From a render to a product picture: background, contact shadow, camera blur, sensor noise, JPEG.

Backgrounds are those of real product shots (``car-parts-50``: white, light grey, black, a gradient
sweep), a studio floor with the wheel's contact shadow, and wheel-free photographs (crops of
Car-Parts-Segmentation photos away from their wheels,
:class:`designsearch.training.segmenter.synthetic.backgrounds.PhotoBackgrounds`). The degradations
follow the levels of the real shots: Gaussian blur σ 0-1.2 px, Gaussian sensor noise σ 0-6 grey
levels, JPEG quality 55-95.
"""

from __future__ import annotations

import cv2
import numpy as np

from designsearch.training.segmenter.synthetic.backgrounds import PhotoBackgrounds, background as plain_background
from designsearch.training.wheelgen.render import to_srgb

BACKGROUNDS = ("white", "grey", "black", "gradient", "floor", "photo")
#: Draw probabilities of :data:`BACKGROUNDS` (real product shots are mostly white, grey or black).
BACKGROUND_WEIGHTS = (0.35, 0.15, 0.15, 0.12, 0.11, 0.12)


def floor_background(size: int, mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A studio floor (wall-to-floor sweep) with the wheel's soft contact shadow, ``uint8 (S, S, 3)``.

    Args:
        mask: ``uint8 (S, S)`` wheel mask (nonzero = wheel) of the picture the floor goes under.
    """
    wall, floor = rng.uniform(150, 250), rng.uniform(110, 230)
    ys, xs = np.nonzero(mask)
    bottom = int(ys.max()) if len(ys) else size - 1
    horizon = bottom - rng.uniform(0.05, 0.3) * size
    y = np.arange(size, dtype=np.float32)[:, None]
    t = 1 / (1 + np.exp(-(y - horizon) / rng.uniform(4, 20)))
    img = np.repeat((wall * (1 - t) + floor * t)[..., None], size, 1).repeat(3, 2)
    img = img * rng.uniform(0.92, 1.0, 3)
    if len(xs):
        shadow = np.zeros((size, size), np.float32)
        cx, w = float(xs.mean()), float(xs.max() - xs.min())
        cv2.ellipse(shadow, (int(cx), bottom), (int(w * 0.5), max(2, int(w * 0.06))), 0, 0, 360, 1.0, -1)
        shadow = cv2.GaussianBlur(shadow, (0, 0), max(1.0, w * 0.05))
        img = img * (1 - rng.uniform(0.45, 0.8) * shadow[..., None])
    return np.clip(img, 0, 255).astype(np.uint8)


def compose(render: np.ndarray, mask: np.ndarray, kind: str, rng: np.random.Generator,
            photos: PhotoBackgrounds | None = None, exposure: float | None = None) -> np.ndarray:
    """The render over a background of ``kind``.

    Args:
        render: ``float32 (S, S, 4)`` linear RGB + alpha (:meth:`.PathTracer.render_views`).
        mask: ``uint8 (S, S)`` wheel mask (for the floor's shadow).
        kind: one of :data:`BACKGROUNDS`; ``photo`` without ``photos`` falls back to a gradient.
        exposure: linear exposure (default: random 0.6-1.1).

    Returns:
        ``uint8 (S, S, 3)`` sRGB.

    Raises:
        ValueError: unknown background.
    """
    size = render.shape[0]
    if kind not in BACKGROUNDS:
        raise ValueError(f"unknown background {kind!r}; expected one of {', '.join(BACKGROUNDS)}")
    if kind == "floor":
        bg = floor_background(size, mask, rng)
    else:
        bg = plain_background(kind, size, rng, photos)
    fg = to_srgb(render[..., :3], exposure if exposure is not None else float(rng.uniform(0.6, 1.1)))
    a = render[..., 3:4]
    return np.clip(fg * a + bg * (1 - a) + 0.5, 0, 255).astype(np.uint8)


def degrade(rgb: np.ndarray, rng: np.random.Generator, noise: bool = True) -> np.ndarray:
    """Camera blur, sensor noise and JPEG at the levels of real product shots; ``uint8 (H, W, 3)`` in and out.

    With ``noise=False`` (a realism step) the picture is returned unchanged.
    """
    if not noise:
        return rgb
    img = rgb.astype(np.float32)
    if rng.random() < 0.6:
        img = cv2.GaussianBlur(img, (0, 0), float(rng.uniform(0.3, 1.2)))
    if rng.random() < 0.6:
        img = img + rng.normal(0, rng.uniform(1, 6), img.shape).astype(np.float32)
    img = np.clip(img, 0, 255).astype(np.uint8)
    q = int(rng.integers(55, 96))
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, q])
    return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def denoise(render: np.ndarray, strength: float = 0.6) -> np.ndarray:
    """Soften Monte-Carlo noise of a low-spp render (``float32 (S, S, 4)``): fireflies (isolated bright
    samples of small softboxes seen in rough metal) are removed by a 3x3 median, then an edge-preserving
    bilateral filter (Tomasi & Manduchi 1998) smooths the rest, on the colour inside the wheel only;
    alpha unchanged. Both run on ``x / (1 + x)`` compressed radiance so highlights do not bleed."""
    rgb = render[..., :3]
    a = render[..., 3:4]
    tone = (rgb / (1 + rgb)).astype(np.float32)
    tone = cv2.medianBlur(tone, 3)
    f = cv2.bilateralFilter(tone, 5, 0.08 * strength + 0.02, 2.0)
    f = np.clip(f, 0, 0.999)
    out = render.copy()
    out[..., :3] = np.where(a > 0, f / (1 - f), rgb)
    return out
