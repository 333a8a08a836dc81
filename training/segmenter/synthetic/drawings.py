"""Line drawings of wheels (several stroke styles) and pictures with no wheel (negatives)."""

from __future__ import annotations

import cv2
import numpy as np

from designsearch.training.segmenter.dataset import WheelSample
from designsearch.training.segmenter.synthetic.constants import NEGATIVE_KINDS
from designsearch.training.segmenter.synthetic.backgrounds import _gradient, _noise, _texture, remove_wheels


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
