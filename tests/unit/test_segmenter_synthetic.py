"""Synthetic designer pictures (close-ups, renderings, line drawings, negatives) and the segmenter's
post-processing (hole filling, containment suppression, close-up kind), on real Car-Parts wheels."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from designsearch.services.segmenter.detection import KIND_CLOSEUP, KIND_WHEEL, box_iou
from designsearch.services.segmenter.learned import LearnedWheelDetector
from designsearch.training.segmenter import synthetic as S
from designsearch.training.segmenter.dataset import load_samples, split_samples

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("DESIGNSEARCH_DATA", ROOT.parent / "shared" / "data"))
MODEL = ROOT / "models" / "segmenter" / "wheelseg-lite0.onnx"

pytestmark = pytest.mark.skipif(
    not (DATA / "car-parts-seg" / "annotations.json").is_file(), reason=f"Car-Parts-Segmentation not found under {DATA}"
)


@pytest.fixture(scope="module")
def split():
    return split_samples(load_samples(DATA), 0.2, 0)


@pytest.fixture(scope="module")
def val_cutouts(split):
    out = [c for s in split[1][:30] for c in S.cutouts_from_sample(s, min_side=28)]
    assert len(out) >= 5
    return out


def test_cutouts_are_wheel_faces_from_their_photo(split, val_cutouts):
    train_names = {s.file_name for s in split[0]}
    for c in val_cutouts:
        assert c.source not in train_names
        assert c.rgb.dtype == np.uint8 and c.rgb.shape[:2] == c.alpha.shape
        roundness, fill = S.wheel_face_shape(c.alpha)
        assert roundness >= 0.55 and fill >= 0.85
    # an edge-on tyre (a thin sliver) is not a wheel face
    sliver = np.zeros((100, 100), np.uint8)
    cv2.ellipse(sliver, ((50, 50), (16, 80), 0), 1, -1)
    rgb = np.random.default_rng(0).integers(0, 255, (100, 100, 3), dtype=np.uint8)
    assert S.cutout_from_mask(rgb, sliver, (42, 10, 58, 90), "x") is None


def test_closeup_mask_box_and_fill_agree(val_cutouts):
    rng = np.random.default_rng(3)
    for c in val_cutouts[:5]:
        rgb, mask = S.render_closeup(c, rng, 256, fill=(0.5, 0.9), cut_off_p=0.0)
        assert rgb.shape == (256, 256, 3) and mask.shape == (256, 256)
        x1, y1, x2, y2 = S.mask_box(mask)
        side = max(x2 - x1, y2 - y1)
        assert 0.45 * 256 <= side <= 0.95 * 256, side  # scaled to fill the frame (small slack for warping)
        # the pasted wheel differs from the plain background where the mask is
        assert mask.sum() > 0.1 * 256 * 256


def test_generation_is_reproducible(split):
    a = S.build_validation_sets(split[1][:12], seed=5, size=128)
    b = S.build_validation_sets(split[1][:12], seed=5, size=128)
    assert [i.name for i in a["closeups"]] == [i.name for i in b["closeups"]]
    assert all(np.array_equal(x.rgb, y.rgb) and np.array_equal(x.mask, y.mask) for x, y in zip(a["closeups"], b["closeups"]))
    assert {i.style for i in a["closeups"]} == set(S.VAL_STYLES)
    assert {i.style for i in a["negatives"]} == set(S.NEGATIVE_KINDS)
    assert all(not i.mask.any() and i.box is None for i in a["negatives"])


def test_line_drawing_is_strokes_on_white(val_cutouts):
    rng = np.random.default_rng(1)
    rgb, _ = S.render_closeup(val_cutouts[0], rng, 256, background_kind="white")
    for style in ("canny", "thick", "thin", "pencil", "ink"):
        d = S.line_drawing(rgb, np.random.default_rng(2), style)
        assert d.shape == rgb.shape
        assert np.all(d[..., 0] == d[..., 1])  # grey
        dark = (d[..., 0] < 128).mean()
        assert 0.004 <= dark < 0.5, (style, dark)


def test_remove_wheels_paints_them_out(split):
    s = next(s for s in split[1] if s.polygons)
    rgb, mask = s.read_rgb(), s.mask()
    out = S.remove_wheels(rgb, mask)
    assert out.shape == rgb.shape
    assert np.abs(out.astype(int) - rgb.astype(int))[mask > 0].mean() > 10
    assert np.array_equal(out[cv2.dilate(mask, np.ones((15, 15), np.uint8)) == 0], rgb[cv2.dilate(mask, np.ones((15, 15), np.uint8)) == 0])


# ---------------------------------------------------------------------------------------------
# Post-processing of the probability map (the network is not involved)
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def detector() -> LearnedWheelDetector:
    return LearnedWheelDetector(MODEL, threads=2)


def test_ring_with_hub_is_one_whole_closeup(detector):
    """A tyre ring plus a separate hub blob inside it (what a network sees in a close-up of a dark
    tyre and bright spokes) is ONE close-up detection covering the whole wheel, holes filled."""
    s = detector.input_size
    prob = np.zeros((s, s), np.float32)
    c = (s // 2, s // 2)
    cv2.circle(prob, c, int(0.4 * s), 0.95, -1)
    cv2.circle(prob, c, int(0.3 * s), 0.0, -1)  # hole: the rim area the network missed
    cv2.circle(prob, c, int(0.08 * s), 0.95, -1)  # hub cap, inside the ring
    dets = detector.instances_from_probability(prob, 600, 600)
    assert len(dets) == 1
    d = dets[0]
    assert d.kind == KIND_CLOSEUP
    true_box = (int(0.1 * 600), int(0.1 * 600), int(0.9 * 600), int(0.9 * 600))
    assert box_iou(d.box, true_box) > 0.9
    assert (d.mask > 0).mean() > 0.7  # holes filled: a disc fills pi/4 of its box


def test_separate_wheels_stay_separate(detector):
    s = detector.input_size
    prob = np.zeros((s, s), np.float32)
    cv2.circle(prob, (int(0.25 * s), int(0.7 * s)), int(0.1 * s), 0.95, -1)
    cv2.circle(prob, (int(0.75 * s), int(0.7 * s)), int(0.1 * s), 0.95, -1)
    dets = detector.instances_from_probability(prob, 512, 512)
    assert len(dets) == 2 and all(d.kind == KIND_WHEEL for d in dets)


# ---------------------------------------------------------------------------------------------
# Set (c2) and the training mixture
# ---------------------------------------------------------------------------------------------


def test_wheel_free_photo_crops_hold_no_wheel_pixel(split):
    """Set (c2): every crop is a square from the top band of a validation photo, and the photo's
    wheel mask is empty there (the set is "no wheel", so one wheel pixel would make it wrong)."""
    from designsearch.training.segmenter.evaluate import wheel_free_photo_crops

    val = split[1][:20]
    items = wheel_free_photo_crops(val)
    assert items and len(items) % 3 == 0
    by_name = {s.file_name: s for s in val}
    for it in items:
        s = by_name[it.name.split("/", 1)[1].split("#")[0]]
        h, w = s.read_rgb().shape[:2]
        side = int(0.25 * h)
        assert it.rgb.shape == (side, side, 3) and it.box is None and not it.mask.any()
        k = int(it.name.rsplit("#", 1)[1])
        x = (0, (w - side) // 2, w - side)[k]
        assert not s.mask()[:side, x:x + side].any(), it.name


def test_mixture_car_negative_share_is_honoured(split):
    """``car_negative_p=1``: every negative is an inpainted car photo (never a flat or synthetic
    picture); a share outside [0, 1] is refused."""
    train = split[0][:12]
    cuts = [c for s in train for c in S.cutouts_from_sample(s, min_side=28)][:3]
    ds = S.DesignerMixDataset(train, cuts, S.PhotoBackgrounds(train), train, 128, epoch_items=8,
                              photo_p=0.0, closeup_p=0.0, car_negative_p=1.0, seed=0)
    negatives = [ds._negative() for _ in range(6)]
    assert all(n.shape == (128, 128, 3) for n in negatives)
    # Inpainted photos are textured everywhere; flat/gradient/logo negatives are not.
    assert all(float(cv2.Laplacian(cv2.cvtColor(n, cv2.COLOR_RGB2GRAY), cv2.CV_64F).var()) > 100 for n in negatives)
    pixels, target = ds[0]
    assert tuple(pixels.shape) == (3, 128, 128) and float(target.sum()) == 0.0
    with pytest.raises(ValueError):
        S.DesignerMixDataset(train, cuts, S.PhotoBackgrounds(train), train, 128, car_negative_p=1.5)


def test_recall_by_box_shape_on_the_validation_photos(split):
    """Set (a)'s recall split by ground-truth box shape: the greedy VOC matching gives per-box hits
    (a higher-scored detection takes the box it overlaps most; a box nothing reaches stays a miss),
    every validation wheel falls in one shape class, and the served model finds the wheels whose face
    is visible far more often than the edge-on ones (measured 0.95 against 0.37)."""
    from designsearch.services.segmenter.detection import Detection
    from designsearch.training.segmenter.evaluate import box_shape, evaluate_detector, matched_ground_truth

    assert [box_shape(b) for b in [(0, 0, 50, 50), (0, 0, 20, 100), (0, 0, 100, 30)]] == ["face", "edge_on", "flat"]
    gts = [(0, 0, 100, 100), (200, 0, 260, 60), (400, 400, 420, 480)]
    dets = [Detection((5, 5, 100, 100), 0.6), Detection((0, 0, 100, 90), 0.9), Detection((205, 0, 260, 60), 0.8)]
    assert matched_ground_truth(dets, gts) == [True, True, False]
    report = evaluate_detector(LearnedWheelDetector(ROOT / "models" / "segmenter" / "wheelseg-lite0-int8.onnx"),
                               split[1], warmup=0)
    by_shape = report["recall_by_shape"]
    assert sum(v["n_gt"] for v in by_shape.values()) == report["n_gt"]
    assert sum(v["n_gt"] * v["recall"] for v in by_shape.values()) == pytest.approx(report["tp"])
    assert by_shape["face"]["recall"] > 0.9 and by_shape["face"]["recall"] > by_shape["edge_on"]["recall"] + 0.3
    # where the pixel IoU's error goes (measured, issue-30 model: missed 0.039, extra 0.043, boundary 0.135;
    # found 0.853): the mask boundaries dominate
    budget = report["pixel_iou_budget"]
    assert min(budget.values()) >= 0 and sum(budget.values()) == pytest.approx(1 - report["pixel_iou"])
    assert budget["boundary"] > 2 * max(budget["missed_wheels"], budget["extra_detections"])
    assert min(budget["missed_wheels"], budget["extra_detections"]) > 0
    assert report["pixel_iou_found"] > report["pixel_iou"] + 0.04


def test_pixel_error_budget_splits_the_error_by_cause():
    """A found wheel drawn 1 px too wide, a missed wheel and a detection of nothing annotated: each error
    pixel goes to its cause, and the three causes sum to union − intersection."""
    from designsearch.services.segmenter.detection import Detection
    from designsearch.training.segmenter.matching import detections_mask, match_pairs, pixel_error_budget

    gt = np.zeros((100, 200), bool)
    gt[10:30, 10:30] = True  # found
    gt[50:70, 50:70] = True  # missed
    gt_boxes = [(10, 10, 30, 30), (50, 50, 70, 70)]
    found = Detection((9, 10, 31, 30), 0.9, mask=np.full((20, 22), 255, np.uint8))  # 1 px too wide each side
    extra = Detection((150, 10, 160, 20), 0.8, mask=np.full((10, 10), 255, np.uint8))
    dets = [found, extra]
    pred = detections_mask(dets, 100, 200)
    pairs = match_pairs(dets, gt_boxes)
    assert pairs == [(0, 0)]
    b = pixel_error_budget(gt, pred, dets, gt_boxes, pairs)
    assert b == {"intersection": 400, "union": 400 + 40 + 400 + 100, "missed_wheels": 400, "extra_detections": 100,
                 "boundary": 40}
    with pytest.raises(ValueError, match="shapes"):
        pixel_error_budget(gt, pred[:50], dets, gt_boxes, pairs)
