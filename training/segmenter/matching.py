"""Instance matching, predicted wheel masks, box shapes and the pixel-IoU error budget of set (a).

Used by :mod:`designsearch.training.segmenter.evaluate`. Detections are matched greedily in descending
score order to the unmatched ground-truth box of highest box IoU ≥ a threshold (the PASCAL VOC rule,
Everingham et al., IJCV 2010).
"""

from __future__ import annotations

import numpy as np

from designsearch.services.segmenter.detection import Detection, box_iou

#: Height / width limits of :func:`box_shape`'s ``face`` class.
FACE_ASPECT = (0.6, 2.8)

#: Parts of the pooled pixel IoU's error (:func:`pixel_error_budget`).
BUDGET_PARTS = ("missed_wheels", "extra_detections", "boundary")


def box_shape(box: tuple[int, int, int, int]) -> str:
    """Shape class of a ground-truth wheel box ``(x1, y1, x2, y2)`` pixels by its height / width ratio:
    ``"flat"`` below 0.6, ``"edge_on"`` above 2.8, else ``"face"`` (:data:`FACE_ASPECT`). A wheel's face
    seen square-on is a circle (ratio ~1); turning it away narrows the box."""
    ratio = max(box[3] - box[1], 1) / max(box[2] - box[0], 1)
    return "flat" if ratio < FACE_ASPECT[0] else "edge_on" if ratio > FACE_ASPECT[1] else "face"


def detections_mask(dets: list[Detection], height: int, width: int) -> np.ndarray:
    """Union of the detections' masks as a boolean ``(height, width)`` array.

    Masks are pasted at their boxes (clipped to the image); a detection without a mask, or whose
    mask shape does not match its box, contributes its filled box.
    """
    out = np.zeros((height, width), bool)
    for d in dets:
        x1, y1, x2, y2 = (int(v) for v in d.box)
        cx1, cy1, cx2, cy2 = max(0, x1), max(0, y1), min(width, x2), min(height, y2)
        if cx2 <= cx1 or cy2 <= cy1:
            continue
        if d.mask is not None and d.mask.shape == (y2 - y1, x2 - x1):
            out[cy1:cy2, cx1:cx2] |= d.mask[cy1 - y1 : cy2 - y1, cx1 - x1 : cx2 - x1] > 0
        else:
            out[cy1:cy2, cx1:cx2] = True
    return out


def match_pairs(dets: list[Detection], gt_boxes: list[tuple[int, int, int, int]],
                iou_threshold: float = 0.5) -> list[tuple[int, int]]:
    """Matched ``(detection index, ground-truth index)`` pairs: greedy, in descending score order, each
    detection to the unmatched box of highest IoU ≥ ``iou_threshold``."""
    used = [False] * len(gt_boxes)
    pairs = []
    for i in sorted(range(len(dets)), key=lambda i: -dets[i].score):
        best, best_iou = -1, iou_threshold
        for j, g in enumerate(gt_boxes):
            if used[j]:
                continue
            iou = box_iou(dets[i].box, g)
            if iou >= best_iou:
                best, best_iou = j, iou
        if best >= 0:
            used[best] = True
            pairs.append((i, best))
    return pairs


def found_wheel_masks(dets: list[Detection], gt_mask: np.ndarray, gt_boxes: list[tuple[int, int, int, int]],
                      iou_threshold: float = 0.5) -> list[tuple[int, int, np.ndarray, np.ndarray, float]]:
    """Per matched pair (:func:`match_pairs`): ``(detection index, ground-truth index, predicted mask, true mask,
    predicted / true area)``, both masks boolean ``(H, W)`` restricted to the union of the two boxes (so a
    neighbouring wheel's pixels do not count); the ratio is > 1 for an over-segmented wheel."""
    out = []
    for i, j in match_pairs(dets, gt_boxes, iou_threshold):
        inside = boxes_mask([gt_boxes[j], dets[i].box], *gt_mask.shape)
        pred, true = detections_mask([dets[i]], *gt_mask.shape) & inside, gt_mask & inside
        out.append((i, j, pred, true, float(pred.sum() / max(true.sum(), 1))))
    return out


def matched_ground_truth(dets: list[Detection], gt_boxes: list[tuple[int, int, int, int]],
                         iou_threshold: float = 0.5) -> list[bool]:
    """Per ground-truth box, whether a detection was matched to it (:func:`match_pairs`)."""
    used = [False] * len(gt_boxes)
    for _, j in match_pairs(dets, gt_boxes, iou_threshold):
        used[j] = True
    return used


def match_instances(dets: list[Detection], gt_boxes: list[tuple[int, int, int, int]], iou_threshold: float = 0.5) -> int:
    """Number of true positives (:func:`match_pairs`)."""
    return len(match_pairs(dets, gt_boxes, iou_threshold))


def boxes_mask(boxes, height: int, width: int) -> np.ndarray:
    """Boolean ``(height, width)`` array, True inside any of ``boxes`` ``(x1, y1, x2, y2)`` pixels (clipped at 0)."""
    out = np.zeros((height, width), bool)
    for x1, y1, x2, y2 in boxes:
        out[max(0, int(y1)):max(0, int(y2)), max(0, int(x1)):max(0, int(x2))] = True
    return out


def pixel_error_budget(gt_mask: np.ndarray, pred: np.ndarray, dets: list[Detection],
                       gt_boxes: list[tuple[int, int, int, int]], pairs: list[tuple[int, int]]) -> dict[str, int]:
    """Split one image's wheel-mask error (union − intersection, in pixels) by its cause.

    * ``missed_wheels``: true wheel pixels not predicted that lie in an unmatched ground-truth box and in
      no matched one (a wheel the detector did not find);
    * ``extra_detections``: predicted pixels outside the true mask that lie in an unmatched detection's
      box and in no matched one (a detection of no annotated wheel: a false positive or an unannotated
      wheel);
    * ``boundary``: the rest — the mask edges of the wheels that were found.

    Args:
        gt_mask, pred: boolean ``(H, W)`` true and predicted wheel masks.
        dets, gt_boxes: the image's detections and ground-truth boxes ``(x1, y1, x2, y2)`` pixels.
        pairs: their matches (:func:`match_pairs`).

    Returns:
        Pixel counts ``{"intersection", "union", "missed_wheels", "extra_detections", "boundary"}``;
        the last three sum to ``union − intersection``.

    Raises:
        ValueError: the masks differ in shape.
    """
    if gt_mask.shape != pred.shape:
        raise ValueError(f"mask shapes differ: {gt_mask.shape} vs {pred.shape}")
    h, w = gt_mask.shape
    matched_d, matched_g = {i for i, _ in pairs}, {j for _, j in pairs}
    in_matched = boxes_mask([gt_boxes[j] for j in matched_g] + [dets[i].box for i in matched_d], h, w)
    missed_area = boxes_mask([g for j, g in enumerate(gt_boxes) if j not in matched_g], h, w) & ~in_matched
    extra_area = boxes_mask([d.box for i, d in enumerate(dets) if i not in matched_d], h, w) & ~in_matched
    fn, fp = gt_mask & ~pred, pred & ~gt_mask
    missed = int((fn & missed_area).sum())
    extra = int((fp & extra_area).sum())
    inter, union = int((gt_mask & pred).sum()), int((gt_mask | pred).sum())
    return {"intersection": inter, "union": union, "missed_wheels": missed, "extra_detections": extra,
            "boundary": union - inter - missed - extra}
