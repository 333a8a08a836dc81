"""Car-Parts-Segmentation wheels: COCO polygons → image, binary wheel mask and wheel instances.

Data: Car-Parts-Segmentation v2 (Pasupa, Kittiworapanya, Hongngern, Woraratpanya, "Evaluation of
deep learning algorithms for semantic segmentation of car parts", Complex & Intelligent Systems,
2021, doi:10.1007/s40747-021-00397-8; GitHub dsmlr/Car-Parts-Segmentation). No licence is stated;
treated as research data. The files are read from a path and never copied into the repository.

Layout expected under ``<data>/car-parts-seg/``: ``annotations.json`` (COCO; category ``wheel``)
and ``JPEGImages/trainN.jpg``. Some single COCO annotations hold several wheels as several
polygons; they are split into instances by connected components of the rasterised polygons
(pieces of one occluded wheel whose boxes overlap are merged back, slivers are dropped).

This module needs only NumPy/OpenCV (and albumentations for :func:`build_augmentation`); the
torch ``Dataset`` lives in :class:`WheelSegDataset` and imports torch lazily.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from designsearch.settings import default_data_dir

#: Name of the COCO category holding wheels (wheel and tyre together).
WHEEL_CATEGORY = "wheel"
#: Sub-folder of the data root holding the dataset.
SUBDIR = "car-parts-seg"
#: Connected components smaller than this (pixels of the 512 px image) are annotation slivers.
MIN_INSTANCE_PIXELS = 64


@dataclass
class WheelSample:
    """One annotated photo.

    Attributes:
        file_name: path relative to the dataset folder, e.g. ``"JPEGImages/train1.jpg"``.
        path: absolute path of the JPEG.
        width, height: image size in pixels.
        polygons: every wheel polygon of the image, each an ``(K, 2)`` float array of pixels.
        annotation_polygons: polygons grouped per COCO annotation (an annotation may hold
            several wheels).
    """

    file_name: str
    path: Path
    width: int
    height: int
    polygons: list[np.ndarray] = field(default_factory=list)
    annotation_polygons: list[list[np.ndarray]] = field(default_factory=list)

    def read_rgb(self) -> np.ndarray:
        """The photo as ``uint8 (H, W, 3)`` RGB. Raises ``OSError`` when unreadable."""
        bgr = cv2.imread(str(self.path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise OSError(f"cannot read image {self.path}")
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def mask(self) -> np.ndarray:
        """Binary wheel mask ``uint8 (H, W)``: 1 on any wheel polygon, 0 elsewhere."""
        m = np.zeros((self.height, self.width), np.uint8)
        for poly in self.polygons:
            cv2.fillPoly(m, [np.round(poly).astype(np.int32)], 1)
        return m

    def instances(self) -> list[tuple[int, int, int, int]]:
        """Wheel instances as boxes ``(x1, y1, x2, y2)``, pixels, x2/y2 exclusive.

        Each COCO annotation is rasterised and split into 8-connected components; components
        under :data:`MIN_INSTANCE_PIXELS` are dropped, and components of the same annotation whose
        boxes overlap by at least half of the smaller box are merged (one wheel cut in pieces by
        an occluder, e.g. a mudguard line).
        """
        boxes: list[tuple[int, int, int, int]] = []
        for polys in self.annotation_polygons:
            m = np.zeros((self.height, self.width), np.uint8)
            for poly in polys:
                cv2.fillPoly(m, [np.round(poly).astype(np.int32)], 1)
            n, _, stats, _ = cv2.connectedComponentsWithStats(m, connectivity=8)
            comps = [
                (int(x), int(y), int(x + w), int(y + h))
                for x, y, w, h, area in stats[1:n]
                if area >= MIN_INSTANCE_PIXELS
            ]
            boxes.extend(_merge_overlapping(comps))
        return boxes


def _merge_overlapping(boxes: list[tuple[int, int, int, int]], min_cover: float = 0.5) -> list[tuple[int, int, int, int]]:
    """Merge boxes whose intersection covers ``>= min_cover`` of the smaller one, until stable."""
    boxes = list(boxes)
    merged = True
    while merged:
        merged = False
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                a, b = boxes[i], boxes[j]
                iw = min(a[2], b[2]) - max(a[0], b[0])
                ih = min(a[3], b[3]) - max(a[1], b[1])
                if iw <= 0 or ih <= 0:
                    continue
                small = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
                if iw * ih >= min_cover * small:
                    boxes[i] = (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))
                    del boxes[j]
                    merged = True
                    break
            if merged:
                break
    return boxes


def load_samples(data_dir: str | Path | None = None) -> list[WheelSample]:
    """Every photo of Car-Parts-Segmentation with its wheel polygons (photos without wheels too).

    Args:
        data_dir: the shared data folder (holding ``car-parts-seg/``); default
            :func:`default_data_dir`.

    Returns:
        Samples sorted by file name; photos without any wheel have empty ``polygons``.

    Raises:
        FileNotFoundError: ``annotations.json`` is missing.
        KeyError: the COCO file has no ``wheel`` category.
    """
    root = Path(data_dir) if data_dir is not None else default_data_dir()
    folder = root / SUBDIR
    ann_path = folder / "annotations.json"
    if not ann_path.is_file():
        raise FileNotFoundError(f"{ann_path} not found; pass the shared data folder (holding {SUBDIR}/)")
    with open(ann_path, encoding="utf-8") as f:
        coco = json.load(f)
    cats = {c["name"]: c["id"] for c in coco["categories"]}
    if WHEEL_CATEGORY not in cats:
        raise KeyError(f"no {WHEEL_CATEGORY!r} category in {ann_path}")
    wheel_id = cats[WHEEL_CATEGORY]
    samples = {
        im["id"]: WheelSample(im["file_name"], folder / im["file_name"], int(im["width"]), int(im["height"]))
        for im in coco["images"]
    }
    for a in coco["annotations"]:
        if a["category_id"] != wheel_id or a["image_id"] not in samples:
            continue
        polys = [np.asarray(p, dtype=np.float64).reshape(-1, 2) for p in a["segmentation"] if len(p) >= 6]
        if polys:
            s = samples[a["image_id"]]
            s.polygons.extend(polys)
            s.annotation_polygons.append(polys)
    return sorted(samples.values(), key=lambda s: _natural_key(s.file_name))


def _natural_key(name: str) -> tuple:
    """Sort key putting ``train2`` before ``train10``."""
    import re

    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name))


def split_samples(
    samples: list[WheelSample], val_fraction: float = 0.2, seed: int = 0
) -> tuple[list[WheelSample], list[WheelSample]]:
    """Fixed, seeded train/validation split over images (with and without wheels alike).

    The file names are sorted, shuffled with ``random.Random(seed)`` and the first
    ``round(val_fraction * N)`` go to validation, so the split depends only on the seed and the
    set of file names.

    Returns:
        ``(train, val)`` lists of samples, each sorted by file name.

    Raises:
        ValueError: ``val_fraction`` not in ``(0, 1)``.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    names = sorted((s.file_name for s in samples), key=_natural_key)
    random.Random(seed).shuffle(names)
    val_names = set(names[: round(val_fraction * len(names))])
    train = [s for s in samples if s.file_name not in val_names]
    val = [s for s in samples if s.file_name in val_names]
    return train, val


def select(samples: list[WheelSample], file_names: list[str]) -> list[WheelSample]:
    """The samples named in ``file_names`` (e.g. the validation list of a model card), in that order.

    Raises:
        KeyError: a name is not in ``samples``.
    """
    by_name = {s.file_name: s for s in samples}
    missing = [n for n in file_names if n not in by_name]
    if missing:
        raise KeyError(f"{len(missing)} file names not in the dataset, e.g. {missing[:3]}")
    return [by_name[n] for n in file_names]


# --------------------------------------------------------------------------------------------
# Augmentation
# --------------------------------------------------------------------------------------------


def build_augmentation(size: int):
    """Photometric and geometric augmentation (albumentations) ending at ``size x size``.

    Random resized crop (scale 0.3-1 of the image), horizontal flip, small rotation/shear, colour
    jitter, blur, JPEG compression, grayscale. Returns an ``A.Compose`` taking ``image`` (uint8
    RGB) and ``mask`` (uint8 0/1).
    """
    import albumentations as A

    return A.Compose(
        [
            A.RandomResizedCrop(size=(size, size), scale=(0.3, 1.0), ratio=(0.75, 1.33), p=1.0),
            A.HorizontalFlip(p=0.5),
            A.Affine(rotate=(-12, 12), shear=(-6, 6), scale=(0.9, 1.1), border_mode=cv2.BORDER_REFLECT_101, p=0.5),
            A.ColorJitter(brightness=0.3, contrast=0.3, saturation=0.4, hue=0.05, p=0.7),
            A.OneOf([A.GaussianBlur(blur_limit=(3, 7)), A.MotionBlur(blur_limit=(3, 7))], p=0.25),
            A.ImageCompression(quality_range=(40, 95), p=0.25),
            A.ToGray(p=0.1),
        ]
    )


def closeup_crop(
    rgb: np.ndarray, mask: np.ndarray, box: tuple[int, int, int, int], rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Square crop around one wheel with a random margin: a synthetic wheel close-up.

    The served segmenter must also handle close-ups (product shots, renderings) where one wheel
    fills most of the image; the car photos contain few of those, so they are made from the
    annotated wheels. The margin is 3-35 % of the box side on each side, the centre is jittered
    by up to 8 %; the crop is padded by reflection where it leaves the image.

    Args:
        rgb: ``uint8 (H, W, 3)``.
        mask: ``uint8 (H, W)`` 0/1.
        box: wheel box ``(x1, y1, x2, y2)`` pixels.
        rng: NumPy generator.

    Returns:
        ``(rgb_crop, mask_crop)`` of the same square size.
    """
    x1, y1, x2, y2 = box
    side = max(x2 - x1, y2 - y1) * (1.0 + 2.0 * rng.uniform(0.03, 0.35))
    cx = (x1 + x2) / 2 + rng.uniform(-0.08, 0.08) * side
    cy = (y1 + y2) / 2 + rng.uniform(-0.08, 0.08) * side
    side = max(16, int(round(side)))
    left, top = int(round(cx - side / 2)), int(round(cy - side / 2))
    h, w = mask.shape
    pad = max(0, -left, -top, left + side - w, top + side - h)
    if pad:
        rgb = cv2.copyMakeBorder(rgb, pad, pad, pad, pad, cv2.BORDER_REFLECT_101)
        mask = cv2.copyMakeBorder(mask, pad, pad, pad, pad, cv2.BORDER_REFLECT_101)
        left, top = left + pad, top + pad
    return rgb[top : top + side, left : left + side].copy(), mask[top : top + side, left : left + side].copy()


def random_zoom_crop(
    rgb: np.ndarray, mask: np.ndarray, rng: np.random.Generator, min_side: int = 40, max_side: int = 200
) -> tuple[np.ndarray, np.ndarray]:
    """Square crop of random side (``min_side``-``max_side`` px) anywhere in the photo, mask cropped alike.

    Counterpart of :func:`closeup_crop`: zoomed views that usually hold no wheel (windows, body
    panels, vegetation, sky), so the network does not learn "upscaled image = wheel".

    Returns:
        ``(rgb_crop, mask_crop)``.
    """
    h, w = mask.shape
    side = int(rng.integers(min(min_side, h, w), min(max_side, h, w) + 1))
    top = int(rng.integers(0, h - side + 1))
    left = int(rng.integers(0, w - side + 1))
    return rgb[top : top + side, left : left + side].copy(), mask[top : top + side, left : left + side].copy()


def product_shot(rgb: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Replace everything but the wheel with a plain light background (a studio product shot).

    The mask edge is feathered (Gaussian, sigma 1.5 px) so the cut-out has no hard halo.

    Returns:
        ``uint8 (H, W, 3)``.
    """
    bg_level = rng.uniform(200, 255, size=3) if rng.random() < 0.5 else np.full(3, rng.uniform(225, 255))
    alpha = cv2.GaussianBlur(mask.astype(np.float32), (0, 0), 1.5)[..., None]
    out = rgb.astype(np.float32) * alpha + bg_level[None, None, :] * (1.0 - alpha)
    return np.clip(out, 0, 255).astype(np.uint8)


def sketch(rgb: np.ndarray) -> np.ndarray:
    """Dark Canny edges on white (a line drawing), same size as ``rgb``; see ``designsearch.images.edge_map``."""
    from designsearch.images import edge_map

    h, w = rgb.shape[:2]
    edges = edge_map(rgb, size=max(h, w))
    if edges.shape[:2] != (h, w):
        edges = cv2.resize(edges, (w, h), interpolation=cv2.INTER_AREA)
    return edges


class WheelSegDataset:
    """Torch dataset of augmented ``(pixels, mask)`` pairs.

    Images are decoded once and kept in memory (400 x 512 x 512 x 3 bytes = 315 MB at most).

    Each item: with probability ``closeup_p`` (and when the photo has a wheel) a synthetic
    close-up of one wheel (:func:`closeup_crop`), which with probability ``product_p`` becomes a
    product shot on a plain background (:func:`product_shot`); else with probability
    ``negative_p`` a random zoomed crop (:func:`random_zoom_crop`; one in five of these is
    blanked to a plain studio background with an empty mask); otherwise the whole photo. Then
    :func:`build_augmentation`, and with probability ``sketch_p`` the image is turned into a line
    drawing (:func:`sketch`; the mask is unchanged).

    Returns per item:
        ``pixels`` float32 tensor ``(3, S, S)`` raw RGB in [0, 255] (the network normalises) and
        ``mask`` float32 tensor ``(1, S, S)`` in {0, 1}.

    Args:
        samples: the photos.
        size: ``S``, the network input side in pixels.
        train: apply augmentation (else a plain resize to ``S x S``).
        closeup_p, product_p, negative_p, sketch_p: probabilities described above.
        seed: base seed of the per-item NumPy generator.
    """

    def __init__(
        self,
        samples: list[WheelSample],
        size: int,
        train: bool = True,
        closeup_p: float = 0.3,
        product_p: float = 0.25,
        sketch_p: float = 0.05,
        negative_p: float = 0.0,
        seed: int = 0,
    ) -> None:
        self.samples = samples
        self.size = size
        self.train = train
        self.closeup_p, self.product_p, self.sketch_p = closeup_p, product_p, sketch_p
        self.negative_p = negative_p
        self.images = [s.read_rgb() for s in samples]
        self.masks = [s.mask() for s in samples]
        self.boxes = [s.instances() for s in samples]
        self.aug = build_augmentation(size) if train else None
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int):
        import torch

        rgb, mask = self.images[i], self.masks[i]
        if self.train:
            rng = self.rng
            if self.boxes[i] and rng.random() < self.closeup_p:
                box = self.boxes[i][rng.integers(len(self.boxes[i]))]
                rgb, mask = closeup_crop(rgb, mask, box, rng)
                if rng.random() < self.product_p:
                    rgb = product_shot(rgb, mask, rng)
            elif rng.random() < self.negative_p:
                rgb, mask = random_zoom_crop(rgb, mask, rng)
                if rng.random() < 0.2:  # an empty studio background: no wheel at all
                    mask = np.zeros_like(mask)
                    rgb = product_shot(rgb, mask, rng)
            out = self.aug(image=rgb, mask=mask)
            rgb, mask = out["image"], out["mask"]
            if rng.random() < self.sketch_p:
                rgb = sketch(rgb)
        else:
            rgb = cv2.resize(rgb, (self.size, self.size), interpolation=cv2.INTER_AREA)
            mask = cv2.resize(mask, (self.size, self.size), interpolation=cv2.INTER_NEAREST)
        pixels = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1))).float()
        target = torch.from_numpy(np.ascontiguousarray(mask)).float()[None]
        return pixels, target
