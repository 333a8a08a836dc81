"""Contact sheet of set (a)'s most over-segmented found wheels (issue 8, eleventh session).

For the served INT8 segmenter at 480 px on the Car-Parts validation photos: every found wheel (matched at
box IoU >= 0.5) with its annotation outlined in green and the predicted mask in red, labelled with its
predicted / annotated area inside the two boxes. Writes the 16 highest ratios and 8 around the median,
``docs/segmenter-boundary-audit.jpg``, and prints the ratios.

    python scripts/segmenter_boundary_audit.py      (~15 s)
"""

from __future__ import annotations

import cv2
import numpy as np

from designsearch.services.segmenter.learned import LearnedWheelDetector
from designsearch.settings import REPO_ROOT
from designsearch.training.segmenter.dataset import default_data_dir, load_samples, split_samples
from designsearch.training.segmenter.matching import found_wheel_masks

MODEL = REPO_ROOT / "models" / "segmenter" / "wheelseg-lite0-int8.onnx"
OUT = REPO_ROOT / "docs" / "segmenter-boundary-audit.jpg"
TILE = 180


def tile(rgb: np.ndarray, gt: np.ndarray, pred: np.ndarray, box: tuple[int, int, int, int], ratio: float) -> np.ndarray:
    """One ``TILE``-px square tile: the region around ``box`` (15 % margin), annotation green, prediction red."""
    x1, y1, x2, y2 = box
    pad = int(0.15 * max(x2 - x1, y2 - y1))
    x1, y1, x2, y2 = max(0, x1 - pad), max(0, y1 - pad), min(gt.shape[1], x2 + pad), min(gt.shape[0], y2 + pad)
    t = rgb[y1:y2, x1:x2].copy()
    for m, colour in ((gt, (0, 255, 0)), (pred, (255, 0, 0))):
        contours, _ = cv2.findContours(m[y1:y2, x1:x2].astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(t, contours, -1, colour, max(1, t.shape[0] // 80))
    t = cv2.resize(t, (TILE, TILE), interpolation=cv2.INTER_AREA)
    cv2.putText(t, f"{ratio:.2f}", (5, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 0), 2)
    return t


def main() -> None:
    _, val = split_samples(load_samples(default_data_dir()))
    det = LearnedWheelDetector(MODEL, input_size=480)
    tiles = []
    for s in val:
        rgb, gt_all, gt_boxes = s.read_rgb(), s.mask().astype(bool), s.instances()
        dets = det.detect(rgb)
        for i, j, pred, gt, ratio in found_wheel_masks(dets, gt_all, gt_boxes):
            union_box = (min(gt_boxes[j][0], dets[i].box[0]), min(gt_boxes[j][1], dets[i].box[1]),
                         max(gt_boxes[j][2], dets[i].box[2]), max(gt_boxes[j][3], dets[i].box[3]))
            tiles.append((ratio, tile(rgb, gt, pred, union_box, ratio)))
    tiles.sort(key=lambda t: -t[0])
    mid = len(tiles) // 2
    chosen = [t for _, t in tiles[:16]] + [t for _, t in tiles[mid - 4 : mid + 4]]
    sheet = np.vstack([np.hstack(chosen[k : k + 8]) for k in range(0, len(chosen), 8)])
    cv2.imwrite(str(OUT), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 80])
    print(f"{len(tiles)} found wheels; ratios, highest first: {[round(r, 2) for r, _ in tiles[:16]]}; median "
          f"{tiles[mid][0]:.2f}; wrote {OUT}")


if __name__ == "__main__":
    main()
