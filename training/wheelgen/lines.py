"""Line drawings of a wheel view: hidden-line CAD projections and sketch styles.

The CAD drawing draws the mesh's *feature edges* — crease edges (dihedral angle above a threshold),
silhouette edges (one adjacent face toward the eye, the other away) and open boundary edges — and
hides what the depth buffer of the same view occludes: each edge is sampled every pixel, and a sample
is drawn where its depth is within a tolerance of the nearest surface (the classic depth-buffer
hidden-line method; Appel 1967 did it analytically, see also Isenberg et al. 2003, "A developer's
guide to silhouette algorithms for polygonal models"). Sketch styles then re-draw the visible segments
with hand jitter (a smooth random displacement field), stroke width, dropped and overshooting strokes,
construction lines, and graphite on paper.
"""

from __future__ import annotations

import cv2
import numpy as np
import trimesh

from designsearch.training.wheelgen.camera import View

DRAWING_STYLES = ("cad", "pen", "pencil", "marker")


def feature_edges(mesh: trimesh.Trimesh, crease_deg: float = 30.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Candidate edges of a mesh.

    Returns:
        ``(segments, adjacent_normals, crease)``: ``float (E, 2, 3)`` edge end points in the mesh frame,
        ``float (E, 2, 3)`` the normals of the two faces beside each edge (twice the one face's normal
        for boundary edges) and ``bool (E,)`` crease-or-boundary. Every edge between two faces whose
        dihedral angle is over 1° is a candidate (a silhouette where the two faces disagree about the
        eye); coplanar interior edges never draw.
    """
    adj = mesh.face_adjacency
    ang = mesh.face_adjacency_angles
    keep = ang > np.radians(1.0)
    edges = mesh.face_adjacency_edges[keep]
    normals = mesh.face_normals[adj[keep]]
    crease = ang[keep] > np.radians(crease_deg)
    # boundary edges: edges used by exactly one face
    e = np.sort(mesh.edges, axis=1)
    uniq, idx, counts = np.unique(e, axis=0, return_index=True, return_counts=True)
    b = counts == 1
    b_edges = uniq[b]
    b_faces = mesh.edges_face[idx[b]]
    b_norm = np.repeat(mesh.face_normals[b_faces][:, None], 2, 1)
    segs = np.concatenate([mesh.vertices[edges], mesh.vertices[b_edges]])
    norms = np.concatenate([normals, b_norm])
    is_crease = np.concatenate([crease, np.ones(len(b_edges), bool)])
    return segs, norms, is_crease


def visible_segments(meshes: list[trimesh.Trimesh], view: View, radius: float, depth: np.ndarray,
                     crease_deg: float | list[float] = 30.0, tol: float = 0.015) -> np.ndarray:
    """2-D segments of the hidden-line drawing.

    Args:
        meshes: wheel-frame meshes (the parts drawn).
        view: the view; ``radius`` the wheel radius used for the camera distance.
        depth: ``float32 (S, S)`` depth buffer of the same view (:meth:`.RasterRenderer.labels`).
        crease_deg: dihedral angle above which an edge is a crease (one value, or one per mesh: a tyre
            drawn with 179° shows its outline, not every tread groove).
        tol: depth tolerance, relative to the sample's depth.

    Returns:
        ``float32 (N, 2, 2)`` visible segments in pixels (x, y).
    """
    size = depth.shape[0]
    eye_w = view.eye(radius)
    eye = np.linalg.inv(view.wheel_pose())[:3, :3] @ eye_w  # eye in the wheel frame
    # nearest surface over a 3x3 window: a sample on an edge sits between two pixels' surfaces
    d = np.where(depth > 0, depth, 1e9).astype(np.float32)
    dmin = cv2.erode(d, np.ones((3, 3), np.uint8))
    out = []
    for mesh, crease_at in zip(meshes, crease_deg if isinstance(crease_deg, (list, tuple)) else [crease_deg] * len(meshes)):
        segs, normals, crease = feature_edges(mesh, crease_at)
        if len(segs) == 0:
            continue
        mid = segs.mean(1)
        to_eye = eye[None] - mid
        s0 = np.einsum("ij,ij->i", normals[:, 0], to_eye) > 0
        s1 = np.einsum("ij,ij->i", normals[:, 1], to_eye) > 0
        keep = crease | (s0 != s1)
        segs = segs[keep]
        if len(segs) == 0:
            continue
        p = view.project(segs.reshape(-1, 3), radius, size).reshape(-1, 2, 3)
        length = np.linalg.norm(p[:, 1, :2] - p[:, 0, :2], axis=1)
        n = np.clip(np.ceil(length).astype(int), 1, 400)
        for k in np.unique(n):
            sel = p[n == k]
            t = (np.arange(k + 1) / k)[None, :, None]
            pts = sel[:, :1] * (1 - t) + sel[:, 1:] * t  # (M, k+1, 3)
            x = np.clip(np.round(pts[..., 0]).astype(int), 0, size - 1)
            y = np.clip(np.round(pts[..., 1]).astype(int), 0, size - 1)
            inside = (pts[..., 0] >= 0) & (pts[..., 0] < size) & (pts[..., 1] >= 0) & (pts[..., 1] < size)
            vis = inside & (pts[..., 2] <= dmin[y, x] * (1 + tol) + 1e-3)
            both = vis[:, :-1] & vis[:, 1:]
            a, b = pts[:, :-1, :2][both], pts[:, 1:, :2][both]
            out.append(np.stack([a, b], 1))
    if not out:
        return np.zeros((0, 2, 2), np.float32)
    return np.concatenate(out).astype(np.float32)


def _paper(size: int, rng: np.random.Generator, tone: float) -> np.ndarray:
    grain = cv2.GaussianBlur(rng.normal(0, 1, (size, size)).astype(np.float32), (0, 0), 0.8)
    return np.clip(tone + grain * rng.uniform(2, 6), 0, 255).astype(np.float32)


def _warp_field(size: int, rng: np.random.Generator, amplitude: float) -> tuple[np.ndarray, np.ndarray]:
    k = max(2, size // 48)
    fx = cv2.resize(rng.normal(0, amplitude, (k, k)).astype(np.float32), (size, size), interpolation=cv2.INTER_CUBIC)
    fy = cv2.resize(rng.normal(0, amplitude, (k, k)).astype(np.float32), (size, size), interpolation=cv2.INTER_CUBIC)
    return fx, fy


def draw(segments: np.ndarray, size: int, style: str, rng: np.random.Generator) -> np.ndarray:
    """Draw visible segments as a line drawing.

    Args:
        segments: ``float (N, 2, 2)`` pixel segments (:func:`visible_segments`).
        size: picture side in pixels.
        style: one of :data:`DRAWING_STYLES`: ``cad`` (clean 1 px black lines on white), ``pen`` (1-2 px
            ink with hand jitter and a few dropped strokes), ``pencil`` (grey graphite of varying
            pressure on paper grain, partial strokes, construction lines), ``marker`` (thick strokes).
        rng: randomness of the sketch.

    Returns:
        ``uint8 (S, S, 3)`` RGB.

    Raises:
        ValueError: unknown style.
    """
    if style not in DRAWING_STYLES:
        raise ValueError(f"unknown drawing style {style!r}; expected one of {', '.join(DRAWING_STYLES)}")
    scale = 4 if style == "cad" else 2  # supersampling for antialiased strokes
    big = size * scale
    ink = np.zeros((big, big), np.float32)
    seg = segments.astype(np.float64) * scale
    if style != "cad" and len(seg):
        fx, fy = _warp_field(big, rng, {"pen": 0.5, "pencil": 0.8, "marker": 0.9}[style] * scale)
        xi = np.clip(seg[..., 0].astype(int), 0, big - 1)
        yi = np.clip(seg[..., 1].astype(int), 0, big - 1)
        seg = seg + np.stack([fx[yi, xi], fy[yi, xi]], -1)
        drop = {"pen": 0.04, "pencil": 0.12, "marker": 0.03}[style]
        seg = seg[rng.random(len(seg)) > drop]
    width = {"cad": 1.0, "pen": float(rng.uniform(0.8, 1.4)), "pencil": float(rng.uniform(0.8, 1.6)),
             "marker": float(rng.uniform(1.6, 2.4))}[style]
    th = max(1, int(round(width * scale)))
    pts = np.round(seg * 16).astype(np.int32)  # 4 fractional bits
    cv2.polylines(ink, list(pts), False, 1.0, th, cv2.LINE_AA, shift=4)
    if style == "pencil":
        c = size * scale / 2
        for _ in range(int(rng.integers(1, 4))):  # construction lines: axes and a bounding circle
            a = rng.uniform(0, np.pi)
            d = np.array([np.cos(a), np.sin(a)]) * big
            p0, p1 = (c - d).astype(int), (c + d).astype(int)
            cv2.line(ink, tuple(int(v) for v in p0), tuple(int(v) for v in p1), 0.35, max(1, scale // 2), cv2.LINE_AA)
        if len(segments):
            r = float(np.abs(segments.reshape(-1, 2) - size / 2).max() * scale)
            cv2.circle(ink, (int(c), int(c)), int(r * rng.uniform(0.98, 1.04)), 0.3, max(1, scale // 2), cv2.LINE_AA)
    ink = cv2.resize(ink, (size, size), interpolation=cv2.INTER_AREA)
    if style == "cad":
        return np.repeat((255 * (1 - np.clip(ink, 0, 1)))[..., None], 3, 2).astype(np.uint8)
    if style == "pencil":
        paper = _paper(size, rng, rng.uniform(225, 250))
        pressure = cv2.resize(rng.uniform(0.45, 0.95, (6, 6)).astype(np.float32), (size, size))
        grain = rng.uniform(0.7, 1.0, (size, size)).astype(np.float32)
        g = paper * (1 - np.clip(ink, 0, 1) * pressure * grain)
        tint = np.array([1.0, 1.0, 1.02]) if rng.random() < 0.5 else np.array([1.0, 0.99, 0.96])
        return np.clip(g[..., None] * tint, 0, 255).astype(np.uint8)
    paper = _paper(size, rng, rng.uniform(240, 255)) if rng.random() < 0.5 else np.full((size, size), 255.0, np.float32)
    colour = np.array([20, 20, 30]) if rng.random() < 0.7 else np.array([20, 40, 120])
    a = np.clip(ink, 0, 1)[..., None]
    return np.clip(paper[..., None] * (1 - a) + colour * a, 0, 255).astype(np.uint8)
