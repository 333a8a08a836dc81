"""Where set (a)'s pixel IoU goes on the wheels the segmenter finds (issue 8, tenth session).

For the served INT8 segmenter at 480 px on the Car-Parts validation photos (set (a)) and, for the
post-processing choices, the first 160 training photos:

* the over- / under-segmentation of the matched wheels (predicted pixels outside / true pixels inside
  the matched boxes), as shares of the pooled union, and each found wheel's predicted / true area ratio;
* pixel IoU for probability thresholds 0.3-0.8 (the threshold also decides the detections);
* pixel IoU after eroding the predicted masks by 0-3 px (elliptic structuring element).

    python scripts/segmenter_mask_probe.py        (~2 min on 2 CPU threads; prints a summary)
"""

from __future__ import annotations

import cv2
import numpy as np

from designsearch.services.segmenter.learned import LearnedWheelDetector
from designsearch.settings import REPO_ROOT
from designsearch.training.segmenter.dataset import default_data_dir, load_samples, split_samples
from designsearch.training.segmenter.matching import boxes_mask, detections_mask, found_wheel_masks, match_pairs

MODEL = REPO_ROOT / "models" / "segmenter" / "wheelseg-lite0-int8.onnx"


def main() -> None:
    train, val = split_samples(load_samples(default_data_dir()))
    det = LearnedWheelDetector(MODEL, input_size=480)
    over = under = union = 0
    ratios = []
    for s in val:
        dets, gt, gtb = det.detect(s.read_rgb()), s.mask().astype(bool), s.instances()
        pred = detections_mask(dets, *gt.shape)
        pairs = match_pairs(dets, gtb)
        inm = boxes_mask([gtb[j] for _, j in pairs] + [dets[i].box for i, _ in pairs], *gt.shape)
        over += int((pred & ~gt & inm).sum())
        under += int((gt & ~pred & inm).sum())
        union += int((gt | pred).sum())
        ratios.extend(r for *_, r in found_wheel_masks(dets, gt, gtb))
    r = np.array(ratios)
    print(f"set (a), found wheels ({len(r)}): over-segmented {over / union:.3f}, under-segmented {under / union:.3f} "
          f"of the union; predicted / true area p10/p50/p90 {np.percentile(r, 10):.2f} / {np.median(r):.2f} / "
          f"{np.percentile(r, 90):.2f}, {int((r > 1.3).sum())} above 1.3")
    for thr in (0.3, 0.4, 0.5, 0.6, 0.7, 0.8):
        d = LearnedWheelDetector(MODEL, input_size=480, threshold=thr)
        i = u = 0
        for s in val:
            gt = s.mask().astype(bool)
            pred = detections_mask(d.detect(s.read_rgb()), *gt.shape)
            i, u = i + int((gt & pred).sum()), u + int((gt | pred).sum())
        print(f"threshold {thr}: set (a) pixel IoU {i / u:.3f}")
    for name, items in (("train[:160]", train[:160]), ("set (a)", val)):
        sums = {e: [0, 0] for e in range(4)}
        for s in items:
            gt = s.mask().astype(bool)
            pred = detections_mask(det.detect(s.read_rgb()), *gt.shape).astype(np.uint8)
            for e in sums:
                p = cv2.erode(pred, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * e + 1, 2 * e + 1))) if e else pred
                p = p.astype(bool)
                sums[e][0] += int((gt & p).sum())
                sums[e][1] += int((gt | p).sum())
        print(f"{name}: pixel IoU after eroding the masks by 0/1/2/3 px: "
              + " / ".join(f"{i / u:.3f}" for i, u in sums.values()))


if __name__ == "__main__":
    main()
