"""Training views: augmented photos and edge-map (sketch-like) views, as model input arrays.

Every view goes through the serving conventions: :func:`designsearch.images.edge_map` (the exact
Canny view the embedder service computes for its ``lines`` vector) and
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

from designsearch.domain import VIEW_LINES, VIEW_PHOTO
from designsearch.images import edge_map, to_model_input

from .data import DOMAIN_WHEEL


def photo_augment(domain: str, seed: int, wheel_rotation: float = 45.0) -> A.Compose:
    """The photo augmentation pipeline for ``domain`` (``"car"`` or ``"wheel"``).

    Args:
        domain: ``"wheel"`` gets rotations up to ±``wheel_rotation`` degrees, ``"car"`` up to ±8°.
        seed: seed of the pipeline's random generator (reproducible views).
        wheel_rotation: largest wheel rotation in degrees (180 = any angle: a wheel rotated about
            its centre is the same design).

    Returns:
        An ``albumentations.Compose`` mapping ``image=uint8 (H, W, 3)`` to the same shape.
    """
    rotate = wheel_rotation if domain == DOMAIN_WHEEL else 8
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
        kind: ``"photo"`` or ``"lines"`` (edge map of the, possibly augmented, photo).
        size: model input side, pixels.
        augment: optional photo augmentation applied first.

    Returns:
        ``float32 (3, size, size)``, raw RGB in [0, 255].

    Raises:
        ValueError: unknown ``kind``.
    """
    if augment is not None:
        rgb = augment(image=rgb)["image"]
    if kind == VIEW_LINES:
        rgb = edge_map(rgb)
    elif kind != VIEW_PHOTO:
        raise ValueError(f"unknown view kind {kind!r}")
    return to_model_input([rgb], size)[0]


def rotate_about_centre(rgb: np.ndarray, angle_deg: float, border: str = "replicate") -> np.ndarray:
    """Rotate an image about its centre, keeping its size (a wheel rotated is the same design).

    Args:
        rgb: ``uint8 (H, W, 3)``.
        angle_deg: counter-clockwise angle, degrees (any value; 360 = identity).
        border: ``"replicate"`` (edge pixels repeated) or ``"grey"`` (constant 128).

    Returns:
        ``uint8 (H, W, 3)``.

    Raises:
        ValueError: unknown ``border``.
    """
    if border not in ("replicate", "grey"):
        raise ValueError(f"unknown border {border!r}; expected 'replicate' or 'grey'")
    h, w = rgb.shape[:2]
    m = cv2.getRotationMatrix2D(((w - 1) / 2.0, (h - 1) / 2.0), float(angle_deg), 1.0)
    if border == "replicate":
        return cv2.warpAffine(rgb, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return cv2.warpAffine(rgb, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=(128, 128, 128))


# --- Stroke styles (line-drawing views) --------------------------------------------------------

STROKE_STYLES = ("canny", "canny_thick", "pencil", "threshold")


def stroke_view(rgb: np.ndarray, style: str) -> np.ndarray:
    """A line-drawing rendering of ``rgb`` (dark strokes on white), as a sketch or CAD view would be.

    Styles: ``"canny"`` — :func:`designsearch.images.edge_map` (the served edge view);
    ``"canny_thick"`` — the same lines dilated to 2-3 px strokes; ``"pencil"`` — colour-dodge
    pencil sketch (grey / blurred inverted grey); ``"threshold"`` — adaptive-threshold ink drawing.

    Args:
        rgb: ``uint8 (H, W, 3)``.
        style: one of :data:`STROKE_STYLES`.

    Returns:
        ``uint8 (h, w, 3)`` grey-level drawing (``canny*``: longest side 224 px, else ``(H, W)``).

    Raises:
        ValueError: unknown style.
    """
    if style == "canny":
        return edge_map(rgb)
    if style == "canny_thick":
        lines = edge_map(rgb)
        return cv2.erode(lines, np.ones((2, 2), np.uint8))
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    if style == "pencil":
        blur = cv2.GaussianBlur(255 - grey, (0, 0), 3.0)
        sketch = cv2.divide(grey, 255 - blur, scale=256)
        return np.repeat(np.clip(sketch, 0, 255).astype(np.uint8)[:, :, None], 3, axis=2)
    if style == "threshold":
        g = cv2.GaussianBlur(grey, (0, 0), 1.0)
        ink = cv2.adaptiveThreshold(g, 255, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY, 11, 6)
        return np.repeat(ink[:, :, None], 3, axis=2)
    raise ValueError(f"unknown stroke style {style!r}; expected one of {STROKE_STYLES}")


def wheel_design_view(
    rgb: np.ndarray, size: int, rng: np.random.Generator, domain: str = DOMAIN_WHEEL,
    p_stroke: float = 0.2, p_tyre_mask: float = 0.25,
) -> np.ndarray:
    """One random view of an image under the invariances of a wheel design (instance discrimination).

    The augmentation family of SimCLR (Chen et al., "A Simple Framework for Contrastive Learning
    of Visual Representations", ICML 2020), adapted to wheels: for ``domain == "wheel"``
    rotation uniform in [0, 360) degrees about the centre, perspective foreshortening along a
    random axis (a wheel seen at an angle is an ellipse: axis ratio 0.55-1) with a small
    projective term, scale 0.8-1.2 and shift ±6 %, horizontal flip, tyre masked (outside a centred
    disc of radius 0.30-0.45 x side painted grey/white/black) or not, lighting (brightness,
    contrast, gamma), colour/finish (hue, saturation, greyscale, channel shuffle), Gaussian blur or
    down-up sampling, and with probability ``p_stroke`` a line-drawing view
    (:func:`stroke_view`, one of :data:`STROKE_STYLES`). Whole cars (``domain == "car"``) get
    rotation ±8 degrees, mild perspective and no tyre mask. Borders are replicated (as the
    ``wheel_partner_rot`` evaluation does).

    Args:
        rgb: ``uint8 (H, W, 3)`` RGB (any size; squeezed to a square like
            :func:`designsearch.images.to_model_input`).
        size: output side, pixels.
        rng: random generator (the only source of randomness: reproducible with a seed).
        domain: ``"wheel"`` or ``"car"``.
        p_stroke: probability of a line-drawing view.
        p_tyre_mask: probability of masking the tyre (wheels only).

    Returns:
        ``uint8 (size, size, 3)`` RGB.
    """
    wheel = domain == DOMAIN_WHEEL
    h, w = rgb.shape[:2]
    stroke = rng.random() < p_stroke
    out = 224 if stroke else size  # strokes are drawn at the served edge-map resolution
    # Geometry: map the source square onto an out x out canvas in one perspective warp.
    src = np.float32([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]])
    c = (out - 1) / 2.0
    base = np.float32([[-c, -c], [c, -c], [c, c], [-c, c]])
    scale = rng.uniform(0.8, 1.2) if wheel else rng.uniform(0.85, 1.15)
    pts = base * scale
    if rng.random() < 0.5:
        pts[:, 0] *= -1  # horizontal flip
        pts = pts[[1, 0, 3, 2]]
    angle = rng.uniform(0, 2 * np.pi) if wheel else np.deg2rad(rng.uniform(-8, 8))
    if wheel and rng.random() < 0.6:
        # Foreshortening along a random axis (circle -> ellipse), applied after the in-plane rotation.
        axis = rng.uniform(0, np.pi)
        ratio = rng.uniform(0.55, 1.0)
        ca, sa = np.cos(axis), np.sin(axis)
        r_axis = np.float32([[ca, -sa], [sa, ca]])
        squash = r_axis @ np.diag([ratio, 1.0]).astype(np.float32) @ r_axis.T
    else:
        squash = np.eye(2, dtype=np.float32)
    ca, sa = np.cos(angle), np.sin(angle)
    rot = np.float32([[ca, -sa], [sa, ca]])
    pts = pts @ (squash @ rot).T
    pts += rng.normal(0, 0.04 if wheel else 0.02, size=pts.shape).astype(np.float32) * out  # projective jitter
    pts += (rng.uniform(-0.06, 0.06, size=2) * out).astype(np.float32)
    pts += c
    m = cv2.getPerspectiveTransform(src, pts.astype(np.float32))
    img = cv2.warpPerspective(rgb, m, (out, out), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    if wheel and rng.random() < p_tyre_mask:
        radius = rng.uniform(0.30, 0.45) * out
        yy, xx = np.mgrid[:out, :out]
        outside = (xx - c) ** 2 + (yy - c) ** 2 > radius**2
        img = img.copy()
        img[outside] = (128, 255, 0)[rng.integers(0, 3)]
    if stroke:
        img = stroke_view(img, STROKE_STYLES[rng.integers(0, len(STROKE_STYLES))])
        return cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
    # Photometric: lighting and colour/finish.
    f = img.astype(np.float32)
    if rng.random() < 0.8:
        f = f * rng.uniform(0.65, 1.35) + rng.uniform(-30, 30)
        mean = f.mean()
        f = (f - mean) * rng.uniform(0.65, 1.35) + mean
    f = np.clip(f, 0, 255)
    if rng.random() < 0.3:
        f = 255.0 * (f / 255.0) ** rng.uniform(0.7, 1.5)
    img = f.astype(np.uint8)
    if rng.random() < 0.5:
        hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV)
        hsv[..., 0] = ((hsv[..., 0].astype(np.int32) + int(rng.integers(-18, 19))) % 180).astype(np.uint8)
        hsv[..., 1] = np.clip(hsv[..., 1] * rng.uniform(0.5, 1.5), 0, 255).astype(np.uint8)
        img = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    if rng.random() < 0.15:
        img = img[:, :, rng.permutation(3)]
    if rng.random() < 0.2:
        img = np.repeat(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)[:, :, None], 3, axis=2)
    r = rng.random()
    if r < 0.25:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.3, 1.6))
    elif r < 0.4:
        small = max(16, int(size * rng.uniform(0.35, 0.7)))
        img = cv2.resize(cv2.resize(img, (small, small), interpolation=cv2.INTER_AREA), (size, size),
                         interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(img)
