"""Hard test scenes for backend parity: each a camera and a small set of Gaussians.

Small images (non-square, so a swapped axis shows) keep the dense reference fast.
`head_like_scene` is the benchmark scene: a head-sized, mostly opaque cloud at any resolution.
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


HEAD_CENTRE_CM = (0.0, 0.0, -45.0)
HEAD_RADII_CM = (7.5, 9.5, 8.5)  # half width, half height, half depth: a head-sized ellipsoid
HEAD_FOV_DEG = 30.0
_SURFACE_FRACTION = 0.8


def _tangent_frames(normals: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """[N, 3] unit normals -> [N, 3, 3] rotations whose column 2 is the normal, the tangents turned at random."""
    helper = rng.normal(size=normals.shape)
    t1 = np.cross(normals, helper)
    t1 /= np.linalg.norm(t1, axis=1, keepdims=True)
    t2 = np.cross(normals, t1)
    return np.stack([t1, t2, normals], axis=2)


def head_like_scene(num_gaussians: int, size_px: int, seed: int = 0) -> tuple[Camera, Gaussians]:
    """A benchmark scene shaped like a trained head: the same Gaussians at any resolution.

    80% are flat, mostly opaque surfels on an ellipsoid of radii `HEAD_RADII_CM` centred
    45 cm in front of a camera with a 30 deg vertical field of view (the head covers
    ~40% of the square frame); 20% fill its inside, hidden behind the surface. Surfel
    standard deviations are 0.035-0.25 cm, i.e. ~0.8-6 px at 512 px (full widths at
    half maximum ~2-15 px), so a pixel of the face meets tens of Gaussians.

    Returns:
        A `size_px` x `size_px` camera at the origin looking down -z, and the Gaussians.
    """
    rng = np.random.default_rng(seed)
    radii = np.asarray(HEAD_RADII_CM)
    n_surface = int(round(num_gaussians * _SURFACE_FRACTION))
    n_inside = num_gaussians - n_surface

    directions = rng.normal(size=(n_surface, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    normals = directions / radii  # an ellipsoid's normal at radii * d is along d / radii
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    tangent_sigma_cm = np.exp(rng.uniform(np.log(0.035), np.log(0.25), n_surface))
    surface_scales = tangent_sigma_cm[:, None] * np.exp(rng.normal(size=(n_surface, 3)) * 0.25)
    surface_scales[:, 2] *= 0.2  # thin along the normal, as trained surfels are

    inside_points = rng.normal(size=(n_inside, 3))
    inside_points *= (rng.uniform(0, 0.9, n_inside) ** (1 / 3) / np.linalg.norm(inside_points, axis=1))[:, None]

    opaque = rng.uniform(size=num_gaussians) < 0.75
    skin = np.array([0.85, 0.62, 0.52])
    return Camera.from_vertical_fov(size_px, size_px, HEAD_FOV_DEG), Gaussians(
        means=np.concatenate([directions * radii, inside_points * radii]) + np.asarray(HEAD_CENTRE_CM),
        rotations=np.concatenate([_tangent_frames(normals, rng), rotvec_to_matrix(rng.normal(size=(n_inside, 3)))]),
        scales=np.concatenate([surface_scales, np.exp(rng.uniform(np.log(0.1), np.log(0.5), (n_inside, 3)))]),
        opacities=np.where(opaque, rng.uniform(0.85, 1.0, num_gaussians), rng.uniform(0.1, 0.85, num_gaussians)),
        colors=np.clip(skin + rng.normal(size=(num_gaussians, 3)) * 0.08, 0, 1),
    )
