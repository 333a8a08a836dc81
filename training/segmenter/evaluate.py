"""Evaluate wheel detectors side by side on the validation split of Car-Parts-Segmentation.

Metrics per detector (any object with ``name`` and ``detect(rgb) -> list[Detection]``, see
:class:`designsearch.services.segmenter.detection.WheelDetector`):

* ``pixel_iou``: pooled wheel-mask IoU over the validation images, sum of intersections / sum of
  unions of the binary wheel masks at the photo resolution (512 x 512). The predicted mask is the
  union of the detections' masks pasted at their boxes (a detection without a mask counts as its
  filled box). ``mean_image_iou`` averages the per-image IoU over images with a wheel.
* ``precision`` / ``recall`` / ``f1`` of wheel instances: detections are matched greedily in
  descending score order to the unmatched ground-truth box of highest IoU (the PASCAL VOC rule,
  Everingham et al., IJCV 2010), a match needing box IoU >= ``iou_threshold`` (0.5). Ground-truth
  instances are the connected components of the rasterised COCO polygons (see
  :meth:`~designsearch.training.segmenter.dataset.WheelSample.instances`).
* ``latency_ms_p50`` / ``p95``: wall time of ``detect`` per image (decoded 512 px RGB in memory),
  after ``warmup`` untimed calls, on this machine with the detector's own thread setting.
* ``empty_images_with_detections``: validation photos without wheels where something was found.
* ``recall_by_shape``: recall per ground-truth box shape (:func:`box_shape`): ``face`` (height / width
  0.6-2.8: the wheel's face visible, frontal or oblique), ``edge_on`` (taller than 2.8 widths: a wheel
  seen at a grazing angle, mostly the far side or a front / rear view's side wheels) and ``flat``
  (under 0.6: a tyre's tread under a bumper in a front or rear view) — the last two show no design.
* ``pixel_iou_budget``: where the pooled pixel IoU's error (union − intersection) comes from, as shares of
  the union (:func:`~designsearch.training.segmenter.matching.pixel_error_budget`): ``missed_wheels`` (true
  wheels nothing matched), ``extra_detections`` (detections matching no annotated wheel) and ``boundary``
  (the mask edges of the wheels found); ``pixel_iou_found``: the IoU with the first two removed, i.e. the
  masks' own quality on the wheels that were found.

Three validation sets, all from validation-split photos only (split by source photo, so no wheel
or background is in both training and validation; :mod:`designsearch.training.segmenter.synthetic`):

* (a) ``photos``: the Car-Parts validation photos as they are (metrics above);
* (b) ``closeups``: every validation wheel as a synthetic close-up, a rendering on white and a line
  drawing (:func:`~designsearch.training.segmenter.synthetic.closeup_set`); besides pixel IoU and
  instance precision/recall, ``exactly_one_whole``: the share of pictures with exactly one
  detection whose box has IoU >= 0.8 with the true wheel box, overall and per style;
* (c) ``negatives``: pictures without any wheel (flat, gradient, noise, texture, car photos with the
  wheels painted out, logos); ``empty``: the share with no detection, overall and per kind;
* (c2) ``photo_crops``: wheel-free squares from the top band of the validation photos, upscaled by
  the detector (:func:`wheel_free_photo_crops`); ``empty`` as in (c).

CLI::

    python -m designsearch.training.segmenter.evaluate --data ../shared/data \
        --model models/segmenter/wheelseg-lite0.onnx --out runs/segmenter-eval.json

evaluates the learned model and, when ``services/segmenter/classical.py`` is importable, the
classical detector, and prints a table.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np

from designsearch.services.segmenter.detection import box_iou
from designsearch.training.segmenter.dataset import WheelSample, default_data_dir, load_samples, select, split_samples
from designsearch.training.segmenter.synthetic import ValItem, build_validation_sets
from designsearch.training.segmenter.matching import (  # noqa: F401 (re-exported)
    BUDGET_PARTS, FACE_ASPECT, box_shape, detections_mask, match_instances, match_pairs, matched_ground_truth,
    pixel_error_budget)

#: Box IoU with the true wheel for a close-up detection to count as the whole wheel.
WHOLE_IOU = 0.8

def evaluate_detector(detector, samples: list[WheelSample], iou_threshold: float = 0.5, warmup: int = 3) -> dict:
    """Metrics of one detector on ``samples`` (see the module docstring).

    Args:
        detector: object with ``name`` and ``detect(rgb)``.
        samples: validation photos.
        iou_threshold: box IoU for an instance match.
        warmup: untimed ``detect`` calls on the first image before timing.

    Returns:
        Dict with ``name``, ``n_images``, ``n_gt``, ``n_det``, ``tp``, ``precision``, ``recall``,
        ``f1``, ``pixel_iou``, ``pixel_iou_budget``, ``pixel_iou_found``, ``mean_image_iou``,
        ``empty_images_with_detections``, ``recall_by_shape``
        (``{shape: {"n_gt", "recall"}}``, :func:`box_shape`),
        ``latency_ms_p50``, ``latency_ms_p95``, ``latency_ms_mean``, ``per_image`` (file name,
        gt, det, tp, iou).
    """
    images = [s.read_rgb() for s in samples]
    for _ in range(warmup):
        if images:
            detector.detect(images[0])
    inter = union = 0
    budget = dict.fromkeys(BUDGET_PARTS, 0)
    n_gt = n_det = tp = 0
    empty_hits = 0
    times, per_image, image_ious = [], [], []
    shape_counts: dict[str, list[int]] = {}  # shape -> [ground-truth boxes, matched]
    for s, rgb in zip(samples, images):
        t0 = time.perf_counter()
        dets = detector.detect(rgb)
        times.append((time.perf_counter() - t0) * 1000.0)
        gt_mask = s.mask().astype(bool)
        pred = detections_mask(dets, rgb.shape[0], rgb.shape[1])
        i, u = int((gt_mask & pred).sum()), int((gt_mask | pred).sum())
        inter += i
        union += u
        gt_boxes = s.instances()
        pairs = match_pairs(dets, gt_boxes, iou_threshold)
        parts = pixel_error_budget(gt_mask, pred, dets, gt_boxes, pairs)
        for k in BUDGET_PARTS:
            budget[k] += parts[k]
        found = {g for _, g in pairs}
        matched = [j in found for j in range(len(gt_boxes))]
        m = len(pairs)
        for g, hit in zip(gt_boxes, matched):
            counts = shape_counts.setdefault(box_shape(g), [0, 0])
            counts[0], counts[1] = counts[0] + 1, counts[1] + int(hit)
        n_gt += len(gt_boxes)
        n_det += len(dets)
        tp += m
        if gt_mask.any():
            image_ious.append(i / u if u else 1.0)
        elif dets:
            empty_hits += 1
        per_image.append(
            {"file": s.file_name, "gt": len(gt_boxes), "det": len(dets), "tp": m, "iou": (i / u) if u else None,
             "kinds": [d.kind for d in dets]}
        )
    precision = tp / n_det if n_det else 1.0
    recall = tp / n_gt if n_gt else 1.0
    return {
        "name": getattr(detector, "name", type(detector).__name__),
        "model_version": getattr(detector, "model_version", None),
        "n_images": len(samples),
        "n_gt": n_gt,
        "n_det": n_det,
        "tp": tp,
        "precision": precision,
        "recall": recall,
        "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
        "pixel_iou": inter / union if union else 1.0,
        "pixel_iou_budget": {k: v / union if union else 0.0 for k, v in budget.items()},
        "pixel_iou_found": inter / (union - budget["missed_wheels"] - budget["extra_detections"])
        if union > budget["missed_wheels"] + budget["extra_detections"] else 1.0,
        "mean_image_iou": float(np.mean(image_ious)) if image_ious else None,
        "empty_images_with_detections": empty_hits,
        "recall_by_shape": {k: {"n_gt": n, "recall": hit / n} for k, (n, hit) in sorted(shape_counts.items())},
        "latency_ms_p50": float(np.percentile(times, 50)) if times else None,
        "latency_ms_p95": float(np.percentile(times, 95)) if times else None,
        "latency_ms_mean": float(np.mean(times)) if times else None,
        "per_image": per_image,
    }


def evaluate_closeups(detector, items: list[ValItem], iou_threshold: float = 0.5, whole_iou: float = WHOLE_IOU) -> dict:
    """Metrics of one detector on validation set (b): one true wheel per picture.

    Args:
        detector: object with ``name`` and ``detect(rgb)``.
        items: pictures with their true mask and box.
        iou_threshold: box IoU for an instance match (precision / recall).
        whole_iou: box IoU for the single detection to count as the whole wheel.

    Returns:
        Dict with ``n_images``, ``pixel_iou`` (pooled), ``precision``, ``recall``,
        ``exactly_one_whole`` (share), ``by_style`` (style -> ``{n, exactly_one_whole, recall}``),
        ``n_det``, ``failures`` (names of pictures that are not exactly-one-whole, with their
        detection count and best IoU), ``latency_ms_p50``.
    """
    inter = union = n_det = tp = ok = 0
    by_style: dict[str, dict] = {}
    failures, times = [], []
    for it in items:
        t0 = time.perf_counter()
        dets = detector.detect(it.rgb)
        times.append((time.perf_counter() - t0) * 1000.0)
        h, w = it.mask.shape
        pred = detections_mask(dets, h, w)
        gt = it.mask > 0
        inter += int((gt & pred).sum())
        union += int((gt | pred).sum())
        n_det += len(dets)
        m = match_instances(dets, [it.box], iou_threshold)
        tp += m
        best = max((box_iou(d.box, it.box) for d in dets), default=0.0)
        whole = len(dets) == 1 and best >= whole_iou
        ok += whole
        st = by_style.setdefault(it.style, {"n": 0, "exactly_one_whole": 0, "tp": 0})
        st["n"] += 1
        st["exactly_one_whole"] += whole
        st["tp"] += m
        if not whole:
            failures.append({"name": it.name, "det": len(dets), "best_iou": round(best, 3)})
    n = len(items)
    for st in by_style.values():
        st["recall"] = st.pop("tp") / st["n"]
        st["exactly_one_whole"] = st["exactly_one_whole"] / st["n"]
    return {
        "name": getattr(detector, "name", type(detector).__name__),
        "n_images": n,
        "n_det": n_det,
        "pixel_iou": inter / union if union else 1.0,
        "precision": tp / n_det if n_det else 1.0,
        "recall": tp / n if n else 1.0,
        "exactly_one_whole": ok / n if n else 1.0,
        "by_style": by_style,
        "failures": failures,
        "latency_ms_p50": float(np.percentile(times, 50)) if times else None,
    }


def evaluate_negatives(detector, items: list[ValItem]) -> dict:
    """Share of wheel-free pictures (validation set (c)) on which ``detector`` finds nothing.

    Returns:
        Dict with ``n_images``, ``empty`` (share), ``by_kind`` (kind -> share empty), ``failures``.
    """
    empty = 0
    by_kind: dict[str, list[int]] = {}
    failures = []
    for it in items:
        dets = detector.detect(it.rgb)
        e = not dets
        empty += e
        by_kind.setdefault(it.style, []).append(int(e))
        if not e:
            failures.append({"name": it.name, "det": len(dets), "score": round(max(d.score for d in dets), 3)})
    return {
        "name": getattr(detector, "name", type(detector).__name__),
        "n_images": len(items),
        "empty": empty / len(items) if items else 1.0,
        "by_kind": {k: float(np.mean(v)) for k, v in by_kind.items()},
        "failures": failures,
    }


def wheel_free_photo_crops(samples: list[WheelSample], top_fraction: float = 0.25) -> list[ValItem]:
    """Set (c2): square crops of the top band of validation photos, where no wheel is.

    For every photo with wheels whose highest wheel box starts below ``top_fraction`` of the image
    height, three squares of side ``top_fraction * H`` at the top edge (left, centre, right): sky,
    buildings, roof, windows, the tops of cars behind. Upscaled by the detector, they test that a
    zoomed picture is not taken for a close-up wheel.

    Returns:
        :class:`ValItem` list (style ``"photo_top_crop"``, empty mask, ``box=None``).
    """
    items = []
    for s in samples:
        boxes = s.instances()
        if not boxes:
            continue
        rgb = s.read_rgb()
        h, w = rgb.shape[:2]
        side = int(top_fraction * h)
        if min(b[1] for b in boxes) <= side:
            continue
        for k, x in enumerate((0, (w - side) // 2, w - side)):
            crop = np.ascontiguousarray(rgb[:side, x : x + side])
            items.append(ValItem(f"photo_top_crop/{s.file_name}#{k}", "photo_top_crop", crop,
                                 np.zeros(crop.shape[:2], np.uint8), None))
    return items


def validation_samples(data: str | Path | None = None, val_files: list[str] | None = None, seed: int = 0,
                       val_fraction: float = 0.2) -> list[WheelSample]:
    """The validation photos: those named in ``val_files``, else the seeded split of :func:`split_samples`."""
    samples = load_samples(data)
    if val_files:
        return select(samples, val_files)
    return split_samples(samples, val_fraction, seed)[1]


def evaluate(
    detectors: list,
    data: str | Path | None = None,
    val_files: list[str] | None = None,
    seed: int = 0,
    iou_threshold: float = 0.5,
    threads: int = 2,
    synthetic_sets: bool = True,
) -> dict:
    """Evaluate several detectors on the same validation sets (a), (b) and (c).

    Args:
        detectors: objects with ``name`` and ``detect(rgb)`` (e.g. ``LearnedWheelDetector``,
            ``ClassicalWheelDetector``).
        data: shared data folder holding ``car-parts-seg/`` (default ``<repo>/../shared/data``).
        val_files: validation file names (e.g. from the model card / ``val_files.txt``); default
            the seeded split.
        seed: split seed used when ``val_files`` is not given.
        iou_threshold: box IoU for an instance match.
        threads: OpenCV threads during the evaluation (``cv2.setNumThreads``).
        synthetic_sets: also build and score sets (b) close-ups and (c) negatives from the
            validation photos (seeded with ``seed``).

    Returns:
        ``{"data": ..., "n_images": ..., "iou_threshold": ..., "results": [per-detector dict on
        (a)], "closeups": [per-detector dict on (b)], "negatives": [per-detector dict on (c)],
        "photo_crops": [per-detector dict on (c2), :func:`wheel_free_photo_crops`]}``.

    Raises:
        FileNotFoundError: the dataset is missing.
        KeyError: a name in ``val_files`` is not in the dataset.
    """
    cv2.setNumThreads(threads)
    samples = validation_samples(data, val_files, seed)
    results = [evaluate_detector(d, samples, iou_threshold) for d in detectors]
    report = {
        "data": str(Path(data) if data is not None else default_data_dir()),
        "n_images": len(samples),
        "n_images_with_wheels": sum(bool(s.polygons) for s in samples),
        "iou_threshold": iou_threshold,
        "results": results,
    }
    if synthetic_sets:
        sets = build_validation_sets(samples, seed)
        report["closeups"] = [evaluate_closeups(d, sets["closeups"], iou_threshold) for d in detectors]
        report["negatives"] = [evaluate_negatives(d, sets["negatives"]) for d in detectors]
        report["n_closeups"], report["n_negatives"] = len(sets["closeups"]), len(sets["negatives"])
        top = wheel_free_photo_crops(samples)
        report["photo_crops"] = [evaluate_negatives(d, top) for d in detectors]
        report["n_photo_crops"] = len(top)
    return report


def sweep_postprocessing(model: str | Path, samples: list[WheelSample], grid: dict[str, list], threads: int = 2,
                         iou_threshold: float = 0.5) -> list[dict]:
    """Score every combination of post-processing parameters of the learned detector on ``samples``.

    The network runs once per image; only
    :meth:`~designsearch.services.segmenter.learned.LearnedWheelDetector.instances_from_probability` is
    repeated. Use it on the *training* split to choose thresholds, so the validation split stays
    untouched.

    Args:
        model: ONNX file.
        samples: photos to score on.
        grid: parameter name (``threshold``, ``min_area``, ``min_score``, ``split_solidity``, …)
            → list of values.
        threads: onnxruntime threads.
        iou_threshold: box IoU for an instance match.

    Returns:
        One dict per combination: the parameters plus ``precision``, ``recall``, ``f1``,
        ``pixel_iou``.
    """
    import itertools

    from designsearch.services.segmenter.learned import LearnedWheelDetector

    det = LearnedWheelDetector(model, threads=threads)
    cached = []
    for s in samples:
        rgb = s.read_rgb()
        cached.append((det.probability(rgb), rgb.shape[0], rgb.shape[1], s.mask().astype(bool), s.instances()))
    keys = list(grid)
    rows = []
    for values in itertools.product(*(grid[k] for k in keys)):
        for k, v in zip(keys, values):
            setattr(det, k, v)
        inter = union = n_det = n_gt = tp = 0
        for prob, h, w, gt_mask, gt_boxes in cached:
            dets = det.instances_from_probability(prob, h, w)
            pred = detections_mask(dets, h, w)
            inter += int((gt_mask & pred).sum())
            union += int((gt_mask | pred).sum())
            n_det += len(dets)
            n_gt += len(gt_boxes)
            tp += match_instances(dets, gt_boxes, iou_threshold)
        p = tp / n_det if n_det else 1.0
        r = tp / n_gt if n_gt else 1.0
        rows.append(dict(zip(keys, values)) | {"precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0,
                                                "pixel_iou": inter / union if union else 1.0})
    return rows


def format_table(report: dict) -> str:
    """Plain-text tables of :func:`evaluate`'s results: (a) photos, (b) close-ups, (c) negatives."""
    cols = ["pixel_iou", "mean_image_iou", "precision", "recall", "f1", "tp", "n_det", "n_gt",
            "empty_images_with_detections", "latency_ms_p50", "latency_ms_p95"]
    lines = [f"{'detector':<12}" + "".join(f"{c[:14]:>16}" for c in cols)]
    for r in report["results"]:
        cells = []
        for c in cols:
            v = r[c]
            cells.append(f"{v:>16.3f}" if isinstance(v, float) else f"{str(v):>16}")
        lines.append(f"{r['name']:<12}" + "".join(cells))
    for r in report["results"]:
        if r.get("recall_by_shape"):
            lines.append(f"{r['name']:<12}recall by ground-truth box shape: " + ", ".join(
                f"{k} {v['recall']:.3f} ({v['n_gt']})" for k, v in r["recall_by_shape"].items()))
        if r.get("pixel_iou_budget"):
            lines.append(f"{r['name']:<12}pixel IoU error, share of the union: " + ", ".join(
                f"{k} {v:.3f}" for k, v in r["pixel_iou_budget"].items())
                + f"; IoU on the wheels found {r['pixel_iou_found']:.3f}")
    if "closeups" in report:
        lines.append("")
        lines.append(f"(b) close-ups, renderings, line drawings of validation wheels ({report['n_closeups']} pictures)")
        styles = sorted({k for r in report["closeups"] for k in r["by_style"]})
        head = ["pixel_iou", "precision", "recall", "exactly_one_whole"] + [f"1whole:{st}" for st in styles]
        lines.append(f"{'detector':<12}" + "".join(f"{c[:18]:>20}" for c in head))
        for r in report["closeups"]:
            vals = [r["pixel_iou"], r["precision"], r["recall"], r["exactly_one_whole"]] + [
                r["by_style"].get(st, {}).get("exactly_one_whole", float("nan")) for st in styles]
            lines.append(f"{r['name']:<12}" + "".join(f"{v:>20.3f}" for v in vals))
        lines.append("")
        lines.append(f"(c) negatives: share with no detection ({report['n_negatives']} pictures)")
        kinds = sorted({k for r in report["negatives"] for k in r["by_kind"]})
        lines.append(f"{'detector':<12}" + f"{'empty':>14}" + "".join(f"{k[:14]:>16}" for k in kinds))
        for r in report["negatives"]:
            lines.append(f"{r['name']:<12}" + f"{r['empty']:>14.3f}" + "".join(f"{r['by_kind'][k]:>16.3f}" for k in kinds))
    if "photo_crops" in report:
        lines.append("")
        lines.append(f"(c2) wheel-free top crops of validation photos: share with no detection ({report['n_photo_crops']} pictures)")
        for r in report["photo_crops"]:
            lines.append(f"{r['name']:<12}" + f"{r['empty']:>14.3f}")
    return "\n".join(lines)


def default_detectors(model: str | Path, threads: int = 2, include_classical: bool = True) -> list:
    """The learned detector for ``model`` and, if ``designsearch.services.segmenter.classical`` exists, the classical one."""
    from designsearch.services.segmenter.learned import LearnedWheelDetector

    dets = [LearnedWheelDetector(model, threads=threads)]
    if include_classical:
        try:
            from designsearch.services.segmenter.classical import ClassicalWheelDetector
        except ImportError:
            pass
        else:
            dets.append(ClassicalWheelDetector())
    return dets


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; see the module docstring."""
    p = argparse.ArgumentParser(description="Evaluate wheel detectors on the validation split")
    p.add_argument("--data", default=None)
    p.add_argument("--model", default="models/segmenter/wheelseg-lite0.onnx")
    p.add_argument("--val-files", default=None, help="text file of validation file names (default: seeded split)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--no-classical", action="store_true")
    p.add_argument("--out", default=None, help="write the full report (JSON) here")
    p.add_argument("--photos-only", action="store_true", help="only set (a), the validation photos")
    p.add_argument("--write-sets", default=None, help="also write sets (b) and (c) as JPEG/PNG files to this folder")
    p.add_argument("--engine-set", default=None,
                   help="a designsearch render-wheels set: also score its validation designs and real rim models "
                        "(default var/wheelgen/set-v1 when it exists)")
    p.add_argument("--engine-limit", type=int, default=200, help="pictures per engine kind (manifest order)")
    p.add_argument("--no-real", action="store_true", help="skip the real picture sets (wheel-pictures/)")
    p.add_argument("--real-only", action="store_true", help="only the real picture sets (and the engine's)")
    a = p.parse_args(argv)
    val_files = None
    if a.val_files:
        val_files = [ln.strip() for ln in Path(a.val_files).read_text(encoding="utf-8").splitlines() if ln.strip()]
    detectors = default_detectors(a.model, a.threads, not a.no_classical)
    report = {}
    if not a.no_real:
        from designsearch.training.segmenter.real_sets import evaluate_real, format_real_table

        engine = a.engine_set or ("var/wheelgen/set-v1" if Path("var/wheelgen/set-v1/manifest.csv").is_file() else None)
        report["real"] = evaluate_real(detectors, a.data, engine, a.engine_limit)
        report["engine_set"] = engine
        print("REAL pictures (and the engine's validation designs): share [95 % Wilson interval] count")
        print(format_real_table(report["real"]))
        print()
    if not a.real_only:
        report.update(evaluate(detectors, a.data, val_files, a.seed, threads=a.threads, synthetic_sets=not a.photos_only))
        print(format_table(report))
    if a.write_sets:
        from designsearch.training.segmenter.synthetic import write_validation_sets

        print("wrote", write_validation_sets(build_validation_sets(validation_samples(a.data, val_files, a.seed), a.seed),
                                             a.write_sets))
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps(report, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
