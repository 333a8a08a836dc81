"""Learned wheel detector: the ONNX wheel-segmentation network plus instance post-processing.

onnxruntime and OpenCV only (no torch). The network (see
:mod:`services.segmenter.training.model`) maps raw RGB pixels ``float32 (1, 3, S, S)`` in
[0, 255] to a wheel probability map ``float32 (1, 1, S, S)``; this module turns that map into
:class:`~services.segmenter.detection.Detection` instances:

1. resize the image to ``S x S`` (aspect not kept, as in ``designsearch.images.to_model_input``),
   run the network;
2. threshold the probability map, open it with a small ellipse (removes 1-2 px bridges), and
   take 8-connected components (Suzuki-Abe style labelling, OpenCV
   ``connectedComponentsWithStats``);
3. split components that look like several touching wheels: a component whose solidity (area /
   convex-hull area) is low is split by the marker-based watershed on its distance transform
   (Beucher & Meyer 1993; markers = connected cores where the distance exceeds ``split_core`` of
   its maximum), the usual way to separate touching round objects;
4. drop instances smaller than ``min_area`` of the image; score = mean probability inside;
   drop those scoring under ``min_score``;
5. map boxes to input pixels; each mask is the bilinearly resized probability crop thresholded
   again, so masks are smooth at the input resolution;
6. close-up rule: when an instance's box spans at least ``closeup_extent`` of the image width or
   height, the image is a close-up of one wheel (product shot, rendering, drawing): one
   detection of kind ``KIND_CLOSEUP`` whose box bounds all wheel pixels and whose mask holds
   them all.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

from designsearch.versioning import file_version
from services.segmenter.detection import KIND_CLOSEUP, KIND_WHEEL, Detection


class LearnedWheelDetector:
    """Wheel detector served from the ONNX segmentation model.

    Args:
        model_path: the ``.onnx`` file (input ``pixels`` ``(N,3,S,S)``, output ``prob``).
        threads: onnxruntime intra-op threads.
        input_size: network input side ``S`` in pixels; default: read from the model (its
            spatial input dimensions are fixed at export).
        threshold: probability above which a pixel is wheel.
        min_area: smallest instance, as a fraction of the image area.
        min_score: smallest mean probability of a kept instance.
        closeup_extent: the image counts as a close-up when the largest instance's box spans at
            least this fraction of the image width or height (in the Car-Parts photos no wheel
            box spans more than 0.46 of either side).
        split_solidity: components with solidity under this are tried for splitting.
        split_core: watershed markers are where the distance transform exceeds this fraction of
            its maximum.

    The defaults of ``threshold``, ``min_area`` and ``min_score`` were chosen on the *training*
    split (best instance F1 of a grid, :func:`services.segmenter.training.evaluate.sweep_postprocessing`;
    see ``models/segmenter/MODEL_CARD.md``).

    Attributes:
        name: ``"learned"``.
        model_version: ``"sha256:" + 16 hex`` of the model file.

    Raises:
        FileNotFoundError: ``model_path`` does not exist.
        ValueError: the model has dynamic spatial dimensions and no ``input_size`` was given.
    """

    name = "learned"

    def __init__(
        self,
        model_path: str | Path,
        threads: int = 2,
        input_size: int | None = None,
        threshold: float = 0.5,
        min_area: float = 0.004,
        min_score: float = 0.8,
        closeup_extent: float = 0.6,
        split_solidity: float = 0.85,
        split_core: float = 0.6,
    ) -> None:
        path = Path(model_path)
        if not path.is_file():
            raise FileNotFoundError(f"segmenter model not found: {path}")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        dims = inp.shape[2:]
        if input_size is None:
            if not all(isinstance(d, int) for d in dims):
                raise ValueError(f"model input {inp.shape} has dynamic size; pass input_size")
            input_size = int(dims[0])
        self.input_size = int(input_size)
        self.model_path = path
        self.model_version = file_version(path)
        self.threshold = threshold
        self.min_area = min_area
        self.min_score = min_score
        self.closeup_extent = closeup_extent
        self.split_solidity = split_solidity
        self.split_core = split_core

    # ----------------------------------------------------------------------------------------

    def probability(self, rgb: np.ndarray) -> np.ndarray:
        """Wheel probability at the network resolution.

        Args:
            rgb: ``uint8 (H, W, 3)`` RGB.

        Returns:
            ``float32 (S, S)`` in [0, 1].

        Raises:
            ValueError: ``rgb`` is not an ``(H, W, 3)`` array.
        """
        if rgb.ndim != 3 or rgb.shape[2] != 3:
            raise ValueError(f"expected an (H, W, 3) RGB array, got shape {rgb.shape}")
        s = self.input_size
        h, w = rgb.shape[:2]
        interp = cv2.INTER_AREA if min(h, w) > s else cv2.INTER_LINEAR
        x = cv2.resize(np.ascontiguousarray(rgb, dtype=np.uint8), (s, s), interpolation=interp)
        x = x.transpose(2, 0, 1)[None].astype(np.float32)
        return self.session.run(None, {self.input_name: x})[0][0, 0]

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        """Find wheels in an RGB image.

        Args:
            rgb: ``uint8 (H, W, 3)`` RGB, any size.

        Returns:
            Detections sorted by descending score: ``KIND_WHEEL`` instances with box
            ``(x1, y1, x2, y2)`` (input pixels, ints, x2/y2 exclusive), score in [0, 1] and mask
            ``uint8`` 255/0 aligned with the box; or one ``KIND_CLOSEUP`` detection for a close-up;
            or ``[]`` when no wheel is found.

        Raises:
            ValueError: ``rgb`` is not an ``(H, W, 3)`` array.
        """
        prob = self.probability(rgb)
        return self.instances_from_probability(prob, rgb.shape[0], rgb.shape[1])

    def instances_from_probability(self, prob: np.ndarray, height: int, width: int) -> list[Detection]:
        """Post-processing of a probability map into detections (steps 2-6 of the module doc).

        Args:
            prob: ``float32 (S, S)`` wheel probability at the network resolution.
            height, width: size of the input image the detections refer to, pixels.

        Returns:
            As :meth:`detect`.
        """
        s = prob.shape[0]
        binary = (prob > self.threshold).astype(np.uint8)
        binary = cv2.morphologyEx(binary, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3)))
        n, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
        min_px = self.min_area * s * s
        regions: list[np.ndarray] = []  # boolean masks at network resolution
        for k in range(1, n):
            if stats[k, cv2.CC_STAT_AREA] < min_px:
                continue
            x, y, w, h = stats[k, :4]
            comp = labels[y : y + h, x : x + w] == k
            for part, (dx, dy) in self._split(comp):
                full = np.zeros((s, s), bool)
                full[y + dy : y + dy + part.shape[0], x + dx : x + dx + part.shape[1]] = part
                regions.append(full)

        sx, sy = width / s, height / s
        kept: list[tuple[float, np.ndarray, tuple[int, int, int, int]]] = []
        for region in regions:
            area = int(region.sum())
            if area < min_px:
                continue
            score = float(prob[region].mean())
            if score < self.min_score:
                continue
            ys, xs = np.nonzero(region)
            box = (
                max(0, int(np.floor(xs.min() * sx))),
                max(0, int(np.floor(ys.min() * sy))),
                min(width, int(np.ceil((xs.max() + 1) * sx))),
                min(height, int(np.ceil((ys.max() + 1) * sy))),
            )
            kept.append((score, region, box))
        if not kept:
            return []
        kept.sort(key=lambda t: -t[0])

        extent = max(max((b[2] - b[0]) / width, (b[3] - b[1]) / height) for _, _, b in kept)
        if extent >= self.closeup_extent:
            union = np.zeros((s, s), bool)
            for _, region, _ in kept:
                union |= region
            score = float(prob[union].mean())
            return [self._detection(prob, union, score, height, width, KIND_CLOSEUP)]
        return [self._detection(prob, region, score, height, width, KIND_WHEEL) for score, region, _ in kept]

    # ----------------------------------------------------------------------------------------

    def _split(self, comp: np.ndarray) -> list[tuple[np.ndarray, tuple[int, int]]]:
        """Split one component into touching wheels if it is clearly not convex.

        Args:
            comp: boolean ``(h, w)`` mask of one connected component (its bounding box).

        Returns:
            List of ``(part_mask, (dx, dy))`` with offsets inside ``comp``; ``[(comp, (0, 0))]``
            when no split applies.
        """
        u8 = comp.astype(np.uint8)
        contours, _ = cv2.findContours(u8, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        if not contours:
            return [(comp, (0, 0))]
        hull_area = cv2.contourArea(cv2.convexHull(np.concatenate(contours)))
        if hull_area <= 0 or comp.sum() / hull_area >= self.split_solidity:
            return [(comp, (0, 0))]
        padded = cv2.copyMakeBorder(u8, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
        dist = cv2.distanceTransform(padded, cv2.DIST_L2, 5)
        cores = (dist > self.split_core * dist.max()).astype(np.uint8)
        n, markers = cv2.connectedComponents(cores, connectivity=8)
        if n <= 2:  # background + one core: one wheel
            return [(comp, (0, 0))]
        markers = markers.astype(np.int32)
        markers[(padded == 0)] = n  # background marker
        shade = cv2.cvtColor(255 - cv2.normalize(dist, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8), cv2.COLOR_GRAY2BGR)
        markers = cv2.watershed(shade, markers)[1:-1, 1:-1]
        parts = []
        for k in range(1, n):
            part = (markers == k) & comp
            if part.any():
                parts.append((part, (0, 0)))
        # Watershed lines (-1) inside the component are dropped: 1 px gap between the wheels.
        return parts or [(comp, (0, 0))]

    def _detection(
        self, prob: np.ndarray, region: np.ndarray, score: float, height: int, width: int, kind: str
    ) -> Detection:
        """Detection for one region: box from the region, mask from the resized probability crop."""
        s = prob.shape[0]
        sx, sy = width / s, height / s
        ys, xs = np.nonzero(region)
        x1 = max(0, int(np.floor(xs.min() * sx)))
        y1 = max(0, int(np.floor(ys.min() * sy)))
        x2 = min(width, int(np.ceil((xs.max() + 1) * sx)))
        y2 = min(height, int(np.ceil((ys.max() + 1) * sy)))
        # Probability restricted to this region (one-pixel dilation keeps the soft border), sampled
        # at input resolution over the box, thresholded again.
        support = cv2.dilate(region.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
        local = np.where(support, prob, 0.0).astype(np.float32)
        # Map input pixel centres of the box to network coordinates.
        gx = (np.arange(x1, x2, dtype=np.float32) + 0.5) / sx - 0.5
        gy = (np.arange(y1, y2, dtype=np.float32) + 0.5) / sy - 0.5
        map_x, map_y = np.meshgrid(gx, gy)
        up = cv2.remap(local, map_x, map_y, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        mask = np.where(up > self.threshold, 255, 0).astype(np.uint8)
        if not mask.any():  # tiny region: fall back to the nearest-neighbour footprint
            mask = np.where(cv2.remap(region.astype(np.uint8), map_x, map_y, cv2.INTER_NEAREST) > 0, 255, 0).astype(np.uint8)
        return Detection(box=(x1, y1, x2, y2), score=min(1.0, max(0.0, score)), kind=kind, mask=mask)
