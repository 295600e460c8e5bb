"""`Camera` and the project's one coordinate convention.

Coordinate convention (everywhere in this project):
- 3D: right-handed, y up, units cm. Head space is MediaPipe's canonical face
  space: origin inside the head, the face looking along +z, x towards the
  subject's left (the viewer's right when the face looks at the viewer).
- A camera looks down its own -z, with x to the right of the image and y up
  (the OpenGL / MediaPipe metric / nerfstudio / glTF convention); its pose is
  `camera_to_world` [4, 4].
- Images: pixel coordinates (u, v) with the origin at the top-left corner of
  the image, u to the right, v down; pixel (i, j) covers [i, i+1) x [j, j+1),
  so its centre is at (i + 0.5, j + 0.5).

Projection of a camera-space point (x, y, z), z < 0:
    u = cx + fx * x / (-z),    v = cy - fy * y / (-z).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Camera:
    """Pinhole camera: intrinsics in pixels, extrinsics as a camera-to-world pose in cm."""

    width_px: int
    height_px: int
    fx_px: float
    fy_px: float
    cx_px: float
    cy_px: float
    camera_to_world: np.ndarray = field(default_factory=lambda: np.eye(4))

    def __post_init__(self) -> None:
        pose = np.asarray(self.camera_to_world, dtype=np.float64)
        if pose.shape != (4, 4):
            raise ValueError(f"camera_to_world must be [4, 4], got {pose.shape}")
        object.__setattr__(self, "camera_to_world", pose)

    @classmethod
    def from_vertical_fov(cls, width_px: int, height_px: int, vertical_fov_deg: float,
                          camera_to_world: np.ndarray | None = None) -> "Camera":
        """Square pixels, principal point at the image centre."""
        f = 0.5 * height_px / math.tan(math.radians(vertical_fov_deg) / 2)
        pose = np.eye(4) if camera_to_world is None else camera_to_world
        return cls(width_px, height_px, f, f, width_px / 2, height_px / 2, pose)

    def resized(self, width_px: int, height_px: int) -> "Camera":
        """The same camera for the image resized to `width_px` x `height_px` (intrinsics scaled)."""
        sx, sy = width_px / self.width_px, height_px / self.height_px
        return Camera(width_px, height_px, self.fx_px * sx, self.fy_px * sy, self.cx_px * sx, self.cy_px * sy,
                      self.camera_to_world)

    def with_focal_scale(self, scale: float) -> "Camera":
        """The same camera with both focal lengths multiplied by `scale` (a zoom about the principal point)."""
        return Camera(self.width_px, self.height_px, self.fx_px * scale, self.fy_px * scale, self.cx_px, self.cy_px,
                      self.camera_to_world)

    @property
    def vertical_fov_deg(self) -> float:
        return math.degrees(2 * math.atan(0.5 * self.height_px / self.fy_px))

    @property
    def world_to_camera(self) -> np.ndarray:
        """[4, 4] inverse of `camera_to_world`."""
        r, t = self.camera_to_world[:3, :3], self.camera_to_world[:3, 3]
        m = np.eye(4)
        m[:3, :3] = r.T
        m[:3, 3] = -r.T @ t
        return m

    def project(self, points_world: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Project world points to pixels.

        Args:
            points_world: [..., 3] points in cm.
        Returns:
            uv_px: [..., 2] pixel coordinates; depth_cm: [...] distance in front
            of the camera along its viewing axis (negative behind it).
        """
        p = np.asarray(points_world, dtype=np.float64)
        view = self.world_to_camera
        cam = p @ view[:3, :3].T + view[:3, 3]
        depth = -cam[..., 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            u = self.cx_px + self.fx_px * cam[..., 0] / depth
            v = self.cy_px - self.fy_px * cam[..., 1] / depth
        return np.stack([u, v], axis=-1), depth

    def to_dict(self) -> dict:
        """JSON-able form (for manifests and track files)."""
        return {
            "width_px": self.width_px, "height_px": self.height_px,
            "fx_px": self.fx_px, "fy_px": self.fy_px, "cx_px": self.cx_px, "cy_px": self.cy_px,
            "camera_to_world": self.camera_to_world.tolist(),
        }

    @classmethod
    def from_dict(cls, d: dict) -> "Camera":
        return cls(int(d["width_px"]), int(d["height_px"]), float(d["fx_px"]), float(d["fy_px"]),
                   float(d["cx_px"]), float(d["cy_px"]), np.asarray(d["camera_to_world"], dtype=np.float64))
