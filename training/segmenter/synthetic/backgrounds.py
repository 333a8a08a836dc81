"""Backgrounds of synthetic close-ups and negatives: plain, gradient, noise, texture, wheel-free photos."""

from __future__ import annotations

import cv2
import numpy as np

from designsearch.training.segmenter.dataset import WheelSample
from designsearch.training.segmenter.synthetic.constants import BACKGROUNDS


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
