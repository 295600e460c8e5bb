"""Camera rigs: look-at, orbit (a turntable is a ring of orbit cameras), and a stereo pair for headsets."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from avatar import Camera

DEFAULT_IPD_CM = 6.3  # adult mean interpupillary distance


def look_at(eye_cm: np.ndarray, target_cm: np.ndarray,
            up: tuple[float, float, float] = (0.0, 1.0, 0.0)) -> np.ndarray:
    """[4, 4] camera_to_world for a camera at `eye_cm` looking at `target_cm` (it looks down its -z)."""
    eye, target = np.asarray(eye_cm, dtype=np.float64), np.asarray(target_cm, dtype=np.float64)
    z = eye - target
    z /= np.linalg.norm(z)
    x = np.cross(up, z)
    if np.linalg.norm(x) < 1e-9:  # looking straight along `up`: any perpendicular will do
        x = np.cross([0.0, 0.0, 1.0], z)
    x /= np.linalg.norm(x)
    pose = np.eye(4)
    pose[:3, 0], pose[:3, 1], pose[:3, 2], pose[:3, 3] = x, np.cross(z, x), z, eye
    return pose


def orbit_camera(target_cm: np.ndarray, distance_cm: float, yaw_rad: float, pitch_rad: float,
                 width_px: int, height_px: int, vertical_fov_deg: float) -> Camera:
    """A camera on a sphere around `target_cm`; yaw 0, pitch 0 is in front (+z), yaw > 0 towards +x."""
    direction = np.array([math.sin(yaw_rad) * math.cos(pitch_rad), math.sin(pitch_rad),
                          math.cos(yaw_rad) * math.cos(pitch_rad)])
    eye = np.asarray(target_cm, dtype=np.float64) + distance_cm * direction
    return Camera.from_vertical_fov(width_px, height_px, vertical_fov_deg, look_at(eye, target_cm))


@dataclass(frozen=True)
class StereoRig:
    """Two parallel eye cameras, `ipd_cm` apart along the head camera's x axis."""

    ipd_cm: float = DEFAULT_IPD_CM

    def eyes(self, camera: Camera) -> tuple[Camera, Camera]:
        """(left, right) cameras: `camera` moved by -/+ ipd/2 along its own x axis."""
        def shifted(offset_cm: float) -> Camera:
            pose = camera.camera_to_world.copy()
            pose[:3, 3] += offset_cm * pose[:3, 0]
            return Camera(camera.width_px, camera.height_px, camera.fx_px, camera.fy_px,
                          camera.cx_px, camera.cy_px, pose)
        return shifted(-self.ipd_cm / 2), shifted(self.ipd_cm / 2)


def side_by_side(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """[H, W, C] + [H, W, C] -> [H, 2W, C]: the left eye's image on the left."""
    return np.concatenate([left, right], axis=1)
