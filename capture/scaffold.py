"""What the face mesh lacks, as extra triangles for Gaussians to bind to.

- **Skull and hair**: an ellipsoid shell around the head, sized from the face, keeping the
  triangles behind the face's rim or above the forehead. Rigid with the head.
- **Mouth interior**: a cavity behind the inner lip ring, a ring pushed back and a deep centre,
  whose vertices follow the lip vertices they came from, so it opens with jawOpen.
The shell and cavity vertices are appended after the face mesh's, so the face keeps its ids.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import ConvexHull

from avatar import NUM_WEIGHTS
from capture.face_mesh import LANDMARK_GROUPS

SHELL_POINTS = 900
# The skull around a face mesh of width W (x) and height H (y), head space, cm.
SKULL_RADII = np.array([0.56, 0.66, 0.66])     # times (W, H, H)
SKULL_CENTRE = np.array([0.0, 0.12, -0.25])    # times (W, H, H), from the face's centre
MOUTH_DEPTH_CM = 1.2


@dataclass
class ScaffoldMesh:
    """The face mesh plus scaffold: vertices [V, 3] cm, deltas [52, V, 3] cm, triangles [F, 3].

    `region` [F] int8 names each triangle's part: 0 face, 1 skull/hair, 2 mouth interior.
    """

    vertices_cm: np.ndarray
    vertex_deltas_cm: np.ndarray
    triangles: np.ndarray
    region: np.ndarray

    FACE, SKULL, MOUTH = 0, 1, 2


def _fibonacci_sphere(n: int) -> np.ndarray:
    i = np.arange(n) + 0.5
    phi = np.arccos(1 - 2 * i / n)
    theta = np.pi * (1 + 5**0.5) * i
    return np.stack([np.cos(theta) * np.sin(phi), np.cos(phi), np.sin(theta) * np.sin(phi)], axis=1)


def build_scaffold(vertices_cm: np.ndarray, vertex_deltas_cm: np.ndarray, triangles: np.ndarray) -> ScaffoldMesh:
    """Add the skull shell and the mouth cavity to a fitted face mesh ([468, 3], [52, 468, 3], [898, 3])."""
    lo, hi = vertices_cm.min(0), vertices_cm.max(0)
    size = np.array([hi[0] - lo[0], hi[1] - lo[1], hi[1] - lo[1]])
    centre = np.array([(lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2, vertices_cm[LANDMARK_GROUPS["face_oval"], 2].mean()])
    skull_centre = centre + SKULL_CENTRE * size
    unit = _fibonacci_sphere(SHELL_POINTS)
    shell = skull_centre + unit * SKULL_RADII * size
    hull = ConvexHull(unit).simplices
    # Outward winding, as the face's (counter-clockwise seen from outside).
    a, b, c = (unit[hull[:, k]] for k in range(3))
    flip = np.einsum("ij,ij->i", np.cross(b - a, c - a), a + b + c) < 0
    hull[flip] = hull[flip][:, ::-1]
    mid = shell[hull].mean(1)
    rim_z, brow_y = centre[2], hi[1] - 0.05 * size[1]
    keep = (mid[:, 2] < rim_z) | (mid[:, 1] > brow_y)
    used = np.unique(hull[keep])
    remap = np.full(len(shell), -1)
    remap[used] = np.arange(len(used)) + len(vertices_cm)
    skull_vertices, skull_triangles = shell[used], remap[hull[keep]]

    ring = LANDMARK_GROUPS["lips_inner"]
    ring_centre = vertices_cm[ring].mean(0)
    back = (vertices_cm[ring] - ring_centre) * 0.8 + ring_centre - [0, 0, MOUTH_DEPTH_CM]
    deep = ring_centre - [0, 0, 2 * MOUTH_DEPTH_CM]
    first = len(vertices_cm) + len(skull_vertices)
    k = len(ring)
    mouth_vertices = np.concatenate([back, deep[None]])
    mouth_deltas = np.concatenate([vertex_deltas_cm[:, ring], vertex_deltas_cm[:, ring].mean(1, keepdims=True)], 1)
    rim = np.arange(k)
    # The tube from the lips to the pushed-back ring, then a fan to the deep centre (facing inwards).
    tube = np.concatenate([np.stack([ring[rim], ring[(rim + 1) % k], first + rim], 1),
                           np.stack([ring[(rim + 1) % k], first + (rim + 1) % k, first + rim], 1)])
    fan = np.stack([first + rim, first + (rim + 1) % k, np.full(k, first + k)], 1)

    vertices = np.concatenate([vertices_cm, skull_vertices, mouth_vertices]).astype(np.float32)
    deltas = np.concatenate([vertex_deltas_cm, np.zeros((NUM_WEIGHTS, len(skull_vertices), 3)), mouth_deltas], 1)
    all_triangles = np.concatenate([triangles, skull_triangles, tube, fan]).astype(np.int32)
    region = np.concatenate([np.zeros(len(triangles)), np.ones(len(skull_triangles)),
                             np.full(len(tube) + len(fan), 2)]).astype(np.int8)
    return ScaffoldMesh(vertices, deltas.astype(np.float32), all_triangles, region)
