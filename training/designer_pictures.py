"""The pictures a designer sends, made from catalogue-style photos: the photo's wheel (the served
segmenter's best ``wheel`` detection, cut out with its mask) drawn as a close-up, a rendering on white
or a line drawing, in the styles of the segmenter's validation set (b)
(:mod:`designsearch.training.segmenter.synthetic`). Used by ``benchmarks/designer_queries.py`` and by
the Verify calibration's sketch pairs (:mod:`designsearch.training.verify_calibration`).
"""

from __future__ import annotations

import numpy as np

from designsearch.domain import KIND_WHEEL
from designsearch.images import encode_jpeg, encode_png
from designsearch.training.segmenter.synthetic.closeups import WheelCutout, render_closeup
from designsearch.training.segmenter.synthetic.cutouts import cutout_from_mask
from designsearch.training.segmenter.synthetic.drawings import line_drawing

#: Styles :func:`draw` makes.
STYLES = ("closeup", "rendering", "line_drawing")


def wheel_cutout(rgb: np.ndarray, detector, source: str,
                 kinds: tuple[str, ...] | None = (KIND_WHEEL,)) -> WheelCutout | None:
    """The best-scoring detection of ``rgb`` of one of ``kinds`` (default ``wheel``; None = any kind) with a
    wheel-face mask, as a cut-out; or None (no such detection, or none whose mask gives a usable cut-out of
    at least 32 px).

    Args:
        rgb: ``uint8`` ``(H, W, 3)`` photo.
        detector: a :class:`designsearch.services.segmenter.detection.WheelDetector`.
        source: name recorded in the cut-out (the photo's file name).
        kinds: detection kinds accepted (``designsearch.domain.KIND_*``).
    """
    for d in sorted(detector.detect(rgb), key=lambda d: -d.score):
        if (kinds is not None and d.kind not in kinds) or d.mask is None:
            continue
        full = np.zeros(rgb.shape[:2], np.uint8)
        x1, y1, x2, y2 = d.box
        full[y1:y2, x1:x2] = d.mask > 0
        cut = cutout_from_mask(rgb, full, d.box, source, min_side=32)
        if cut is not None:
            return cut
    return None


def draw(cut: WheelCutout, style: str, rng: np.random.Generator, size: int = 512, photos=None) -> bytes:
    """One designer-style picture of a wheel cut-out, encoded (JPEG 92, or PNG for line drawings).

    Styles: ``closeup`` (40-100 % fill, any rotation, oblique half of the time, plain / gradient /
    noise / photographic background — ``photos``, a ``PhotoBackgrounds`` — sometimes no tyre or a new
    finish), ``rendering`` (on white, 50-95 % fill, with its tyre, oblique 30 % of the time, a new
    finish 30 %), ``line_drawing`` (a plain close-up on white, grey or a gradient drawn by
    :func:`designsearch.training.segmenter.synthetic.drawings.line_drawing`).

    Raises:
        ValueError: unknown style.
    """
    if style == "closeup":
        rgb, _ = render_closeup(cut, rng, size, photos=photos, cut_off_p=0.1)
        return encode_jpeg(rgb, 92)
    if style == "rendering":
        rgb, _ = render_closeup(cut, rng, size, fill=(0.5, 0.95), background_kind="white", tyre_p=1.0,
                                cut_off_p=0.0, oblique_p=0.3, recolour_p=0.3)
        return encode_jpeg(rgb, 92)
    if style == "line_drawing":
        kind = ("white", "grey", "gradient")[int(rng.integers(3))]
        rgb, _ = render_closeup(cut, rng, size, background_kind=kind, cut_off_p=0.0, recolour_p=0.0)
        return encode_png(line_drawing(rgb, rng))
    raise ValueError(f"unknown style {style!r}; expected one of {STYLES}")
