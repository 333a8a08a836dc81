"""The segmenter's validation sets (b) close-ups/renderings/drawings and (c) negatives, from validation-split photos only."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from designsearch.training.segmenter.dataset import WheelSample
from designsearch.training.segmenter.synthetic.constants import NEGATIVE_KINDS
from designsearch.training.segmenter.synthetic.backgrounds import PhotoBackgrounds
from designsearch.training.segmenter.synthetic.closeups import render_closeup
from designsearch.training.segmenter.synthetic.cutouts import cutouts_from_sample
from designsearch.training.segmenter.synthetic.drawings import line_drawing, render_negative


@dataclass
class ValItem:
    """One validation picture.

    Attributes:
        name: unique id, ``"<style>/<source photo>#<k>"``.
        style: one of :data:`VAL_STYLES` (set b) or :data:`NEGATIVE_KINDS` (set c).
        rgb: ``uint8 (S, S, 3)``.
        mask: ``uint8 (S, S)`` 0/1 true wheel mask (all zero for negatives).
        box: true wheel box ``(x1, y1, x2, y2)`` pixels (x2/y2 exclusive), ``None`` for negatives.
    """

    name: str
    style: str
    rgb: np.ndarray
    mask: np.ndarray
    box: tuple[int, int, int, int] | None


def mask_box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """Bounding box ``(x1, y1, x2, y2)`` (x2/y2 exclusive) of the nonzero pixels, or ``None``."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return None
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def closeup_set(samples: list[WheelSample], seed: int = 0, size: int = 512, min_side: int = 28,
                per_wheel: int = 2) -> list[ValItem]:
    """Validation set (b): every wheel of ``samples`` as a close-up, a rendering on white and a line drawing.

    ``closeup``: random background (photographic ones from ``samples`` only), rotation 0-360,
    oblique view half of the time, 40-100 % fill, a tenth partly cut off; ``rendering``: on white,
    tyre kept, no cut-off, 50-95 % fill; ``line_drawing``: a :func:`line_drawing` of a close-up on
    a plain background.

    Args:
        samples: validation-split photos (never training ones).
        seed: one seed for the whole set.
        size: picture side, pixels.
        min_side: wheels smaller than this (box side, pixels) in their photo are skipped.
        per_wheel: pictures of each style per wheel.

    Returns:
        Items ordered by source photo, wheel, style.
    """
    rng = np.random.default_rng(seed)
    photos = PhotoBackgrounds(samples)
    items: list[ValItem] = []
    for s in samples:
        cuts = cutouts_from_sample(s, min_side=min_side)
        for k, c in [(f"{i}.{j}", c) for i, c in enumerate(cuts) for j in range(per_wheel)]:
            rgb, mask = render_closeup(c, rng, size, photos=photos, cut_off_p=0.1)
            items.append(ValItem(f"closeup/{s.file_name}#{k}", "closeup", rgb, mask, mask_box(mask)))
            rgb, mask = render_closeup(c, rng, size, fill=(0.5, 0.95), background_kind="white", tyre_p=1.0, cut_off_p=0.0,
                                       oblique_p=0.3, recolour_p=0.3)
            items.append(ValItem(f"rendering/{s.file_name}#{k}", "rendering", rgb, mask, mask_box(mask)))
            bgk = ("white", "grey", "gradient")[int(rng.integers(3))]
            rgb, mask = render_closeup(c, rng, size, background_kind=bgk, cut_off_p=0.0, recolour_p=0.0)
            items.append(ValItem(f"line_drawing/{s.file_name}#{k}", "line_drawing", line_drawing(rgb, rng), mask,
                                 mask_box(mask)))
    return items


def negative_set(samples: list[WheelSample], seed: int = 0, size: int = 512, per_kind: int = 30) -> list[ValItem]:
    """Validation set (c): ``per_kind`` pictures of each of :data:`NEGATIVE_KINDS`, no wheel in any.

    ``car_no_wheels`` uses ``samples`` (validation-split photos) with the wheels painted out.
    """
    rng = np.random.default_rng(seed + 1)
    items = []
    for kind in NEGATIVE_KINDS:
        for k in range(per_kind):
            rgb = render_negative(kind, size, rng, samples)
            items.append(ValItem(f"{kind}#{k}", kind, rgb, np.zeros((size, size), np.uint8), None))
    return items


def build_validation_sets(val_samples: list[WheelSample], seed: int = 0, size: int = 512) -> dict[str, list[ValItem]]:
    """Sets (b) ``closeups`` and (c) ``negatives`` from validation-split photos only.

    Returns:
        ``{"closeups": [...], "negatives": [...]}``.
    """
    return {"closeups": closeup_set(val_samples, seed, size), "negatives": negative_set(val_samples, seed, size)}


def write_validation_sets(sets: dict[str, list[ValItem]], out: str | Path) -> Path:
    """Write the pictures (``<out>/<set>/<style>/<k>.jpg``) and masks (``..._mask.png``) for people to look at.

    Returns:
        ``out``.
    """
    out = Path(out)
    for set_name, items in sets.items():
        for i, it in enumerate(items):
            d = out / set_name / it.style
            d.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(d / f"{i:04d}.jpg"), cv2.cvtColor(it.rgb, cv2.COLOR_RGB2BGR))
            cv2.imwrite(str(d / f"{i:04d}_mask.png"), it.mask * 255)
    return out
