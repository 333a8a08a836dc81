"""The segmenter's real validation sets, their reference masks and boxes, the training mix and the
image-level head's labels (issue 30), on the real pictures of ``../shared/data/wheel-pictures``."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from designsearch.services.segmenter.detection import Detection, box_iou
from designsearch.training.segmenter import real_sets as R
from designsearch.training.segmenter.model import SCENE_CLASSES, scene_labels

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("DESIGNSEARCH_DATA", ROOT.parent / "shared" / "data"))

pytestmark = pytest.mark.skipif(not (DATA / "wheel-pictures" / "car-parts-50" / "labels.csv").is_file(),
                                reason=f"wheel-pictures not found under {DATA}")


def test_wilson_interval_matches_known_values():
    # Wilson (1927) 95 % interval: 0/10 -> [0, 0.2775], 5/10 -> [0.2366, 0.7634]
    lo, hi = R.wilson_interval(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.2775, abs=1e-4)
    lo, hi = R.wilson_interval(5, 10)
    assert (lo, hi) == (pytest.approx(0.2366, abs=1e-4), pytest.approx(0.7634, abs=1e-4))
    assert R.wilson_interval(0, 0) == (0.0, 1.0)


def test_carparts50_val_sets_have_the_documented_sizes_and_boxes():
    rims = R.carparts50_items(DATA, "val", "rim")
    looks = R.carparts50_items(DATA, "val", "not_wheel")
    assert (len(rims), len(looks)) == (53, 757)
    assert all(len(it.boxes) == 1 for it in rims) and all(not it.boxes for it in looks)
    # one rim fills the frame: every reference box covers at least a third of its picture
    areas = [(b[2] - b[0]) * (b[3] - b[1]) / (it.rgb.shape[0] * it.rgb.shape[1]) for it in rims for b in it.boxes]
    assert min(areas) > 0.33
    with pytest.raises(ValueError):
        R.carparts50_items(DATA, "test", "rim")


def test_plain_background_mask_agrees_with_the_alpha_of_real_cutouts():
    """On the Wheel-Vision cut-outs composited on white, the plain-background mask is the alpha's silhouette
    (its convex hull: the alpha leaves the spoke gaps out, the wheel mask holds them)."""
    import cv2

    items = R.wheel_vision_items(DATA)["wheel-vision cut-outs"]
    assert len(items) == 16
    ious = []
    for it in items:
        derived = R.plain_background_mask(it.rgb).astype(bool)
        truth = np.zeros_like(it.mask)
        cv2.fillConvexPoly(truth, cv2.convexHull(cv2.findNonZero(it.mask)), 1)
        truth = truth.astype(bool)
        ious.append((derived & truth).sum() / (derived | truth).sum())
    assert min(ious) > 0.95, ious


def test_plain_background_mask_of_a_blank_picture_is_empty():
    assert not R.plain_background_mask(np.full((64, 64, 3), 250, np.uint8)).any()


def test_wheel_vision_on_car_boxes_are_the_two_wheels():
    on_car = R.wheel_vision_items(DATA)["wheel-vision on-car"]
    assert len(on_car) == 12
    boxes = on_car[0].boxes
    assert len(boxes) == 2
    h, w = on_car[0].rgb.shape[:2]
    for x1, y1, x2, y2 in boxes:  # wheels: round, in the lower half, a tenth of the width
        assert 0.8 < (x2 - x1) / (y2 - y1) < 1.25 and y1 > h / 2 and 0.06 < (x2 - x1) / w < 0.2
    with pytest.raises(ValueError):
        R.wheel_vision_on_car_boxes([on_car[0].rgb])


class _Fixed:
    """A detector answering the same detections for every picture (to check the scoring arithmetic)."""

    name = "fixed"

    def __init__(self, dets):
        self.dets = dets

    def detect(self, rgb):
        return list(self.dets)


def test_score_set_counts_whole_none_and_sub_part():
    rgb = np.zeros((100, 100, 3), np.uint8)
    item = R.RealItem("a", "s", rgb, [(5, 5, 95, 95)])
    whole = R.score_set(_Fixed([Detection((4, 6, 96, 94), 0.9)]), [item, item])
    assert whole["one_whole"]["k"] == 2 and whole["none"]["k"] == 0 and whole["sub_part"]["k"] == 0
    cap = R.score_set(_Fixed([Detection((40, 40, 60, 60), 0.9)]), [item])
    assert cap["one_whole"]["k"] == 0 and cap["sub_part"]["k"] == 1 and cap["failures"][0]["best_area"] == 0.04
    two = R.score_set(_Fixed([Detection((4, 6, 96, 94), 0.9), Detection((40, 40, 60, 60), 0.8)]), [item])
    assert two["one_whole"]["k"] == 0  # a second detection is not "exactly one"
    neg = R.score_set(_Fixed([]), [R.RealItem("n", "neg", rgb)])
    assert neg["no_detection"]["k"] == 1 and "one_whole" not in neg
    car = R.RealItem("c", "car", rgb, [(0, 50, 20, 70), (70, 50, 90, 70)])
    found = R.score_set(_Fixed([Detection((1, 50, 20, 70), 0.9)]), [car])
    assert found["recall"]["k"] == 1 and found["recall"]["n"] == 2 and found["precision"]["share"] == 1.0
    assert "sub_part" not in found and found["all_found"]["k"] == 0


def test_scene_labels_from_masks():
    t = torch.zeros(3, 1, 64, 64)
    t[1, 0, 4:60, 8:56] = 1  # one wheel filling the frame
    t[2, 0, 40:52, 10:22] = 1  # two small wheels of a car photo
    t[2, 0, 40:52, 40:52] = 1
    labels = scene_labels(t).tolist()
    assert [SCENE_CLASSES[k] for k in labels] == ["none", "closeup", "scene"]


def test_training_mix_reads_only_train_designs(tmp_path):
    """The engine source reads TRAIN rows only: a set whose designs are all validation gives nothing."""
    import csv

    from designsearch.training.segmenter.synthetic.engine_mix import RealWorldMixDataset, engine_train_rows

    (tmp_path / "parts").mkdir()
    cols = ["file", "kind", "split", "mask_file"]
    with (tmp_path / "parts" / "pw-1.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, cols)
        w.writeheader()
        w.writerow({"file": "a.jpg", "kind": "render", "split": "val", "mask_file": "a.png"})
        w.writerow({"file": "b.jpg", "kind": "render", "split": "real", "mask_file": "b.png"})
    assert engine_train_rows(tmp_path) == []
    with pytest.raises(ValueError, match="no pictures"):
        RealWorldMixDataset([], tmp_path, [], [], 64, {"render": 0.5})
    with pytest.raises(FileNotFoundError):
        engine_train_rows(tmp_path / "missing")
    rims = [(it.rgb, it.mask) for it in R.carparts50_items(DATA, "train", "rim")[:4]]
    looks = [it.rgb for it in R.carparts50_items(DATA, "train", "not_wheel")[:4]]
    ds = RealWorldMixDataset([], None, rims, looks, 96, {"rim": 0.5, "lookalike": 0.5}, seed=3)
    for _ in range(8):
        pixels, mask = ds[0]
        assert pixels.shape == (3, 96, 96) and mask.shape == (1, 96, 96)
    rgb, mask = ds.item("rim")
    assert mask.sum() > 0.2 * mask.size  # the rim still fills much of the frame after the augmentation
    rgb, mask = ds.item("lookalike")
    assert mask.sum() == 0
    with pytest.raises(ValueError):
        RealWorldMixDataset([], None, rims, looks, 96, {"rim": 0.8, "lookalike": 0.5})


def test_box_iou_of_overrides_with_derived_boxes_is_why_they_exist():
    """The hand-set reference boxes replace derived ones that are wrong: valid-1 (a black rim on black)."""
    items = {it.name: it for it in R.carparts50_items(DATA, "val", "rim")}
    it = items["car-parts-50/rim/valid-1.jpg"]
    derived = R.mask_box(R.plain_background_mask(it.rgb))
    assert it.boxes[0] == R.REFERENCE_BOX_OVERRIDES[it.name]
    assert box_iou(derived, it.boxes[0]) < 0.8
