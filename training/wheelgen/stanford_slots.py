"""Stanford Cars photos as on-car backgrounds: wheel positions found by the served segmenter.

Car-Parts-Segmentation has ~400 annotated cars; Stanford Cars has thousands of car photos but no wheel
masks. The issue's recipe ("Stanford Cars crops found by the segmenter") takes the wheels the served
segmenter finds confidently: a photo is used when it has at least one detection of kind ``wheel`` scoring
``min_score`` or more with both box sides at least ``min_side`` px, and NO other detection (an uncertain
wheel would stay in the picture unlabelled, as a second design). Its slots then come from the detection
masks exactly as :func:`designsearch.training.wheelgen.oncar.wheel_slots` makes them from annotations.

Only classes ``1..max_class`` (78: the classes the models train on) are read; classes 79-98 are the
held-out car-model and designer-query classes and never become training pictures.

Data: Stanford Cars (Krause et al. 2013, "3D Object Representations for Fine-Grained Categorization"),
``../shared/data/stanford-cars/labels.csv``.
"""

from __future__ import annotations

import csv
import hashlib
import pickle
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

#: Photos of classes up to this id are used (79-98 stay held out).
MAX_CLASS = 78


@dataclass
class FoundWheelPhoto:
    """A car photo whose wheels the segmenter found; quacks like
    :class:`designsearch.training.segmenter.dataset.WheelSample` for :mod:`~designsearch.training.wheelgen.oncar`.

    Attributes:
        file_name: ``stanford-cars/<file>`` (the manifest's ``background``).
        path: absolute path of the JPEG.
        width, height: image size in pixels.
        boxes: the detections' boxes ``(x1, y1, x2, y2)``, pixels, exclusive ends.
        masks: per box, ``np.packbits`` of its ``bool (y2 - y1, x2 - x1)`` mask (row-major, flattened).
        scores: per box, the detection score in [0, 1].
    """

    file_name: str
    path: Path
    width: int
    height: int
    boxes: list[tuple[int, int, int, int]] = field(default_factory=list)
    masks: list[np.ndarray] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)

    def read_rgb(self) -> np.ndarray:
        """The photo as ``uint8 (H, W, 3)`` RGB. Raises ``OSError`` when unreadable."""
        bgr = cv2.imread(str(self.path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise OSError(f"cannot read image {self.path}")
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def box_mask(self, i: int) -> np.ndarray:
        """``bool (y2 - y1, x2 - x1)`` mask of detection ``i``."""
        x1, y1, x2, y2 = self.boxes[i]
        n = (y2 - y1) * (x2 - x1)
        return np.unpackbits(self.masks[i], count=n).reshape(y2 - y1, x2 - x1).astype(bool)

    def mask(self) -> np.ndarray:
        """Binary wheel mask ``uint8 (H, W)``: 1 on any found wheel, 0 elsewhere."""
        m = np.zeros((self.height, self.width), np.uint8)
        for i, (x1, y1, x2, y2) in enumerate(self.boxes):
            m[y1:y2, x1:x2] |= self.box_mask(i).astype(np.uint8)
        return m

    def instances(self) -> list[tuple[int, int, int, int]]:
        """The found wheels' boxes ``(x1, y1, x2, y2)``, pixels, exclusive ends."""
        return list(self.boxes)


def find_stanford_wheels(data_dir: str | Path, segmenter: str | Path, cache: str | Path, max_class: int = MAX_CLASS,
                         min_score: float = 0.9, min_side: int = 40, limit: int | None = None,
                         threads: int = 2, log=None) -> list[FoundWheelPhoto]:
    """The Stanford Cars photos of classes ``1..max_class`` (label order, the first ``limit``) whose wheels
    the segmenter finds confidently (module doc), cached as a pickle in ``cache`` keyed by the segmenter's
    sha256 and the arguments.

    Args:
        data_dir: shared data folder holding ``stanford-cars/``.
        segmenter: ONNX file of the segmenter (the served one: ``models/segmenter/wheelseg-lite0-int8.onnx``).
        cache: folder of the cache file (the picture set's folder: a resumed set uses the same slots).
        max_class, min_score, min_side, limit: which photos and detections are used.
        threads: onnxruntime threads.
        log: optional progress callback ``str -> None``.

    Returns:
        The usable photos (possibly empty).

    Raises:
        FileNotFoundError: ``stanford-cars/labels.csv`` or the segmenter is missing.
    """
    from designsearch.services.segmenter.detection import KIND_WHEEL
    from designsearch.services.segmenter.learned import LearnedWheelDetector

    data_dir, segmenter = Path(data_dir), Path(segmenter)
    labels = data_dir / "stanford-cars" / "labels.csv"
    if not labels.is_file():
        raise FileNotFoundError(f"Stanford Cars labels not found: {labels}")
    if not segmenter.is_file():
        raise FileNotFoundError(f"segmenter model not found: {segmenter}")
    sha = hashlib.sha256(segmenter.read_bytes()).hexdigest()[:16]
    path = Path(cache) / f"stanford-wheels-{sha}-c{max_class}-s{min_score}-m{min_side}-n{limit}.pkl"
    if path.is_file():
        with open(path, "rb") as f:
            return pickle.load(f)
    with open(labels, newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if int(r["class_id"]) <= max_class][:limit]
    det = LearnedWheelDetector(segmenter, threads=threads)
    out: list[FoundWheelPhoto] = []
    for i, r in enumerate(rows):
        file = data_dir / "stanford-cars" / r["file"]
        bgr = cv2.imread(str(file), cv2.IMREAD_COLOR)
        if bgr is None:
            continue
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        dets = det.detect(rgb)
        good = [d for d in dets if d.kind == KIND_WHEEL and d.score >= min_score and d.mask is not None
                and min(d.box[2] - d.box[0], d.box[3] - d.box[1]) >= min_side]
        if not good or len(good) != len(dets) or len(good) > 4:
            continue
        out.append(FoundWheelPhoto(f"stanford-cars/{r['file']}", file, rgb.shape[1], rgb.shape[0],
                                   [tuple(int(v) for v in d.box) for d in good],
                                   [np.packbits(d.mask > 0) for d in good], [float(d.score) for d in good]))
        if log and (i + 1) % 500 == 0:
            log(f"stanford wheels: {i + 1}/{len(rows)} photos, {len(out)} usable")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        pickle.dump(out, f)
    tmp.replace(path)
    return out
