"""Learned wheel detector: the ONNX wheel-segmentation network plus instance post-processing.

onnxruntime and OpenCV only (no torch). The network (see
:mod:`designsearch.training.segmenter.model`) maps raw RGB pixels ``float32 (1, 3, S, S)`` in
[0, 255] to a wheel probability map ``float32 (1, 1, S, S)``; this module turns that map into
:class:`~designsearch.services.segmenter.detection.Detection` instances:

1. resize the image to ``S x S`` (aspect not kept, as in ``designsearch.images.to_model_input``),
   run the network;
2. threshold the probability map, open it with a small ellipse (removes 1-2 px bridges), and
   take 8-connected components (Suzuki-Abe style labelling, OpenCV
   ``connectedComponentsWithStats``);
3. fill each component's holes (a wheel is one solid disc: the gaps between spokes that the
   network leaves out are part of it, and a tyre ring is not taken for touching wheels), then
   split components that look like several touching wheels: a component whose solidity (area /
   convex-hull area) is low is split by the marker-based watershed on its distance transform
   (Beucher & Meyer 1993; markers = connected cores where the distance exceeds ``split_core`` of
   its maximum), the usual way to separate touching round objects;
4. drop instances smaller than ``min_area`` of the image; score = mean probability of the
   instance's wheel pixels (those above ``threshold``: filled holes do not dilute it); drop those
   scoring under ``min_score``;
5. suppress instances contained in a larger one (a hub cap, a spoke gap or a lug nut inside a
   wheel is not a wheel): an instance whose box lies at least ``contain_frac`` inside the box of
   a larger kept instance is merged into it (its pixels join the larger mask) — the containment
   form of non-maximum suppression;
6. map boxes to input pixels; each mask is the bilinearly resized probability crop thresholded
   again, so masks are smooth at the input resolution;
7. kind: an instance whose box spans at least ``closeup_extent`` of the image width or height is
   a wheel filling the frame (product shot, rendering, drawing), kind ``KIND_CLOSEUP``, unless its box is
   longer than :data:`CLOSEUP_MAX_ASPECT` times its width (a sliver of merged edge-on tyres); the others
   are ``KIND_WHEEL``. The network itself is trained on such close-ups (synthetic close-ups,
   renderings, line drawings and negatives, :mod:`designsearch.training.segmenter.synthetic`), so a
   close-up is one detection found like any other, not a rule applied to the whole image.
8. with a model that has the image-level head (second output ``scene``, softmax over
   ``("none", "closeup", "scene")``, issue 30; :mod:`designsearch.training.segmenter.model`) and
   ``use_scene``: a picture whose ``none`` probability is at least ``scene_none`` gives no detection (a
   brake rotor, a clutch plate, a light); one whose ``closeup`` probability is at least
   ``scene_closeup`` gives ONE ``KIND_CLOSEUP`` detection: every instance above ``min_area`` (steps 2-3,
   before the score filter) united, its convex hull the mask (a wheel's silhouette is convex; a hub cap
   or a spoke gap then cannot be the answer); otherwise steps 4-7 as above. A model without the
   head is post-processed by steps 1-7 only.
9. with a model that has the region verifier (output ``verify``, issue 30; :mod:`designsearch.training.segmenter.verifier`)
   and ``use_verify``: each instance of steps 4-5 is kept only if its verifier probability is at least
   ``verify_threshold`` (instances spanning ``closeup_extent``) or ``verify_threshold_wheel`` (smaller ones: the
   wheels of a car photo, which the network alone already tells from the rest of the car). The verifier is the second stage of a two-stage detector (the box-classification head of
   Faster / Mask R-CNN, Ren et al. NeurIPS 2015, He et al. ICCV 2017) reduced to a linear classifier on the
   encoder features pooled inside the instance's mask: the network emits the classifier's logit per stride-16
   cell, and the instance's logit is the mean of that map weighted by the share of each cell its mask covers
   (:func:`~designsearch.services.segmenter.regions.mask_weights`), which equals the linear classifier applied to the mask-pooled features. It tells a
   whole wheel from a brake rotor, a clutch plate, a light or a spoke gap.
10. with the verifier on and ``pad_retry`` > 0, a second look: the picture is run once more with a plain border around
   it (:meth:`LearnedWheelDetector._detect_padded`, detections mapped back into the picture) when steps 2-9 find
   nothing, when they find only small instances none of which passes ``verify_threshold`` (a product shot broken into
   a hub cap and a corner), or when they find one close-up touching the frame (a rim photographed so tight that the
   network, which learned rims with a margin, may leave out the barrel at 3/4 views). In the last two cases the
   second look replaces the first only when it gives exactly one close-up (verified at ``verify_threshold``) and, for
   the frame-touching close-up, one overlapping the first (box IoU ≥ 0.5), no smaller, and still touching the frame
   (a rim cut by the frame is cut in both looks; one the second look sees inside the frame was not): a car photo or
   a look-alike keeps its first answer.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from designsearch.versioning import file_version
from designsearch.services.segmenter.detection import KIND_CLOSEUP, KIND_WHEEL, Detection, box_iou
from designsearch.onnx import make_session
from designsearch.services.segmenter.regions import Region, fill_holes, inside_frac, verifier_probability


#: A close-up's box is at most this many times longer than wide (a wheel seen up to ~70° off its axle);
#: longer slivers spanning half the picture are merged edge-on tyres of a car photo (Car-Parts train7).
CLOSEUP_MAX_ASPECT = 2.8
#: When step 10 looks a second time (part of ``postprocessing``, so cached answers of the older rule are not reused).
SECOND_LOOK_RULES = "empty,fragments,tight-frame"


class LearnedWheelDetector:
    """Wheel detector served from the ONNX segmentation model.

    Args:
        model_path: the ``.onnx`` file (input ``pixels`` ``(N,3,S,S)``, output ``prob``).
        threads: onnxruntime intra-op threads.
        spinning: onnxruntime threads busy-wait between runs (see :func:`designsearch.onnx.make_session`).
        input_size: network input side ``S`` in pixels; default: read from the model (its
            spatial input dimensions are fixed at export).
        threshold: probability above which a pixel is wheel.
        min_area: smallest instance, as a fraction of the image area.
        min_score: smallest mean probability of a kept instance.
        closeup_extent: an instance whose box spans at least this fraction of the image width
            or height is of kind ``closeup`` (in the Car-Parts photos no wheel box spans more than
            0.46 of either side).
        contain_frac: an instance whose box lies at least this fraction (of its own area) inside
            a larger instance's box is merged into it.
        split_solidity: components with solidity under this are tried for splitting.
        split_core: watershed markers are where the distance transform exceeds this fraction of
            its maximum.
        use_scene: apply the image-level head (step 8) when the model has one.
        scene_none: ``none`` probability at or above which a picture gives no detection.
        scene_closeup: ``closeup`` probability at or above which a picture gives one close-up detection.
        use_verify: apply the region verifier (step 9) when the model has one.
        verify_threshold: smallest verifier probability of a kept instance spanning ``closeup_extent``.
        verify_threshold_wheel: the same for smaller instances (wheels of a car photo).
        pad_retry: with the verifier on, the second look of step 10 (nothing found, only unconfident small
            instances, or one close-up touching the frame) adds a border of this share of the picture's longest side
            on every side, in the median colour of its own border; 0 = off.
        providers: onnxruntime execution providers in order of preference, unavailable ones skipped (None = CPU);
            the chosen ones are :attr:`providers`.

    The defaults of ``threshold``, ``min_area`` and ``min_score`` were chosen on the *training*
    split (best instance F1 of a grid, :func:`designsearch.training.segmenter.evaluate.sweep_postprocessing`;
    see ``models/segmenter/MODEL_CARD.md``); ``verify_threshold`` and ``pad_retry`` on the car-parts-50 TRAIN
    rims and look-alikes (129 of 136 one whole, 1,787 of 1,792 empty with 0.7 on every instance; as served, with the
    small-instance bar and the second look of step 10, 131 of 136 and 1,695 of 1,792), ``verify_threshold_wheel`` on the first 160
    Car-Parts TRAIN photos (the largest tried that keeps their recall; grids in the model card).

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
        closeup_extent: float = 0.5,
        contain_frac: float = 0.7,
        split_solidity: float = 0.85,
        split_core: float = 0.6,
        spinning: bool = False,
        use_scene: bool = True,
        scene_none: float = 0.5,
        scene_closeup: float = 0.5,
        use_verify: bool = True,
        verify_threshold: float = 0.7,
        verify_threshold_wheel: float = 0.05,
        pad_retry: float = 0.25,
        providers: list[str] | None = None,
    ) -> None:
        path = Path(model_path)
        if not path.is_file():
            raise FileNotFoundError(f"segmenter model not found: {path}")
        self.session = make_session(path, threads, providers=providers, spinning=spinning)
        self.providers = self.session.get_providers()
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
        self.contain_frac = contain_frac
        self.split_solidity = split_solidity
        self.split_core = split_core
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.has_scene = "scene" in self.output_names
        self.has_verify = "verify" in self.output_names
        self.use_scene, self.scene_none, self.scene_closeup = use_scene, scene_none, scene_closeup
        self.use_verify, self.verify_threshold, self.pad_retry = use_verify, verify_threshold, pad_retry
        self.verify_threshold_wheel = verify_threshold_wheel

    @property
    def postprocessing(self) -> dict:
        """The settings that shape the detections (part of the segmenter's ``model_version``)."""
        return {"input_size": self.input_size, "threshold": self.threshold, "min_area": self.min_area,
                "min_score": self.min_score, "closeup_extent": self.closeup_extent, "contain_frac": self.contain_frac,
                "split_solidity": self.split_solidity, "split_core": self.split_core, "use_scene": self.use_scene,
                "scene_none": self.scene_none, "scene_closeup": self.scene_closeup,
                **({"use_verify": self.use_verify, "verify_threshold": self.verify_threshold,
                    "verify_threshold_wheel": self.verify_threshold_wheel, "pad_retry": self.pad_retry,
                    "second_look": SECOND_LOOK_RULES} if self.has_verify else {})}

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
        return self.outputs(rgb)[0]

    def outputs(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        """The network's outputs for one image: probability ``float32 (S, S)``; with the image-level head the
        scene probabilities ``float32 (3,)`` (``none``, ``closeup``, ``scene``), else ``None``; with the region
        verifier its logit map ``float32 (S/16, S/16)``, else ``None``.

        Raises:
            ValueError: ``rgb`` is not an ``(H, W, 3)`` array.
        """
        out = dict(zip(self.output_names, self.session.run(None, {self.input_name: network_input(rgb, self.input_size)})))
        return (out["prob"][0, 0], out["scene"][0] if self.has_scene else None,
                out["verify"][0, 0] if self.has_verify else None)

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
        prob, scene, verify = self.outputs(rgb)
        h, w = rgb.shape[:2]
        found, best_verify = self._instances(prob, h, w, scene, verify)
        if not (self.pad_retry > 0 and self.has_verify and self.use_verify):
            return found
        if not found:
            return self._detect_padded(rgb)
        fragments = all(d.kind != KIND_CLOSEUP for d in found) and best_verify < self.verify_threshold
        tight = len(found) == 1 and found[0].kind == KIND_CLOSEUP and _touches_frame(found[0].box, w, h, prob.shape[0])
        if not (fragments or tight):
            return found
        second = self._detect_padded(rgb)
        if len(second) != 1 or second[0].kind != KIND_CLOSEUP:
            return found
        if tight and (box_iou(second[0].box, found[0].box) < 0.5 or second[0].area < found[0].area
                      or not _touches_frame(second[0].box, w, h, prob.shape[0])):
            return found
        return second

    def _detect_padded(self, rgb: np.ndarray) -> list[Detection]:
        """Step 10: detections of ``rgb`` seen with a plain border (its own border's median colour), mapped back.

        A rim photographed so tight that it touches the frame is, with a margin around it, the product shot the
        network knows; the verifier keeps a look-alike seen this way from becoming a wheel.
        """
        h, w = rgb.shape[:2]
        pad = max(1, int(round(self.pad_retry * max(h, w))))
        border = np.concatenate([rgb[0], rgb[-1], rgb[:, 0], rgb[:, -1]])
        colour = [int(v) for v in np.median(border, axis=0)]
        padded = cv2.copyMakeBorder(np.ascontiguousarray(rgb), pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=colour)
        prob, scene, verify = self.outputs(padded)
        out = []
        for d in self.instances_from_probability(prob, h + 2 * pad, w + 2 * pad, scene, verify):
            x1, y1, x2, y2 = (max(0, d.box[0] - pad), max(0, d.box[1] - pad), min(w, d.box[2] - pad), min(h, d.box[3] - pad))
            if x2 <= x1 or y2 <= y1:
                continue
            mask = None if d.mask is None else d.mask[y1 + pad - d.box[1] : y2 + pad - d.box[1],
                                                      x1 + pad - d.box[0] : x2 + pad - d.box[0]]
            out.append(Detection(box=(x1, y1, x2, y2), score=d.score, kind=self._kind(x2 - x1, y2 - y1, w, h), mask=mask))
        return out

    def instances_from_probability(self, prob: np.ndarray, height: int, width: int,
                                   scene: np.ndarray | None = None, verify: np.ndarray | None = None) -> list[Detection]:
        """Post-processing of a probability map into detections (steps 2-9 of the module doc).

        Args:
            prob: ``float32 (S, S)`` wheel probability at the network resolution.
            height, width: size of the input image the detections refer to, pixels.
            scene: the image-level head's probabilities ``(3,)`` (``none``, ``closeup``, ``scene``) or ``None``.
            verify: the region verifier's logit map ``float32 (S/16, S/16)`` or ``None``.

        Returns:
            As :meth:`detect` (without step 10).
        """
        return self._instances(prob, height, width, scene, verify)[0]

    def _instances(self, prob: np.ndarray, height: int, width: int, scene: np.ndarray | None,
                   verify: np.ndarray | None) -> tuple[list[Detection], float]:
        """Steps 2-9: the detections and the largest verifier probability among them (1.0 without the verifier)."""
        use_scene = scene is not None and self.use_scene
        if use_scene and scene[0] >= self.scene_none:
            return [], 1.0
        s = prob.shape[0]
        regions = self._components(prob)
        if use_scene and scene[1] >= self.scene_closeup:
            return self._scene_closeup(prob, regions, float(scene[1]), height, width), 1.0
        regions = self._kept_and_merged(prob, regions)
        best_verify = 1.0
        if verify is not None and self.use_verify:
            judged = [(r, verifier_probability(verify, r.full_mask(s))) for r in regions]
            passed = [(r, p) for r, p in judged if p >= self._verify_bar(r, s)]
            regions = [r for r, _ in passed]
            best_verify = max((p for _, p in passed), default=0.0)
        out = []
        for region in regions:
            score = region.score(prob, self.threshold)
            box = region.box()
            kind = self._kind(box[2] - box[0], box[3] - box[1], s, s)
            out.append(self._detection(prob, region, score, height, width, kind))
        out.sort(key=lambda d: -d.score)
        return out, best_verify

    def _kind(self, bw: int, bh: int, width: int, height: int) -> str:
        """Step 7: ``KIND_CLOSEUP`` for a ``bw x bh`` box spanning ``closeup_extent`` of a ``width x height`` picture
        and round enough (a close-up wheel is a disc or an ellipse; a sliver of two edge-on tyres merged is not one),
        else ``KIND_WHEEL``."""
        round_enough = max(bw, bh) <= CLOSEUP_MAX_ASPECT * max(1, min(bw, bh))
        return KIND_CLOSEUP if max(bw / width, bh / height) >= self.closeup_extent and round_enough else KIND_WHEEL

    def _verify_bar(self, region: Region, size: int) -> float:
        """Verifier threshold of one instance: ``verify_threshold`` for one spanning ``closeup_extent`` of the map
        (a product shot, a rendering, a look-alike filling the frame), ``verify_threshold_wheel`` for smaller ones
        (wheels of a car photo, which the network alone already tells from the rest of a car)."""
        x1, y1, x2, y2 = region.box()
        big = max(x2 - x1, y2 - y1) >= self.closeup_extent * size
        return self.verify_threshold if big else self.verify_threshold_wheel

    def candidate_regions(self, prob: np.ndarray) -> list[Region]:
        """Instances of a probability map after steps 2-5 (threshold, components, holes, split, area and score
        filters, containment merge), before the verifier: what step 9 judges.

        Args:
            prob: ``float32 (S, S)`` wheel probability at the network resolution.

        Returns:
            Regions (``.box()`` network px, ``.full_mask(S)`` boolean ``(S, S)``, ``.score(prob, threshold)``).
        """
        return self._kept_and_merged(prob, self._components(prob))

    def _components(self, prob: np.ndarray) -> list[Region]:
        """Steps 2-3: thresholded, opened, hole-filled components (split where several wheels touch)."""
        s = prob.shape[0]
        binary = (prob > self.threshold).astype(np.uint8)
        binary = cv2.morphologyEx(binary, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3)))
        n, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
        min_px = self.min_area * s * s
        # Each instance is a window of the map: (x0, y0, boolean mask of its bounding region), so that the
        # steps below cost the instance's size, not the map's (S x S per instance cost ~5 ms per picture).
        regions: list[Region] = []
        for k in range(1, n):
            if stats[k, cv2.CC_STAT_AREA] < min_px:
                continue
            x, y, w, h = stats[k, :4]
            comp = fill_holes(labels[y : y + h, x : x + w] == k)  # a wheel is a solid disc
            regions.extend(Region(int(x) + dx, int(y) + dy, part) for part, (dx, dy) in self._split(comp))
        return regions

    def _scene_closeup(self, prob: np.ndarray, regions: list[Region], closeup_p: float, height: int,
                       width: int) -> list[Detection]:
        """Step 8's close-up: every region above ``min_area`` united, its convex hull the mask; ``[]`` if none."""
        whole = [r for r in regions if r.area >= self.min_area * prob.size]
        if not whole:
            return []
        united = whole[0]
        for r in whole[1:]:
            united = united.union(r)
        hull = np.zeros_like(united.mask, np.uint8)
        cv2.fillConvexPoly(hull, cv2.convexHull(cv2.findNonZero(united.mask.astype(np.uint8))), 1)
        region = Region(united.x0, united.y0, hull.astype(bool))
        score = closeup_p * max(region.score(prob, self.threshold), self.threshold)
        return [self._detection(prob, region, score, height, width, KIND_CLOSEUP)]

    def _kept_and_merged(self, prob: np.ndarray, regions: list[Region]) -> list[Region]:
        """Steps 4-5: area and score filters, then containment suppression (largest first; a smaller instance
        mostly inside a kept one joins it)."""
        min_px = self.min_area * prob.size
        kept = [r for r in regions if r.area >= min_px and r.score(prob, self.threshold) >= self.min_score]
        kept.sort(key=lambda r: -r.area)
        merged: list[Region] = []
        for region in kept:
            box = region.box()
            host = next((i for i, m in enumerate(merged) if inside_frac(box, m.box()) >= self.contain_frac), None)
            if host is not None:
                merged[host] = merged[host].union(region)
                continue
            merged.append(region)
        return merged

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
        self, prob: np.ndarray, region: Region, score: float, height: int, width: int, kind: str
    ) -> Detection:
        """Detection for one region: box from the region, mask from the resized probability crop."""
        s = prob.shape[0]
        sx, sy = width / s, height / s
        bx1, by1, bx2, by2 = region.box()
        x1 = max(0, int(np.floor(bx1 * sx)))
        y1 = max(0, int(np.floor(by1 * sy)))
        x2 = min(width, int(np.ceil(bx2 * sx)))
        y2 = min(height, int(np.ceil(by2 * sy)))
        # The work is done on the region's window grown by 2 px (the 1 px dilation below and the bilinear
        # neighbour); outside it the probability used is 0 either way, as the remap's constant border.
        wx0, wy0 = max(0, region.x0 - 2), max(0, region.y0 - 2)
        wx1 = min(s, region.x0 + region.mask.shape[1] + 2)
        wy1 = min(s, region.y0 + region.mask.shape[0] + 2)
        inside = np.zeros((wy1 - wy0, wx1 - wx0), np.uint8)
        h, w = region.mask.shape
        inside[region.y0 - wy0 : region.y0 - wy0 + h, region.x0 - wx0 : region.x0 - wx0 + w] = region.mask
        # Probability restricted to this region (one-pixel dilation keeps the soft border), sampled
        # at input resolution over the box, thresholded again.
        support = cv2.dilate(inside, np.ones((3, 3), np.uint8)).astype(bool)
        # Pixels of the (hole-filled) region count as wheel whatever their probability.
        local = np.where(support, np.maximum(prob[wy0:wy1, wx0:wx1], inside.astype(np.float32)), 0.0).astype(np.float32)
        # Map input pixel centres of the box to network coordinates (of the window).
        gx = (np.arange(x1, x2, dtype=np.float32) + 0.5) / sx - 0.5 - wx0
        gy = (np.arange(y1, y2, dtype=np.float32) + 0.5) / sy - 0.5 - wy0
        map_x, map_y = np.meshgrid(gx, gy)
        up = cv2.remap(local, map_x, map_y, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        mask = np.where(up > self.threshold, 255, 0).astype(np.uint8)
        if not mask.any():  # tiny region: fall back to the nearest-neighbour footprint
            mask = np.where(cv2.remap(inside, map_x, map_y, cv2.INTER_NEAREST) > 0, 255, 0).astype(np.uint8)
        return Detection(box=(x1, y1, x2, y2), score=min(1.0, max(0.0, score)), kind=kind, mask=mask)


def _touches_frame(box: tuple[int, int, int, int], width: int, height: int, size: int) -> bool:
    """Whether a box ``(x1, y1, x2, y2)`` (picture px) comes within 2 network pixels (of a ``size`` map) of the frame."""
    mx, my = 2 * width / size, 2 * height / size
    return box[0] <= mx or box[1] <= my or box[2] >= width - mx or box[3] >= height - my


def network_input(rgb: np.ndarray, size: int) -> np.ndarray:
    """The network input of an image: ``float32 (1, 3, size, size)`` raw RGB 0..255, resized to a square
    (aspect not kept; area interpolation when shrinking, bilinear when enlarging).

    Raises:
        ValueError: ``rgb`` is not an ``(H, W, 3)`` array.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) RGB array, got shape {rgb.shape}")
    h, w = rgb.shape[:2]
    interp = cv2.INTER_AREA if min(h, w) > size else cv2.INTER_LINEAR
    x = cv2.resize(np.ascontiguousarray(rgb, dtype=np.uint8), (size, size), interpolation=interp)
    return x.transpose(2, 0, 1)[None].astype(np.float32)
