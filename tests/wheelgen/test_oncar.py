"""On-car composites (designsearch.training.wheelgen.oncar) on real Car-Parts-Segmentation photos."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from designsearch.training.segmenter.dataset import WheelSample, load_samples, split_samples
from designsearch.training.wheelgen.oncar import OnCarPhotos, composite_on_car, wheel_slots

MAGENTA = (255, 0, 255)


@pytest.fixture(scope="module")
def samples() -> list[WheelSample]:
    try:
        return load_samples()
    except FileNotFoundError as e:
        pytest.skip(f"Car-Parts-Segmentation data missing: {e}")


def _render(side: int = 160, left=MAGENTA, right=MAGENTA) -> np.ndarray:
    """A synthetic RGBA wheel: a bright disc (two halves' colours) with 5 dark spokes, alpha = disc."""
    img = np.zeros((side, side, 4), np.uint8)
    c = side // 2
    cv2.circle(img, (c, c), c, (*left, 255), -1)
    img[:, c:, :3] = np.where(img[:, c:, 3:] > 0, np.array(right, np.uint8), 0)
    for k in range(5):
        t = 2 * np.pi * k / 5
        tip = (int(c + 0.85 * c * np.cos(t)), int(c + 0.85 * c * np.sin(t)))
        cv2.line(img, (c, c), tip, (40, 40, 40, 255), 3)
    return img


def _magenta(px: np.ndarray) -> np.ndarray:
    px = px.astype(int)
    return (px[..., 0] - px[..., 1] > 60) & (px[..., 2] - px[..., 1] > 60)


def _iou(a, b) -> float:
    iw = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - iw * ih
    return iw * ih / union


def _grow(mask: np.ndarray, px: int) -> np.ndarray:
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * px + 1,) * 2)
    return cv2.dilate(mask.astype(np.uint8), disc) > 0


def _with_slots(samples, n: int = 3):
    """The first ``n - 1`` photos with a usable slot and the first whose slot's ellipse reaches > 8 px
    above its box (a wheel under an arch), all without magenta on their wheels."""
    plain, arched = [], []
    for s in samples:
        slots = wheel_slots(s)
        if not slots:
            continue
        rgb = s.read_rgb()
        if _magenta(rgb[s.mask() > 0]).mean() > 0.01:
            continue
        is_arched = any(sl.box[1] - (sl.center[1] - sl.axes[0] / 2) > 8 for sl in slots)
        (arched if is_arched and not arched else plain).append((s, rgb, slots))
        if len(plain) >= n - 1 and arched:
            break
    assert plain and arched, "no photo with a usable wheel slot under an arch"
    return plain[: n - 1] + arched if n > 1 else plain[:1]


def test_composite_replaces_the_wheels(samples):
    rng = np.random.default_rng(0)
    for s, rgb, slots in _with_slots(samples):
        out, mask, boxes = composite_on_car(rgb, slots, [_render() for _ in slots], rng)
        assert out.dtype == np.uint8 and out.shape == rgb.shape
        assert mask.dtype == np.uint8 and mask.shape == rgb.shape[:2] and set(np.unique(mask)) <= {0, 255}
        m = mask > 0
        assert m.any(), s.file_name
        union = np.zeros(m.shape, np.uint8)
        boxes_grown = np.zeros(m.shape, bool)
        for sl in slots:
            union |= sl.mask
            x1, y1, x2, y2 = sl.box
            boxes_grown[max(0, y1 - 5):y2 + 5, max(0, x1 - 5):x2 + 5] = True
        # within the original wheels: every pixel inside their (grown) boxes, nearly all inside their masks
        assert not (m & ~boxes_grown).any(), s.file_name
        assert (m & ~_grow(union, 5)).sum() <= 0.02 * m.sum(), s.file_name
        # the car body still occludes: nothing of a pasted wheel above its original's box (the arch
        # line), though the ellipse of the arched photo's wheel reaches > 8 px higher
        for sl in slots:
            x1, y1, x2, y2 = sl.box
            assert not m[max(0, y1 - 40):max(0, y1 - 4), x1:x2].any(), (s.file_name, sl.box)
        # and covering them: the new visible boxes match the original boxes
        assert len(boxes) == len(slots)
        for b, sl in zip(boxes, slots):
            assert _iou(b, sl.box) > 0.5, (s.file_name, b, sl.box)
        # the render's colour (magenta disc, dark spokes) is what shows under the mask
        inner = cv2.erode(mask, np.ones((5, 5), np.uint8)) > 0
        assert _magenta(out[inner]).mean() > 0.6, s.file_name
        assert _magenta(rgb[inner]).mean() < 0.01
        # far from every wheel nothing changed
        far = ~_grow(union, 16)
        assert np.array_equal(out[far], rgb[far]), s.file_name


def test_mirror_flips_the_render(samples):
    s, rgb, slots = _with_slots(samples, 1)[0]
    i = max(range(len(slots)), key=lambda i: slots[i].axes[1])
    sl = slots[i]
    render = _render(left=(255, 0, 0), right=(0, 0, 255))
    halves = []
    for flip in (False, True):
        out, mask, _ = composite_on_car(rgb, [sl], [render], np.random.default_rng(1), mirror=[flip])
        m = mask > 0
        xs = np.nonzero(m.any(axis=0))[0]
        mid = (xs.min() + xs.max()) / 2
        cols = np.arange(m.shape[1])[None, :]
        left = out[m & (cols < mid - 3)].astype(float).mean(axis=0)
        right = out[m & (cols > mid + 3)].astype(float).mean(axis=0)
        halves.append((left[0] - left[2], right[0] - right[2]))
    (l0, r0), (l1, r1) = halves
    assert l0 > 50 and r0 < -50, "unmirrored: red on the left, blue on the right"
    assert l1 < -50 and r1 > 50, "mirrored: blue on the left, red on the right"


def test_original_wheel_is_painted_out(samples):
    s, rgb, slots = _with_slots(samples, 1)[0]
    renders = [_render() for _ in slots]
    out, mask, _ = composite_on_car(rgb, slots, renders, np.random.default_rng(0), cover=0.6)
    union = np.zeros(mask.shape, np.uint8)
    for sl in slots:
        union |= sl.mask
    uncovered = (union > 0) & ~_grow(mask > 0, 2)  # old wheel pixels the small new wheels leave free
    assert uncovered.sum() > 200
    changed = np.abs(out.astype(int) - rgb.astype(int)).max(axis=2) > 8
    assert changed[uncovered].mean() > 0.5


def test_empty_and_mismatched_inputs(samples):
    s, rgb, slots = _with_slots(samples, 1)[0]
    rng = np.random.default_rng(0)
    out, mask, boxes = composite_on_car(rgb, [], [], rng)
    assert np.array_equal(out, rgb) and out is not rgb and not mask.any() and boxes == []
    with pytest.raises(ValueError):
        composite_on_car(rgb, slots, [_render()] * (len(slots) + 1), rng)
    with pytest.raises(ValueError):
        composite_on_car(rgb, slots, [_render()] * len(slots), rng, mirror=[False] * (len(slots) + 1))
    with pytest.raises(ValueError):
        composite_on_car(rgb, slots[:1], [_render()[:, :100]], rng)  # not square
    with pytest.raises(ValueError):
        composite_on_car(rgb, slots[:1], [np.zeros((64, 64, 4), np.uint8)], rng)  # empty alpha


def test_slot_geometry_on_real_photos(samples):
    for s, _, slots in _with_slots(samples):
        for sl in slots:
            x1, y1, x2, y2 = sl.box
            assert x2 - x1 >= 24 and y2 - y1 >= 24
            assert sl.mask.shape == (s.height, s.width) and sl.mask.any()
            assert not sl.mask[:y1].any() and not sl.mask[y2:].any()
            assert x1 <= sl.center[0] <= x2 and y1 <= sl.center[1] <= y2
            major, minor = sl.axes
            assert major >= minor > 0 and 0.0 <= sl.yaw_deg <= 75.0
            assert sl.yaw_deg == pytest.approx(min(75.0, np.degrees(np.arccos(minor / major))), abs=1e-6)
            assert sl.facing in (-1, 1)


def _synthetic(polys: list[np.ndarray]) -> WheelSample:
    return WheelSample("synthetic.jpg", Path("/nonexistent.jpg"), 400, 300, list(polys), [[p] for p in polys])


def test_ellipse_fit_and_arch_truncation():
    t = np.linspace(0, 2 * np.pi, 200, endpoint=False)
    # a whole wheel turned 60 degrees: vertical diameter 100, width 50
    whole = np.stack([100 + 25 * np.cos(t), 150 + 50 * np.sin(t)], axis=1)
    # a side-view wheel (circle, diameter 100) whose top 30 % the arch hides
    circle = np.stack([300 + 50 * np.cos(t), 150 + 50 * np.sin(t)], axis=1)
    cut = circle[circle[:, 1] >= 130]  # y grows downward: the top (y < 130) is gone
    slots = sorted(wheel_slots(_synthetic([whole, cut]), min_side=10), key=lambda sl: sl.center[0])
    assert len(slots) == 2
    a, b = slots
    assert not a.truncated
    assert a.axes[0] == pytest.approx(100, abs=3) and a.axes[1] == pytest.approx(50, abs=3)
    assert a.yaw_deg == pytest.approx(60, abs=3) and abs(a.angle_deg) < 3
    assert b.truncated and b.axes[0] == pytest.approx(100, abs=4) and b.yaw_deg < 20
    assert b.center[1] == pytest.approx(150, abs=3)


def test_tilted_wheel_is_fitted_and_pasted_upright_to_it():
    t = np.linspace(0, 2 * np.pi, 200, endpoint=False)
    a = np.radians(20)  # a wheel 100 x 50 px whose top leans 20 degrees to the right
    ex, ey = 25 * np.cos(t), 50 * np.sin(t)
    poly = np.stack([200 + ex * np.cos(a) - ey * np.sin(a), 150 + ex * np.sin(a) + ey * np.cos(a)], axis=1)
    sample = _synthetic([poly])
    (sl,) = wheel_slots(sample, min_side=10)
    assert sl.angle_deg == pytest.approx(20, abs=3) and sl.yaw_deg == pytest.approx(60, abs=3)
    photo = np.full((300, 400, 3), 120, np.uint8)
    _, mask, (box,) = composite_on_car(photo, [sl], [_render()], np.random.default_rng(0))
    orig = sl.mask > 0
    new = mask > 0
    assert (orig & new).sum() / (orig | new).sum() > 0.85
    assert _iou(box, sl.box) > 0.85


def test_oncar_photos_sampling(samples):
    train, _ = split_samples(samples)
    photos = OnCarPhotos(train)
    rng = np.random.default_rng(0)
    for _ in range(5):
        s, slots = photos.sample(rng)
        assert 1 <= len(slots) <= 4 and s in train
        rgb = photos.rgb(s)
        assert rgb.shape == (s.height, s.width, 3) and photos.rgb(s) is rgb  # cached
    with pytest.raises(ValueError):
        OnCarPhotos([s for s in train if not s.polygons])
