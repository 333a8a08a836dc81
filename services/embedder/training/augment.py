"""Training views: augmented photos and edge-map (sketch-like) views, as model input arrays.

Every view goes through the serving conventions: :func:`designsearch.images.edge_map` (the exact
Canny view the embedder service computes for its ``edge`` vector) and
:func:`designsearch.images.to_model_input` (square resize, raw RGB 0..255), so the trained
network sees at training time the pixels it sees when served.

Augmentation (albumentations; Buslaev et al., "Albumentations: Fast and Flexible Image
Augmentations", Information 2020): horizontal flip, affine (rotation, scale, shift; wheels rotate
freely in photos, so wheel crops get a wider rotation range than whole cars), colour jitter,
greyscale, Gaussian/motion blur.
"""

from __future__ import annotations

import albumentations as A
import cv2
import numpy as np

from designsearch.images import edge_map, to_model_input

from .data import DOMAIN_WHEEL

VIEW_PHOTO = "photo"
VIEW_EDGE = "edge"


def photo_augment(domain: str, seed: int) -> A.Compose:
    """The photo augmentation pipeline for ``domain`` (``"car"`` or ``"wheel"``).

    Args:
        domain: ``"wheel"`` gets rotations up to ±45°, ``"car"`` up to ±8°.
        seed: seed of the pipeline's random generator (reproducible views).

    Returns:
        An ``albumentations.Compose`` mapping ``image=uint8 (H, W, 3)`` to the same shape.
    """
    rotate = 45 if domain == DOMAIN_WHEEL else 8
    return A.Compose(
        [
            A.HorizontalFlip(p=0.5),
            A.Affine(
                scale=(0.85, 1.15),
                translate_percent=(-0.06, 0.06),
                rotate=(-rotate, rotate),
                border_mode=cv2.BORDER_REFLECT_101,
                p=0.9,
            ),
            A.ColorJitter(brightness=0.3, contrast=0.3, saturation=0.3, hue=0.05, p=0.8),
            A.ToGray(p=0.1),
            A.OneOf(
                [A.GaussianBlur(blur_limit=(3, 5), sigma_limit=(0.3, 1.5)), A.MotionBlur(blur_limit=(3, 7))],
                p=0.3,
            ),
        ],
        seed=seed,
    )


def make_view(rgb: np.ndarray, kind: str, size: int, augment: A.Compose | None = None) -> np.ndarray:
    """One model-input view of an image.

    Args:
        rgb: ``uint8 (H, W, 3)`` RGB.
        kind: ``"photo"`` or ``"edge"`` (edge map of the, possibly augmented, photo).
        size: model input side, pixels.
        augment: optional photo augmentation applied first.

    Returns:
        ``float32 (3, size, size)``, raw RGB in [0, 255].

    Raises:
        ValueError: unknown ``kind``.
    """
    if augment is not None:
        rgb = augment(image=rgb)["image"]
    if kind == VIEW_EDGE:
        rgb = edge_map(rgb)
    elif kind != VIEW_PHOTO:
        raise ValueError(f"unknown view kind {kind!r}")
    return to_model_input([rgb], size)[0]
