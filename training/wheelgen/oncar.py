"""On-car pictures: wheel renders composited into the wheel positions of real car photos.

A rendered wheel (rim + tyre, RGBA, alpha = exact mask) replaces every wheel of a real
Car-Parts-Segmentation photo (all wheels of a car get the same design, as on a real car), fitted
to each wheel's ellipse, kept behind the car body, light-matched, and every pasted wheel's visible
box is labelled. A model trained on these learns that a crop from a car photo is the same design as
its studio shot.

Pipeline: :func:`wheel_slots` turns each annotated wheel into a :class:`WheelSlot` (ellipse, yaw,
facing); the engine renders the design at azimuth ``slot.yaw_deg`` (see :attr:`WheelSlot.signed_yaw_deg`);
:func:`composite_on_car` inpaints the original wheels and pastes the renders. :class:`OnCarPhotos`
draws photos of one split with 1-4 usable slots.

Geometry conventions: pixels, ``y`` down, boxes ``(x1, y1, x2, y2)`` with exclusive ends; an angle
is the major axis's tilt from the image vertical in degrees, positive = its top leans right
(clockwise on screen); ``facing`` = the image side the wheel face is turned to (+1 right, -1 left).

Data: Car-Parts-Segmentation (Pasupa et al. 2021, GitHub dsmlr/Car-Parts-Segmentation), read with
:mod:`designsearch.training.segmenter.dataset`.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from designsearch.training.segmenter.dataset import WheelSample
from designsearch.training.segmenter.synthetic.backgrounds import remove_wheels

#: Largest yaw (degrees) a slot is given; beyond it a wheel is seen nearly edge-on.
MAX_YAW_DEG = 75.0
#: A fitted ellipse is trusted when the wheel mask fills at least this share of it ...
MIN_FILL = 0.92
#: ... and its major axis is within this many degrees of vertical (or it is nearly a circle); a cut
#: circle fits a lying ellipse (tilt ~ 90), while wheels seen from above/at a roll lean up to ~50.
MAX_TILT_DEG = 55.0


@dataclass
class WheelSlot:
    """One wheel position in a photo.

    Attributes:
        box: ``(x1, y1, x2, y2)`` int pixels, exclusive ends, of the visible original wheel.
        mask: ``uint8 (H, W)``, 1 on the visible original wheel (the photo's wheel mask inside ``box``).
        center: ellipse centre ``(cx, cy)`` pixels.
        axes: ``(major, minor)`` full axis lengths in pixels (major = the tyre's outer diameter).
        angle_deg: tilt of the major axis from vertical, degrees, positive = top leans right.
        yaw_deg: degrees the wheel face is turned from the camera, ``arccos(minor/major)`` in ``[0, 75]``.
        facing: +1 when the face is turned toward the image right, -1 toward the left (derived, a guess
            when the photo has one wheel; see :func:`wheel_slots`).
        truncated: the ellipse reaches over 3 % of its major axis beyond the visible box (an arch hides
            the top, or the frame the bottom).
    """

    box: tuple[int, int, int, int]
    mask: np.ndarray
    center: tuple[float, float]
    axes: tuple[float, float]
    angle_deg: float
    yaw_deg: float
    facing: int = 1
    truncated: bool = False

    @property
    def signed_yaw_deg(self) -> float:
        """``facing * yaw_deg``: render at this azimuth (when the engine's +azimuth turns the face
        toward image right) and pass ``mirror=False`` to avoid mirroring chiral designs."""
        return float(self.facing * self.yaw_deg)


def _fit_ellipse(
    m: np.ndarray, box: tuple[int, int, int, int], image_height: int
) -> tuple[tuple[float, float], tuple[float, float], float]:
    """Ellipse ``(center, (major, minor), angle_deg)`` of one wheel's visible mask.

    First ``cv2.fitEllipse`` on the convex hull of the mask. The hull keeps only the vertices of a
    straight or concave occluding edge (an arch hides the top of most wheels), so the fit follows the
    visible arc and recovers the whole ellipse; it is kept when it is consistent with the box: the
    mask fills >= :data:`MIN_FILL` of its part inside the box, its left, right and bottom ends are
    within 6 % of the major axis of the box's (the bottom may leave the frame), its top is at most
    that far below the box top and at most half the major above it (hidden by the arch), and its
    major axis is within :data:`MAX_TILT_DEG` of vertical (any tilt when minor/major >= 0.92).
    Otherwise (notched or ragged masks) the box model: a wheel turns about a vertical axis, so its
    vertical axis is the full diameter; minor = box width, centre ``x`` = box centre, angle 0. The
    widest visible row (median of the rows at >= 97 % of the widest) is the centre row when one end
    is cut: the bottom when the box touches the image's lower edge (major = 2 * (widest row - y1)),
    else the top when its first 5 % of rows are over half the widest row wide (a flat edge: the
    arch; major = 2 * (y2 - widest row)). Without a cut, major = box height. The major is kept in
    ``[minor, max(minor, 2 * box height)]``; the bottom (ground contact) stays on the box bottom
    unless the frame cut it.
    """
    x1, y1, x2, y2 = box
    bw, bh = x2 - x1, y2 - y1
    sub = m[y1:y2, x1:x2]
    at_frame = y2 >= image_height - 1
    contours, _ = cv2.findContours(sub, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    hull = cv2.convexHull(np.concatenate(contours)) if contours else np.zeros((0, 1, 2), np.int32)
    if len(hull) >= 5:
        (cx, cy), (w, h), theta = cv2.fitEllipse(hull)
        major, minor = max(w, h), min(w, h)
        tilt = ((theta if h >= w else theta - 90.0) + 90.0) % 180.0 - 90.0
        e = cv2.ellipse(np.zeros_like(sub), ((cx, cy), (w, h), theta), 1, -1)
        fill = float((e & sub).sum()) / max(1, int(e.sum()))
        c, sn = np.cos(np.radians(theta)), np.sin(np.radians(theta))
        hx, hy = np.hypot(w / 2 * c, h / 2 * sn), np.hypot(w / 2 * sn, h / 2 * c)  # half extents
        tol = 0.06 * major
        fits_box = (abs(cx - hx) <= tol and abs(cx + hx - bw) <= tol and -0.5 * major <= cy - hy <= tol
                    and (at_frame or abs(cy + hy - bh) <= tol))
        upright = abs(tilt) <= MAX_TILT_DEG or minor / major >= 0.92
        if minor > 0 and fill >= MIN_FILL and fits_box and upright:
            return (cx + x1, cy + y1), (float(major), float(minor)), float(tilt)
    widths = sub.sum(axis=1).astype(np.float64)
    minor, widest = float(bw), float(np.median(np.nonzero(widths >= 0.97 * widths.max())[0])) + 0.5
    if at_frame:  # cut by the frame: the top is whole
        major = max(minor, min(2.0 * widest, 2.0 * bh))
        return (x1 + bw / 2.0, y1 + major / 2.0), (major, minor), 0.0
    arch = widths[: max(1, bh // 20)].mean() > 0.5 * widths.max()  # a flat top edge
    major = max(minor, min(2.0 * (bh - widest), 2.0 * bh)) if arch else max(float(bh), minor)
    return (x1 + bw / 2.0, y1 + bh - major / 2.0), (major, minor), 0.0


def _derive_facing(slots: list[WheelSlot], image_width: int) -> None:
    """Set ``facing`` of every slot in place.

    A face turns toward the far end of the car side (perspective: the side plane recedes there). With
    a neighbour (nearest other slot by ``x``): a clearly smaller neighbour (height ratio < 0.85) is the
    far wheel of the same side, so the face turns toward the smaller of the two; similar sizes mean a
    front/back view (the two wheels face outward, away from each other) or a side view (yaw ~ 0, the
    direction does not matter). A lone wheel is assumed to face the image centre (a guess).
    """
    for s in slots:
        others = [o for o in slots if o is not s]
        if not others:
            s.facing = 1 if s.center[0] < image_width / 2 else -1
            continue
        o = min(others, key=lambda o: abs(o.center[0] - s.center[0]))
        ratio = min(s.axes[0], o.axes[0]) / max(s.axes[0], o.axes[0])
        if ratio < 0.85:
            small, big = (s, o) if s.axes[0] < o.axes[0] else (o, s)
            s.facing = 1 if small.center[0] >= big.center[0] else -1
        else:
            s.facing = 1 if s.center[0] >= o.center[0] else -1


def wheel_slots(sample: WheelSample, min_side: int = 24) -> list[WheelSlot]:
    """The usable wheel positions of a photo: its instances whose box sides are both >= ``min_side`` px.

    Each slot's mask is the photo's wheel mask inside the instance box; its ellipse comes from
    :func:`_fit_ellipse`, its facing from :func:`_derive_facing` (over the usable slots).
    """
    full = sample.mask()
    slots: list[WheelSlot] = []
    for box in sample.instances():
        x1, y1, x2, y2 = (int(v) for v in box)
        if x2 - x1 < min_side or y2 - y1 < min_side:
            continue
        m = np.zeros_like(full)
        m[y1:y2, x1:x2] = full[y1:y2, x1:x2]
        if not m.any():
            continue
        center, axes, angle = _fit_ellipse(m, (x1, y1, x2, y2), sample.height)
        yaw = float(np.degrees(np.arccos(np.clip(axes[1] / axes[0], 0.0, 1.0))))
        half, tol = axes[0] / 2, 0.03 * axes[0]
        truncated = center[1] - half < y1 - tol or center[1] + half > y2 + tol
        slots.append(WheelSlot((x1, y1, x2, y2), m, (float(center[0]), float(center[1])),
                               axes, angle, float(min(yaw, MAX_YAW_DEG)), 1, truncated))
    _derive_facing(slots, sample.width)
    return slots


def _luma(rgb: np.ndarray) -> np.ndarray:
    """Rec. 601 luminance, float32."""
    return rgb[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)


def noise_sigma(gray: np.ndarray) -> float:
    """Photo noise standard deviation (grey levels), Immerkaer's fast estimate (CVIU 1996)."""
    g = gray.astype(np.float32)
    k = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)
    r = np.abs(cv2.filter2D(g, -1, k))[1:-1, 1:-1]
    return float(np.sqrt(np.pi / 2.0) * r.mean() / 6.0) if r.size else 0.0


def _lap_var(gray: np.ndarray, where: np.ndarray) -> float:
    """Variance of the Laplacian of ``gray`` over the boolean ``where`` (0 when empty)."""
    return float(cv2.Laplacian(gray.astype(np.float32), cv2.CV_32F)[where].var()) if where.any() else 0.0


def _allowed(slot_mask: np.ndarray, dilate_px: int) -> np.ndarray:
    """Where a pasted wheel may show, boolean ``(H, W)``.

    The original visible mask dilated by ``dilate_px``, plus, in each column the original wheel
    occupies, everything from its topmost visible pixel (the occluding edge) down to its lowest one
    (gaps of the annotation are filled). The render is cut above the edge (arch, bumper) and beyond
    the dilation beside and below the original wheel: over all 278 photos, a region reaching down to
    the box bottom painted over side occluders (mud flaps, bumper corners, the other wheel).
    """
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * dilate_px + 1,) * 2)
    out = cv2.dilate(slot_mask, k) > 0
    cols = np.nonzero(slot_mask.any(axis=0))[0]
    col, rows = slot_mask[:, cols] > 0, np.arange(slot_mask.shape[0])[:, None]
    top, bottom = np.argmax(col, axis=0), col.shape[0] - np.argmax(col[::-1], axis=0)
    out[:, cols] |= (rows >= top[None, :]) & (rows < bottom[None, :])
    return out


def _warp_render(render: np.ndarray, slot: WheelSlot, size: tuple[int, int], wheel_fraction: float,
                 mirror: bool, cover: float) -> tuple[np.ndarray, np.ndarray]:
    """The render placed on the slot's ellipse: RGB ``float32 (H, W, 3)`` (straight) and alpha ``(H, W)``.

    The render's alpha box centre goes to the ellipse centre; its vertical extent (the diameter,
    ``wheel_fraction * side``) is scaled to the major axis and its alpha width (face and visible tread
    at the rendered yaw) to the minor axis, times ``cover`` so the new wheel hides the old one's rim;
    then it is rotated by ``angle_deg`` and mirrored first when asked.
    """
    side = render.shape[0]
    sy = cover * slot.axes[0] / (wheel_fraction * side)
    n = int(round(side * min(1.0, 1.5 * sy)))
    if n < side:  # shrink with area averaging first, so the warp does not alias
        render = cv2.resize(render, (max(n, 8), max(n, 8)), interpolation=cv2.INTER_AREA)
        sy, side = sy * side / render.shape[0], render.shape[0]
    a = render[..., 3].astype(np.float32) / 255.0
    ys, xs = np.nonzero(a > 0.5)
    rcx, rcy = (xs.min() + xs.max() + 1) / 2.0, (ys.min() + ys.max() + 1) / 2.0
    sx = cover * slot.axes[1] / float(xs.max() + 1 - xs.min())
    c, sn = np.cos(np.radians(slot.angle_deg)), np.sin(np.radians(slot.angle_deg))
    lin = np.array([[c, -sn], [sn, c]]) @ np.diag([(-sx if mirror else sx), sy])  # y down: clockwise
    m = np.hstack([lin, (np.array(slot.center) - lin @ np.array([rcx, rcy]))[:, None]])
    pre_w = cv2.warpAffine(render[..., :3].astype(np.float32) * a[..., None], m, size, flags=cv2.INTER_LINEAR)
    a_w = np.clip(cv2.warpAffine(a, m, size, flags=cv2.INTER_LINEAR), 0.0, 1.0)
    return np.clip(pre_w / np.maximum(a_w, 1e-4)[..., None], 0, 255), a_w


def composite_on_car(
    photo_rgb: np.ndarray,
    slots: list[WheelSlot],
    wheels: list[np.ndarray],
    rng: np.random.Generator,
    wheel_fraction: float = 1.0,
    render_facing: int = 1,
    mirror: list[bool] | None = None,
    erase_mask: np.ndarray | None = None,
    ref_luma: float = 128.0,
    cover: float = 1.04,
    occlusion_px: int = 3,
) -> tuple[np.ndarray, np.ndarray, list[tuple[int, int, int, int]]]:
    """Replace the wheels of a photo by renders of one design.

    Args:
        photo_rgb: ``uint8 (H, W, 3)`` RGB car photo.
        slots: its wheel positions (:func:`wheel_slots`).
        wheels: ``wheels[i]`` is the render for ``slots[i]``: ``uint8 (h, h, 4)`` RGBA, square, the tyre's
            outer edge centred with diameter ``wheel_fraction * h``, rendered at azimuth ``slots[i].yaw_deg``.
        rng: NumPy generator (noise and a +-5 % gain jitter).
        wheel_fraction: wheel diameter / render side.
        render_facing: the image side the renders' faces are turned to at positive azimuth (+1 right).
        mirror: per slot, mirror the render horizontally; default: where ``slot.facing != render_facing``
            and the yaw is over 5 degrees. A mirrored chiral design (swept spokes) is its mirror image,
            not the same design: prefer rendering at ``slot.signed_yaw_deg`` with ``mirror=[False] * n``.
        erase_mask: extra ``(H, W)`` region (nonzero) to inpaint too, e.g. ``sample.mask()`` so that wheels
            too small to be slots do not stay as another design.
        ref_luma: luminance of the surroundings the renders' studio light corresponds to.
        cover: the render is scaled this much beyond the ellipse so no original rim edge shows.
        occlusion_px: the original masks are grown by this much to form the paste region (:func:`_allowed`).

    Steps: inpaint the union of the slot masks (and ``erase_mask``; Telea, grown 5 px); per slot, far
    (small) wheels first: fit the render to the ellipse (:func:`_warp_render`); keep its alpha only
    where :func:`_allowed`; multiply its colour by ``clip(mean luma of the photo ring around the
    wheel / ref_luma, 0.5, 1.3)``; blur it with the smallest Gaussian (sigma 0-2 px) whose Laplacian
    variance does not exceed the photo ring's; add Gaussian noise of the photo's noise level
    (:func:`noise_sigma`, at most 6); alpha-blend.

    Returns:
        ``(rgb, mask, boxes)``: ``uint8 (H, W, 3)``; ``uint8 (H, W)`` 255 where a new wheel is visible
        (alpha >= 0.5), 0 elsewhere; per slot, the visible box ``(x1, y1, x2, y2)`` (exclusive ends) of
        its pasted wheel, ``(0, 0, 0, 0)`` when nothing of it is visible. With no slots: an unchanged copy,
        an empty mask and no boxes.

    Raises:
        ValueError: lengths of ``slots``/``wheels``/``mirror`` differ, a photo or render has the wrong
            dtype/shape, a render's alpha is empty, or ``wheel_fraction`` is not in ``(0, 1]``.
    """
    if photo_rgb.dtype != np.uint8 or photo_rgb.ndim != 3 or photo_rgb.shape[2] != 3:
        raise ValueError(f"photo_rgb must be uint8 (H, W, 3), got {photo_rgb.dtype} {photo_rgb.shape}")
    if len(slots) != len(wheels) or (mirror is not None and len(mirror) != len(slots)):
        raise ValueError(f"{len(slots)} slots, {len(wheels)} wheels, "
                         f"{'no' if mirror is None else len(mirror)} mirror flags: lengths must match")
    if not 0.0 < wheel_fraction <= 1.0:
        raise ValueError(f"wheel_fraction must be in (0, 1], got {wheel_fraction}")
    for r in wheels:
        if r.dtype != np.uint8 or r.ndim != 3 or r.shape[2] != 4 or r.shape[0] != r.shape[1]:
            raise ValueError(f"a render must be square uint8 (h, h, 4) RGBA, got {r.dtype} {r.shape}")
        if not (r[..., 3] > 127).any():
            raise ValueError("a render has an empty alpha")
    h, w = photo_rgb.shape[:2]
    if not slots:
        return photo_rgb.copy(), np.zeros((h, w), np.uint8), []
    union = np.zeros((h, w), np.uint8)
    for s in slots:
        if s.mask.shape != (h, w):
            raise ValueError(f"slot mask {s.mask.shape} does not match the photo {(h, w)}")
        union |= (s.mask > 0).astype(np.uint8)
    erase = union if erase_mask is None else (union | (erase_mask > 0).astype(np.uint8))
    out = remove_wheels(photo_rgb, erase, dilate_px=5).astype(np.float32)
    gray = _luma(photo_rgb)
    sigma_n = min(noise_sigma(gray), 6.0)
    grown = cv2.dilate(erase, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (15, 15))) > 0
    labels = np.zeros((h, w), np.int32)
    lap = cv2.Laplacian(gray, cv2.CV_32F)
    if mirror is None:
        mirror = [s.facing != render_facing and s.yaw_deg > 5.0 for s in slots]
    for i in sorted(range(len(slots)), key=lambda i: slots[i].axes[0] * slots[i].axes[1]):
        s = slots[i]
        rgb_r, a = _warp_render(wheels[i], s, (w, h), wheel_fraction, bool(mirror[i]), cover)
        a = a * _allowed((s.mask > 0).astype(np.uint8), occlusion_px)
        ys, xs = np.nonzero(a > 0)
        if not len(xs):
            continue
        roi = np.s_[max(0, ys.min() - 4):ys.max() + 5, max(0, xs.min() - 4):xs.max() + 5]
        rgb_r, a = rgb_r[roi], a[roi]
        x1, y1, x2, y2 = s.box
        pad = max(x2 - x1, y2 - y1) // 2
        ring = np.zeros((h, w), bool)
        ring[max(0, y1 - pad):y2 + pad, max(0, x1 - pad):x2 + pad] = True
        ring &= ~grown
        if ring.any():
            rgb_r = rgb_r * float(np.clip(gray[ring].mean() / ref_luma, 0.5, 1.3)) * rng.uniform(0.95, 1.05)
        inner = cv2.erode((a > 0.99).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
        target = float(lap[ring].var()) if ring.any() else np.inf
        for sig in (0.0, 0.5, 0.8, 1.2, 1.6, 2.0):
            blurred = cv2.GaussianBlur(rgb_r, (0, 0), sig) if sig else rgb_r
            if _lap_var(_luma(blurred), inner) <= target:
                break
        if sig:
            a = cv2.GaussianBlur(a, (0, 0), min(sig, 0.8))
        if sigma_n > 0:
            blurred = blurred + rng.normal(0.0, sigma_n, blurred.shape).astype(np.float32)
        out[roi] = out[roi] * (1.0 - a[..., None]) + np.clip(blurred, 0, 255) * a[..., None]
        labels[roi][a >= 0.5] = i + 1
    rgb = np.clip(np.round(out), 0, 255).astype(np.uint8)
    mask = (labels > 0).astype(np.uint8) * 255
    boxes = [cv2.boundingRect((labels == i + 1).astype(np.uint8)) for i in range(len(slots))]
    return rgb, mask, [(x, y, x + bw, y + bh) for x, y, bw, bh in boxes]


class OnCarPhotos:
    """Car-Parts-Segmentation photos of one split, drawn for on-car composites.

    Args:
        samples: the photos of one split (``split_samples``); those with 1-4 usable slots are used.
        min_side: the smallest usable wheel box side, pixels (:func:`wheel_slots`).
        max_cached: photos whose pixels and slots are kept in memory (least recently used dropped).

    Raises:
        ValueError: no photo has 1-4 usable slots.
    """

    def __init__(self, samples: list[WheelSample], min_side: int = 24, max_cached: int = 128) -> None:
        self.samples = samples
        self.min_side = min_side
        self.max_cached = max_cached
        self.usable = [
            i for i, s in enumerate(samples)
            if 1 <= sum(1 for b in s.instances() if b[2] - b[0] >= min_side and b[3] - b[1] >= min_side) <= 4
        ]
        if not self.usable:
            raise ValueError("no photo with 1-4 usable wheel slots")
        self._cache: dict[int, tuple[np.ndarray, list[WheelSlot]]] = {}
        self._index = {id(s): i for i, s in enumerate(samples)}

    def __len__(self) -> int:
        return len(self.usable)

    def get(self, i: int) -> tuple[np.ndarray, list[WheelSlot]]:
        """Pixels ``uint8 (H, W, 3)`` and slots of ``samples[i]``, cached."""
        if i in self._cache:
            self._cache[i] = self._cache.pop(i)  # most recently used last
        else:
            s = self.samples[i]
            self._cache[i] = (s.read_rgb(), wheel_slots(s, self.min_side))
            while len(self._cache) > self.max_cached:
                del self._cache[next(iter(self._cache))]
        return self._cache[i]

    def sample(self, rng: np.random.Generator) -> tuple[WheelSample, list[WheelSlot]]:
        """A random photo with 1-4 usable slots and its slots (its pixels: :meth:`rgb`)."""
        i = self.usable[int(rng.integers(len(self.usable)))]
        return self.samples[i], self.get(i)[1]

    def rgb(self, sample: WheelSample) -> np.ndarray:
        """The cached pixels ``uint8 (H, W, 3)`` of one of the samples (do not modify them).

        Raises:
            KeyError: ``sample`` is not one of this object's samples.
        """
        return self.get(self._index[id(sample)])[0]
