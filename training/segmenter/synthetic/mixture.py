"""The training mixture of the segmenter: car photos, synthetic close-ups, drawings and negatives; Stanford Cars wheels."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from designsearch.training.segmenter.dataset import WheelSample
from designsearch.training.segmenter.synthetic.constants import NEGATIVE_KINDS, SYNTHETIC_NEGATIVE_KINDS
from designsearch.training.segmenter.synthetic.backgrounds import PhotoBackgrounds, remove_wheels
from designsearch.training.segmenter.synthetic.closeups import render_closeup
from designsearch.training.segmenter.synthetic.cutouts import WheelCutout, cutout_from_mask
from designsearch.training.segmenter.synthetic.drawings import line_drawing, render_negative


def stanford_cutouts(data: str | Path, segmenter: str | Path, cache: str | Path, max_class: int = 78,
                     min_score: float = 0.9, min_side: int = 40, log=print) -> list[WheelCutout]:
    """Wheels of Stanford Cars classes ``1..max_class`` that the current segmenter finds confidently.

    The issue's recipe: "segmenter-found wheels of Stanford Cars classes 1-78, kept only where the
    current model is confident". A detection is kept when it is of kind ``wheel``, scores at least
    ``min_score``, both box sides are at least ``min_side`` px and its mask passes the wheel-face
    checks of :func:`cutout_from_mask`. The result is cached (pickle) under ``cache`` keyed by the
    segmenter's sha256 and the parameters.

    Args:
        data: shared data folder holding ``stanford-cars/``.
        segmenter: ONNX file of the segmenter used to find the wheels.
        cache: cache folder.
        max_class: highest class id used (classes above stay unseen).
        min_score, min_side: detection filters.
        log: progress callback.

    Returns:
        The cut-outs (``source`` = the Stanford file name).

    Raises:
        FileNotFoundError: labels or segmenter missing.
    """
    import csv
    import hashlib
    import pickle

    from designsearch.services.segmenter.detection import KIND_WHEEL
    from designsearch.services.segmenter.learned import LearnedWheelDetector

    data, segmenter = Path(data), Path(segmenter)
    sha = hashlib.sha256(segmenter.read_bytes()).hexdigest()[:16]
    path = Path(cache) / f"stanford-cutouts-{sha}-c{max_class}-s{min_score}-m{min_side}.pkl"
    if path.is_file():
        with open(path, "rb") as f:
            return pickle.load(f)
    with open(data / "stanford-cars" / "labels.csv", newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if int(r["class_id"]) <= max_class]
    det = LearnedWheelDetector(segmenter, threads=2)
    out: list[WheelCutout] = []
    for i, r in enumerate(rows):
        bgr = cv2.imread(str(data / "stanford-cars" / r["file"]), cv2.IMREAD_COLOR)
        if bgr is None:
            continue
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        for d in det.detect(rgb):
            if d.kind != KIND_WHEEL or d.score < min_score or d.mask is None:
                continue
            full = np.zeros(rgb.shape[:2], np.uint8)
            x1, y1, x2, y2 = d.box
            full[y1:y2, x1:x2] = d.mask > 0
            c = cutout_from_mask(rgb, full, d.box, r["file"], min_side=min_side)
            if c is not None:
                out.append(c)
        if log and (i + 1) % 500 == 0:
            log(f"stanford cut-outs: {i + 1}/{len(rows)} photos, {len(out)} wheels")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(out, f)
    return out


# ------------------------------------------------------------------------------------------------
# Training mixture
# ------------------------------------------------------------------------------------------------


def _photometric(size: int):
    """Photometric-only augmentation (albumentations) for synthetic pictures, which are already placed."""
    import albumentations as A

    return A.Compose([
        A.ColorJitter(brightness=0.25, contrast=0.25, saturation=0.3, hue=0.04, p=0.6),
        A.OneOf([A.GaussianBlur(blur_limit=(3, 7)), A.MotionBlur(blur_limit=(3, 7))], p=0.25),
        A.GaussNoise(std_range=(0.01, 0.05), p=0.15),
        A.ImageCompression(quality_range=(40, 95), p=0.3),
        A.ToGray(p=0.1),
    ])


class DesignerMixDataset:
    """Torch dataset mixing car photos with the synthetic pictures designers send.

    Each item is, with probability ``photo_p``, a car photo item of
    :class:`~designsearch.training.segmenter.dataset.WheelSegDataset` (whole photo, context close-up or
    zoomed negative, with its augmentation); with probability ``closeup_p`` a synthetic close-up
    (:func:`render_closeup`) of a random training cut-out, a ``line_p`` share of them turned into
    line drawings (:func:`line_drawing`); otherwise a negative (:func:`render_negative`, kinds
    uniform, car photos from the training split; a third of the flat ones pure white). Synthetic
    pictures get :func:`_photometric` augmentation.

    Args:
        photos: :class:`WheelSegDataset` over the training photos.
        cutouts: training cut-outs (Car-Parts training split and Stanford classes 1-78).
        backgrounds: photographic backgrounds from the training split.
        negative_photos: training-split photos for ``car_no_wheels`` negatives.
        size: picture side ``S``, pixels.
        epoch_items: items per epoch (the mixture is sampled, not enumerated).
        photo_p, closeup_p: mixture weights (negatives get the rest).
        line_p: share of close-ups drawn as line drawings.
        car_negative_p: share of negatives that are car photos with the wheels masked out (the
            hardest kind); ``None``: all negative kinds equally likely.
        seed: generator seed.

    Returns per item:
        ``pixels`` float32 ``(3, S, S)`` raw RGB 0..255 and ``mask`` float32 ``(1, S, S)`` 0/1.

    Raises:
        ValueError: no cut-outs, or probabilities outside [0, 1] / summing over 1.
    """

    def __init__(self, photos, cutouts: list[WheelCutout], backgrounds: PhotoBackgrounds,
                 negative_photos: list[WheelSample], size: int, epoch_items: int = 640, photo_p: float = 0.4,
                 closeup_p: float = 0.4, line_p: float = 0.3, car_negative_p: float | None = None,
                 seed: int = 0) -> None:
        if not cutouts:
            raise ValueError("DesignerMixDataset needs wheel cut-outs")
        if not (0 <= photo_p <= 1 and 0 <= closeup_p <= 1 and photo_p + closeup_p <= 1):
            raise ValueError(f"bad mixture photo_p={photo_p} closeup_p={closeup_p}")
        self.photos, self.cutouts, self.backgrounds = photos, cutouts, backgrounds
        self.size, self.epoch_items = size, epoch_items
        if car_negative_p is not None and not 0 <= car_negative_p <= 1:
            raise ValueError(f"bad car_negative_p={car_negative_p}")
        self.photo_p, self.closeup_p, self.line_p = photo_p, closeup_p, line_p
        self.car_negative_p = car_negative_p
        self.rng = np.random.default_rng(seed + 7)
        self.aug = _photometric(size)
        self._neg_photos = negative_photos
        self._inpainted: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return self.epoch_items

    def _negative(self) -> np.ndarray:
        rng, size = self.rng, self.size
        if self.car_negative_p is None:
            kind = NEGATIVE_KINDS[int(rng.integers(len(NEGATIVE_KINDS)))]
        elif rng.random() < self.car_negative_p:
            kind = "car_no_wheels"
        else:
            kind = SYNTHETIC_NEGATIVE_KINDS[int(rng.integers(len(SYNTHETIC_NEGATIVE_KINDS)))]
        if kind == "flat" and rng.random() < 0.33:
            return np.full((size, size, 3), rng.uniform(235, 255), np.uint8)
        if kind == "car_no_wheels":
            i = int(rng.integers(len(self._neg_photos)))
            if i not in self._inpainted:
                s = self._neg_photos[i]
                self._inpainted[i] = remove_wheels(s.read_rgb(), s.mask())
            img = self._inpainted[i]
            if rng.random() < 0.5:
                h, w = img.shape[:2]
                side = int(rng.uniform(0.3, 0.8) * min(h, w))
                y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
                img = img[y:y + side, x:x + side]
            return cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
        return render_negative(kind, size, rng)

    def __getitem__(self, i: int):
        import torch

        rng = self.rng
        r = rng.random()
        if r < self.photo_p:
            return self.photos[int(rng.integers(len(self.photos)))]
        if r < self.photo_p + self.closeup_p:
            c = self.cutouts[int(rng.integers(len(self.cutouts)))]
            rgb, mask = render_closeup(c, rng, self.size, photos=self.backgrounds)
            if rng.random() < self.line_p:
                rgb = line_drawing(rgb, rng)
        else:
            rgb, mask = self._negative(), np.zeros((self.size, self.size), np.uint8)
        rgb = self.aug(image=rgb)["image"]
        pixels = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1))).float()
        target = torch.from_numpy(np.ascontiguousarray(mask)).float()[None]
        return pixels, target
