"""Segmenter domain logic (no grpc): image bytes → detections → square crops with masks."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from designsearch.images import decode_image, encode_jpeg, encode_png, square_box
from designsearch.services.segmenter.classical import ClassicalWheelDetector
from designsearch.services.segmenter.detection import Detection, WheelDetector


@dataclass
class CropResult:
    """One crop ready to send: detection, the square crop as a JPEG or as pixels (``uint8`` ``(S, S, 3)``
    RGB; the other one empty / None), and the mask (PNG)."""

    detection: Detection
    crop_jpeg: bytes
    mask_png: bytes
    crop_rgb: np.ndarray | None = None


@dataclass
class SegmentResult:
    """All crops of one image; ``reason`` says why ``crops`` is empty."""

    crops: list[CropResult]
    width: int
    height: int
    reason: str = ""


def load_detector(kind: str, model_path: str, threads: int = 2, spinning: bool = False,
                  providers: list[str] | None = None) -> WheelDetector:
    """The wheel detector named by settings.

    Args:
        kind: ``"learned"``, ``"classical"`` or ``"auto"`` (learned when ``model_path`` exists).
        model_path: ONNX file of the learned segmenter.
        threads: onnxruntime intra-op threads.
        spinning: onnxruntime threads busy-wait between runs.
        providers: onnxruntime execution providers in order of preference (None = CPU).

    Raises:
        FileNotFoundError: ``kind == "learned"`` and the model file is missing.
        ValueError: unknown kind.
    """
    if kind == "auto":
        kind = "learned" if Path(model_path).exists() else "classical"
    if kind == "classical":
        return ClassicalWheelDetector()
    if kind == "learned":
        if not Path(model_path).exists():
            raise FileNotFoundError(f"segmenter model not found: {model_path}")
        from designsearch.services.segmenter.learned import LearnedWheelDetector

        return LearnedWheelDetector(model_path, threads=threads, spinning=spinning, providers=providers)
    raise ValueError(f"unknown detector {kind!r}; expected learned, classical or auto")


class Segmenter:
    """Cuts the objects found by a detector out of encoded images.

    Args:
        detector: any :class:`WheelDetector`.
        crop_margin: margin added around a box before squaring, fraction of the side.
        crop_size: side of the output square crops, px.
    """

    def __init__(self, detector: WheelDetector, crop_margin: float = 0.08, crop_size: int = 256) -> None:
        self.detector = detector
        self.crop_margin = crop_margin
        self.crop_size = crop_size

    @property
    def model_version(self) -> str:
        """Detector name and version, then ``+pp:`` and 8 hex of a sha256 over the crop margin, the default
        crop size and the detector's post-processing settings (``detector.postprocessing``, when it has
        them), e.g. ``learned:sha256:0123456789abcdef+pp:89abcdef``: crops cut under other settings are
        another version (the gateway's query cache keys hold it)."""
        version = getattr(self.detector, "model_version", "")
        name = version if version.startswith(self.detector.name) else f"{self.detector.name}:{version}"
        settings = {"crop_margin": self.crop_margin, "crop_size": self.crop_size,
                    **getattr(self.detector, "postprocessing", {})}
        digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:8]
        return f"{name}+pp:{digest}"

    def segment(self, data: bytes, *, max_crops: int, crop_size: int | None = None, pixels: bool = False) -> SegmentResult:
        """Decode ``data`` and return up to ``max_crops`` crops, best first.

        Args:
            data: the encoded image.
            max_crops: most crops.
            crop_size: side of the square crops, px (None = :attr:`crop_size`).
            pixels: give each crop as pixels (:attr:`CropResult.crop_rgb`) instead of a JPEG, for a
                caller that embeds it next (no encoding here, no decoding there).

        Raises:
            InvalidImage: the bytes are not a valid image (see :func:`decode_image`).
        """
        rgb = decode_image(data)
        h, w = rgb.shape[:2]
        detections = self.detector.detect(rgb)[:max_crops]
        if not detections:
            return SegmentResult([], w, h, reason=f"no {self.detector.name} detection: no wheel found")
        return SegmentResult([self._crop(rgb, d, crop_size or self.crop_size, pixels) for d in detections], w, h)

    def _crop(self, rgb: np.ndarray, det: Detection, size: int, pixels: bool) -> CropResult:
        h, w = rgb.shape[:2]
        sx1, sy1, sx2, sy2 = square_box(det.box, w, h, self.crop_margin)
        crop = rgb[sy1:sy2, sx1:sx2].copy()
        mask_png = encode_png(det.mask) if det.mask is not None else b""
        crop = _pad_square(crop)
        crop = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA if crop.shape[0] > size else cv2.INTER_LINEAR)
        if pixels:
            return CropResult(det, b"", mask_png, crop)
        return CropResult(det, encode_jpeg(crop, quality=92), mask_png)


def _pad_square(rgb: np.ndarray) -> np.ndarray:
    """Pad a crop clipped at the image border to a square with edge replication (keeps the centre)."""
    h, w = rgb.shape[:2]
    if h == w:
        return rgb
    side = max(h, w)
    top, left = (side - h) // 2, (side - w) // 2
    return cv2.copyMakeBorder(rgb, top, side - h - top, left, side - w - left, cv2.BORDER_REPLICATE)
