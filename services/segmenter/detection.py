"""Detector-independent types of the segmenter: what any wheel detector returns.

No grpc, no torch: used by the classical detector, the learned (ONNX) one, their evaluation and
the service core alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from designsearch.domain import KIND_CLOSEUP, KIND_WHEEL, KIND_WHOLE_IMAGE

__all__ = ["KIND_CLOSEUP", "KIND_WHEEL", "KIND_WHOLE_IMAGE", "Detection", "WheelDetector", "box_iou"]


@dataclass
class Detection:
    """One object found in an image.

    Attributes:
        box: ``(x1, y1, x2, y2)`` pixels in the input image, x2/y2 exclusive, ints.
        score: confidence in [0, 1].
        kind: one of ``KIND_WHEEL``, ``KIND_CLOSEUP``, ``KIND_WHOLE_IMAGE``.
        mask: optional ``uint8`` array ``(y2 - y1, x2 - x1)``, 255 inside the object, 0 outside,
            aligned with ``box`` (not with the whole image).
    """

    box: tuple[int, int, int, int]
    score: float
    kind: str = KIND_WHEEL
    mask: np.ndarray | None = field(default=None, repr=False)

    @property
    def area(self) -> int:
        """Box area in square pixels."""
        x1, y1, x2, y2 = self.box
        return max(0, x2 - x1) * max(0, y2 - y1)


class WheelDetector(Protocol):
    """Anything that finds wheels in an RGB image."""

    name: str

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        """Find wheels.

        Args:
            rgb: ``uint8`` array ``(H, W, 3)``.

        Returns:
            Detections sorted by descending score; empty when no wheel is found (the caller
            decides what a "no wheel" image means).
        """
        ...


def box_iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    """Intersection over union of two ``(x1, y1, x2, y2)`` boxes; 0 when they do not overlap."""
    ix1, iy1 = max(a[0], b[0]), max(a[1], b[1])
    ix2, iy2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, ix2 - ix1) * max(0.0, iy2 - iy1)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0
