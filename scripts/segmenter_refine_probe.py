"""Zoom-in mask refinement of the wheels found in a photo (issue 8 (a), eleventh session): a probe.

Set (a)'s pixel IoU loses 14 of its 22 error points at the mask boundaries of the wheels it finds, mostly
over-segmentation. A wheel of 50-100 px in a photo is 25-50 px at the network's 480 px input, so its
outline is drawn at 2-4 photo pixels per network pixel. Refinement: each ``wheel`` detection's
neighbourhood (a square ``margin`` × its box side, centred on it) is cut from the photo, resized to
``size`` px and segmented again — the wheel now fills ~1 / margin of the frame, as the close-ups the
network was trained on (issue 8) — and its mask is replaced by the refined one (the component under the
box centre, holes filled), its box by the mask's bounding box.

    python scripts/segmenter_refine_probe.py      (~1 min on 2 CPU threads)
"""

from __future__ import annotations

import argparse
import json
import time

import cv2
import numpy as np

from designsearch.services.segmenter.detection import KIND_WHEEL, Detection
from designsearch.services.segmenter.learned import LearnedWheelDetector
from designsearch.services.segmenter.regions import fill_holes
from designsearch.settings import REPO_ROOT
from designsearch.training.segmenter.dataset import default_data_dir, load_samples, split_samples
from designsearch.training.segmenter.evaluate import evaluate_detector
from designsearch.training.segmenter.model import set_onnx_input_size

MODEL = REPO_ROOT / "models" / "segmenter" / "wheelseg-lite0-int8.onnx"


class RefiningDetector:
    """Wraps a detector: each ``wheel`` detection is segmented again on a zoomed crop of the photo."""

    def __init__(self, base: LearnedWheelDetector, zoom: LearnedWheelDetector, margin: float = 1.5) -> None:
        self.base, self.zoom, self.margin = base, zoom, margin
        self.model_version = base.model_version

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        dets = self.base.detect(rgb)
        h, w = rgb.shape[:2]
        out = []
        for d in dets:
            if d.kind != KIND_WHEEL:
                out.append(d)
                continue
            x1, y1, x2, y2 = d.box
            cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
            half = self.margin * max(x2 - x1, y2 - y1) / 2
            X1, Y1, X2, Y2 = int(np.floor(cx - half)), int(np.floor(cy - half)), int(np.ceil(cx + half)), int(np.ceil(cy + half))
            pad = cv2.copyMakeBorder(rgb, max(0, -Y1), max(0, Y2 - h), max(0, -X1), max(0, X2 - w), cv2.BORDER_REPLICATE)
            crop = pad[Y1 + max(0, -Y1): Y2 + max(0, -Y1), X1 + max(0, -X1): X2 + max(0, -X1)]
            prob = self.zoom.probability(crop)
            side = crop.shape[0]
            up = cv2.resize(prob, (crop.shape[1], side), interpolation=cv2.INTER_LINEAR) > self.zoom.threshold
            n, labels = cv2.connectedComponents(up.astype(np.uint8), connectivity=8)
            c = labels[int(cy - Y1), int(cx - X1)] if 0 <= int(cy - Y1) < side and 0 <= int(cx - X1) < crop.shape[1] else 0
            if c == 0:  # nothing under the centre: keep the photo-level mask
                out.append(d)
                continue
            comp = fill_holes(labels == c)
            full = np.zeros((h, w), bool)
            ys, xs = np.nonzero(comp)
            ys, xs = ys + Y1, xs + X1
            ok = (ys >= 0) & (ys < h) & (xs >= 0) & (xs < w)
            full[ys[ok], xs[ok]] = True
            yy, xx = np.nonzero(full)
            if len(yy) == 0:
                out.append(d)
                continue
            b = (int(xx.min()), int(yy.min()), int(xx.max()) + 1, int(yy.max()) + 1)
            mask = np.where(full[b[1]:b[3], b[0]:b[2]], 255, 0).astype(np.uint8)
            out.append(Detection(box=b, score=d.score, kind=d.kind, mask=mask))
        return out


def resized_model(size: int) -> str:
    """The served file with its fixed input set to ``size`` px (``var/``; the network is fully convolutional)."""
    path = REPO_ROOT / "var" / f"wheelseg-{size}-int8.onnx"
    set_onnx_input_size(MODEL, path, size)
    return str(path)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[224, 288])
    p.add_argument("--margins", type=float, nargs="+", default=[1.3, 1.6])
    p.add_argument("--out", default="var/segmenter_refine_probe.json")
    args = p.parse_args()
    _, val = split_samples(load_samples(default_data_dir()))
    base = LearnedWheelDetector(MODEL, input_size=480)
    rows = []
    t = time.perf_counter()
    r = evaluate_detector(base, val)
    rows.append({"name": "served", "s": time.perf_counter() - t, **{k: r[k] for k in ("pixel_iou", "pixel_iou_found", "precision", "recall")}})
    print(rows[-1], flush=True)
    for size in args.sizes:
        zoom = LearnedWheelDetector(resized_model(size))
        for margin in args.margins:
            t = time.perf_counter()
            r = evaluate_detector(RefiningDetector(base, zoom, margin), val)
            rows.append({"name": f"refine size {size} margin {margin}", "s": time.perf_counter() - t,
                         **{k: r[k] for k in ("pixel_iou", "pixel_iou_found", "precision", "recall")}})
            print(rows[-1], flush=True)
    with open(args.out, "w") as f:
        json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
