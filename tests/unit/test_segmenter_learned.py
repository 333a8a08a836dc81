"""The served learned wheel segmenter (ONNX; the INT8 quantisation the service loads by default) on
real validation photos, close-ups and wheel-free crops.

Data come from ``$DESIGNSEARCH_DATA`` (default ``<repo>/../shared/data``); the tests are skipped
when the Car-Parts-Segmentation folder is absent. A missing model file is a failure, not a skip:
the model is part of the release.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from designsearch.services.segmenter.detection import KIND_CLOSEUP, KIND_WHEEL, box_iou
from designsearch.services.segmenter.learned import LearnedWheelDetector
from designsearch.services.segmenter.config import SegmenterSettings
from designsearch.settings import SEGMENTER_MODEL_INT8
from designsearch.training.segmenter.dataset import load_samples, split_samples

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("DESIGNSEARCH_DATA", ROOT.parent / "shared" / "data"))
MODEL = Path(SegmenterSettings().model_path)  # what the service serves by default

pytestmark = pytest.mark.skipif(
    not (DATA / "car-parts-seg" / "annotations.json").is_file(), reason=f"Car-Parts-Segmentation not found under {DATA}"
)


@pytest.fixture(scope="module")
def detector() -> LearnedWheelDetector:
    assert MODEL.is_file(), f"learned segmenter model missing: {MODEL}"
    return LearnedWheelDetector(MODEL, threads=2)


@pytest.fixture(scope="module")
def val_with_wheels():
    """Validation photos (seeded split, as in the model card) with at least one wheel of >= 40x40 px."""
    _, val = split_samples(load_samples(DATA), 0.2, 0)
    out = []
    for s in val:
        boxes = s.instances()
        if any((b[2] - b[0]) >= 40 and (b[3] - b[1]) >= 40 for b in boxes):
            out.append((s, s.read_rgb(), boxes))
    return out


def test_the_service_serves_the_int8_model():
    assert MODEL == SEGMENTER_MODEL_INT8, MODEL


def test_model_version_and_contract(detector):
    assert detector.name == "learned"
    assert detector.model_version.startswith("sha256:") and len(detector.model_version) == len("sha256:") + 16
    assert detector.input_size % 32 == 0
    assert MODEL.stat().st_size <= 20 * 1024 * 1024


def test_finds_annotated_wheels_on_validation_photos(detector, val_with_wheels):
    # Regression bounds a little under the validation-wide figures of the model card (precision
    # and recall about 0.85): the annotations miss some visible wheels (far-side wheels of front
    # and rear views), so perfect agreement is not expected.
    photos = val_with_wheels[:20]
    assert len(photos) == 20
    big_gt = matched_gt = n_det = matched_det = 0
    for s, rgb, boxes in photos:
        dets = detector.detect(rgb)
        h, w = rgb.shape[:2]
        for d in dets:
            assert d.kind == KIND_WHEEL, s.file_name
            x1, y1, x2, y2 = d.box
            assert all(isinstance(v, int) for v in d.box)
            assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h
            assert 0.0 <= d.score <= 1.0
            assert d.mask is not None and d.mask.dtype == np.uint8 and d.mask.shape == (y2 - y1, x2 - x1)
            assert set(np.unique(d.mask)) <= {0, 255} and d.mask.any()
        assert [d.score for d in dets] == sorted((d.score for d in dets), reverse=True)
        n_det += len(dets)
        matched_det += sum(any(box_iou(d.box, g) >= 0.5 for g in boxes) for d in dets)
        for g in boxes:
            if (g[2] - g[0]) >= 40 and (g[3] - g[1]) >= 40:
                big_gt += 1
                matched_gt += any(box_iou(d.box, g) >= 0.5 for d in dets)
    assert matched_gt >= 0.75 * big_gt, f"{matched_gt}/{big_gt} annotated wheels found"
    assert matched_det >= 0.75 * n_det, f"{matched_det}/{n_det} detections overlap an annotated wheel"


def _closeup_of(rgb: np.ndarray, box, margin: float = 0.15, side: int = 320) -> np.ndarray:
    x1, y1, x2, y2 = box
    half = max(x2 - x1, y2 - y1) * (0.5 + margin)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    h, w = rgb.shape[:2]
    pad = int(half) + 2
    padded = cv2.copyMakeBorder(rgb, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    crop = padded[int(cy - half) + pad : int(cy + half) + pad, int(cx - half) + pad : int(cx + half) + pad]
    return cv2.resize(crop, (side, side), interpolation=cv2.INTER_CUBIC)


@pytest.mark.parametrize("on_white", [False, True], ids=["photo-crop", "product-shot"])
def test_wheel_closeup_is_one_closeup_detection(detector, val_with_wheels, on_white):
    """A wheel cut from a photo with a margin; ``on_white``: everything but the wheel made white.

    (The SVG icons of the data folder are not rendered: no SVG rasteriser is installed.)
    """
    # the largest, most frontal (least elongated) wheel of each of 6 photos; at least 5 of the 6
    # close-ups must be one whole-wheel detection, as for the other close-up kinds below (train7's
    # is a front tyre seen edge-on, tread only: 0.793 with the served model, under the 0.8 floor)
    ok, misses = 0, []
    for s, rgb, boxes in val_with_wheels[:6]:
        box = max(boxes, key=lambda b: min(b[2] - b[0], b[3] - b[1]))
        if on_white:
            rgb = np.where(s.mask()[..., None] > 0, rgb, np.uint8(255))
        crop = _closeup_of(rgb, box)
        dets = detector.detect(crop)
        if len(dets) != 1:
            misses.append(f"{s.file_name}: {len(dets)} detections")
            continue
        d = dets[0]
        assert d.kind == KIND_CLOSEUP
        side = crop.shape[0]
        x1, y1, x2, y2 = d.box
        assert max(x2 - x1, y2 - y1) >= 0.6 * side
        assert d.mask is not None and d.mask.shape == (y2 - y1, x2 - x1) and (d.mask > 0).mean() > 0.5
        ok += 1
    assert ok >= 5, misses


def test_plain_images_return_nothing(detector):
    """Flat grey and a sky-like vertical gradient."""
    grey = np.full((256, 256, 3), 128, np.uint8)
    ramp = np.linspace(235, 120, 320, dtype=np.float32)[:, None, None]
    sky = np.broadcast_to(ramp * np.array([0.55, 0.75, 1.0], np.float32), (320, 320, 3)).astype(np.uint8)
    for name, img in (("grey", grey), ("sky", sky)):
        assert detector.detect(img) == [], name


@pytest.fixture(scope="module")
def val_cutouts():
    """Wheel faces of validation-split photos (never seen in training), largest first."""
    from designsearch.training.segmenter.synthetic import cutouts_from_sample

    _, val = split_samples(load_samples(DATA), 0.2, 0)
    cuts = [c for s in val for c in cutouts_from_sample(s, min_side=40)]
    assert len(cuts) >= 6
    return sorted(cuts, key=lambda c: -c.alpha.sum())[:6]


def _one_whole_wheel(detector, rgb, mask, what):
    from designsearch.training.segmenter.synthetic import mask_box

    dets = detector.detect(rgb)
    true_box = mask_box(mask)
    assert len(dets) == 1, f"{what}: {len(dets)} detections {[d.box for d in dets]}, true {true_box}"
    d = dets[0]
    assert box_iou(d.box, true_box) >= 0.8, f"{what}: box {d.box} vs true {true_box}"
    assert d.kind == KIND_CLOSEUP
    x1, y1, x2, y2 = d.box
    assert d.mask is not None and d.mask.shape == (y2 - y1, x2 - x1)


@pytest.mark.parametrize("style", ["rendering-on-white", "rotated-closeup", "line-drawing"])
def test_designer_pictures_give_one_whole_wheel(detector, val_cutouts, style):
    """A rendering on white, a close-up rotated by an odd angle on a photographic background, and a
    line drawing, each of a validation wheel filling most of the frame: exactly one detection, the
    whole wheel (box IoU >= 0.8), kind closeup — not the hub, a spoke gap or a lug nut."""
    from designsearch.training.segmenter import synthetic as S

    _, val = split_samples(load_samples(DATA), 0.2, 0)
    photos = S.PhotoBackgrounds(val)
    ok = 0
    for i, c in enumerate(val_cutouts):
        rng = np.random.default_rng(100 + i)
        if style == "rendering-on-white":
            rgb, mask = S.render_closeup(c, rng, 512, fill=(0.6, 0.9), background_kind="white", tyre_p=1.0,
                                         cut_off_p=0.0, angle=0.0, oblique_p=0.0)
        elif style == "rotated-closeup":
            rgb, mask = S.render_closeup(c, rng, 512, fill=(0.6, 0.9), background_kind="photo", photos=photos,
                                         cut_off_p=0.0, angle=37.0 + 50 * i)
        else:
            rgb, mask = S.render_closeup(c, rng, 512, fill=(0.6, 0.9), background_kind="white", cut_off_p=0.0,
                                         recolour_p=0.0)
            rgb = S.line_drawing(rgb, rng, "canny")
        try:
            _one_whole_wheel(detector, rgb, mask, f"{style} #{i}")
            ok += 1
        except AssertionError as exc:
            print(exc)
    # Validation-set figures are in the model card; here at most one of six may miss.
    assert ok >= 5, f"{ok}/6 pictures gave exactly one whole wheel"


def test_blank_and_flat_images_give_nothing(detector):
    """Blank white (the released model's old defect), black, mid grey and a logo-like picture."""
    assert detector.detect(np.full((300, 400, 3), 255, np.uint8)) == [], "blank white image"
    assert detector.detect(np.zeros((320, 320, 3), np.uint8)) == [], "black"
    assert detector.detect(np.full((512, 512, 3), 180, np.uint8)) == [], "grey"
    logo = np.full((384, 384, 3), 240, np.uint8)
    cv2.putText(logo, "DESIGN", (30, 210), cv2.FONT_HERSHEY_DUPLEX, 2.5, (20, 40, 160), 6, cv2.LINE_AA)
    assert detector.detect(logo) == [], "logo text"


def test_no_wheel_photo_crops_return_nothing(detector, val_with_wheels):
    """Square crops of the top of photos (sky, buildings, roof, windscreen: in the whole dataset no
    wheel starts above 27 % of the image height) give no detection: at most one of 18 (set (c2) of the
    model card, 186 such crops: 0.952 empty)."""
    checked, found = 0, []
    for s, rgb, boxes in val_with_wheels[:6]:
        h, w = rgb.shape[:2]
        side = int(0.25 * h)
        assert min(b[1] for b in boxes) > side
        for x in (0, (w - side) // 2, w - side):
            if detector.detect(rgb[:side, x : x + side]):
                found.append(f"{s.file_name} top crop at x={x}")
            checked += 1
    assert checked == 18 and len(found) <= 1, found


def test_detect_rejects_non_rgb(detector):
    with pytest.raises(ValueError):
        detector.detect(np.zeros((64, 64), np.uint8))


def test_cutout_keeps_the_wheel_and_whitens_everything_else(detector, val_with_wheels):
    """The catalogue's cut-out of a detected wheel (``cutout_on_white``; the gateway's ``region_cutout``): the wheel's own pixels
    inside its mask, pure white outside it and around it, the wheel centred; a mask of the wrong shape and
    the whole picture give no cut-out."""
    from designsearch.gateway.ports import Region
    from designsearch.gateway.regions import CROP_SIZE, region_cutout
    from designsearch.images import cutout_on_white, encode_png

    checked = 0
    for _, rgb, _ in val_with_wheels[:10]:
        for d in detector.detect(rgb)[:2]:
            x1, y1, x2, y2 = d.box
            out = cutout_on_white(rgb, d.box, d.mask, feather_px=0)
            assert out.shape == (256, 256, 3) and out.dtype == np.uint8
            assert (out[:8] == 255).all() and (out[-8:] == 255).all()  # the margin is white
            assert (out[:, :8] == 255).all() and (out[:, -8:] == 255).all()
            # the wheel's pixels are kept: the cut-out of a mask that keeps everything is the box itself resized
            full = cutout_on_white(rgb, d.box, np.full_like(d.mask, 255), margin=0.0, feather_px=0)
            bw, bh = x2 - x1, y2 - y1
            side = max(bw, bh)
            ref = cv2.resize(rgb[y1:y2, x1:x2], (round(bw * 256 / side), round(bh * 256 / side)),
                             interpolation=cv2.INTER_AREA if side > 256 else cv2.INTER_LINEAR)
            top, left = (256 - ref.shape[0]) // 2, (256 - ref.shape[1]) // 2
            assert np.abs(full[top:top + ref.shape[0], left:left + ref.shape[1]].astype(int) - ref).max() <= 1
            # outside the mask is white, inside is the wheel (dark metal and rubber)
            cut = cutout_on_white(rgb, d.box, d.mask)
            scale = 256 / (side * 1.16)
            keep = cv2.resize(d.mask, (round(bw * scale), round(bh * scale)), interpolation=cv2.INTER_NEAREST)
            t, lft = (256 - keep.shape[0]) // 2, (256 - keep.shape[1]) // 2
            window = cut[t:t + keep.shape[0], lft:lft + keep.shape[1]].astype(int)
            outside = cv2.dilate(keep, np.ones((7, 7), np.uint8)) == 0
            assert window[outside].min() >= 240  # (a pixel of position rounding and the feathered edge)
            assert window[cv2.erode(keep, np.ones((5, 5), np.uint8)) > 0].mean() < 230
            # the gateway's cut-out: the same at its crop size, as pixels for the embedder
            region = Region(d.box, d.kind, d.score, b"", encode_png(d.mask))
            np.testing.assert_array_equal(region_cutout(rgb, region), cutout_on_white(rgb, d.box, d.mask, size=CROP_SIZE))
            with pytest.raises(ValueError):
                cutout_on_white(rgb, d.box, d.mask[:-1])
            assert region_cutout(rgb, Region(d.box, d.kind, d.score, b"", encode_png(d.mask[:-1]))) is None
            checked += 1
    assert checked >= 10
    h, w = rgb.shape[:2]
    assert region_cutout(rgb, Region((0, 0, w, h), "whole_image", 0.0, b"", b"")) is None


# --- issue 30: what designers send, judged on REAL pictures and on the engine's pictures ---------------------

WHEEL_PICTURES = DATA / "wheel-pictures"
needs_wheel_pictures = pytest.mark.skipif(not (WHEEL_PICTURES / "car-parts-50" / "labels.csv").is_file(),
                                          reason="wheel-pictures not found")


def _one_whole(detector, item) -> bool:
    dets = detector.detect(item.rgb)
    return len(dets) == 1 and box_iou(dets[0].box, item.boxes[0]) >= 0.8 and dets[0].kind == KIND_CLOSEUP


@needs_wheel_pictures
def test_real_product_shots_give_one_whole_wheel_crop(detector):
    """The 53 car-parts-50 validation rims (real product shots): exactly one close-up covering the rim
    (box IoU >= 0.8 with the reference box) for most (measured 52 of 53 with the second look of step 10, 49 with
    the region verifier alone, 44 without it; the issue-8 model 10 of 53)."""
    from designsearch.training.segmenter.real_sets import carparts50_items

    rims = carparts50_items(DATA, "val", "rim")
    ok = sum(_one_whole(detector, it) for it in rims)
    assert len(rims) == 53 and ok >= 50, ok


@needs_wheel_pictures
def test_second_look_gives_the_whole_rim_of_a_tight_or_dark_product_shot(detector):
    """Step 10 on two real product shots the first look gets wrong: a deep 3/4 rim cut by the frame (train-146: the
    first close-up leaves out the barrel) and a black rim on black (train-116: only a hub logo and a corner); the
    second look, with a plain border, gives one close-up of the whole rim."""
    from designsearch.training.segmenter.real_sets import carparts50_items

    rims = {it.name.rsplit("/", 1)[-1]: it for it in carparts50_items(DATA, "val", "rim")}
    for name in ("train-146.jpg", "train-116.jpg"):
        it = rims[name]
        prob, scene, verify = detector.outputs(it.rgb)
        first = detector.instances_from_probability(prob, *it.rgb.shape[:2], scene, verify)
        assert first and max(box_iou(d.box, it.boxes[0]) for d in first) < 0.8, (name, [d.box for d in first])
        assert _one_whole(detector, it), (name, [d.box for d in detector.detect(it.rgb)], it.boxes)


def test_second_look_never_replaces_the_wheels_of_a_car_photo(detector, val_with_wheels):
    """On car photos the second look may run (no wheel passes the close-up verifier bar) but never replaces the
    first answer: it replaces it only with exactly one close-up (measured: 20 of 80 photos looked at twice,
    every answer the first look's)."""
    for s, rgb, _ in val_with_wheels[:40]:
        prob, scene, verify = detector.outputs(rgb)
        first = detector.instances_from_probability(prob, rgb.shape[0], rgb.shape[1], scene, verify)
        assert [d.box for d in detector.detect(rgb)] == [d.box for d in first], s.file_name


@needs_wheel_pictures
def test_manufacturer_renderings_give_one_whole_wheel_crop(detector):
    """Wheel-Vision's 16 manufacturer cut-outs on white and 13 with a brake caliper on grey (measured 16/16, 13/13;
    the issue-8 model 2/16, 0/13)."""
    from designsearch.training.segmenter.real_sets import wheel_vision_items

    sets = wheel_vision_items(DATA)
    assert sum(_one_whole(detector, it) for it in sets["wheel-vision cut-outs"]) >= 15
    assert sum(_one_whole(detector, it) for it in sets["wheel-vision with caliper"]) >= 12


@needs_wheel_pictures
def test_brake_rotors_and_clutch_plates_are_no_wheel(detector):
    """car-parts-50 validation brake rotors (58) and clutch plates (62): round, metallic, spoked-looking and no
    wheel (measured 56/58 and 62/62 empty; the issue-8 model fired on 44 % of all look-alikes)."""
    from designsearch.training.segmenter.real_sets import carparts50_items

    looks = carparts50_items(DATA, "val", "not_wheel")
    for cls, floor in (("brake-rotor", 0.9), ("clutch-plate", 0.95)):
        items = [it for it in looks if f"/{cls}/" in it.name]
        empty = sum(not detector.detect(it.rgb) for it in items)
        assert empty >= floor * len(items), (cls, empty, len(items))


@pytest.fixture(scope="module")
def engine_pictures(tmp_path_factory):
    """Six new designs rendered by the wheel-design engine (seed 123: not the training set's seed 0)."""
    pytest.importorskip("designsearch.training.wheelgen.render")
    import subprocess
    import sys

    out = tmp_path_factory.mktemp("engine") / "set"
    r = subprocess.run([sys.executable, "-m", "designsearch.cli", "render-wheels", "--designs", "6", "--views", "2",
                        "--seed", "123", "--val-fraction", "0.999", "--out", str(out), "--workers", "2", "--quiet"],
                       capture_output=True, text=True, timeout=600, env={**os.environ, "DESIGNSEARCH_DATA": str(DATA)})
    assert r.returncode == 0, r.stderr
    from designsearch.training.segmenter.real_sets import engine_items

    return engine_items(out, "val")


def test_engine_rendering_drawing_and_on_car_composite(detector, engine_pictures):
    """A rendering and a line drawing of a design never trained on give one whole-wheel close-up each; the
    wheels of its on-car composite are all found (measured on 183 validation designs: renders 0.975, drawings
    0.995 exactly one whole; on-car recall 0.951 at precision 0.967)."""
    renders, drawings = engine_pictures["engine val renders"], engine_pictures["engine val drawings"]
    assert len(renders) == 12 and len(drawings) == 12
    # one design of seed 123 (thin bronze spokes on a photo background) is missed in both its views
    assert sum(_one_whole(detector, it) for it in renders) >= 10
    assert sum(_one_whole(detector, it) for it in drawings) >= 10
    found = total = 0
    for it in engine_pictures["engine val oncars"]:
        dets = detector.detect(it.rgb)
        total += len(it.boxes)
        found += sum(any(box_iou(d.box, b) >= 0.5 for d in dets) for b in it.boxes)
    assert total >= 6 and found >= total - 1, (found, total)
