"""The person's face: neutral mesh, per-vertex ARKit offsets, per-frame pose and the focal length,
fitted to a track's landmarks by least squares with priors.

Minimised over the fitted frames (torch, Adam, float32), in pixels²:

    mean_f,v || project(R_f (x_v + sum_k (w_fk + e_fk) d_kv) + t_f) - l_fv ||²
    + PRIOR_BASIS ||d - d_generic||² + PRIOR_SHAPE ||L (x - x_init)||² + PRIOR_POSE ||pose refinement||²
    + PRIOR_WEIGHTS mean_f ||e_f||²

with w_f the tracked ARKit weights, e_f their refinement (w_f + e_f kept in [0, 1]), l_f the 468
mesh landmarks and L the mesh Laplacian: the basis stays near the generic one where the video
rarely shows a weight, and the neutral shape stays smooth. The pose refinement is a per-frame
axis-angle and translation on top of the track's; the focal length gets one shared log-scale.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from avatar import Camera, Track
from capture.face_mesh import CanonicalFaceMesh, mesh_edges
from capture.photo_head import person_mesh

PRIOR_BASIS = 2.0       # per cm² of basis change
PRIOR_SHAPE = 20.0      # per cm² of Laplacian change of the neutral shape
PRIOR_POSE = 50.0       # per rad² / cm² of refinement
# Per px² of landmark error, per unit² of weight refinement. MediaPipe's blendshape regressor
# misses expressions that its own landmarks show: d10's frowns come out as browDown 0 and a
# smaller brow raise, so her held-out frowns drove the head with weights that no training frame
# had paired with a frown. Refined to the landmarks, a frown gets browDown (about 0.2); the
# `--quick` avatars gained up to 1.4 dB (README).
PRIOR_WEIGHTS = 0.2
NUM_MESH_LANDMARKS = 468


@dataclass
class FaceFit:
    """The fitted face (head space, cm) and the refined per-frame pose and camera.

    Attributes:
        neutral_vertices_cm: [468, 3]; vertex_deltas_cm: [52, 468, 3].
        head_rotation: [T, 3] axis-angle; head_translation_cm: [T, 3] (NaN where the track has no face).
        camera: the track's camera with the refined focal length.
        rms_px: [T] landmark reprojection error after the fit (NaN where not fitted).
        weights: [T, 52] the ARKit weights refined to the landmarks (the track's where not fitted):
            what a capture fits the head to and starts a held-out frame's tracking from.
    """

    neutral_vertices_cm: np.ndarray
    vertex_deltas_cm: np.ndarray
    head_rotation: np.ndarray
    head_translation_cm: np.ndarray
    camera: Camera
    rms_px: np.ndarray
    weights: np.ndarray


def axis_angle_to_matrix(rotvec: torch.Tensor) -> torch.Tensor:
    """[..., 3] axis-angle -> [..., 3, 3] (Rodrigues, smooth at 0)."""
    theta2 = (rotvec * rotvec).sum(-1, keepdim=True)[..., None]
    theta = torch.sqrt(theta2 + 1e-12)
    k = torch.zeros(*rotvec.shape[:-1], 3, 3, dtype=rotvec.dtype, device=rotvec.device)
    x, y, z = rotvec.unbind(-1)
    k[..., 0, 1], k[..., 0, 2], k[..., 1, 2] = -z, y, -x
    k = k - k.transpose(-1, -2)
    eye = torch.eye(3, dtype=rotvec.dtype, device=rotvec.device).expand_as(k)
    return eye + torch.sin(theta) / theta * k + (1 - torch.cos(theta)) / (theta2 + 1e-12) * (k @ k)


def project_points(camera: Camera, focal_scale: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """[..., 3] camera-space points (cm, camera looking down -z) -> [..., 2] pixels."""
    depth = -points[..., 2]
    u = camera.cx_px + camera.fx_px * focal_scale * points[..., 0] / depth
    v = camera.cy_px - camera.fy_px * focal_scale * points[..., 1] / depth
    return torch.stack([u, v], -1)


def _laplacian(vertices: torch.Tensor, edges: np.ndarray) -> torch.Tensor:
    """Uniform Laplacian: each vertex minus the mean of its neighbours. [V, 3]."""
    v = len(vertices)
    i, j = torch.as_tensor(edges[:, 0]).long(), torch.as_tensor(edges[:, 1]).long()
    total = torch.zeros_like(vertices).index_add(0, i, vertices[j]).index_add(0, j, vertices[i])
    count = torch.zeros(v, dtype=vertices.dtype).index_add(0, i, torch.ones(len(i))).index_add(0, j, torch.ones(len(j)))
    return vertices - total / count[:, None].clamp(min=1)


def fit_face(track: Track, mesh: CanonicalFaceMesh, generic_basis: np.ndarray, frames: np.ndarray | None = None,
             iterations: int = 300, fixed: FaceFit | None = None) -> FaceFit:
    """Fit the face to `track` on `frames` (indices; default all valid ones).

    The neutral shape starts from the frame whose expression is closest to rest
    (`person_mesh` of it, minus its expression through the generic basis). With `fixed`,
    only the pose and weights are refined: the shape, basis and focal scale are `fixed`'s
    (tracking new frames of a captured person).
    """
    valid = np.flatnonzero(track.valid)
    frames = valid if frames is None else np.intersect1d(np.asarray(frames), valid)
    if len(frames) == 0:
        raise ValueError("no frame with a face to fit")
    if fixed is None:
        rest = frames[np.argmin(track.weights[frames].sum(1))]
        start = person_mesh(mesh, track, rest) - np.tensordot(track.weights[rest], generic_basis, axes=1)
    else:
        start, generic_basis = fixed.neutral_vertices_cm, fixed.vertex_deltas_cm

    target = torch.as_tensor(track.landmarks_px[frames, :NUM_MESH_LANDMARKS, :2], dtype=torch.float32)
    weights = torch.as_tensor(track.weights[frames], dtype=torch.float32)
    base_rot = torch.as_tensor(track.head_rotation[frames], dtype=torch.float32)
    base_t = torch.as_tensor(track.head_translation_cm[frames], dtype=torch.float32)
    x_init = torch.as_tensor(start, dtype=torch.float32)
    d_init = torch.as_tensor(generic_basis, dtype=torch.float32)
    edges = mesh_edges(mesh.triangles)
    lap_init = _laplacian(x_init, edges)

    x = x_init.clone()
    d = d_init.clone()
    d_rot = torch.zeros_like(base_rot, requires_grad=True)
    d_t = torch.zeros_like(base_t, requires_grad=True)
    d_w = torch.zeros_like(weights, requires_grad=True)
    focal = 1.0 if fixed is None else fixed.camera.fx_px / track.camera.fx_px
    log_focal = torch.tensor(float(np.log(focal)), requires_grad=fixed is None)
    groups = [{"params": [d_t], "lr": 0.02}, {"params": [d_rot], "lr": 0.003}, {"params": [d_w], "lr": 0.01}]
    if fixed is None:
        x.requires_grad_(True)
        d.requires_grad_(True)
        groups += [{"params": [x], "lr": 0.02}, {"params": [d], "lr": 0.01}, {"params": [log_focal], "lr": 0.003}]
    optimizer = torch.optim.Adam(groups)

    def residuals() -> torch.Tensor:
        shapes = x + torch.einsum("fk,kvc->fvc", weights + d_w, d)
        rot = axis_angle_to_matrix(base_rot + d_rot)
        cam = shapes @ rot.transpose(1, 2) + (base_t + d_t)[:, None]
        return project_points(track.camera, torch.exp(log_focal), cam) - target

    for _ in range(iterations):
        optimizer.zero_grad()
        data = (residuals() ** 2).sum(-1).mean()
        prior = PRIOR_BASIS * ((d - d_init) ** 2).sum(-1).mean() \
            + PRIOR_SHAPE * ((_laplacian(x, edges) - lap_init) ** 2).sum(-1).mean() \
            + PRIOR_POSE * ((d_rot ** 2).sum(-1).mean() + 1e-2 * (d_t ** 2).sum(-1).mean()) \
            + PRIOR_WEIGHTS * (d_w ** 2).sum(-1).mean()
        (data + prior).backward()
        optimizer.step()
        with torch.no_grad():
            d_w.copy_(torch.minimum(torch.maximum(d_w, -weights), 1 - weights))

    with torch.no_grad():
        rms = torch.sqrt((residuals() ** 2).sum(-1).mean(-1)).numpy()
    rotation = np.full_like(track.head_rotation, np.nan)
    translation = np.full_like(track.head_translation_cm, np.nan)
    rotation[frames] = (base_rot + d_rot).detach().numpy()
    translation[frames] = (base_t + d_t).detach().numpy()
    rms_px = np.full(len(track.time_s), np.nan, np.float32)
    rms_px[frames] = rms
    fitted_weights = track.weights.astype(np.float32)
    fitted_weights[frames] = (weights + d_w).detach().numpy()
    camera = track.camera.with_focal_scale(float(log_focal.detach().exp()))
    return FaceFit(x.detach().numpy(), d.detach().numpy(), rotation, translation, camera, rms_px, fitted_weights)
