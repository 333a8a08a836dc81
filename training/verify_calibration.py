"""Calibrate the Verify (1:1) decision threshold of an embedder version on validation pairs.

Pairs come from Stanford Cars validation classes 79-98 (never trained on): the threshold is chosen
at the equal-error rate on classes 79-88 and reported on classes 89-98, so the reported error rates
are measured on designs the threshold never saw. Two pair kinds, as designers send them:

* ``photo``: photo vs photo of another image (genuine = same design, i.e. same class here);
* ``sketch``: a line drawing vs a photo of another image: the drawing embedded as drawn, the photo
  through its ``photo`` view (``--sketch-view``, default; or its ``lines`` view, the rule before the
  fifth session). The drawing is, by default (``--sketch-style designer``, since the sixth session),
  what a designer draws: the photo's wheel alone, as a line drawing in the styles of the segmenter's
  validation set (:func:`designsearch.training.designer_pictures.draw`; photos without a usable wheel
  cut-out give no drawing); ``canny`` is the Canny edge map of the whole photo
  (:func:`designsearch.images.edge_map`), the calibration before. The view and the style are written
  into the record (``sketch.view``, ``sketch.style``) and Verify compares with that view. On Canny
  pairs the photo view scores 71.8 % against 71.1 % for the lines view (classes 89-98, seed 0), and on
  designer-style line drawings FindSimilar finds the design far more often against photos
  (``benchmarks/designer_queries.py``).

Every genuine pair of a half is used, with the same number of impostor pairs drawn at random
(seeded), so accuracy is measured on balanced pairs. Images are embedded as the gateway embeds
them (segmenter crops + whole picture, :mod:`designsearch.verification`), in-process.

Usage::

    python -m designsearch.training.verify_calibration [--data ../shared/data] [--out runs/verify/verify-calibration.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from designsearch.catalogue_data import read_labels
from designsearch.domain import KIND_WHOLE_IMAGE
from designsearch.images import decode_image, edge_map, encode_jpeg
from designsearch.settings import (EMBEDDER_MODEL, EMBEDDER_MODEL_INT8, REPO_ROOT, SEGMENTER_MODEL,
                                   SEGMENTER_MODEL_INT8, default_data_dir, served_model)
from designsearch.verification import equal_error_threshold, error_rates, pair_similarity

#: Default output, read by the gateway (``DESIGNSEARCH_GATEWAY_VERIFY_CALIBRATION``).
#: Written here by default (training commands never write models/; ``designsearch ship-model`` writes the
#: served record, models/embedder/verify-calibration.json).
DEFAULT_OUT = REPO_ROOT / "runs" / "verify" / "verify-calibration.json"
CALIBRATION_CLASSES = range(79, 89)
REPORT_CLASSES = range(89, 99)


def embed_regions(data: bytes, segmenter, embedder, views: tuple[str, ...]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Regions of an encoded image as the gateway makes them, embedded in each view.

    Returns:
        view → ``(crops float32 (m, D), whole picture float32 (D,))``.
    """
    from designsearch.gateway.regions import CROP_SIZE, query_regions
    from designsearch.gateway.ports import Region

    rgb = decode_image(data)
    seg = segmenter.segment(data, max_crops=4, crop_size=CROP_SIZE, pixels=True)  # as the gateway asks for them
    crops = [Region(c.detection.box, c.detection.kind, c.detection.score, c.crop_rgb) for c in seg.crops]
    regions = query_regions(crops, data, rgb)
    rgbs = [rgb if r.kind == KIND_WHOLE_IMAGE and r.image is data else r.pixels() for r in regions]
    out = {}
    for view in views:
        vec = embedder.embed(rgbs if view == "photo" else [edge_map(x) for x in rgbs])
        out[view] = (vec[:-1], vec[-1])
    return out


def pairs(labels: np.ndarray, rng: np.random.Generator, ordered: bool,
          first: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """All genuine pairs (same label) and as many random impostor pairs; ``(P, 2)`` index pairs and bool
    labels. ``first`` (bool per item): only these may be a pair's first member (the drawn side)."""
    n = len(labels)
    i, j = np.where(labels[:, None] == labels[None, :])
    keep = i != j if ordered else i < j
    if first is not None:
        keep &= first[i]
    genuine = np.stack([i[keep], j[keep]], 1)
    candidates = np.where(first)[0] if first is not None else None
    impostor = []
    while len(impostor) < len(genuine):
        if candidates is None:
            a, b = rng.integers(0, n, 2)
        else:
            a, b = candidates[rng.integers(0, len(candidates))], rng.integers(0, n)
        if labels[a] != labels[b]:
            impostor.append((a, b))
    return np.r_[genuine, np.array(impostor)], np.r_[np.ones(len(genuine), bool), np.zeros(len(impostor), bool)]


def calibrate(data: Path, embedder_path: Path, segmenter_path: Path, seed: int = 0, sketch_view: str = "photo",
              sketch_style: str = "designer") -> dict:
    """Embed the validation images, score the pairs, choose thresholds; returns the calibration record.
    ``sketch_view``: the photos' view a drawing is compared with (``photo`` or ``lines``);
    ``sketch_style``: the drawings (``designer``: the photo's wheel drawn as a designer would, seeded;
    ``canny``: the Canny edge map of the whole photo).

    Raises:
        ValueError: unknown ``sketch_view`` or ``sketch_style``.
    """
    if sketch_view not in ("photo", "lines"):
        raise ValueError(f"sketch_view must be photo or lines, got {sketch_view!r}")
    if sketch_style not in ("designer", "canny"):
        raise ValueError(f"sketch_style must be designer or canny, got {sketch_style!r}")
    from designsearch.training.designer_pictures import draw, wheel_cutout
    from designsearch.services.embedder.core import OnnxEmbedder
    from designsearch.services.segmenter.core import Segmenter, load_detector

    t0 = time.time()
    images = [i for i in read_labels(data / "stanford-cars" / "labels.csv") if 79 <= i.class_id <= 98]
    segmenter = Segmenter(load_detector("auto", str(segmenter_path)))
    embedder = OnnxEmbedder(embedder_path)
    photos, drawings = [], []
    draw_rng = np.random.default_rng(seed)
    for k, img in enumerate(images):
        raw = img.path.read_bytes()
        photos.append(embed_regions(raw, segmenter, embedder, ("photo", "lines")))
        if sketch_style == "canny":
            drawing = encode_jpeg(edge_map(decode_image(raw)), quality=95)
        else:
            cut = wheel_cutout(decode_image(raw), segmenter.detector, img.path.name)
            drawing = None if cut is None else draw(cut, "line_drawing", draw_rng)
        drawings.append(None if drawing is None else embed_regions(drawing, segmenter, embedder, ("photo",))["photo"])
        if (k + 1) % 100 == 0:
            print(f"embedded {k + 1}/{len(images)} images, {time.time() - t0:.0f} s", file=sys.stderr, flush=True)
    labels = np.array([i.class_id for i in images])
    rng = np.random.default_rng(seed)
    record = {"embedder_version": embedder.version, "segmenter_version": segmenter.model_version,
              "data": "Stanford Cars classes 79-98 (validation, never trained on)",
              "split": "threshold at the EER of classes 79-88; rates reported on classes 89-98",
              "seed": seed, "images": len(images)}
    for kind in ("photo", "sketch"):
        halves = {}
        for name, classes in (("calibration", CALIBRATION_CLASSES), ("report", REPORT_CLASSES)):
            idx = np.where(np.isin(labels, list(classes)))[0]
            drawn = np.array([drawings[i] is not None for i in idx]) if kind == "sketch" else None
            p, same = pairs(labels[idx], rng, ordered=kind == "sketch", first=drawn)
            if kind == "photo":
                scores = [pair_similarity(*photos[idx[a]]["photo"], *photos[idx[b]]["photo"]) for a, b in p]
            else:
                scores = [pair_similarity(*drawings[idx[a]], *photos[idx[b]][sketch_view]) for a, b in p]
            halves[name] = (np.array(scores), same)
        threshold, eer_cal = equal_error_threshold(*halves["calibration"])
        report = error_rates(*halves["report"], threshold)
        _, eer_report = equal_error_threshold(*halves["report"])
        record[kind] = {"threshold": round(threshold, 4), "calibration_eer": round(eer_cal, 4),
                        "report": {"far": round(report.far, 4), "frr": round(report.frr, 4),
                                   "accuracy": round(report.accuracy, 4), "eer": round(eer_report, 4),
                                   "pairs": report.pairs}}
        if kind == "sketch":
            record[kind].update(view=sketch_view, style=sketch_style,
                                drawings=int(sum(d is not None for d in drawings)))
    record["seconds"] = round(time.time() - t0, 1)
    return record


def main(argv: list[str] | None = None) -> dict:
    """CLI: calibrate and write the JSON record (printed too)."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=default_data_dir())
    # the served models (INT8 when present): the gateway checks the record's embedder version
    p.add_argument("--embedder", type=Path, default=served_model(EMBEDDER_MODEL_INT8, EMBEDDER_MODEL))
    p.add_argument("--segmenter", type=Path, default=served_model(SEGMENTER_MODEL_INT8, SEGMENTER_MODEL))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sketch-view", choices=["photo", "lines"], default="photo",
                   help="the photos' view a drawing is compared with (written into the record; Verify follows it)")
    p.add_argument("--sketch-style", choices=["designer", "canny"], default="designer",
                   help="the drawings: the photo's wheel drawn as a designer would (default) or the Canny edge map "
                        "of the whole photo")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = p.parse_args(argv)
    record = calibrate(args.data, args.embedder, args.segmenter, args.seed, args.sketch_view, args.sketch_style)
    record["command"] = "python -m designsearch.training.verify_calibration " + " ".join(argv or sys.argv[1:])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps(record, indent=1))
    return record


if __name__ == "__main__":
    main()
