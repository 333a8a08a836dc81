"""Rasterised views (pyrender on OSMesa): exact part masks and depth of a wheel in a :class:`.View`.

The mask is what the path-traced picture shows, because both use the same meshes and camera:
255 on rim pixels, 128 on tyre pixels, 0 elsewhere (``uint8 (S, S)``). OSMesa needs
``PYOPENGL_PLATFORM=osmesa`` (set here before OpenGL is imported) and PyOpenGL 3.1.7.
"""

from __future__ import annotations

import os

os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")

import numpy as np  # noqa: E402
import pyrender  # noqa: E402

from designsearch.training.wheelgen.camera import View  # noqa: E402
from designsearch.training.wheelgen.geometry import WheelMesh  # noqa: E402

MASK_RIM, MASK_TYRE = 255, 128


class RasterRenderer:
    """One offscreen OpenGL context rendering ``size`` × ``size`` pictures. Not thread-safe; one per process."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._r = pyrender.OffscreenRenderer(size, size)

    def close(self) -> None:
        """Free the GL context."""
        self._r.delete()

    def labels(self, wheel: WheelMesh, view: View) -> tuple[np.ndarray, np.ndarray]:
        """Part mask and depth of ``wheel`` seen from ``view``.

        Returns:
            ``(mask, depth)``: ``uint8 (S, S)`` with :data:`MASK_RIM` / :data:`MASK_TYRE` / 0, and
            ``float32 (S, S)`` distance along the view axis in wheel units (0 = background).
        """
        scene = pyrender.Scene(bg_color=[0, 0, 0, 0], ambient_light=[1, 1, 1])
        pose = view.wheel_pose()
        seg = {}
        for name, m in wheel.parts.items():
            node = scene.add(pyrender.Mesh.from_trimesh(m, smooth=False), pose=pose)
            v = MASK_TYRE if name == "tyre" else MASK_RIM
            seg[node] = (v, v, v)
        radius = wheel.r_tyre
        cam = pyrender.PerspectiveCamera(yfov=np.radians(view.fov_deg), znear=0.05, zfar=100.0)
        scene.add(cam, pose=view.camera_pose(radius))
        color, depth = self._r.render(scene, flags=pyrender.RenderFlags.SEG, seg_node_map=seg)
        return color[..., 0].copy(), depth.astype(np.float32)
