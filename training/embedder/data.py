"""Training data for the embedder: Stanford Cars rows, the by-class split, and wheel crops.

Data: Stanford Cars (CARS196; Krause, Stark, Deng, Fei-Fei, "3D Object Representations for
Fine-Grained Categorization", ICCV Workshops 3dRR 2013), classes 1-98 of the official train split
as provided under ``<data>/stanford-cars`` (see that folder's README; non-commercial research use
only). Each wheel crop is labelled with the class (make/model/year) of the car it was cut from,
as in Kang et al., IAAI 2023 (wheels labelled by car model).

Split (by class, no class shared): classes 1-78 train, 79-98 validation.

Wheel crops are cut once and cached as JPEG files plus a ``manifest.csv`` under a run folder
(``runs/`` is git-ignored); nothing derived from the data is written into the repository.
"""

from __future__ import annotations

import csv
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from designsearch.images import crop_box, read_image, square_box
from designsearch.settings import REPO_ROOT, SEGMENTER_MODEL, default_data_dir

#: Default data folder: ``$DESIGNSEARCH_DATA``, else ``../shared/data`` beside the checkout.
DEFAULT_DATA = default_data_dir()
#: Default folder for caches, logs and checkpoints (git-ignored).
DEFAULT_RUNS = REPO_ROOT / "runs" / "embedder"
#: Default learned wheel segmenter (ONNX) used to cut the wheel crops.
DEFAULT_SEGMENTER = SEGMENTER_MODEL
#: Last class id of the training split; classes above it (up to 98) are validation.
TRAIN_MAX_CLASS = 78
#: Crop sources: the learned segmenter, or the lower-left/right quarters of the car image (a
#: stand-in used only when no segmenter model exists).
CROP_SOURCES = ("segmenter", "quarters")

DOMAIN_CAR = "car"
DOMAIN_WHEEL = "wheel"


@dataclass(frozen=True)
class Item:
    """One training/evaluation image: a whole car or a wheel crop.

    Attributes:
        path: absolute path of the image file (RGB JPEG).
        class_id: CARS196 class id (1-98) of the car.
        image_id: source car photo (its file stem, e.g. ``"00001"``): the *group* used to keep
            crops of one photo apart in evaluation.
        domain: ``"car"`` or ``"wheel"``.
    """

    path: str
    class_id: int
    image_id: str
    domain: str


def load_rows(data_dir: str | Path) -> list[dict]:
    """Rows of ``<data_dir>/stanford-cars/labels.csv`` with ``class_id`` as int and absolute paths.

    Returns:
        Dicts with keys ``file`` (absolute path), ``class_id`` (int), ``class_name``, ``make``,
        ``model``, ``year``, ``image_id`` (file stem).

    Raises:
        FileNotFoundError: the labels file is missing (wrong ``data_dir``).
    """
    root = Path(data_dir) / "stanford-cars"
    labels = root / "labels.csv"
    if not labels.is_file():
        raise FileNotFoundError(f"{labels} not found; pass the data folder holding stanford-cars/")
    with open(labels, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        r["image_id"] = Path(r["file"]).stem
        r["file"] = str(root / r["file"])
        r["class_id"] = int(r["class_id"])
    return rows


def split_rows(rows: list[dict], train_max_class: int = TRAIN_MAX_CLASS) -> tuple[list[dict], list[dict]]:
    """Split by class: ``class_id <= train_max_class`` train, the rest validation."""
    train = [r for r in rows if r["class_id"] <= train_max_class]
    val = [r for r in rows if r["class_id"] > train_max_class]
    return train, val


def car_items(rows: list[dict]) -> list[Item]:
    """Whole-car items (the Stanford images are already cropped to the car)."""
    return [Item(r["file"], r["class_id"], r["image_id"], DOMAIN_CAR) for r in rows]


def quarter_boxes(width: int, height: int) -> list[tuple[int, int, int, int]]:
    """Stand-in wheel boxes: the lower-left and lower-right quarters of a car image (pixels)."""
    return [(0, height // 2, width // 2, height), (width // 2, height // 2, width, height)]


def _file_sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def extract_wheel_crops(
    data_dir: str | Path,
    out_dir: str | Path,
    source: str = "segmenter",
    segmenter_path: str | Path = DEFAULT_SEGMENTER,
    max_per_image: int = 2,
    min_score: float = 0.5,
    min_side: int = 24,
    log_every: int = 500,
) -> Path:
    """Cut square wheel crops from every Stanford Cars image and cache them as JPEG files.

    Each detection box (``kind == "wheel"``, ``score >= min_score``, both box sides
    ``>= min_side`` px) is grown to a square with :func:`designsearch.images.square_box` and cut
    with :func:`designsearch.images.crop_box`; at most ``max_per_image`` per photo, highest score
    first. The crops go to ``<out_dir>/<source>/NNNNN_k.jpg`` (quality 95) with a
    ``manifest.csv`` (``file,class_id,image_id,x1,y1,x2,y2,score``) and ``meta.json``
    (parameters, segmenter hash, counts). A finished cache with the same parameters is reused.

    Args:
        data_dir: folder holding ``stanford-cars/``.
        out_dir: cache root (e.g. ``runs/embedder/crops``).
        source: ``"segmenter"`` (``designsearch.services.segmenter.learned.LearnedWheelDetector``) or
            ``"quarters"`` (stand-in: lower-left/right quarters of the image).
        segmenter_path: ONNX model of the learned segmenter (``source="segmenter"`` only).
        max_per_image: most crops kept per photo.
        min_score: lowest detection score kept.
        min_side: smallest accepted box side, pixels.
        log_every: print progress every this many images.

    Returns:
        The folder holding the crops and ``manifest.csv``.

    Raises:
        ValueError: unknown source.
        FileNotFoundError: the segmenter model is missing.
    """
    if source not in CROP_SOURCES:
        raise ValueError(f"unknown crop source {source!r}; expected one of {CROP_SOURCES}")
    rows = load_rows(data_dir)
    folder = Path(out_dir) / source
    params = {"source": source, "max_per_image": max_per_image, "min_score": min_score, "min_side": min_side}
    detector = None
    if source == "segmenter":
        segmenter_path = Path(segmenter_path)
        if not segmenter_path.is_file():
            raise FileNotFoundError(f"segmenter model {segmenter_path} not found")
        params["segmenter_sha256"] = _file_sha(segmenter_path)
        params["segmenter_file"] = segmenter_path.name
    meta_path = folder / "meta.json"
    if meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        if meta.get("params") == params and meta.get("complete"):
            return folder
    folder.mkdir(parents=True, exist_ok=True)
    if source == "segmenter":
        from designsearch.services.segmenter.detection import KIND_WHEEL
        from designsearch.services.segmenter.learned import LearnedWheelDetector

        detector = LearnedWheelDetector(str(segmenter_path))

    start = time.time()
    records = []
    no_wheel = 0
    for i, r in enumerate(rows):
        rgb = read_image(r["file"])
        h, w = rgb.shape[:2]
        if detector is not None:
            dets = [d for d in detector.detect(rgb) if d.kind == KIND_WHEEL and d.score >= min_score]
            dets.sort(key=lambda d: -d.score)
            boxes = [(d.box, float(d.score)) for d in dets]
        else:
            boxes = [(b, 1.0) for b in quarter_boxes(w, h)]
        kept = 0
        for box, score in boxes:
            if kept >= max_per_image:
                break
            if min(box[2] - box[0], box[3] - box[1]) < min_side:
                continue
            sq = square_box(box, w, h)
            crop = crop_box(rgb, sq)
            name = f"{r['image_id']}_{kept}.jpg"
            cv2.imwrite(str(folder / name), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
            records.append([name, r["class_id"], r["image_id"], *sq, f"{score:.4f}"])
            kept += 1
        no_wheel += kept == 0
        if log_every and (i + 1) % log_every == 0:
            print(f"crops: {i + 1}/{len(rows)} images, {len(records)} crops, {time.time() - start:.0f} s", flush=True)
    with open(folder / "manifest.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["file", "class_id", "image_id", "x1", "y1", "x2", "y2", "score"])
        writer.writerows(records)
    meta = {
        "params": params,
        "complete": True,
        "images": len(rows),
        "crops": len(records),
        "images_without_crop": no_wheel,
        "seconds": round(time.time() - start, 1),
    }
    meta_path.write_text(json.dumps(meta, indent=2))
    print(f"crops: {len(records)} from {len(rows)} images ({no_wheel} without a wheel) in {meta['seconds']} s")
    return folder


def wheel_items(crop_dir: str | Path, class_filter=None) -> list[Item]:
    """Wheel-crop items from a cache written by :func:`extract_wheel_crops`.

    Args:
        crop_dir: folder holding ``manifest.csv``.
        class_filter: optional predicate on ``class_id`` (e.g. the split).
    """
    crop_dir = Path(crop_dir)
    with open(crop_dir / "manifest.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    items = [Item(str(crop_dir / r["file"]), int(r["class_id"]), r["image_id"], DOMAIN_WHEEL) for r in rows]
    if class_filter is not None:
        items = [it for it in items if class_filter(it.class_id)]
    return items


def crop_meta(crop_dir: str | Path) -> dict:
    """The ``meta.json`` of a crop cache."""
    return json.loads((Path(crop_dir) / "meta.json").read_text())


def load_rgb(item: Item) -> np.ndarray:
    """RGB ``uint8 (H, W, 3)`` of an item."""
    return read_image(item.path)
