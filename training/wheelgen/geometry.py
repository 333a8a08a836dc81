"""Rim and tyre meshes of a :class:`~designsearch.training.wheelgen.design.WheelDesign` (trimesh + shapely).

Frame: the axle is the Z axis, the face looks toward +Z, the rim flange (outer lip edge) has radius 1
at ``z = 0`` and the barrel runs toward ``-Z``; units are the design's (fractions of the flange
radius). The face is a 2-D outline (shapely): hub disc ∪ spokes ∪ outer ring, minus bore and lug
holes; the windows between spokes get fillets by a morphological opening of the window shapes
(``buffer(-f).buffer(f)``, which rounds the material's concave corners by ``f``). The outline is
extruded, subdivided and bent back toward the hub by the design's concavity. Barrel and lip are a
revolved cross-section; the tyre is a revolved ellipse with a tread of circumferential and lateral
grooves.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import trimesh
from shapely.geometry import MultiPolygon, Point, Polygon
from shapely.ops import unary_union

from designsearch.training.wheelgen.design import WheelDesign

#: Part names; ``tyre`` is the only non-rim part (mask value 128, rim parts 255).
PARTS = ("face", "lip", "barrel", "cap", "rivets", "valve", "tyre")
FACE_THICKNESS = 0.07
R_BEAD, R_DROP = 0.93, 0.8


@dataclass
class WheelMesh:
    """Meshes of one wheel, by part (``parts[name]`` a :class:`trimesh.Trimesh`; absent parts omitted).

    Attributes:
        r_flange: radius of the rim flange (1.0).
        r_tyre: outer radius of the tyre (``r_flange`` when there is none).
        width: barrel depth along -Z.
    """

    parts: dict[str, trimesh.Trimesh] = field(default_factory=dict)
    r_flange: float = 1.0
    r_tyre: float = 1.0
    width: float = 0.8

    def bounds(self) -> np.ndarray:
        """``float (2, 3)`` axis-aligned bounds over all parts."""
        b = np.array([m.bounds for m in self.parts.values()])
        return np.array([b[:, 0].min(0), b[:, 1].max(0)])


def _ribbon(theta: np.ndarray, r: np.ndarray, width: np.ndarray) -> Polygon:
    """A strip of ``width`` along the polar curve ``(r, theta)``: float arrays ``(K,)``, radians."""
    pts = np.stack([r * np.cos(theta), r * np.sin(theta)], 1)
    tan = np.gradient(pts, axis=0)
    tan /= np.linalg.norm(tan, axis=1, keepdims=True) + 1e-12
    nrm = np.stack([-tan[:, 1], tan[:, 0]], 1)
    left, right = pts + nrm * width[:, None] / 2, pts - nrm * width[:, None] / 2
    poly = Polygon(np.concatenate([left, right[::-1]]))
    return poly if poly.is_valid else poly.buffer(0)


def _spoke(d: WheelDesign, angle: float, r0: float, r1: float, twist: float, width_scale: float = 1.0,
           offset: float = 0.0, k: int = 24) -> Polygon:
    """One spoke from radius ``r0`` to ``r1`` at ``angle`` (rad), swept by ``twist`` (rad), tapered;
    ``offset`` shifts it sideways (split arms), growing from 0 at the hub to ``offset`` at the rim."""
    s = np.linspace(0.0, 1.0, k)
    r = r0 + (r1 - r0) * s
    w = d.spoke_width * width_scale * (1.0 - d.taper * s)
    th = angle + twist * s ** 1.3 + np.arcsin(np.clip(offset * s / r, -0.9, 0.9))
    return _ribbon(th, r, w)


def face_outline(d: WheelDesign, r_face: float) -> Polygon | MultiPolygon:
    """The face's 2-D material (shapely, design units): what a front view shows of the spoke disc.

    Raises:
        ValueError: the design gives an empty face.
    """
    n, hub = d.spokes, d.hub_radius
    ring_in = r_face - 0.05
    annulus = Point(0, 0).buffer(r_face, 32)
    base = [Point(0, 0).buffer(hub, 24), annulus.difference(Point(0, 0).buffer(ring_in, 32))]
    spokes: list[Polygon] = []
    step = 2 * np.pi / n
    twist = np.radians(d.twist_deg)
    r0, r1 = hub * 0.8, ring_in + 0.02
    if d.style in ("straight", "directional", "multispoke", "turbine", "dish"):
        ws = 0.7 if d.style == "turbine" else 1.0
        for i in range(n):
            spokes.append(_spoke(d, i * step, r0, r1, twist, ws))
        if d.style == "turbine":
            base.append(annulus.difference(Point(0, 0).buffer(r_face - 0.02, 32)))
    elif d.style == "split":
        for i in range(n):
            for sgn in (-1, 1):
                spokes.append(_spoke(d, i * step, r0, r1, twist, 0.6, sgn * (d.split_gap + d.spoke_width * 0.6) / 2))
    elif d.style == "y":
        mid = hub + (ring_in - hub) * 0.45
        fork = step * 0.22
        for i in range(n):
            a = i * step
            spokes.append(_spoke(d, a, r0, mid + 0.02, 0.0))
            for sgn in (-1, 1):
                th = a + sgn * np.linspace(0, fork + d.split_gap, 16) ** 1.0
                rr = np.linspace(mid, r1, 16)
                spokes.append(_ribbon(th, rr, np.full(16, d.spoke_width * 0.65 * (1 - d.taper * 0.5))))
    elif d.style == "mesh":
        cross = step * 0.9
        for i in range(n):
            for sgn in (-1, 1):
                spokes.append(_spoke(d, i * step, r0, r1, sgn * cross))
    elif d.style == "windows":
        disc = Point(0, 0).buffer(r_face, 32)
        rc = (hub + ring_in) / 2
        wr = min(d.window_radius, (ring_in - hub) / 2 - 0.02, np.sin(step / 2) * rc - 0.02)
        holes = [Point(rc * np.cos(i * step + step / 2), rc * np.sin(i * step + step / 2)).buffer(max(wr, 0.02), 12)
                 for i in range(n)]
        material = disc.difference(unary_union(holes))
        return _cut_centre(d, material)
    material = unary_union(base + spokes)
    windows = annulus.difference(material)
    f = d.fillet
    windows = windows.buffer(-f, 4).buffer(f, 4)  # opening: rounds the material's inner corners by f
    material = annulus.difference(windows)
    if material.is_empty:
        raise ValueError(f"design {d.design_id} has an empty face")
    return _cut_centre(d, material)


def _cut_centre(d: WheelDesign, material) -> Polygon | MultiPolygon:
    holes = [Point(0, 0).buffer(d.bore_radius, 16)]
    for i in range(d.lugs):
        a = 2 * np.pi * i / d.lugs + np.pi / 2
        holes.append(Point(d.pcd_radius * np.cos(a), d.pcd_radius * np.sin(a)).buffer(0.028, 6))
    return material.difference(unary_union(holes)).buffer(0)


def _extrude(poly, height: float) -> trimesh.Trimesh:
    polys = list(poly.geoms) if isinstance(poly, MultiPolygon) else [poly]
    meshes = [trimesh.creation.extrude_polygon(p, height) for p in polys if p.area > 1e-5]
    return trimesh.util.concatenate(meshes)


def _bend(mesh: trimesh.Trimesh, d: WheelDesign, r_face: float, z_face: float, max_edge: float = 0.08) -> trimesh.Trimesh:
    """Subdivide, then move every vertex back by the concave profile: ``z -= concavity * (1 - s)^1.5``,
    ``s = clip((r - hub) / (r_face - hub), 0, 1)``; the whole face is set at ``z_face``."""
    v, f = trimesh.remesh.subdivide_to_size(mesh.vertices, mesh.faces, max_edge=max_edge)
    r = np.hypot(v[:, 0], v[:, 1])
    s = np.clip((r - d.hub_radius) / max(r_face - d.hub_radius, 1e-3), 0.0, 1.0)
    v = v.copy()
    v[:, 2] += z_face - d.concavity * (1.0 - s) ** 1.5
    return trimesh.Trimesh(v, f, process=True)


def _revolve(profile: np.ndarray, sections: int = 128) -> trimesh.Trimesh:
    """Solid of revolution about Z of a closed ``(r, z)`` polygon, ``float (K, 2)``."""
    return trimesh.creation.revolve(profile, sections=sections)


def rim_profile(d: WheelDesign, r_face: float, width: float) -> np.ndarray:
    """Cross-section ``(r, z)`` of lip + barrel, ``float (K, 2)``, closed (first point not repeated)."""
    ld = d.lip_depth
    return np.array([
        (r_face - 0.035, -ld - FACE_THICKNESS - 0.03), (r_face - 0.005, -ld), (r_face, -0.025),
        (r_face + 0.02, 0.0), (0.985, 0.0), (1.0, -0.02), (0.99, -0.055), (R_BEAD, -0.075),
        (R_BEAD, -ld - 0.14), (R_DROP, -ld - 0.22), (R_DROP, -width + 0.25), (R_BEAD, -width + 0.15),
        (R_BEAD, -width + 0.075), (0.99, -width + 0.055), (1.0, -width + 0.02), (0.985, -width),
        (R_DROP - 0.04, -width), (R_DROP - 0.04, -ld - 0.24),
    ])


def tyre_mesh(width: float, height: float, tread: bool, n_theta: int = 240, n_prof: int = 48,
              groove_depth: float = 0.025) -> trimesh.Trimesh:
    """Tyre: an ellipse of radial half-axis ``height/2`` and axial half-axis ``width/2 + 0.06`` revolved
    about Z, inner edge hidden behind the flange. With ``tread``, the crown carries 3 circumferential
    grooves and lateral grooves every 4.5°, ``groove_depth`` deep (design units)."""
    rc = 0.97 + height / 2
    zc = -width / 2
    a_r, a_z = height / 2, width / 2 + 0.06
    phi = np.linspace(0, 2 * np.pi, n_prof, endpoint=False)
    theta = np.linspace(0, 2 * np.pi, n_theta, endpoint=False)
    # squarish crown: superellipse exponent 2.5 on the radial side
    cx, cz = np.cos(phi), np.sin(phi)
    pr = rc + a_r * np.sign(cx) * np.abs(cx) ** 0.8
    pz = zc + a_z * cz
    R = np.repeat(pr[None, :], n_theta, 0)
    if tread:
        crown = (cx > 0.55)[None, :]
        zn = (pz - zc) / a_z
        circ = np.zeros(zn.shape, bool)
        for g in (-0.45, 0.0, 0.45):
            circ |= np.abs(zn - g) < 0.06
        lateral = (np.mod(np.degrees(theta)[:, None] + 20 * zn[None, :], 4.5) < 1.1)
        groove = (circ[None, :] | lateral) & crown & (np.abs(zn)[None, :] < 0.8)
        R = R - groove_depth * groove
    X = R * np.cos(theta)[:, None]
    Y = R * np.sin(theta)[:, None]
    Z = np.repeat(pz[None, :], n_theta, 0)
    v = np.stack([X, Y, Z], -1).reshape(-1, 3)
    i, j = np.meshgrid(np.arange(n_theta), np.arange(n_prof), indexing="ij")
    a = i * n_prof + j
    b = ((i + 1) % n_theta) * n_prof + j
    c = ((i + 1) % n_theta) * n_prof + (j + 1) % n_prof
    e = i * n_prof + (j + 1) % n_prof
    f = np.concatenate([np.stack([a, c, b], -1).reshape(-1, 3), np.stack([a, e, c], -1).reshape(-1, 3)])
    m = trimesh.Trimesh(v, f, process=True)
    trimesh.repair.fix_normals(m)
    return m


def build_wheel(d: WheelDesign, tyre: bool = True, tread: bool = True, tyre_height: float = 0.42,
                fillets: bool = True) -> WheelMesh:
    """All meshes of design ``d``.

    Args:
        d: the design.
        tyre: add a tyre (sidewall height ``tyre_height``, design units).
        tread: tread grooves on the tyre (a realism step measured by ``realism``).
        fillets: round the window corners (another realism step; ``False`` keeps sharp corners).

    Returns:
        :class:`WheelMesh`. Raises ``ValueError`` when the face is empty.
    """
    if not fillets:
        d = WheelDesign(**{**d.quantised(), "fillet": 0.0})
    r_face = 0.94 - d.lip_width
    width = max(d.barrel_width, d.lip_depth + 0.5) + 0.1
    out = WheelMesh(width=width)
    outline = face_outline(d, r_face)
    hub_ring = unary_union([Point(0, 0).buffer(d.hub_radius, 24),
                            Point(0, 0).buffer(r_face, 32).difference(Point(0, 0).buffer(r_face - 0.05, 32))])
    spokes_only = outline.difference(hub_ring)
    centre = outline.intersection(hub_ring)
    t_spoke = FACE_THICKNESS - min(d.pocket_depth, FACE_THICKNESS - 0.03)
    pieces = [_extrude(centre, FACE_THICKNESS)]
    if not spokes_only.is_empty and spokes_only.area > 1e-4:
        sp = _extrude(spokes_only, t_spoke)
        sp.apply_translation([0, 0, FACE_THICKNESS - t_spoke])  # pockets: thinner from the back
        pieces.append(sp)
        if d.crown > 0.005:
            ridge = spokes_only.buffer(-min(d.spoke_width * 0.25, 0.02), 4)
            if not ridge.is_empty and ridge.area > 1e-4:
                rm = _extrude(ridge, d.crown * 0.5)
                rm.apply_translation([0, 0, FACE_THICKNESS])
                pieces.append(rm)
    face = trimesh.util.concatenate(pieces)
    out.parts["face"] = _bend(face, d, r_face, -d.lip_depth - FACE_THICKNESS)
    rim = _revolve(rim_profile(d, r_face, width))
    lip_sel = rim.triangles_center[:, 2] > -0.06
    out.parts["lip"] = rim.submesh([np.nonzero(lip_sel)[0]], append=True)
    out.parts["barrel"] = rim.submesh([np.nonzero(~lip_sel)[0]], append=True)
    z_hub = -d.lip_depth - d.concavity
    if d.cap != "none":
        rc = d.bore_radius + 0.03
        cap = trimesh.creation.cylinder(radius=rc, height=0.03, sections=48)
        cap.apply_translation([0, 0, z_hub + 0.015])
        if d.cap == "dome":
            dome = trimesh.creation.icosphere(3, radius=rc)
            dome.vertices[:, 2] = np.maximum(dome.vertices[:, 2], 0) * 0.45
            dome.apply_translation([0, 0, z_hub + 0.03])
            cap = trimesh.util.concatenate([cap, dome])
        out.parts["cap"] = cap
    if d.construction == "two_piece" and d.rivets:
        r_riv = r_face - 0.025
        s = trimesh.creation.icosphere(1, radius=0.011)
        riv = []
        for i in range(d.rivets):
            a = 2 * np.pi * i / d.rivets
            m = s.copy()
            m.apply_translation([r_riv * np.cos(a), r_riv * np.sin(a), -d.lip_depth + 0.002])
            riv.append(m)
        out.parts["rivets"] = trimesh.util.concatenate(riv)
    valve = trimesh.creation.cylinder(radius=0.012, height=0.07, sections=12)
    valve.apply_transform(trimesh.transformations.rotation_matrix(np.radians(35), [1, 0, 0]))
    valve.apply_translation([0, r_face - 0.01, -d.lip_depth * 0.5 - 0.02])
    out.parts["valve"] = valve
    if tyre:
        out.parts["tyre"] = tyre_mesh(width, tyre_height, tread)
        out.r_tyre = 0.97 + tyre_height
    return out


def rim_area_fraction(d: WheelDesign) -> float:
    """Fraction of the face disc (radius ``r_face``) covered by material, in [0, 1] (front view)."""
    r_face = 0.94 - d.lip_width
    return float(face_outline(d, r_face).area / (np.pi * r_face ** 2))


__all__ = ["PARTS", "WheelMesh", "build_wheel", "face_outline", "rim_profile", "tyre_mesh", "rim_area_fraction"]
