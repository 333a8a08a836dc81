"""Contact sheets of a picture set beside real product shots (``docs/``, README data section)."""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import cv2
import numpy as np


def _tile(path: Path, side: int) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise OSError(f"cannot read {path}")
    h, w = img.shape[:2]
    s = side / max(h, w)
    img = cv2.resize(img, (max(1, int(w * s)), max(1, int(h * s))), interpolation=cv2.INTER_AREA)
    out = np.full((side, side, 3), 255, np.uint8)
    y, x = (side - img.shape[0]) // 2, (side - img.shape[1]) // 2
    out[y:y + img.shape[0], x:x + img.shape[1]] = img
    return out


def contact_sheet(paths: list[Path], cols: int, side: int = 160, label: str | None = None) -> np.ndarray:
    """Pictures in a grid, ``uint8 (rows*side [+ 24], cols*side, 3)`` BGR; an optional label band on top."""
    tiles = [_tile(p, side) for p in paths]
    while len(tiles) % cols:
        tiles.append(np.full((side, side, 3), 255, np.uint8))
    rows = [np.concatenate(tiles[i:i + cols], 1) for i in range(0, len(tiles), cols)]
    grid = np.concatenate(rows, 0)
    if label:
        band = np.full((24, grid.shape[1], 3), 255, np.uint8)
        cv2.putText(band, label, (6, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
        grid = np.concatenate([band, grid], 0)
    return grid


def sheets(manifest: Path, out_dir: Path, data_dir: Path | None, n: int = 16, seed: int = 0) -> list[Path]:
    """Write ``renders.jpg``, ``oncar.jpg``, ``drawings.jpg`` (and ``real-product-shots.jpg`` from
    ``car-parts-50`` rims when ``data_dir`` is given) of ``n`` pictures each into ``out_dir``."""
    rng = np.random.default_rng(seed)
    with open(manifest, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    root = manifest.parent
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for kind, name in (("render", "renders"), ("oncar", "oncar"), ("drawing", "drawings")):
        sel = [r for r in rows if r["kind"] == kind]
        if not sel:
            continue
        pick = [sel[i] for i in sorted(rng.choice(len(sel), min(n, len(sel)), replace=False))]
        grid = contact_sheet([root / r["file"] for r in pick], cols=8, label=f"engine: {name}")
        p = out_dir / f"{name}.jpg"
        cv2.imwrite(str(p), grid, [cv2.IMWRITE_JPEG_QUALITY, 85])
        written.append(p)
    if data_dir is not None:
        labels = Path(data_dir) / "wheel-pictures" / "car-parts-50" / "labels.csv"
        with open(labels, newline="", encoding="utf-8") as f:
            rims = [r for r in csv.DictReader(f) if r["wheel"] == "rim"]
        pick = [rims[i] for i in sorted(rng.choice(len(rims), min(n, len(rims)), replace=False))]
        grid = contact_sheet([Path(data_dir) / "wheel-pictures" / r["file"] for r in pick], cols=8,
                             label="real: car-parts-50 rim product shots")
        p = out_dir / "real-product-shots.jpg"
        cv2.imwrite(str(p), grid, [cv2.IMWRITE_JPEG_QUALITY, 85])
        written.append(p)
    return written


def main(argv: list[str] | None = None) -> None:
    """``python -m designsearch.training.wheelgen.sheet --manifest SET/manifest.csv --out docs/wheelgen``."""
    from designsearch.settings import default_data_dir

    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--manifest", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--n", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    for path in sheets(a.manifest, a.out, Path(default_data_dir()), a.n, a.seed):
        print(path)


if __name__ == "__main__":
    main()
