"""Instances of the learned segmenter's probability map as windows of the map, and the region verifier's pooling.

No grpc, no torch (OpenCV and NumPy). Used by :class:`designsearch.services.segmenter.learned.LearnedWheelDetector`
and by the verifier's fitting (:mod:`designsearch.training.segmenter.verifier`).
"""

from __future__ import annotations

import cv2
import numpy as np


class Region:
    """One instance as a window of the probability map: top-left ``(x0, y0)`` (network px) and a boolean
    ``mask`` ``(h, w)`` over the window (its pixels may not reach every edge of it)."""

    __slots__ = ("x0", "y0", "mask", "area", "_box")

    def __init__(self, x0: int, y0: int, mask: np.ndarray) -> None:
        self.x0, self.y0, self.mask = x0, y0, mask
        self.area = int(mask.sum())
        self._box: tuple[int, int, int, int] | None = None

    def box(self) -> tuple[int, int, int, int]:
        """Box ``(x1, y1, x2, y2)`` (x2/y2 exclusive, network px) of the mask's pixels (not empty)."""
        if self._box is None:
            ys, xs = np.nonzero(self.mask)
            self._box = (self.x0 + int(xs.min()), self.y0 + int(ys.min()),
                         self.x0 + int(xs.max()) + 1, self.y0 + int(ys.max()) + 1)
        return self._box

    def score(self, prob: np.ndarray, threshold: float) -> float:
        """Mean probability over the region's pixels above ``threshold`` (0 when there are none)."""
        h, w = self.mask.shape
        p = prob[self.y0 : self.y0 + h, self.x0 : self.x0 + w][self.mask]
        p = p[p > threshold]
        return float(p.mean()) if p.size else 0.0

    def full_mask(self, size: int) -> np.ndarray:
        """The region as a boolean ``(size, size)`` mask of the whole map."""
        out = np.zeros((size, size), bool)
        h, w = self.mask.shape
        out[self.y0 : self.y0 + h, self.x0 : self.x0 + w] = self.mask
        return out

    def union(self, other: Region) -> Region:
        """The region holding the pixels of both."""
        x0, y0 = min(self.x0, other.x0), min(self.y0, other.y0)
        x1 = max(self.x0 + self.mask.shape[1], other.x0 + other.mask.shape[1])
        y1 = max(self.y0 + self.mask.shape[0], other.y0 + other.mask.shape[0])
        mask = np.zeros((y1 - y0, x1 - x0), bool)
        for r in (self, other):
            h, w = r.mask.shape
            mask[r.y0 - y0 : r.y0 - y0 + h, r.x0 - x0 : r.x0 - x0 + w] |= r.mask
        return Region(x0, y0, mask)


def mask_weights(mask: np.ndarray, grid: int) -> np.ndarray:
    """Share of each cell of a ``grid x grid`` feature map that a mask covers, normalised to sum 1.

    Args:
        mask: boolean or 0/1 ``(S, S)`` at the network resolution (``S`` a multiple of ``grid``).
        grid: side of the feature map (``S / 16`` for the verifier).

    Returns:
        ``float32 (grid, grid)`` summing to 1 (all zeros for an empty mask).
    """
    w = cv2.resize(mask.astype(np.float32), (grid, grid), interpolation=cv2.INTER_AREA)
    total = float(w.sum())
    return w / total if total > 0 else w


def verifier_probability(logits: np.ndarray, mask: np.ndarray) -> float:
    """Region verifier probability of one instance (step 9): sigmoid of the mask-weighted mean of the logit map.

    Args:
        logits: ``float32 (G, G)`` the model's ``verify`` output.
        mask: boolean ``(S, S)`` the instance at the network resolution.
    """
    z = float((mask_weights(mask, logits.shape[0]) * logits).sum())
    return float(1.0 / (1.0 + np.exp(-z)))


def fill_holes(region: np.ndarray) -> np.ndarray:
    """``region`` (boolean ``(S, S)``) with every hole filled (background not reachable from the border)."""
    u8 = region.astype(np.uint8)
    padded = cv2.copyMakeBorder(u8, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    flood = padded.copy()
    ff_mask = np.zeros((padded.shape[0] + 2, padded.shape[1] + 2), np.uint8)
    cv2.floodFill(flood, ff_mask, (0, 0), 1)
    holes = (flood == 0)[1:-1, 1:-1]
    return region | holes


def inside_frac(inner: tuple[int, int, int, int], outer: tuple[int, int, int, int]) -> float:
    """Share of ``inner``'s box area that lies inside ``outer``'s box."""
    iw = min(inner[2], outer[2]) - max(inner[0], outer[0])
    ih = min(inner[3], outer[3]) - max(inner[1], outer[1])
    area = (inner[2] - inner[0]) * (inner[3] - inner[1])
    return (iw * ih) / area if iw > 0 and ih > 0 and area > 0 else 0.0
