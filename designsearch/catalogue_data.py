"""Catalogue label files: a CSV of ``file,design_id?,class_id?,make|brand,model,year`` rows.

The demo data set (Stanford Cars, ``../shared/data/stanford-cars/labels.csv``) has
``file,class_id,class_name,make,model,year``; a design is one car model (make, model, year), as the
reference system labels each wheel with the car model it came from.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class LabelledImage:
    """One catalogue image with its design record.

    Attributes:
        path: image file.
        design_id: slug of brand, model and year (or the CSV's ``design_id``).
        brand, model, year: design record.
        class_id: integer class of the demo data (-1 when the CSV has none).
    """

    path: Path
    design_id: str
    brand: str
    model: str
    year: int
    class_id: int = -1


def slug(*parts: object) -> str:
    """Lower-case ``a-z0-9-`` slug of the parts joined by ``-``."""
    return re.sub(r"[^a-z0-9]+", "-", " ".join(str(p) for p in parts).lower()).strip("-")


def read_labels(csv_path: str | Path, image_dir: str | Path | None = None) -> list[LabelledImage]:
    """Read a labels CSV.

    Args:
        csv_path: the CSV; needs columns ``file``, ``make`` or ``brand``, ``model``, ``year``;
            optional ``design_id`` and ``class_id``.
        image_dir: folder ``file`` is relative to (default: the CSV's folder).

    Raises:
        ValueError: a required column is missing or a year is not an integer.
        FileNotFoundError: no such CSV.
    """
    csv_path = Path(csv_path)
    base = Path(image_dir) if image_dir else csv_path.parent
    out = []
    with open(csv_path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        cols = set(reader.fieldnames or [])
        missing = {"file", "model", "year"} - cols
        if missing or not ({"make", "brand"} & cols):
            raise ValueError(f"{csv_path}: missing columns {sorted(missing | ({'make'} - cols if 'brand' not in cols else set()))}")
        for line, row in enumerate(reader, start=2):
            brand = row.get("brand") or row.get("make") or ""
            try:
                year = int(row["year"])
            except ValueError as exc:
                raise ValueError(f"{csv_path}:{line}: year {row['year']!r} is not an integer") from exc
            design_id = row.get("design_id") or slug(brand, row["model"], year)
            file = Path(row["file"])
            out.append(LabelledImage(file if file.is_absolute() else base / file, design_id, brand, row["model"], year,
                                     int(row.get("class_id") or -1)))
    return out


def demo_split(images: list[LabelledImage], classes: range, queries_per_class: int) -> tuple[list[LabelledImage], list[LabelledImage]]:
    """Split demo images of ``classes`` into catalogue and held-out queries.

    The last ``queries_per_class`` images (by file name) of each class are queries; the rest go in
    the catalogue. Deterministic.

    Returns:
        ``(catalogue, queries)``.
    """
    catalogue, queries = [], []
    by_class: dict[int, list[LabelledImage]] = {}
    for img in images:
        if img.class_id in classes:
            by_class.setdefault(img.class_id, []).append(img)
    for cls in sorted(by_class):
        items = sorted(by_class[cls], key=lambda i: i.path.name)
        catalogue.extend(items[:-queries_per_class])
        queries.extend(items[-queries_per_class:])
    return catalogue, queries
