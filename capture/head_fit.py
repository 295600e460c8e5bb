"""Fitting a GaussianHead to a person's frames: differentiable evaluation in torch, the `cpu`
backend's backward pass, L1 + D-SSIM inside the head mask, densification and pruning.

The neutral mesh (face + scaffold) and each frame's weights and pose are fixed here (they come
from `capture.face_fit`); what is learned is per Gaussian: position in its triangle's frame,
rotation, scale, colour, opacity, and its 52 ARKit position and colour offsets (3D Gaussian
Blendshapes); and per vertex, a smooth correction to the mesh's 52 ARKit offsets, which the
landmarks fitted only where MediaPipe puts them.
Every step renders one random training frame.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from avatar import NUM_WEIGHTS, Camera, index_of
from capture.blur import gaussian_blur
from capture.corrections import FrameCorrections
from capture.face_fit import axis_angle_to_matrix
from capture.face_mesh import LANDMARK_GROUPS, NUM_MESH_VERTICES
from capture.masks import head_box
from capture.scaffold import ScaffoldMesh
from render import GaussianHead
from render.differentiable import rasterizer_for
from render.head import triangle_frames

BACKGROUND = (1.0, 1.0, 1.0)
SSIM_WEIGHT = 0.2
ALPHA_WEIGHT = 0.3           # alpha against the mask
# The colour terms skip a band this wide (px at 512 px, scaled with the image) on either side of
# the mask's edge, where the masks wander by a pixel or two from frame to frame: there the loss
# chased the masks' noise, and densification, which follows the largest gradients, with it.
# The alpha term still fits the silhouette to the whole mask. Held-out scores skip the edge too.
EDGE_BAND_PX = 2
NEAR_TRIANGLE_WEIGHT = 0.01  # Gaussians beyond 1.5 triangle scales from their triangle's centre
# L2 pull of blendshape offsets to 0, per step (in Adam, not the loss: 4.7M values). 1e-3 held the
# offsets back from expressions the held-out frames go further in than the training frames.
DELTA_DECAY = 1e-4
# The squared difference of the mesh offsets' corrections across an edge (cm², mean over the
# edges and weights): a correction moves a patch of the face, not a vertex.
MESH_SMOOTHNESS = 1.0
LEARNING_RATES = {"local_positions": 2e-3, "local_quaternions": 1e-3, "log_scales": 5e-3, "colors": 5e-3,
                  "opacity_logits": 3e-2, "position_deltas_cm": 5e-4, "color_deltas": 2.5e-3,
                  "vertex_delta_corrections_cm": 1e-3}
# [52, N, 3] and [52, M, 3] (the `tinted` Gaussians'), pulled to 0 by DELTA_DECAY, as is
# `HeadModel.MESH_PARAMETERS`' [52, V, 3].
BLENDSHAPE_PARAMETERS = ("position_deltas_cm", "color_deltas")
# Positions and their blendshape offsets anneal exponentially to this fraction of their
# rate over the run (3DGS anneals positions 100x): late steps refine instead of jittering.
ANNEALED = ("local_positions", "position_deltas_cm", "vertex_delta_corrections_cm")
ANNEAL_TO = 0.05
REGION_SHARE = {ScaffoldMesh.FACE: 0.55, ScaffoldMesh.SKULL: 0.40, ScaffoldMesh.MOUTH: 0.05}
THICKNESS = {ScaffoldMesh.FACE: 0.15, ScaffoldMesh.SKULL: 0.5, ScaffoldMesh.MOUTH: 0.3}
JAW_OPEN = index_of("jawOpen")
# Where the training frames never open the mouth, nothing shows the avatar what its open mouth
# looks like; the guess is a dark one. The cavity starts at this share of the closed lips'
# colour (`initial_head`), and the lips' inside loses `capture.fitting.MOUTH_SHADE` x jawOpen
# of its colour (`HeadModel`).
CAVITY_SHADE = 0.3

TimeLimit = float | Callable[[float], float]
"""How long a fit may run (s): fixed, or a function of the mean seconds per step so far."""


@dataclass
class FitFrames:
    """What the head is fitted to, at one resolution.

    Attributes:
        images: [T, H, W, 3] uint8 RGB; masks: [T, H, W] bool head masks.
        camera: the camera at this resolution.
        weights: [T, 52]; rotations: [T, 3] axis-angle; translations_cm: [T, 3].
    """

    images: np.ndarray
    masks: np.ndarray
    camera: Camera
    weights: np.ndarray
    rotations: np.ndarray
    translations_cm: np.ndarray

    def __len__(self) -> int:
        return len(self.images)


@dataclass
class FitLog:
    """Per-step loss and PSNR (inside the mask), and the Gaussian count after each densify/prune."""

    loss: list[float] = field(default_factory=list)
    psnr: list[float] = field(default_factory=list)
    gaussians: list[tuple[int, int]] = field(default_factory=list)
    seconds: float = 0.0


def quaternions_to_matrices(q: torch.Tensor) -> torch.Tensor:
    """[N, 4] (w, x, y, z), any norm -> [N, 3, 3]; as `render.head.quaternions_to_matrices`."""
    q = q / q.norm(dim=1, keepdim=True)
    w, x, y, z = q.unbind(1)
    return torch.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ], dim=1).reshape(-1, 3, 3)


def _triangle_frames(vertices: torch.Tensor, triangles: torch.Tensor):
    """torch `render.head.triangle_frames`: centroids [F, 3], rotations [F, 3, 3], scales [F]."""
    v0, v1, v2 = (vertices.index_select(0, triangles[:, i]) for i in range(3))
    e1, e2 = v1 - v0, v2 - v0
    normal = torch.cross(e1, e2, dim=1)
    normal = normal / (normal.norm(dim=1, keepdim=True) + 1e-12)
    tangent = e1 / (e1.norm(dim=1, keepdim=True) + 1e-12)
    rotations = torch.stack([tangent, torch.cross(normal, tangent, dim=1), normal], dim=2)
    scales = (e1.norm(dim=1) + e2.norm(dim=1) + (v2 - v1).norm(dim=1)) / 3
    return (v0 + v1 + v2) / 3, rotations, scales


class HeadModel(torch.nn.Module):
    """A GaussianHead whose per-Gaussian arrays are torch parameters (float32).

    `color_deltas` is [52, M, 3]: the colour offsets of the M Gaussians listed in `tinted`.
    `vertex_delta_corrections_cm` is [52, V, 3], added to the mesh's offsets where they are not
    all zero (a vertex no weight moves stays rigid); `to_head` adds them in.

    With `mouth_shade` s, the jawOpen colour offsets of the Gaussians `between_lips` are learnt as
    what they differ by from -s x their colour (`initial_head` starts them there), so that the
    pull to 0 keeps a mouth the frames never show open dark as it opens. The constructor takes
    the s x colour out of `head`'s offsets, `forward` and `to_head` put it back: a head goes in
    and comes out whole, whatever s."""

    PARAMETERS = ("local_positions", "local_quaternions", "log_scales", "colors", "opacity_logits",
                  "position_deltas_cm", "color_deltas")
    MESH_PARAMETERS = ("vertex_delta_corrections_cm",)

    def __init__(self, head: GaussianHead, mouth_shade: float = 0.0) -> None:
        super().__init__()
        self.register_buffer("vertices", torch.from_numpy(head.neutral_vertices_cm.copy()))
        self.register_buffer("vertex_deltas", torch.from_numpy(head.vertex_deltas_cm.reshape(NUM_WEIGHTS, -1).copy()))
        self.register_buffer("triangles", torch.from_numpy(head.triangles.astype(np.int64)))
        self.register_buffer("triangle_ids", torch.from_numpy(head.triangle_ids.astype(np.int64)))
        # Colour offsets are learnt only where the mesh moves with the weights (the face, the
        # mouth, the lower teeth, the skull next to the forehead): the rest of the skull and hair
        # keeps its colour, and a quarter of the 52 x N x 3 values, their gradients and their Adam
        # state are spared (74% of a captured head's Gaussians move: d9, vrt_face5 with --quick).
        moving = head.vertex_deltas_cm.any(axis=(0, 2))[head.triangles].any(axis=1)
        self.register_buffer("moving_triangles", torch.from_numpy(moving))
        tinted = moving[head.triangle_ids] | head.color_deltas.any(axis=(0, 2))
        self.register_buffer("tinted", torch.from_numpy(np.flatnonzero(tinted)))
        self.mouth_shade = mouth_shade
        inside = between_lips(head.triangles, len(head.neutral_vertices_cm)) if mouth_shade else \
            np.zeros(len(head.triangles), bool)
        self.register_buffer("lips_inside", torch.from_numpy(inside))
        shaded = inside[head.triangle_ids]
        learnt = head.color_deltas.copy()
        learnt[JAW_OPEN, shaded] += mouth_shade * head.colors[shaded]
        for name in self.PARAMETERS:
            value = learnt[:, tinted] if name == "color_deltas" else getattr(head, name)
            setattr(self, name, torch.nn.Parameter(torch.from_numpy(value.copy())))
        moving_vertices = head.vertex_deltas_cm.any(axis=(0, 2))
        self.register_buffer("moving_vertices", torch.from_numpy(moving_vertices.astype(np.float32))[:, None])
        self.vertex_delta_corrections_cm = torch.nn.Parameter(torch.zeros(NUM_WEIGHTS, len(moving_vertices), 3))
        self.register_buffer("edge_differences", edge_differences(head.triangles, len(moving_vertices)))

    def __len__(self) -> int:
        return len(self.triangle_ids)

    def _all_color_deltas(self) -> torch.Tensor:
        """[52, N, 3] colour offsets of every Gaussian (zeros where not `tinted`)."""
        deltas = self.color_deltas.detach()
        full = torch.zeros((NUM_WEIGHTS, len(self), 3), dtype=deltas.dtype, device=deltas.device)
        full[:, self.tinted] = deltas
        return full

    def mesh_deltas(self) -> torch.Tensor:
        """[52, V * 3] the mesh's ARKit offsets with their corrections."""
        return self.vertex_deltas + (self.vertex_delta_corrections_cm * self.moving_vertices).reshape(NUM_WEIGHTS, -1)

    def mesh_roughness(self) -> torch.Tensor:
        """The mean over the mesh's edges and the 52 weights of the squared difference (cm²) of
        the corrections at the edge's two ends."""
        corrections = self.vertex_delta_corrections_cm.permute(1, 0, 2).reshape(len(self.vertices), -1)
        differences = torch.sparse.mm(self.edge_differences, corrections)
        return differences.pow(2).sum() / (len(differences) * NUM_WEIGHTS)

    def forward(self, weights: torch.Tensor, rotation: torch.Tensor, translation: torch.Tensor):
        """World-space (means, rotations, scales, opacities, colors) for one frame; as `GaussianHead.evaluate`.

        Differentiable in the weights, rotation (axis-angle) and translation (cm) too, when they
        track gradients (photometric refinement of a frame)."""
        vertices = self.vertices + (weights @ self.mesh_deltas()).reshape(-1, 3)
        centroids, frames, tri_scales = _triangle_frames(vertices, self.triangles)
        head_r = axis_angle_to_matrix(rotation)
        # Posed per triangle, then gathered per Gaussian: the rotation's products and their
        # gradients run over the F triangles instead of the N Gaussians. Gathered by index_select,
        # whose backward sums each triangle's Gaussians in a fixed order: indexing's backward
        # adds them on the CPU's threads in whatever order they come, and one ulp of difference
        # sent two runs of the same fit apart (d10's --quick held-out PSNR by up to 0.12 dB).
        frames = (head_r @ frames).index_select(0, self.triangle_ids)
        centroids = (centroids @ head_r.T + translation).index_select(0, self.triangle_ids)
        k = tri_scales.index_select(0, self.triangle_ids)[:, None]
        means = centroids + k * (frames @ self.local_positions[:, :, None])[:, :, 0]
        offsets = (weights @ self.position_deltas_cm.reshape(NUM_WEIGHTS, -1)).reshape(-1, 3)
        means = means + offsets @ head_r.T
        rotations = frames @ quaternions_to_matrices(self.local_quaternions)
        scales = k * torch.exp(self.log_scales)
        tints = (weights @ self.color_deltas.reshape(NUM_WEIGHTS, -1)).reshape(-1, 3)
        colors = self.colors.index_add(0, self.tinted, tints)
        if self.mouth_shade:
            colors = colors - self.mouth_shade * weights[JAW_OPEN] * self.colors * self._on_lips_inside()[:, None]
        return means, rotations, scales, torch.sigmoid(self.opacity_logits), colors.clamp(0, 1)

    def _on_lips_inside(self) -> torch.Tensor:
        """[N] bool: the Gaussians on the triangles `between_lips` (those `mouth_shade` darkens)."""
        return self.lips_inside[self.triangle_ids]

    def to_head(self) -> GaussianHead:
        """The fitted GaussianHead (colours clipped to [0, 1]), on the CPU whatever the model's device."""
        arrays = {name: getattr(self, name).detach().cpu().numpy().copy() for name in self.PARAMETERS}
        arrays["colors"] = np.clip(arrays["colors"], 0, 1)
        arrays["color_deltas"] = self._all_color_deltas().cpu().numpy()
        shaded = self._on_lips_inside().cpu().numpy()
        arrays["color_deltas"][JAW_OPEN, shaded] -= self.mouth_shade * arrays["colors"][shaded]
        return GaussianHead(neutral_vertices_cm=self.vertices.cpu().numpy(),
                            vertex_deltas_cm=self.mesh_deltas().detach().cpu().numpy().reshape(NUM_WEIGHTS, -1, 3),
                            triangles=self.triangles.cpu().numpy(), triangle_ids=self.triangle_ids.cpu().numpy(),
                            **arrays)


def edge_differences(triangles: np.ndarray, num_vertices: int) -> torch.Tensor:
    """[E, V] sparse: row e is +1 at edge e's first vertex and -1 at its second, over the mesh's
    E distinct edges. Times a per-vertex [V, K] array it gives the differences across the edges
    (torch's profiler put ~15 ms of a 130-ms fitting step in gathering both ends of each edge)."""
    edges = np.unique(np.sort(triangles[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), axis=1), axis=0)
    rows = np.arange(len(edges))
    indices = torch.from_numpy(np.stack([np.concatenate([rows, rows]), edges.T.reshape(-1)]).astype(np.int64))
    values = torch.cat([torch.ones(len(edges)), -torch.ones(len(edges))])
    return torch.sparse_coo_tensor(indices, values, (len(edges), num_vertices), check_invariants=True).coalesce()


def between_lips(triangles: np.ndarray, num_vertices: int) -> np.ndarray:
    """[F] bool: the face mesh's triangles between the inner lips, the closed mouth's inside that
    stretches across the opening as the lips part (none where the mesh is not the face mesh)."""
    ring = np.zeros(num_vertices, bool)
    if num_vertices >= NUM_MESH_VERTICES:
        ring[LANDMARK_GROUPS["lips_inner"]] = True
    return ring[triangles].all(axis=1)


def initial_head(scaffold: ScaffoldMesh, frames: FitFrames, rest: int, num_gaussians: int,
                 seed: int = 0, mouth_shade: float = 0.0) -> GaussianHead:
    """Gaussians spread over the scaffold by area (`REGION_SHARE` per part), flat in their triangles,
    coloured from frame `rest` where they land inside its mask (else its hair colour).

    With `mouth_shade` (for frames that never open the mouth: frame `rest` shows the closed lips
    where the mouth's inside will be), the cavity starts at `CAVITY_SHADE` of that colour and the
    Gaussians `between_lips` get jawOpen colour offsets of -`mouth_shade` x their colour."""
    rng = np.random.default_rng(seed)
    vertices, triangles = scaffold.vertices_cm, scaffold.triangles
    v0, v1, v2 = (vertices[triangles[:, i]] for i in range(3))
    areas = 0.5 * np.linalg.norm(np.cross(v1 - v0, v2 - v0), axis=1)
    probability = np.zeros(len(triangles))
    for region, share in REGION_SHARE.items():
        inside = scaffold.region == region
        probability[inside] = share * areas[inside] / areas[inside].sum()
    triangle_ids = np.sort(rng.choice(len(triangles), size=num_gaussians, p=probability / probability.sum()))
    a, b = rng.random(num_gaussians), rng.random(num_gaussians)
    flip = a + b > 1
    a[flip], b[flip] = 1 - a[flip], 1 - b[flip]
    bary = np.stack([1 - a - b, a, b], axis=1)
    points = np.einsum("nk,nkd->nd", bary, vertices[triangles[triangle_ids]])
    centroids, tri_frames, tri_scales = triangle_frames(vertices, triangles)
    local = np.einsum("nji,nj->ni", tri_frames[triangle_ids], points - centroids[triangle_ids])
    local /= tri_scales[triangle_ids, None]
    per_triangle = np.bincount(triangle_ids, minlength=len(triangles))[triangle_ids]
    in_plane = np.sqrt(areas[triangle_ids] / per_triangle) / tri_scales[triangle_ids]
    thickness = np.vectorize(THICKNESS.get)(scaffold.region[triangle_ids])
    log_scales = np.log(np.stack([in_plane, in_plane, thickness * in_plane], axis=1))
    colors = _initial_colors(points, frames, rest)
    color_deltas = np.zeros((NUM_WEIGHTS, num_gaussians, 3), np.float32)
    if mouth_shade:
        colors[((scaffold.region == ScaffoldMesh.MOUTH) & ~scaffold.teeth)[triangle_ids]] *= CAVITY_SHADE
        shaded = between_lips(triangles, len(vertices))[triangle_ids]
        color_deltas[JAW_OPEN, shaded] = -mouth_shade * colors[shaded]
    return GaussianHead(
        neutral_vertices_cm=vertices, vertex_deltas_cm=scaffold.vertex_deltas_cm, triangles=triangles,
        triangle_ids=triangle_ids.astype(np.int32), local_positions=local,
        local_quaternions=np.tile([1.0, 0.0, 0.0, 0.0], (num_gaussians, 1)), log_scales=log_scales,
        colors=colors, opacity_logits=np.full(num_gaussians, math.log(0.8 / 0.2)),
        position_deltas_cm=np.zeros((NUM_WEIGHTS, num_gaussians, 3), np.float32),
        color_deltas=color_deltas)


def _initial_colors(points_cm: np.ndarray, frames: FitFrames, rest: int) -> np.ndarray:
    """[N, 3] colours of head-space points seen in frame `rest` (mask's median above the face elsewhere)."""
    from avatar.rotation import rotvec_to_matrix

    image, mask, camera = frames.images[rest], frames.masks[rest], frames.camera
    cam = points_cm @ rotvec_to_matrix(frames.rotations[rest]).T + frames.translations_cm[rest]
    depth = -cam[:, 2]
    u = camera.cx_px + camera.fx_px * cam[:, 0] / depth
    v = camera.cy_px - camera.fy_px * cam[:, 1] / depth
    x = np.clip(u.astype(int), 0, camera.width_px - 1)
    y = np.clip(v.astype(int), 0, camera.height_px - 1)
    rows = np.flatnonzero(mask.any(1))
    top = mask[rows[0]:rows[0] + max(1, len(rows) // 6)]
    hair = np.median(image[rows[0]:rows[0] + len(top)][top], axis=0) / 255 if top.any() else np.full(3, 0.3)
    colors = np.tile(hair, (len(points_cm), 1))
    seen = mask[y, x] & (depth > 0)
    colors[seen] = image[y[seen], x[seen]] / 255
    return colors.astype(np.float32)


def ssim(a: torch.Tensor, b: torch.Tensor, window: int = 11, sigma: float = 1.5,
         weights: torch.Tensor | None = None) -> torch.Tensor:
    """Mean SSIM of two [H, W, C] images in [0, 1] (Gaussian window, as in 3DGS), or its mean
    weighted by [H, W] `weights`."""
    x, y = a.permute(2, 0, 1), b.permute(2, 0, 1)
    # Two stacks, so that a fit's backward pass blurs only the three maps that depend on the render.
    mu_x, xx, xy = gaussian_blur(torch.cat([x, x * x, x * y]), window, sigma).chunk(3)
    mu_y, yy = gaussian_blur(torch.cat([y, y * y]), window, sigma).chunk(2)
    var_x, var_y, cov = xx - mu_x**2, yy - mu_y**2, xy - mu_x * mu_y
    c1, c2 = 0.01**2, 0.03**2
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return ssim_map.mean() if weights is None else _weighted_mean(ssim_map.mean(0), weights)


def _weighted_mean(values: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Mean of [H, W] `values` weighted by [H, W] `weights` (0 if they are all 0)."""
    return (values * weights).sum() / weights.sum().clamp(min=1e-12)


def off_edge(mask: np.ndarray, band_px: int) -> np.ndarray:
    """[H, W] bool: False within `band_px` (in x and y) of [H, W] bool `mask`'s edge, inside or
    outside, else True. Computed once per frame: OpenCV's morphology takes 0.2 ms where torch's
    max-pooling took 5 on a head's box."""
    kernel = np.ones((2 * band_px + 1, 2 * band_px + 1), np.uint8)
    m = mask.astype(np.uint8)
    return cv2.dilate(m, kernel) == cv2.erode(m, kernel)


def loss_region(mask: np.ndarray, camera: Camera) -> tuple[tuple[slice, slice], np.ndarray]:
    """`frame_loss`'s `box` and `counted` for a frame's [H, W] bool mask at `camera`'s size:
    the mask's box, and in it all but `EDGE_BAND_PX` (scaled from 512 px, at least 1) either
    side of the mask's edge."""
    box = head_box(mask)
    band_px = max(1, round(EDGE_BAND_PX * max(camera.width_px, camera.height_px) / 512))
    return box, off_edge(mask[box], band_px)


def frame_loss(image: torch.Tensor, frame: np.ndarray | torch.Tensor, mask: np.ndarray | torch.Tensor,
               box: tuple[slice, slice], counted: np.ndarray | torch.Tensor | None = None
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """How far a render is from a frame, and the mean squared error inside the mask (for PSNR).

    Args:
        image: [H, W, 4] rendered RGBA over `BACKGROUND`; frame: [H, W, 3] uint8; mask: [H, W] bool
            (arrays, or tensors already on the image's device).
        box: the head's rows and columns (`head_box`): the colour terms, L1 and D-SSIM against
            the frame matted to the background, use only them (the SSIM window to spare); alpha
            is compared with the mask on the whole frame.
        counted: [h, w] bool over the box, the pixels the colour terms count (`off_edge` of the
            box's mask: the band at its edge skipped); all of them when None.
    """
    rows, cols = box
    device = image.device
    matte = torch.as_tensor(mask, device=device).float()[..., None]
    crop = matte[rows, cols]
    target = torch.as_tensor(frame[rows, cols], device=device).float() / 255 * crop \
        + torch.tensor(BACKGROUND, device=device) * (1 - crop)
    rgb = image[rows, cols, :3]
    counted = torch.ones_like(crop[..., 0]) if counted is None else torch.as_tensor(counted, device=device).float()
    loss = (1 - SSIM_WEIGHT) * _weighted_mean((rgb - target).abs().mean(2), counted) \
        + SSIM_WEIGHT * (1 - ssim(rgb, target, weights=counted)) + ALPHA_WEIGHT * (image[..., 3:] - matte).abs().mean()
    with torch.no_grad():
        mse = ((rgb - target)[crop[..., 0] > 0] ** 2).mean()
    return loss, mse


def posed(frames: FitFrames, f: int, corrections: FrameCorrections | None,
          rows: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
          ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Frame `f`'s weights [52], rotation [3] and translation [3] (cm) with its corrections:
    `rows` (from `corrections.rows(f)`, tracking gradients) when given, else the stored ones."""
    tracked = (torch.from_numpy(frames.weights[f]), torch.from_numpy(frames.rotations[f]),
               torch.from_numpy(frames.translations_cm[f]))
    if corrections is None:
        return tracked
    rotation, translation, weights = rows if rows is not None else \
        (corrections.rotation[f], corrections.translation[f], corrections.weights[f])
    return tracked[0] + weights, tracked[1] + rotation, tracked[2] + translation


def _optimizer(model: HeadModel) -> torch.optim.Adam:
    return torch.optim.Adam([{"params": [getattr(model, n)], "lr": LEARNING_RATES[n], "name": n,
                              "weight_decay": DELTA_DECAY if n in BLENDSHAPE_PARAMETERS + HeadModel.MESH_PARAMETERS else 0.0}
                             for n in HeadModel.PARAMETERS + HeadModel.MESH_PARAMETERS], eps=1e-15, fused=True)


def fit_head(model: HeadModel, frames: FitFrames, iterations: int, *, start: int = 0, log: FitLog | None = None,
             densify_until: float = 0.6, densify_every: int = 400, max_gaussians: int = 60_000, seed: int = 0,
             max_seconds: TimeLimit | None = None, on_step: Callable[[int, FitLog], None] | None = None,
             corrections: FrameCorrections | None = None, refine_from: float = 0.1) -> FitLog:
    """Run steps `start`..`iterations` - 1, or until `max_seconds` have passed; returns the log
    (extended when given; `len(log.loss)` is the steps done).

    The run's progress is the larger of step / `iterations` and time / `max_seconds` (a
    `TimeLimit`: seconds, or a function of the mean seconds a step has taken so far). Position
    learning rates anneal by `ANNEAL_TO` over it. Every `densify_every` steps while progress is
    under `densify_until`, Gaussians whose world position gradient is in the top 5% are split or
    cloned (up to `max_gaussians`) and those under 2% opacity are pruned. With `corrections`
    ([len(frames)] rows), from progress `refine_from` on (when the head is roughly in place) each
    step also moves the rendered frame's pose and weights corrections. `on_step(step, log)` is
    called after each step (progress, checkpoints).

    The fit runs on the model's device: the `cpu` backend there, gsplat on a CUDA device (the
    frames are copied to it once; the corrections stay on the CPU).
    """
    log = log if log is not None else FitLog()
    rng = np.random.default_rng(seed + start)
    device = model.local_positions.device
    rasterize = rasterizer_for(device)
    images, masks = (frames.images, frames.masks) if device.type == "cpu" else \
        (torch.from_numpy(frames.images).to(device), torch.from_numpy(frames.masks).to(device))
    optimizer = _optimizer(model)
    grad_sum = torch.zeros(len(model), device=device)
    grad_count = 0
    began = time.perf_counter()
    box, counted = zip(*(loss_region(m, frames.camera) for m in frames.masks))
    if device.type != "cpu":
        counted = [torch.from_numpy(c).to(device) for c in counted]
    for step in range(start, iterations):
        elapsed = time.perf_counter() - began
        limit = max_seconds(elapsed / (step - start) if step > start else 0.0) if callable(max_seconds) \
            else max_seconds
        progress = min(1.0, max(step / iterations, elapsed / limit if limit else 0.0))
        for group in optimizer.param_groups:
            if group["name"] in ANNEALED:
                group["lr"] = LEARNING_RATES[group["name"]] * ANNEAL_TO ** progress
        f = int(rng.integers(len(frames)))
        refining = corrections is not None and progress >= refine_from
        rows = corrections.rows(f) if refining else None
        weights, rotation, translation = (t.to(device) for t in posed(frames, f, corrections, rows))
        means, rotations, scales, opacities, colors = model(weights, rotation, translation)
        means.retain_grad()
        image = rasterize(frames.camera, means, rotations, scales, opacities, colors, BACKGROUND)
        loss, mse = frame_loss(image, images[f], masks[f], box[f], counted[f])
        loss = loss + NEAR_TRIANGLE_WEIGHT * F.relu(model.local_positions.norm(dim=1) - 1.5).pow(2).mean() \
            + MESH_SMOOTHNESS * model.mesh_roughness()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if rows is not None:
            corrections.step(f, rows, torch.from_numpy(frames.weights[f]))
        with torch.no_grad():
            model.colors.clamp_(0, 1)
        log.loss.append(float(loss.detach()))
        log.psnr.append(float(-10 * torch.log10(mse.clamp(min=1e-10))))
        grad_sum += means.grad.norm(dim=1)
        grad_count += 1
        if progress < densify_until and (step + 1) % densify_every == 0:
            _densify_and_prune(model, grad_sum / grad_count, max_gaussians, rng)
            optimizer = _optimizer(model)
            grad_sum, grad_count = torch.zeros(len(model), device=device), 0
            log.gaussians.append((step + 1, len(model)))
        if on_step is not None:
            on_step(step, log)
        if limit is not None and time.perf_counter() - began > limit:
            break
    log.seconds += time.perf_counter() - began
    return log


def _densify_and_prune(model: HeadModel, grad: torch.Tensor, max_gaussians: int, rng: np.random.Generator) -> None:
    """Prune Gaussians under 2% opacity; densify the top 5% by position gradient, as 3DGS does:
    one larger than the median (in cm) is split in two that shrink by 1.6 and sit where the
    original's density puts them, a smaller one is cloned nearby, its copy shrunk by 1.25."""
    with torch.no_grad():
        device = grad.device
        keep = torch.sigmoid(model.opacity_logits) >= 0.02
        kept = torch.nonzero(keep)[:, 0]
        room = max(0, max_gaussians - len(kept))
        count = min(room, int(0.05 * len(model)), len(kept))
        chosen = torch.topk(torch.where(keep, grad, -1.0), count).indices if count else \
            torch.zeros(0, dtype=torch.long, device=device)
        size_cm = _triangle_frames(model.vertices, model.triangles)[2][model.triangle_ids] \
            * torch.exp(model.log_scales).amax(dim=1)
        split = size_cm[chosen] > size_cm[kept].median() if count else \
            torch.zeros(0, dtype=torch.bool, device=device)
        originals = torch.searchsorted(kept, chosen)  # where each chosen one sits among the kept
        order = torch.cat([kept, chosen])
        # Offsets in the triangle's frame, in triangle scales (the units of local_positions).
        noise = torch.from_numpy(rng.standard_normal((count, 3)).astype(np.float32)).to(device)
        along_axes = quaternions_to_matrices(model.local_quaternions[chosen]) \
            @ (torch.exp(model.log_scales[chosen]) * noise)[:, :, None]
        offsets = torch.where(split[:, None], along_axes[:, :, 0], 0.1 * noise)
        triangle_ids = model.triangle_ids[order]
        was_tinted = torch.zeros(len(model), dtype=torch.bool, device=device)
        was_tinted[model.tinted] = True
        tinted = torch.nonzero(model.moving_triangles[triangle_ids] | was_tinted[order])[:, 0]
        for name in HeadModel.PARAMETERS:
            if name == "color_deltas":
                value = model._all_color_deltas()[:, order[tinted]]
            else:
                value = getattr(model, name).detach()
                value = value[:, order] if name in BLENDSHAPE_PARAMETERS else value[order]
            if name == "local_positions" and count:
                value[-count:] += offsets
                value[originals[split]] -= offsets[split]
            if name == "log_scales" and count:
                value[-count:] -= torch.where(split, math.log(1.6), math.log(1.25))[:, None]
                value[originals[split]] -= math.log(1.6)
            setattr(model, name, torch.nn.Parameter(value.contiguous()))
        model.triangle_ids, model.tinted = triangle_ids, tinted
