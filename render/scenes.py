"""Hard test scenes for backend parity: each a camera and a small set of Gaussians.

Small images (non-square, so a swapped axis shows) keep the dense reference fast.
"""

from __future__ import annotations

import numpy as np

from avatar import Camera
from avatar.rotation import rotvec_to_matrix
from render.gaussians import Gaussians

WIDTH_PX, HEIGHT_PX = 96, 72


def _cloud(rng: np.random.Generator, n: int, centre, spread_cm: float, scale_cm: float,
           anisotropy: float = 1.0) -> Gaussians:
    log_scales = rng.normal(size=(n, 3)) * 0.3
    log_scales[:, 0] += np.log(anisotropy)
    return Gaussians(
        means=np.asarray(centre) + rng.normal(size=(n, 3)) * spread_cm,
        rotations=rotvec_to_matrix(rng.normal(size=(n, 3)) * 2),
        scales=scale_cm * np.exp(log_scales),
        opacities=rng.uniform(0.05, 1.0, n),
        colors=rng.uniform(0, 1, (n, 3)),
    )


def hard_scenes(seed: int = 0) -> dict[str, tuple[Camera, Gaussians]]:
    """Named scenes: rotated, stretched, overlapping, near-plane, off-screen, and a mixed cloud."""
    rng = np.random.default_rng(seed)
    camera = Camera.from_vertical_fov(WIDTH_PX, HEIGHT_PX, 40.0)
    turned = np.eye(4)
    turned[:3, :3] = rotvec_to_matrix(np.array([0.05, -0.08, 0.7]))
    turned[:3, 3] = [-1.0, 0.5, 1.0]
    scenes = {
        "rotated": (Camera.from_vertical_fov(WIDTH_PX, HEIGHT_PX, 40.0, turned), _cloud(rng, 300, [0, 0, -30], 3, 0.4)),
        "stretched": (camera, _cloud(rng, 120, [0, 0, -30], 3, 0.15, anisotropy=25.0)),
        "overlapping": (camera, _cloud(rng, 400, [0, 0, -30], 0.6, 0.5)),
        "near_plane": (camera, _cloud(rng, 150, [0, 0, -3], 1.2, 0.15)),
        "off_screen": (camera, _cloud(rng, 300, [14, 9, -30], 5, 0.5)),
        "mixed": (camera, _cloud(rng, 800, [0, 0, -35], 4, 0.3, anisotropy=4.0)),
    }
    # Opaque, equal-depth sheets: order ties and early termination.
    sheet = _cloud(rng, 200, [0, 0, -25], 2, 0.6)
    sheet.means[:, 2] = -25.0
    sheet.opacities[:] = 0.98
    scenes["opaque_ties"] = (camera, sheet)
    return scenes
