"""Views of a wheel: a perspective camera orbiting the wheel's axle frame (shared by every renderer).

Frame (see :mod:`.geometry`): axle = Z, face toward +Z. A view is ``azimuth`` (degrees about the
vertical Y axis; 0 = frontal, 90 = edge-on), ``elevation`` (degrees above the horizontal), ``spin``
(degrees the wheel is turned about its axle) and a vertical field of view; the distance is chosen so
that the wheel's outer circle fills ``fill`` of the picture height in a frontal view. Camera
matrices follow OpenGL (camera looks down its own -Z, +Y up), as pyrender and Mitsuba's ``look_at``
expect.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class View:
    """One camera placement. Angles in degrees, ``fill`` a fraction of the picture height."""

    azimuth: float
    elevation: float
    spin: float
    fov_deg: float = 28.0
    fill: float = 0.9
    look_z: float = -0.25

    def eye(self, radius: float) -> np.ndarray:
        """Camera position, ``float (3,)`` in wheel units, for a wheel of outer ``radius``."""
        dist = radius / (np.tan(np.radians(self.fov_deg) / 2) * self.fill)
        az, el = np.radians(self.azimuth), np.radians(self.elevation)
        d = np.array([np.sin(az) * np.cos(el), np.sin(el), np.cos(az) * np.cos(el)])
        return np.array([0.0, 0.0, self.look_z]) + dist * d

    def target(self) -> np.ndarray:
        """The point looked at, ``float (3,)`` (on the axle, a little behind the flange)."""
        return np.array([0.0, 0.0, self.look_z])

    def camera_pose(self, radius: float) -> np.ndarray:
        """Camera-to-world ``float (4, 4)`` (OpenGL convention: looks down -Z)."""
        return look_at(self.eye(radius), self.target(), np.array([0.0, 1.0, 0.0]))

    def wheel_pose(self) -> np.ndarray:
        """Wheel-to-world ``float (4, 4)``: the spin about the axle."""
        a = np.radians(self.spin)
        m = np.eye(4)
        m[:2, :2] = [[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]
        return m

    def project(self, points: np.ndarray, radius: float, size: int) -> np.ndarray:
        """Pixel coordinates ``float (N, 2)`` (x right, y down) and view depth of wheel-frame points.

        Args:
            points: ``float (N, 3)`` in the wheel frame (before spin).
            radius: the wheel's outer radius used for the camera distance.
            size: picture side in pixels (square pictures).

        Returns:
            ``float (N, 3)``: x px, y px, depth (distance along the view axis, > 0 in front).
        """
        world = points @ self.wheel_pose()[:3, :3].T
        cam = np.linalg.inv(self.camera_pose(radius))
        pc = world @ cam[:3, :3].T + cam[:3, 3]
        z = -pc[:, 2]
        f = size / 2 / np.tan(np.radians(self.fov_deg) / 2)
        x = size / 2 + f * pc[:, 0] / z
        y = size / 2 - f * pc[:, 1] / z
        return np.stack([x, y, z], 1)


def look_at(eye: np.ndarray, target: np.ndarray, up: np.ndarray) -> np.ndarray:
    """Camera-to-world ``float (4, 4)`` of a camera at ``eye`` looking at ``target`` (OpenGL: -Z forward)."""
    f = target - eye
    f = f / np.linalg.norm(f)
    s = np.cross(f, up)
    if np.linalg.norm(s) < 1e-6:
        s = np.cross(f, np.array([0.0, 0.0, 1.0]))
    s = s / np.linalg.norm(s)
    u = np.cross(s, f)
    m = np.eye(4)
    m[:3, 0], m[:3, 1], m[:3, 2], m[:3, 3] = s, u, -f, eye
    return m


def random_view(rng: np.random.Generator, frontal_share: float = 0.35, max_azimuth: float = 60.0) -> View:
    """A product-shot view: ``frontal_share`` near-frontal (|azimuth| < 8°), the rest 3/4 views up to
    ``max_azimuth``; elevation -10..25°, spin uniform 0-360°, field of view 18-40°, fill 0.78-0.97."""
    if rng.random() < frontal_share:
        az = float(rng.uniform(-8, 8))
    else:
        az = float(rng.uniform(15, max_azimuth)) * (1 if rng.random() < 0.5 else -1)
    return View(azimuth=round(az, 2), elevation=round(float(rng.uniform(-10, 25)), 2),
                spin=round(float(rng.uniform(0, 360)), 2), fov_deg=round(float(rng.uniform(18, 40)), 2),
                fill=round(float(rng.uniform(0.78, 0.97)), 3))
