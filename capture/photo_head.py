"""A Gaussian head placed procedurally from one photo: no fitting, just geometry and sampling.

The face mesh takes the person's shape from the tracked landmarks (each
canonical vertex slides along its camera ray onto its landmark, keeping the
canonical depth), minus the photo's own expression when an expression basis
is given. Gaussians are spread over the triangles by area, lie flat in them,
and take their colour from the photo at the landmarks' barycentric blend.
"""

from __future__ import annotations

import numpy as np

from avatar import NUM_WEIGHTS, Track
from avatar.rotation import rotvec_to_matrix
from capture.face_mesh import CanonicalFaceMesh
from render import GaussianHead
from render.head import triangle_frames

_OPACITY = 0.95
_THICKNESS = 0.15  # normal extent of a surface Gaussian, relative to its in-plane extent
_OVERLAP = 1.0  # in-plane standard deviation, relative to the spacing between Gaussians


def person_mesh(mesh: CanonicalFaceMesh, track: Track, frame: int = 0) -> np.ndarray:
    """[468, 3] the tracked face in head space (cm), expression included.

    Each canonical vertex, posed into the camera, keeps its depth and moves
    sideways onto the ray through its landmark; the result is posed back.
    """
    r = rotvec_to_matrix(track.head_rotation[frame])
    t = track.head_translation_cm[frame].astype(np.float64)
    cam = mesh.vertices_cm @ r.T + t
    depth = -cam[:, 2]
    u, v = track.landmarks_px[frame, : len(cam), 0], track.landmarks_px[frame, : len(cam), 1]
    c = track.camera
    on_rays = np.stack([(u - c.cx_px) * depth / c.fx_px, -(v - c.cy_px) * depth / c.fy_px, -depth], axis=1)
    return ((on_rays - t) @ r).astype(np.float32)


def _triangle_areas(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """[V, 3] vertices, [F, 3] triangles -> [F] areas (cm^2)."""
    v0, v1, v2 = (vertices[triangles[:, i]] for i in range(3))
    return 0.5 * np.linalg.norm(np.cross(v1 - v0, v2 - v0), axis=1)


def _sample_bilinear(image: np.ndarray, uv_px: np.ndarray) -> np.ndarray:
    """[H, W, 3] uint8 at [N, 2] pixel coordinates (centres at +0.5) -> [N, 3] float32 in [0, 1]."""
    h, w = image.shape[:2]
    x = np.clip(uv_px[:, 0] - 0.5, 0, w - 1.001)
    y = np.clip(uv_px[:, 1] - 0.5, 0, h - 1.001)
    x0, y0 = x.astype(int), y.astype(int)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    img = image.astype(np.float32) / 255
    top = img[y0, x0] * (1 - fx) + img[y0, x0 + 1] * fx
    bottom = img[y0 + 1, x0] * (1 - fx) + img[y0 + 1, x0 + 1] * fx
    return top * (1 - fy) + bottom * fy


def head_from_photo(image: np.ndarray, track: Track, mesh: CanonicalFaceMesh, *, frame: int = 0,
                    expression_basis: np.ndarray | None = None, num_gaussians: int = 30_000,
                    seed: int = 0) -> GaussianHead:
    """Place a GaussianHead on the face tracked in `image`.

    Args:
        image: [H, W, 3] uint8 RGB, the frame `frame` of `track`.
        track: must have found the face in that frame.
        mesh: the canonical face mesh (topology and UV-independent shape prior).
        expression_basis: [52, 468, 3] per-vertex offsets (cm); stored in the head,
            and used to take the photo's expression out of its neutral mesh.
        num_gaussians: how many Gaussians to spread over the face.
    """
    if not track.valid[frame]:
        raise ValueError(f"frame {frame} of the track has no face")
    basis = np.zeros((NUM_WEIGHTS, len(mesh.vertices_cm), 3), np.float32) if expression_basis is None \
        else np.asarray(expression_basis, dtype=np.float32)
    with_expression = person_mesh(mesh, track, frame)
    neutral = with_expression - np.tensordot(track.weights[frame], basis, axes=1)

    rng = np.random.default_rng(seed)
    areas = _triangle_areas(with_expression, mesh.triangles)
    triangle_ids = np.sort(rng.choice(len(areas), size=num_gaussians, p=areas / areas.sum())).astype(np.int32)
    # Uniform points in each triangle: reflect the unit square's upper half onto the lower.
    a, b = rng.random(num_gaussians), rng.random(num_gaussians)
    flip = a + b > 1
    a[flip], b[flip] = 1 - a[flip], 1 - b[flip]
    bary = np.stack([1 - a - b, a, b], axis=1)

    corners = mesh.triangles[triangle_ids]  # [N, 3] vertex ids
    landmarks = track.landmarks_px[frame]
    colors = _sample_bilinear(image, np.einsum("nk,nkd->nd", bary, landmarks[corners, :2]))

    centroids, frames, scales = triangle_frames(neutral, mesh.triangles)
    points = np.einsum("nk,nkd->nd", bary, neutral[corners])
    local = np.einsum("nji,nj->ni", frames[triangle_ids], points - centroids[triangle_ids])
    local /= scales[triangle_ids, None]

    per_triangle = np.bincount(triangle_ids, minlength=len(areas))[triangle_ids]
    spacing = np.sqrt(_triangle_areas(neutral, mesh.triangles)[triangle_ids] / per_triangle)
    in_plane = _OVERLAP * spacing / scales[triangle_ids]
    log_scales = np.log(np.stack([in_plane, in_plane, _THICKNESS * in_plane], axis=1))

    return GaussianHead(
        neutral_vertices_cm=neutral, vertex_deltas_cm=basis, triangles=mesh.triangles,
        triangle_ids=triangle_ids, local_positions=local,
        local_quaternions=np.tile([1.0, 0.0, 0.0, 0.0], (num_gaussians, 1)), log_scales=log_scales,
        colors=colors, opacity_logits=np.full(num_gaussians, np.log(_OPACITY / (1 - _OPACITY))),
        position_deltas_cm=np.zeros((NUM_WEIGHTS, num_gaussians, 3), np.float32),
    )
