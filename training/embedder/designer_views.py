"""Designer-style training views of the wheel crops: close-ups, renderings on white and line drawings (issue 9).

For each training wheel crop (classes 1-78 only) the served segmenter's best wheel of the crop's source photo is
cut out with its mask (:func:`designsearch.training.designer_pictures.wheel_cutout`, as the benchmark does;
failing that, the best detection in the crop itself, :func:`crop_cutout`) and drawn in
the styles of :mod:`designsearch.training.designer_pictures` — the pictures ``benchmarks/designer_queries.py``
makes of *validation* wheels — cycling ``closeup``, ``rendering``, ``line_drawing``, seeded per crop. The
pictures are encoded as the benchmark encodes them (JPEG 92 / PNG), decoded, and passed through the
embedder's frozen prefix like any cached view. A crop without a usable cut-out (no detection with a mask,
or a cut-out under 32 px) gets its own picture turned by a random angle instead, so every wheel keeps
``per_item`` rows. In :mod:`.train_distill` these views share their crop's target, so the student learns to
put the pictures a designer sends where the teacher puts the photo's wheel.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from designsearch.domain import VIEW_PHOTO
from designsearch.images import decode_image
from designsearch.training.designer_pictures import STYLES, draw, wheel_cutout

from . import data as D
from .augment import make_view, rotate_about_centre
from .feature_cache import PrefixCacheWriter


def crop_cutout(rgb: np.ndarray, detector, source: str):
    """The highest-scoring detection of ``rgb`` (a wheel crop: usually one ``closeup`` detection) with a
    mask, cut out (:func:`wheel_cutout` over detections of any kind); None when there is none."""
    return wheel_cutout(rgb, detector, source, kinds=None)


def designer_pictures_of(rgb: np.ndarray, detector, per_item: int, rng: np.random.Generator, source: str = "",
                         cut=None) -> tuple[list[np.ndarray], bool]:
    """``per_item`` designer-style pictures of one wheel crop ``rgb``, decoded ``uint8 (512, 512, 3)`` RGB, drawn
    from ``cut`` (a cut-out of its photo's wheel) or else from a cut-out of the crop; the crop turned by a random
    angle, at its own size, when neither is usable.

    Returns:
        ``(pictures, drawn)``; ``drawn`` False when the fall-back was used.
    """
    if cut is None:
        cut = crop_cutout(rgb, detector, source)
    if cut is None:
        return [rotate_about_centre(rgb, float(rng.uniform(0, 360))) for _ in range(per_item)], False
    return [decode_image(draw(cut, STYLES[k % len(STYLES)], rng)) for k in range(per_item)], True


def served_detector():
    """The served INT8 segmenter's detector (one onnxruntime thread), which cuts the wheels out."""
    from designsearch.services.segmenter.learned import LearnedWheelDetector
    from designsearch.settings import SEGMENTER_MODEL_INT8

    return LearnedWheelDetector(SEGMENTER_MODEL_INT8, threads=1)


#: Styles of :func:`designer_pair`'s pictures, drawn uniformly: half line drawings.
PAIR_STYLES = ("line_drawing", "line_drawing", "closeup", "rendering")


def designer_pair(rgb: np.ndarray, detector, rng: np.random.Generator, size: int) -> list[np.ndarray]:
    """A wheel crop's photo view (:func:`.augment.wheel_design_view`) and one designer picture of its wheel
    (:func:`crop_cutout` drawn by :func:`designsearch.training.designer_pictures.draw` in a style of
    :data:`PAIR_STYLES`; the crop turned by a random angle when no cut-out is usable), both ``uint8 (size, size,
    3)`` RGB: a positive pair for :mod:`.train_design`'s ``designer_pairs``."""
    import cv2

    from .augment import wheel_design_view

    cut = crop_cutout(rgb, detector, "")
    style = PAIR_STYLES[int(rng.integers(len(PAIR_STYLES)))]
    picture = decode_image(draw(cut, style, rng)) if cut is not None else rotate_about_centre(rgb, float(rng.uniform(0, 360)))
    square = cv2.resize(picture, (size, size), interpolation=cv2.INTER_AREA)
    return [wheel_design_view(rgb, size, rng, D.DOMAIN_WHEEL, 0.0, 0.1), square]


def cache_designer_views(items: list[D.Item], per_item: int, detector, session: ort.InferenceSession, size: int,
                         seed: int, out: Path, photo_of: dict[str, str] | None = None, batch: int = 64,
                         log: str = "designer views") -> tuple[np.ndarray, dict]:
    """Frozen-prefix feature maps of ``per_item`` designer-style pictures of every *wheel* item, cached.

    Args:
        items: training items; only ``domain == "wheel"`` ones get rows, in their order.
        per_item: pictures per wheel crop (styles cycle closeup, rendering, line_drawing).
        detector: the segmenter that finds the wheel in a crop (``detect(rgb)``).
        session: onnxruntime session of the frozen prefix (input ``pixels``).
        size: model input side, pixels.
        seed: seed of the drawing (crop ``i`` uses ``seed * 1_000_003 + i``).
        out: ``.npy`` cache (float16), reused when its row count matches.
        photo_of: source photo path of each ``image_id``: its best wheel is cut out once per photo and drawn
            for each of its crops; None = cut from the crops only.

    Returns:
        ``(fmaps, stats)``: float16 memory-mapped ``(wheels * per_item, C, s, s)``, row ``w * per_item + k`` =
        picture ``k`` of the ``w``-th wheel item; ``stats`` counts wheels and fall-backs.

    Raises:
        ValueError: ``per_item < 1``.
    """
    if per_item < 1:
        raise ValueError(f"per_item must be >= 1, got {per_item}")
    wheels = [i for i, it in enumerate(items) if it.domain == D.DOMAIN_WHEEL]
    n_views = len(wheels) * per_item
    stats_path = out.with_suffix(".stats.txt")
    if out.is_file():
        arr = np.load(out, mmap_mode="r")
        if arr.shape[0] == n_views:
            fallback = int(stats_path.read_text()) if stats_path.is_file() else -1
            return arr, {"wheels": len(wheels), "per_item": per_item, "fallback_wheels": fallback, "file": str(out)}
    start, fallback = time.time(), 0
    writer = PrefixCacheWriter(session, out, n_views, batch)
    photo_cuts: dict[str, object] = {}
    for w, i in enumerate(wheels):
        rng = np.random.default_rng(seed * 1_000_003 + i)
        image_id = items[i].image_id
        if photo_of and image_id in photo_of and image_id not in photo_cuts:
            photo_cuts[image_id] = wheel_cutout(D.read_image(photo_of[image_id]), detector, photo_of[image_id])
        pictures, drawn = designer_pictures_of(D.load_rgb(items[i]), detector, per_item, rng, items[i].path,
                                               photo_cuts.get(image_id))
        fallback += not drawn
        writer.add([make_view(p, VIEW_PHOTO, size) for p in pictures])
        if (w + 1) % 500 == 0:
            print(f"{log}: {w + 1}/{len(wheels)} wheels, {fallback} without a cut-out, {time.time() - start:.0f} s", flush=True)
    arr = writer.close()
    stats_path.write_text(str(fallback))
    print(f"{log}: {n_views} views in {time.time() - start:.0f} s ({fallback} wheels without a cut-out)", flush=True)
    return arr, {"wheels": len(wheels), "per_item": per_item, "fallback_wheels": fallback,
                                         "file": str(out)}
