"""Classical wheel detector: Hough circles in the lower part of a car photo (OpenCV, no training).

The baseline the learned segmenter replaces (and is compared with in ``eval-segmenter``).

Method: grey image → median blur → ``cv2.HoughCircles`` (gradient method, Yuen et al. 1990,
"Comparative study of Hough transform methods for circle finding") with radii relative to the
image height, keeping circles whose centre is in the lower 75 % of the image; overlapping circles
are suppressed (greedy NMS on boxes); score = fraction of the circle's perimeter that lies on a
Canny edge (circles drawn through texture have little edge support). A single circle
filling most of the image is a close-up (product shot, rendering, sketch).
"""

from __future__ import annotations

import cv2
import numpy as np

from designsearch.services.segmenter.detection import KIND_CLOSEUP, KIND_WHEEL, Detection, box_iou


class ClassicalWheelDetector:
    """Hough-circle wheel finder.

    Args:
        max_wheels: most detections returned.
        work_side: images are resized so the longest side is this many px before detection.
        min_radius, max_radius: circle radius range as fractions of ``min(H, W)`` (working size).
        accumulator: Hough accumulator threshold (``param2``); lower finds more, and more false ones.
        min_support: least fraction of a circle's perimeter that must lie on image edges (the
            rim/tyre boundary); it also is the detection score.
        closeup_fraction: a circle whose diameter is at least this fraction of ``min(H, W)`` makes
            the image a close-up.
    """

    name = "classical"
    model_version = "classical:hough-v1"

    def __init__(
        self,
        max_wheels: int = 3,
        work_side: int = 448,
        min_radius: float = 0.07,
        max_radius: float = 0.26,
        accumulator: float = 40.0,
        closeup_fraction: float = 0.7,
        min_support: float = 0.45,
    ) -> None:
        self.max_wheels = max_wheels
        self.work_side = work_side
        self.min_radius = min_radius
        self.max_radius = max_radius
        self.accumulator = accumulator
        self.closeup_fraction = closeup_fraction
        self.min_support = min_support

    @property
    def postprocessing(self) -> dict:
        """The settings that shape the detections (part of the segmenter's ``model_version``)."""
        return {"max_wheels": self.max_wheels, "work_side": self.work_side, "min_radius": self.min_radius,
                "max_radius": self.max_radius, "accumulator": self.accumulator,
                "closeup_fraction": self.closeup_fraction, "min_support": self.min_support}

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        """Find wheels as circles.

        Args:
            rgb: ``uint8`` array ``(H, W, 3)``.

        Returns:
            Up to ``max_wheels`` detections (box in input pixels, circular mask), best first;
            one ``KIND_CLOSEUP`` detection when one circle fills the image; [] when none is found.
        """
        h, w = rgb.shape[:2]
        scale = min(1.0, self.work_side / max(h, w))
        small = cv2.resize(rgb, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA) if scale < 1 else rgb
        sh, sw = small.shape[:2]
        grey = cv2.medianBlur(cv2.cvtColor(small, cv2.COLOR_RGB2GRAY), 5)
        short = min(sh, sw)
        circles = cv2.HoughCircles(
            grey,
            cv2.HOUGH_GRADIENT,
            dp=1.5,
            minDist=short * 0.25,
            param1=120,
            param2=self.accumulator,
            minRadius=int(short * self.min_radius),
            maxRadius=int(short * self.max_radius),
        )
        if circles is None:
            return []
        edges = cv2.Canny(grey, 60, 140)
        edges = cv2.dilate(edges, np.ones((3, 3), np.uint8))
        scored = [(support, cx, cy, r) for cx, cy, r in circles[0]
                  if (support := _edge_support(edges, cx, cy, r)) >= self.min_support]
        scored.sort(key=lambda c: -c[0])
        found: list[Detection] = []
        for support, cx, cy, r in scored:
            closeup = 2 * r >= self.closeup_fraction * short
            if not closeup and cy < 0.45 * sh:
                continue  # wheels are not at the top of a car photo
            box = (
                max(0, int((cx - r) / scale)),
                max(0, int((cy - r) / scale)),
                min(w, int(np.ceil((cx + r) / scale))),
                min(h, int(np.ceil((cy + r) / scale))),
            )
            if box[2] - box[0] < 8 or box[3] - box[1] < 8:
                continue
            if any(box_iou(box, d.box) > 0.3 for d in found):
                continue
            score = float(support)
            found.append(Detection(box=box, score=score, kind=KIND_CLOSEUP if closeup else KIND_WHEEL,
                                   mask=_circle_mask(box, (cx / scale, cy / scale), r / scale)))
            if closeup:
                return [found[-1]]  # a close-up is one object
            if len(found) >= self.max_wheels:
                break
        return found


def _circle_mask(box: tuple[int, int, int, int], centre: tuple[float, float], radius: float) -> np.ndarray:
    """``uint8`` mask ``(y2-y1, x2-x1)`` of a filled circle (255 inside), aligned with ``box``."""
    x1, y1, x2, y2 = box
    mask = np.zeros((y2 - y1, x2 - x1), dtype=np.uint8)
    cv2.circle(mask, (round(centre[0] - x1), round(centre[1] - y1)), max(1, round(radius)), 255, thickness=-1)
    return mask


def _edge_support(edges: np.ndarray, cx: float, cy: float, r: float, samples: int = 72) -> float:
    """Fraction of ``samples`` points on the circle ``(cx, cy, r)`` that fall on an edge pixel."""
    angles = np.linspace(0, 2 * np.pi, samples, endpoint=False)
    xs = np.clip(np.round(cx + r * np.cos(angles)).astype(int), 0, edges.shape[1] - 1)
    ys = np.clip(np.round(cy + r * np.sin(angles)).astype(int), 0, edges.shape[0] - 1)
    return float(np.mean(edges[ys, xs] > 0))
