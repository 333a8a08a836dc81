"""The 15 real rim models (``wheel-pictures/rim-models-3d``, GLB, Draco-compressed) as :class:`.WheelMesh`.

The files are normalised to diameter 1 along Z with the face on either side. Each is scaled to the
engine's frame (flange radius 1, face toward +Z, front flange at ``z = 0``): the face side is the side
where the spoke region (radius 0.15-0.8 of the flange) has most of its vertices — a rim's spokes sit
near its outer flange. DracoPy must be installed, or trimesh reads no geometry.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import trimesh

from designsearch.training.wheelgen.geometry import WheelMesh, tyre_mesh

MODELS_DIR = Path("wheel-pictures") / "rim-models-3d"


def list_models(data_dir: str | Path) -> list[tuple[str, Path]]:
    """``[(design_id, glb_path), ...]`` of ``models.csv`` (ids prefixed ``"rm-"``).

    Raises:
        FileNotFoundError: no ``models.csv`` under ``data_dir``.
    """
    folder = Path(data_dir) / MODELS_DIR
    path = folder / "models.csv"
    if not path.is_file():
        raise FileNotFoundError(f"rim models not found: {path}")
    with open(path, newline="", encoding="utf-8") as f:
        return [("rm-" + r["design_id"], folder / r["file"]) for r in csv.DictReader(f)]


def load_rim(path: str | Path, tyre: bool = False, tread: bool = True, tyre_height: float = 0.42) -> WheelMesh:
    """A real rim model as a :class:`.WheelMesh` (one ``face`` part; optional tyre).

    Raises:
        ValueError: the file holds no triangles (e.g. DracoPy missing).
    """
    loaded = trimesh.load(str(path), force="scene")
    mesh = loaded.to_geometry() if isinstance(loaded, trimesh.Scene) else loaded
    if len(mesh.faces) == 0:
        raise ValueError(f"{path}: no triangles (is DracoPy installed?)")
    v = mesh.vertices.copy()
    v[:, :2] -= (v[:, :2].max(0) + v[:, :2].min(0)) / 2
    r_max = float(np.hypot(v[:, 0], v[:, 1]).max())
    v *= 1.0 / r_max
    zmid = (v[:, 2].max() + v[:, 2].min()) / 2
    r = np.hypot(v[:, 0], v[:, 1])
    spoke = (r > 0.15) & (r < 0.8)
    if spoke.any() and np.mean(v[spoke, 2] - zmid) < 0:
        v[:, 2] = -v[:, 2]  # face toward +Z (a mirror; the X flip below keeps handedness)
        v[:, 0] = -v[:, 0]
    v[:, 2] -= v[:, 2].max()
    rim = trimesh.Trimesh(v, mesh.faces, process=False)
    width = float(-v[:, 2].min())
    out = WheelMesh(width=width)
    out.parts["face"] = rim
    if tyre:
        t = tyre_mesh(width * 0.9, tyre_height, tread)
        t.apply_translation([0, 0, -width * 0.05])
        out.parts["tyre"] = t
        out.r_tyre = 0.97 + tyre_height
    return out
