"""The segmenter's REAL validation (and training) pictures, and how a detector is scored on them (issue 30).

Sets, all read from the shared data folder (never copied into the project):

* ``car-parts-50`` rims (``wheel-pictures/car-parts-50``, split ``val``: 53, ``train``: 136): one real
  product shot of a rim filling the frame on a plain background. Their reference mask is derived from the
  plain background (:func:`plain_background_mask`: border colour, flood fill from the frame, holes filled,
  convex hull), checked by eye on ``docs/segmenter-real-masks.jpg``; the reference box is that mask's box.
* ``car-parts-50`` look-alikes (split ``val``: 757; ``train``: 1,792): brake rotors, clutch and pressure
  plates, torque converters, fans, lights, … — no wheel.
* ``wheel-vision`` (41 pictures of 10 real designs, all held out: too few to split): 16 cut-outs whose alpha
  channel is the mask, composited on white; 13 with a brake caliper behind, composited on grey (alpha =
  wheel + caliper inside it); 12 composites of one car in side view wearing them, whose two wheel boxes
  are where the 12 pictures differ (:func:`wheel_vision_on_car_boxes`).
* the wheel-design engine's validation designs (``designsearch render-wheels``, manifest ``split`` ``val``,
  never trained on) and its renders of the 15 real rim models (``split`` ``real``): studio renders, line
  drawings (mask and box from the rasteriser), on-car composites (every wheel's box).

Scoring (:func:`score_set`), per picture: ``one_whole`` = exactly one detection whose box has IoU ≥ 0.8
with the reference box; ``none`` = no detection; ``sub_part`` = the best-scoring detection's box covers
under 10 % of the picture (a hub cap, a spoke gap; reported for close-up sets, whose reference boxes all
cover ≥ 25 % of the picture); for sets with several wheels per picture (on-car),
precision and recall of boxes at IoU ≥ 0.5 (greedy matching, :func:`~.matching.match_instances`); for
wheel-free sets ``no_detection``. Every share comes with its 95 % Wilson score interval (Wilson, JASA 1927;
:func:`wilson_interval`) and its count.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from designsearch.services.segmenter.detection import box_iou
from designsearch.training.segmenter.dataset import default_data_dir
from designsearch.training.segmenter.matching import match_instances
from designsearch.training.segmenter.synthetic.valsets import mask_box

#: Box IoU with the reference box for a single detection to be the whole wheel (as set (b)).
WHOLE_IOU = 0.8
#: A best box covering less than this share of the picture is a sub-part (hub cap, spoke gap, lug nut).
SUB_PART_AREA = 0.10
#: A set is of close-ups (``sub_part`` reported) when every reference box covers at least this share of its picture.
CLOSEUP_AREA = 0.25
#: Box IoU for a detection to match a wheel of a multi-wheel picture.
MATCH_IOU = 0.5

PARTS50 = Path("wheel-pictures") / "car-parts-50"
#: Reference boxes set by eye where :func:`plain_background_mask` is wrong on a ``car-parts-50`` validation rim
#: (a black rim on black, a rim on a busy background; ``docs/segmenter-real-masks.jpg`` shows all 53).
REFERENCE_BOX_OVERRIDES: dict[str, tuple[int, int, int, int]] = {
    "car-parts-50/rim/train-128.jpg": (30, 0, 212, 224),
    "car-parts-50/rim/train-151.jpg": (24, 0, 222, 224),
    "car-parts-50/rim/train-175.jpg": (0, 5, 222, 212),  # worn rim on cardboard and concrete: the hull took the card
    "car-parts-50/rim/valid-1.jpg": (8, 1, 223, 224),
    "car-parts-50/rim/valid-3.jpg": (7, 3, 222, 224),
}
WHEEL_VISION = Path("wheel-pictures") / "wheel-vision"


@dataclass
class RealItem:
    """One real (or engine) picture with what is known about its wheels.

    Attributes:
        name: unique id (the file path relative to the data folder or the set folder).
        set: name of the set it belongs to (e.g. ``"car-parts-50 rims"``).
        rgb: ``uint8 (H, W, 3)``.
        boxes: reference wheel boxes ``(x1, y1, x2, y2)`` px (x2/y2 exclusive); empty for a wheel-free picture.
        mask: ``uint8 (H, W)`` 0/1 reference wheel mask, or ``None`` where only boxes are known.
    """

    name: str
    set: str
    rgb: np.ndarray
    boxes: list[tuple[int, int, int, int]] = field(default_factory=list)
    mask: np.ndarray | None = None


def wilson_interval(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of a proportion ``k / n`` (Wilson, JASA 22, 1927); ``(0, 1)`` for ``n = 0``."""
    if n <= 0:
        return 0.0, 1.0
    p = k / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def share(k: int, n: int) -> dict:
    """``{"k", "n", "share", "ci95"}`` of a count ``k`` out of ``n``."""
    return {"k": int(k), "n": int(n), "share": k / n if n else float("nan"), "ci95": wilson_interval(k, n)}


def _area(box: tuple[int, int, int, int]) -> int:
    return max(0, box[2] - box[0]) * max(0, box[3] - box[1])


def plain_background_mask(rgb: np.ndarray, step: int = 3) -> np.ndarray:
    """Mask of the object on a plain (white, grey, black or smoothly graded) product-shot background.

    The background is grown from the picture's frame by flood fill with a floating range (each pixel
    joins when it is within ``step`` grey levels per channel of a neighbour already in: a smooth
    gradient is followed, an object edge stops it; ``cv2.floodFill`` without ``FLOODFILL_FIXED_RANGE``),
    seeded at every 8th frame pixel, on a 3x3 median-filtered copy (JPEG noise). The largest remaining
    component is the object and its convex hull the mask (a wheel's silhouette, the ellipse of the face plus
    the barrel at 3/4 views, is convex), so spoke gaps, which show background, belong to the wheel.

    Args:
        rgb: ``uint8 (H, W, 3)``.
        step: flood-fill neighbour tolerance, grey levels per channel.

    Returns:
        ``uint8 (H, W)`` 0/1; all zero when nothing stands out from the background.
    """
    h, w = rgb.shape[:2]
    img = cv2.medianBlur(np.ascontiguousarray(rgb), 3)
    fill = np.zeros((h + 2, w + 2), np.uint8)
    flags = 4 | cv2.FLOODFILL_MASK_ONLY | (1 << 8)
    seeds = [(x, y) for x in range(0, w, 8) for y in (0, h - 1)] + [(x, y) for y in range(0, h, 8) for x in (0, w - 1)]
    for x, y in seeds:
        if not fill[y + 1, x + 1]:
            cv2.floodFill(img, fill, (x, y), 0, (step,) * 3, (step,) * 3, flags)
    obj = (1 - fill[1:-1, 1:-1]).astype(np.uint8)
    obj = cv2.morphologyEx(obj, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    n, lab, stats, _ = cv2.connectedComponentsWithStats(obj, connectivity=8)
    if n <= 1:
        return np.zeros((h, w), np.uint8)
    big = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    hull = cv2.convexHull(cv2.findNonZero((lab == big).astype(np.uint8)))
    out = np.zeros((h, w), np.uint8)
    cv2.fillConvexPoly(out, hull, 1)
    return out


def _read_rgb(path: Path, background: tuple[int, int, int] | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """RGB of a picture and its alpha (0/1, ``None`` without one), composited on ``background`` if it has alpha."""
    im = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if im is None:
        raise FileNotFoundError(f"cannot read {path}")
    if im.ndim == 2:
        im = cv2.cvtColor(im, cv2.COLOR_GRAY2BGR)
    alpha = None
    if im.shape[2] == 4:
        a = im[:, :, 3:].astype(np.float32) / 255.0
        bg = np.array(background or (255, 255, 255), np.float32)[::-1]
        im = (im[:, :, :3].astype(np.float32) * a + bg * (1 - a)).round().astype(np.uint8)
        alpha = (a[:, :, 0] > 0.5).astype(np.uint8)
    return cv2.cvtColor(im[:, :, :3], cv2.COLOR_BGR2RGB), alpha


def carparts50_rows(data: str | Path | None = None) -> list[dict]:
    """Rows of ``car-parts-50/labels.csv`` (``file`` relative to ``wheel-pictures/``).

    Raises:
        FileNotFoundError: the set is not in the data folder.
    """
    path = Path(data or default_data_dir()) / PARTS50 / "labels.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found (../shared/data/wheel-pictures)")
    with path.open(encoding="utf-8") as f:
        return list(csv.DictReader(f))


def carparts50_items(data: str | Path | None = None, split: str = "val", wheel: str = "rim") -> list[RealItem]:
    """The ``car-parts-50`` pictures of one split: rims (``wheel="rim"``, reference mask/box from
    :func:`plain_background_mask`) or look-alikes (``wheel="not_wheel"``, no boxes).

    Raises:
        FileNotFoundError: the set is missing.
        ValueError: ``split`` or ``wheel`` unknown.
    """
    if split not in ("train", "val") or wheel not in ("rim", "not_wheel"):
        raise ValueError(f"unknown split {split!r} or wheel {wheel!r}")
    root = Path(data or default_data_dir()) / "wheel-pictures"
    items = []
    for r in carparts50_rows(data):
        if r["split"] != split or r["wheel"] != wheel:
            continue
        rgb, _ = _read_rgb(root / r["file"])
        if wheel == "rim":
            mask = plain_background_mask(rgb)
            box = REFERENCE_BOX_OVERRIDES.get(r["file"]) or mask_box(mask)
            items.append(RealItem(r["file"], f"car-parts-50 {split} rims", rgb, [box] if box else [], mask))
        else:
            items.append(RealItem(r["file"], f"car-parts-50 {split} look-alikes", rgb))
    return items


def wheel_vision_rows(data: str | Path | None = None) -> list[dict]:
    """Rows of ``wheel-vision/labels.csv``. Raises FileNotFoundError when the set is missing."""
    path = Path(data or default_data_dir()) / WHEEL_VISION / "labels.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found (../shared/data/wheel-pictures)")
    with path.open(encoding="utf-8") as f:
        return list(csv.DictReader(f))


def wheel_vision_on_car_boxes(pictures: list[np.ndarray], min_area: float = 0.002) -> list[tuple[int, int, int, int]]:
    """Wheel boxes of ``wheel-vision``'s on-car composites: one car photo wearing 12 different wheels.

    Everything but the wheels is the same in all of them, so the wheels are where the pictures differ:
    the per-pixel standard deviation over the pictures (grey levels) above 12, closed with a 15x15
    kernel, holes filled; its connected components larger than ``min_area`` of the picture are the wheels.

    Args:
        pictures: ``uint8 (H, W, 3)`` pictures of the same size, ≥ 3.

    Returns:
        Boxes ``(x1, y1, x2, y2)`` sorted by x1.

    Raises:
        ValueError: fewer than 3 pictures or different sizes.
    """
    if len(pictures) < 3 or len({p.shape for p in pictures}) != 1:
        raise ValueError("need >= 3 pictures of one size")
    grey = np.stack([cv2.cvtColor(p, cv2.COLOR_RGB2GRAY).astype(np.float32) for p in pictures])
    diff = (grey.std(axis=0) > 12).astype(np.uint8)
    diff = cv2.morphologyEx(diff, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    diff = cv2.morphologyEx(diff, cv2.MORPH_CLOSE, np.ones((15, 15), np.uint8))
    h, w = diff.shape
    n, _, stats, _ = cv2.connectedComponentsWithStats(diff, connectivity=8)
    boxes = [(int(x), int(y), int(x + bw), int(y + bh)) for x, y, bw, bh, a in stats[1:]
             if a >= min_area * h * w]
    return sorted(boxes)


def wheel_vision_items(data: str | Path | None = None) -> dict[str, list[RealItem]]:
    """``wheel-vision``'s three sets: ``"wheel-vision cut-outs"`` (on white), ``"wheel-vision with caliper"``
    (on grey 128) — reference mask = alpha — and ``"wheel-vision on-car"`` (two wheel boxes each).

    Raises:
        FileNotFoundError: the set is missing.
    """
    root = Path(data or default_data_dir()) / "wheel-pictures"
    sets: dict[str, list[RealItem]] = {"wheel-vision cut-outs": [], "wheel-vision with caliper": [],
                                       "wheel-vision on-car": []}
    on_car = []
    for r in wheel_vision_rows(data):
        if r["kind"] == "on_car_composite":
            on_car.append((r["file"], _read_rgb(root / r["file"])[0]))
            continue
        name = "wheel-vision cut-outs" if r["kind"] == "cutout_rgba" else "wheel-vision with caliper"
        bg = (255, 255, 255) if r["kind"] == "cutout_rgba" else (128, 128, 128)
        rgb, alpha = _read_rgb(root / r["file"], bg)
        if alpha is None:  # no alpha: the plain background gives the mask
            alpha = plain_background_mask(rgb)
        box = mask_box(alpha)
        sets[name].append(RealItem(r["file"], name, rgb, [box] if box else [], alpha))
    if on_car:
        boxes = wheel_vision_on_car_boxes([p for _, p in on_car])
        sets["wheel-vision on-car"] = [RealItem(f, "wheel-vision on-car", p, list(boxes)) for f, p in on_car]
    return sets


def engine_items(set_dir: str | Path, split: str = "val", kinds: tuple[str, ...] = ("render", "drawing", "oncar"),
                 limit_per_kind: int | None = None) -> dict[str, list[RealItem]]:
    """Pictures of a ``designsearch render-wheels`` set, one list per kind: ``"engine <split> <kind>s"``.

    Args:
        set_dir: the set folder (holding ``manifest.csv``).
        split: manifest split: ``val`` (validation designs) or ``real`` (the 15 real rim models).
        kinds: manifest kinds to read.
        limit_per_kind: keep the first N of each kind (manifest order: designs sorted by id).

    Raises:
        FileNotFoundError: no manifest in ``set_dir``.
    """
    set_dir = Path(set_dir)
    manifest = set_dir / "manifest.csv"
    if not manifest.is_file():
        raise FileNotFoundError(f"{manifest} not found (run designsearch render-wheels first)")
    out: dict[str, list[RealItem]] = {}
    with manifest.open(encoding="utf-8") as f:
        for r in csv.DictReader(f):
            if r["split"] != split or r["kind"] not in kinds:
                continue
            name = f"engine {split} {r['kind']}s"
            lst = out.setdefault(name, [])
            if limit_per_kind is not None and len(lst) >= limit_per_kind:
                continue
            rgb = cv2.cvtColor(cv2.imread(str(set_dir / r["file"]), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
            boxes = [tuple(int(v) for v in b) for b in json.loads(r["boxes"] or "[]")]
            mask = None
            if r["kind"] != "oncar" and r["mask_file"]:
                m = cv2.imread(str(set_dir / r["mask_file"]), cv2.IMREAD_GRAYSCALE)
                mask = (m > 0).astype(np.uint8) if m is not None else None
            lst.append(RealItem(r["file"], name, rgb, boxes, mask))
    return out


def score_set(detector, items: list[RealItem]) -> dict:
    """Score ``detector`` (``detect(rgb) -> list[Detection]``) on one set.

    Returns:
        ``{"set", "n", "one_whole", "none", "sub_part", "any_detection"}`` (each :func:`share`), plus for
        sets whose pictures hold several wheels ``"recall"``, ``"precision"`` (boxes at IoU ≥ 0.5) and
        ``"all_found"`` (pictures whose every wheel was matched), and ``"failures"`` (name, detections, best
        IoU, best box area share) of the pictures that are not ``one_whole`` (single-wheel sets) or that have
        a detection (wheel-free sets).
    """
    n = len(items)
    one = none = sub = tp = n_det = n_gt = all_found = 0
    multi = any(len(it.boxes) > 1 for it in items)
    closeups = bool(items) and not multi and all(
        it.boxes and _area(it.boxes[0]) >= CLOSEUP_AREA * it.rgb.shape[0] * it.rgb.shape[1] for it in items)
    failures = []
    for it in items:
        dets = detector.detect(it.rgb)
        h, w = it.rgb.shape[:2]
        none += not dets
        n_det += len(dets)
        n_gt += len(it.boxes)
        best = max(dets, key=lambda d: d.score) if dets else None
        small = best is not None and best.area < SUB_PART_AREA * h * w
        sub += small
        if it.boxes:
            m = match_instances(dets, it.boxes, MATCH_IOU)
            tp += m
            all_found += m == len(it.boxes)
            best_iou = max((box_iou(d.box, b) for d in dets for b in it.boxes), default=0.0)
            whole = len(it.boxes) == 1 and len(dets) == 1 and best_iou >= WHOLE_IOU
            one += whole
            if not whole and (not multi or m < len(it.boxes)):
                failures.append({"name": it.name, "det": len(dets), "best_iou": round(best_iou, 3),
                                 "best_area": round(best.area / (h * w), 3) if best else 0.0})
        elif dets:
            failures.append({"name": it.name, "det": len(dets), "score": round(best.score, 3),
                             "best_area": round(best.area / (h * w), 3)})
    out = {"set": items[0].set if items else "", "n": n, "none": share(none, n), "any_detection": share(n - none, n)}
    if closeups:
        out["sub_part"] = share(sub, n)
    if any(it.boxes for it in items):
        out["one_whole"] = share(one, n)
        if multi:
            out["recall"] = share(tp, n_gt)
            out["precision"] = share(tp, n_det)
            out["all_found"] = share(all_found, n)
    else:
        out["no_detection"] = share(none, n)
    out["failures"] = failures
    return out


def real_sets(data: str | Path | None = None, engine_set: str | Path | None = None,
              engine_limit: int | None = 200) -> dict[str, list[RealItem]]:
    """Every real validation set (and the engine's validation sets when ``engine_set`` is given), by name.

    ``engine_limit`` caps each engine kind (manifest order) to keep the evaluation to a few minutes.
    """
    sets = {}
    sets["car-parts-50 val rims"] = carparts50_items(data, "val", "rim")
    sets["car-parts-50 val look-alikes"] = carparts50_items(data, "val", "not_wheel")
    sets.update(wheel_vision_items(data))
    if engine_set is not None:
        for split in ("val", "real"):
            sets.update(engine_items(engine_set, split, limit_per_kind=engine_limit))
    return sets


def evaluate_real(detectors: list, data: str | Path | None = None, engine_set: str | Path | None = None,
                  engine_limit: int | None = 200) -> dict:
    """Score every detector on every set of :func:`real_sets`: ``{set name: [per-detector score_set dict]}``."""
    sets = real_sets(data, engine_set, engine_limit)
    return {name: [dict(score_set(d, items), detector=getattr(d, "name", type(d).__name__)) for d in detectors]
            for name, items in sets.items() if items}


def _fmt(s: dict | None) -> str:
    if not s:
        return f"{'—':>22}"
    lo, hi = s["ci95"]
    return f"{s['share']:>6.3f} [{lo:.2f},{hi:.2f}] {s['k']:>4}"


def format_real_table(report: dict) -> str:
    """Plain-text table of :func:`evaluate_real`: one row per set and detector, share [95 % CI] count."""
    cols = ["one_whole", "none", "sub_part", "no_detection", "recall", "precision"]
    lines = [f"{'set':<32}{'detector':<14}{'n':>5}" + "".join(f"{c:>23}" for c in cols)]
    for name, rows in report.items():
        for r in rows:
            lines.append(f"{name[:31]:<32}{r['detector'][:13]:<14}{r['n']:>5}" + "".join(_fmt(r.get(c)) for c in cols))
    return "\n".join(lines)
