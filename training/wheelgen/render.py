"""Photo-like renders with Mitsuba 3 (``llvm_ad_rgb``): metal BSDFs, finishes, randomised studio lighting.

Lighting is an environment map made per picture (:func:`studio_envmap`): a dim gradient room with 2-5
soft-edged rectangular softboxes (a product photographer's set-up), optionally a coloured tint; with
``env_lighting=False`` (a realism step) a uniform constant environment is used instead. Finishes map
parts to BSDFs from Mitsuba's plugin set: ``roughconductor`` (measured complex IOR of Al, Ag, Cr,
Cu, Au; Jakob et al., Mitsuba 3 docs "Rough conductor", GGX microfacets, Walter et al. 2007) for bare
or polished metal, ``roughplastic`` / ``plastic`` for paint and the tyre. Every BSDF is ``twosided``
(the real GLB models have inconsistent winding). The film has an alpha channel: the wheel is
rendered over nothing and composited on a background later (:mod:`.photo`).

``DRJIT_LIBLLVM_PATH`` must point at LLVM ≥ 16 (Debian: ``libllvm19``); set below when the file exists.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

_LLVM = "/usr/lib/x86_64-linux-gnu/libLLVM.so.19.1"
if "DRJIT_LIBLLVM_PATH" not in os.environ and Path(_LLVM).exists():
    os.environ["DRJIT_LIBLLVM_PATH"] = _LLVM

import mitsuba as mi  # noqa: E402
import numpy as np  # noqa: E402
import trimesh  # noqa: E402

from designsearch.training.wheelgen.camera import View  # noqa: E402
from designsearch.training.wheelgen.geometry import WheelMesh  # noqa: E402

mi.set_variant("llvm_ad_rgb")

FINISHES = ("silver", "gunmetal", "gloss_black", "matte_black", "bronze", "gold", "chrome", "white",
            "machined", "painted_lip")


def _metal(material: str, alpha: float, tint: tuple[float, float, float] | None = None) -> dict:
    b = {"type": "roughconductor", "material": material, "distribution": "ggx", "alpha": alpha}
    if tint is not None:
        b["specular_reflectance"] = {"type": "rgb", "value": list(tint)}
    return {"type": "twosided", "bsdf": b}


def _paint(rgb: tuple[float, float, float], alpha: float | None) -> dict:
    if alpha is None:
        b = {"type": "plastic", "diffuse_reflectance": {"type": "rgb", "value": list(rgb)}, "int_ior": 1.5}
    else:
        b = {"type": "roughplastic", "diffuse_reflectance": {"type": "rgb", "value": list(rgb)}, "alpha": alpha,
             "distribution": "ggx"}
    return {"type": "twosided", "bsdf": b}


def finish_bsdfs(finish: str, rng: np.random.Generator) -> dict[str, dict]:
    """BSDF dicts by role (``face``, ``face_top``, ``lip``, ``barrel``, ``cap``, ``rivets``, ``valve``, ``tyre``).

    ``face_top`` is the front-facing part of the face (machined on two-tone finishes).

    Raises:
        ValueError: unknown finish.
    """
    j = lambda a, b: float(rng.uniform(a, b))  # noqa: E731
    if finish == "silver":
        face = _metal("Al", j(0.12, 0.3), (j(0.75, 0.9),) * 3)
    elif finish == "gunmetal":
        g = j(0.18, 0.32)
        face = _metal("Al", j(0.15, 0.35), (g, g, g * 1.05))
    elif finish == "gloss_black":
        face = _paint((0.01, 0.01, 0.012), None)
    elif finish == "matte_black":
        face = _paint((0.02, 0.02, 0.02), j(0.3, 0.6))
    elif finish == "bronze":
        face = _metal("Cu", j(0.15, 0.35), (j(0.55, 0.7), j(0.4, 0.5), j(0.2, 0.28)))
    elif finish == "gold":
        face = _metal("Au", j(0.1, 0.25))
    elif finish == "chrome":
        face = _metal("Cr", j(0.01, 0.04))
    elif finish == "white":
        face = _paint((j(0.75, 0.9),) * 3, j(0.1, 0.3))
    elif finish == "machined":
        face = _paint((0.015, 0.015, 0.018), j(0.1, 0.25)) if rng.random() < 0.7 else _metal("Al", 0.25, (0.25,) * 3)
    elif finish == "painted_lip":
        face = _metal("Al", j(0.12, 0.3), (j(0.7, 0.9),) * 3)
    else:
        raise ValueError(f"unknown finish {finish!r}; expected one of {', '.join(FINISHES)}")
    out = {"face": face, "face_top": face, "lip": face, "barrel": _metal("Al", 0.35, (0.55, 0.55, 0.55)),
           "cap": face, "rivets": _metal("Cr", 0.05), "valve": _paint((0.03, 0.03, 0.03), 0.4),
           "tyre": _paint((j(0.025, 0.045),) * 3, j(0.45, 0.7))}
    if finish == "machined":
        out["face_top"] = _metal("Al", j(0.04, 0.12), (0.9, 0.9, 0.92))
        out["lip"] = out["face_top"]
    if finish == "painted_lip":
        colours = [(0.6, 0.03, 0.03), (0.02, 0.02, 0.02), (0.05, 0.12, 0.5), (0.8, 0.4, 0.02)]
        out["lip"] = _paint(colours[int(rng.integers(len(colours)))], j(0.05, 0.2))
    return out


def studio_envmap(rng: np.random.Generator, width: int = 256, constant: bool = False) -> np.ndarray:
    """Lat-long environment ``float32 (width/2, width, 3)`` (linear RGB radiance): a studio with softboxes.

    A vertical gradient (floor 0.05-0.25, ceiling 0.3-1.0), then 2-5 rectangles of radiance 2-7
    with smooth edges anywhere around the wheel,
    an optional colour tint. ``constant=True`` gives a uniform 0.8 room (no softboxes).
    """
    h = width // 2
    if constant:
        return np.full((h, width, 3), 0.8, np.float32)
    v = (np.arange(h) + 0.5) / h  # 0 = top (up), 1 = bottom
    u = (np.arange(width) + 0.5) / width
    floor, ceil = rng.uniform(0.05, 0.25), rng.uniform(0.3, 1.0)
    env = np.repeat((ceil + (floor - ceil) * v)[:, None], width, 1)[..., None].repeat(3, 2)
    uu, vv = np.meshgrid(u, v)
    for _ in range(int(rng.integers(2, 6))):
        # Mitsuba's envmap: u = 0.5 faces -Z... put lights over the whole front hemisphere
        cu, cv = rng.uniform(0, 1), rng.uniform(0.15, 0.6)
        hw, hh = rng.uniform(0.03, 0.12), rng.uniform(0.04, 0.18)
        du = np.minimum(np.abs(uu - cu), 1 - np.abs(uu - cu))
        soft = rng.uniform(0.005, 0.03)
        box = (1 / (1 + np.exp((du - hw) / soft))) * (1 / (1 + np.exp((np.abs(vv - cv) - hh) / soft)))
        env += box[..., None] * rng.uniform(2, 7)
    if rng.random() < 0.3:
        env *= rng.uniform(0.85, 1.15, 3)[None, None, :]
    return env.astype(np.float32)


def _ply(mesh: trimesh.Trimesh, folder: Path, name: str) -> str:
    p = folder / f"{name}.ply"
    p.write_bytes(trimesh.exchange.ply.export_ply(mesh, encoding="binary", include_attributes=False))
    return str(p)


class PathTracer:
    """Mitsuba path tracer for wheels. ``spp`` samples per pixel, ``size`` px square pictures.

    The meshes of one wheel are written once (:meth:`load`, PLY in a temporary folder) and rendered
    from many views (:meth:`render`).
    """

    def __init__(self, size: int = 256, spp: int = 32, max_depth: int = 6) -> None:
        self.size, self.spp, self.max_depth = size, spp, max_depth
        self._tmp = tempfile.TemporaryDirectory(prefix="wheelgen-")
        self._files: dict[str, str] = {}
        self._wheel: WheelMesh | None = None

    def load(self, wheel: WheelMesh, key: str) -> None:
        """Write ``wheel``'s parts as PLY; the face is split into ``face_top`` (normals within 35° of
        +Z: what a machined two-tone face cuts bright) and ``face``."""
        folder = Path(self._tmp.name) / key
        folder.mkdir(exist_ok=True)
        self._files = {}
        for name, m in wheel.parts.items():
            if name == "face":
                top = m.face_normals[:, 2] > np.cos(np.radians(35))
                for sub, sel in (("face_top", top), ("face", ~top)):
                    if sel.any():
                        self._files[sub] = _ply(m.submesh([np.nonzero(sel)[0]], append=True), folder, sub)
            else:
                self._files[name] = _ply(m, folder, name)
        self._wheel = wheel

    def render(self, view: View, finish: str, rng: np.random.Generator, env_lighting: bool = True,
               seed: int = 0) -> np.ndarray:
        """Render the loaded wheel from one view (see :meth:`render_views`)."""
        return self.render_views([view], finish, rng, env_lighting, seed)[0]

    def render_views(self, views: list[View], finish: str, rng: np.random.Generator, env_lighting: bool = True,
                     seed: int = 0) -> list[np.ndarray]:
        """Render the loaded wheel in one ``finish`` under one random studio, from several views.

        The scene is built once with a ``batch`` sensor holding one camera per view. The wheel's spin is
        applied by turning the camera (and with it the picture's up direction) by ``-spin`` about the
        axle, which gives the same picture as spinning the wheel (:meth:`.View.wheel_pose`).

        Returns:
            One ``float32 (S, S, 4)`` per view: linear RGB radiance and alpha (1 where the wheel covers
            the pixel, 0 where the camera sees the environment).

        Raises:
            RuntimeError: no wheel loaded. ValueError: unknown finish.
        """
        if self._wheel is None:
            raise RuntimeError("PathTracer.render before load")
        bsdfs = finish_bsdfs(finish, rng)
        env = studio_envmap(rng, constant=not env_lighting)
        sensors = {}
        for i, view in enumerate(views):
            pose = np.linalg.inv(view.wheel_pose()) @ view.camera_pose(self._wheel.r_tyre)
            eye, fwd, up = pose[:3, 3], -pose[:3, 2], pose[:3, 1]
            sensors[f"view{i}"] = {
                "type": "perspective", "fov": view.fov_deg, "fov_axis": "y",
                # each sub-sensor needs its own square film, else its aspect (default 4:3) sets the fov
                "film": {"type": "hdrfilm", "width": self.size, "height": self.size},
                "to_world": mi.ScalarTransform4f().look_at(origin=eye.tolist(), target=(eye + fwd).tolist(),
                                                           up=up.tolist())}
        n = len(views)
        scene = {
            "type": "scene",
            "integrator": {"type": "path", "max_depth": self.max_depth, "hide_emitters": True},
            # one batch sensor renders every view side by side in one kernel launch (the per-call
            # tracing cost of Mitsuba's JIT, ~0.15 s, is paid once per finish instead of once per view)
            "sensor": {
                "type": "batch", **sensors,
                "film": {"type": "hdrfilm", "width": self.size * n, "height": self.size, "pixel_format": "rgba",
                         "rfilter": {"type": "gaussian"}},
                "sampler": {"type": "independent", "sample_count": self.spp},
            },
            "env": {"type": "envmap", "bitmap": mi.Bitmap(env),
                    "to_world": mi.ScalarTransform4f().rotate([0, 1, 0], float(rng.uniform(-60, 60)))},
        }
        for name, path in self._files.items():
            role = name if name in bsdfs else "face"
            scene[name] = {"type": "ply", "filename": path, "bsdf": bsdfs[role],
                           "face_normals": name in ("face", "face_top", "rivets")}
        img = np.asarray(mi.render(mi.load_dict(scene), spp=self.spp, seed=seed), dtype=np.float32)
        out = [img[:, i * self.size:(i + 1) * self.size].copy() for i in range(n)]
        return out

    def close(self) -> None:
        """Remove the temporary PLY files."""
        self._tmp.cleanup()


def to_srgb(linear: np.ndarray, exposure: float = 1.0) -> np.ndarray:
    """Linear RGB ``float (..., 3)`` → sRGB ``uint8`` (IEC 61966-2-1 transfer curve), after a soft
    highlight roll-off (Reinhard: ``x / (1 + x / 4)``, scaled so mid-greys stay put)."""
    x = np.clip(linear * exposure, 0, None)
    x = x / (1 + x / 4) * 1.25
    x = np.clip(x, 0, 1)
    s = np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1 / 2.4) - 0.055)
    return np.clip(s * 255 + 0.5, 0, 255).astype(np.uint8)
