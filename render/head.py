"""`GaussianHead`: Gaussians bound to the triangles of an expressive face mesh.

Evaluating a FaceState (all in head space, cm, then the rigid head pose):
1. blend the mesh:   v = v_neutral + sum_k w_k dv_k
2. triangle frames:  origin c_f (centroid), rotation R_f = [e, n x e, n] with e the
   unit first edge and n the unit normal, scale k_f (mean edge length)
3. place Gaussians:  x_i = c_f + k_f R_f p_i,  R_i = R_f Q(q_i),  s_i = k_f exp(log_s_i)
4. add offsets:      x_i += sum_k w_k dx_ik,  c_i = clip(c_i + sum_k w_k dc_ik, 0, 1)
5. head pose:        x -> R_h x + t_h,  R_i -> R_h R_i
Opacity is stored as a logit and read through a sigmoid, as in 3DGS. The colour offsets are
what 3D Gaussian Blendshapes learns besides positions: wrinkles, the mouth's inside, the
teeth showing, none of which a Gaussian's motion alone can draw.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numba
import numpy as np

from avatar import NUM_WEIGHTS, Bundle, BundleError, FaceState
from avatar.rotation import rotvec_to_matrix
from render.gaussians import Gaussians

HEAD_ARRAYS = (
    "neutral_vertices_cm", "vertex_deltas_cm", "triangles", "triangle_ids", "local_positions",
    "local_quaternions", "log_scales", "colors", "opacity_logits", "position_deltas_cm", "color_deltas",
)
# Bundles written before colour offsets existed have no "color_deltas": they read as zeros.
OPTIONAL_ARRAYS = ("color_deltas",)
_IDENTITY = np.eye(3, dtype=np.float32)


def quaternions_to_matrices(q: np.ndarray) -> np.ndarray:
    """[N, 4] quaternions (w, x, y, z), any norm -> [N, 3, 3] rotation matrices."""
    q = q / np.linalg.norm(q, axis=1, keepdims=True)
    w, x, y, z = q.T
    return np.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ], axis=1).reshape(-1, 3, 3).astype(np.float32)


def triangle_frames(vertices: np.ndarray, triangles: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Local frames of mesh triangles.

    Args:
        vertices: [V, 3] cm; triangles: [F, 3] vertex indices.
    Returns:
        centroids [F, 3] cm, rotations [F, 3, 3] (columns: edge, in-plane normal to it, normal),
        scales [F] cm (mean edge length).
    """
    v0, v1, v2 = (vertices[triangles[:, i]] for i in range(3))
    e1, e2 = v1 - v0, v2 - v0
    normal = np.cross(e1, e2)
    normal /= np.linalg.norm(normal, axis=1, keepdims=True) + 1e-12
    tangent = e1 / (np.linalg.norm(e1, axis=1, keepdims=True) + 1e-12)
    rotations = np.stack([tangent, np.cross(normal, tangent), normal], axis=2)
    scales = (np.linalg.norm(e1, axis=1) + np.linalg.norm(e2, axis=1) + np.linalg.norm(v2 - v1, axis=1)) / 3
    return (v0 + v1 + v2) / 3, rotations, scales


@numba.njit(parallel=True, cache=True)
def _place(triangle_ids, frames, centroids, tri_scales, local_positions, local_rotations, local_scales,
           means, rotations, scales):  # pragma: no cover (compiled)
    """Steps 3 for every Gaussian, in place: one pass over N instead of numpy's several."""
    for i in numba.prange(len(triangle_ids)):
        f = triangle_ids[i]
        k = tri_scales[f]
        for r in range(3):
            acc = 0.0
            for c in range(3):
                acc += frames[f, r, c] * local_positions[i, c]
                rot = 0.0
                for m in range(3):
                    rot += frames[f, r, m] * local_rotations[i, m, c]
                rotations[i, r, c] = rot
            means[i, r] = centroids[f, r] + k * acc
            scales[i, r] = k * local_scales[i, r]


@numba.njit(parallel=True, fastmath=True, cache=True)
def _add_offsets(weights, rows, deltas, rotation, clip, out):  # pragma: no cover (compiled)
    """out[rows[j]] += rotation @ (deltas[j] @ weights) for every j, clipped to [0, 1] if `clip`.

    deltas [M, 3, 52] keeps each row's 156 numbers together, so one pass streams them once. Run on numba's
    threads, like `_place`: numpy's BLAS threads, left spinning after a product, would fight them for the cores.
    """
    for j in numba.prange(len(rows)):
        i = rows[j]
        d0 = d1 = d2 = np.float32(0)
        for k in range(weights.shape[0]):
            d0 += deltas[j, 0, k] * weights[k]
            d1 += deltas[j, 1, k] * weights[k]
            d2 += deltas[j, 2, k] * weights[k]
        for r in range(3):
            value = out[i, r] + rotation[r, 0] * d0 + rotation[r, 1] * d1 + rotation[r, 2] * d2
            out[i, r] = min(max(value, 0.0), 1.0) if clip else value


@dataclass
class GaussianHead:
    """N Gaussians bound to an F-triangle, V-vertex mesh with 52 ARKit blendshapes.

    Attributes:
        neutral_vertices_cm: [V, 3] the mesh at rest, head space.
        vertex_deltas_cm: [52, V, 3] per-vertex offset of each ARKit weight (ARKIT_NAMES order).
        triangles: [F, 3] int32 vertex indices.
        triangle_ids: [N] int32 the triangle each Gaussian is bound to.
        local_positions: [N, 3] position in its triangle's frame, in units of the triangle scale.
        local_quaternions: [N, 4] rotation (w, x, y, z) in its triangle's frame.
        log_scales: [N, 3] log of the standard deviations in units of the triangle scale.
        colors: [N, 3] RGB in [0, 1].
        opacity_logits: [N] logit of the opacity.
        position_deltas_cm: [52, N, 3] per-Gaussian offset of each ARKit weight, head space.
        color_deltas: [52, N, 3] per-Gaussian RGB offset of each ARKit weight (None: zeros).
    """

    neutral_vertices_cm: np.ndarray
    vertex_deltas_cm: np.ndarray
    triangles: np.ndarray
    triangle_ids: np.ndarray
    local_positions: np.ndarray
    local_quaternions: np.ndarray
    log_scales: np.ndarray
    colors: np.ndarray
    opacity_logits: np.ndarray
    position_deltas_cm: np.ndarray
    color_deltas: np.ndarray | None = None
    _cache: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        v, f, n = len(self.neutral_vertices_cm), len(self.triangles), len(self.triangle_ids)
        if self.color_deltas is None:
            self.color_deltas = np.zeros((NUM_WEIGHTS, n, 3), np.float32)
        shapes = {
            "neutral_vertices_cm": (v, 3), "vertex_deltas_cm": (NUM_WEIGHTS, v, 3), "triangles": (f, 3),
            "triangle_ids": (n,), "local_positions": (n, 3), "local_quaternions": (n, 4), "log_scales": (n, 3),
            "colors": (n, 3), "opacity_logits": (n,), "position_deltas_cm": (NUM_WEIGHTS, n, 3),
            "color_deltas": (NUM_WEIGHTS, n, 3),
        }
        for name, shape in shapes.items():
            dtype = np.int32 if name in ("triangles", "triangle_ids") else np.float32
            value = np.ascontiguousarray(getattr(self, name), dtype=dtype)
            if value.shape != shape:
                raise ValueError(f"GaussianHead.{name} must have shape {shape}, got {value.shape}")
            setattr(self, name, value)
        if n and (self.triangle_ids.min() < 0 or self.triangle_ids.max() >= f):
            raise ValueError("GaussianHead.triangle_ids must index the triangles")
        if f and (self.triangles.min() < 0 or self.triangles.max() >= v):
            raise ValueError("GaussianHead.triangles must index the vertices")

    def __len__(self) -> int:
        return len(self.triangle_ids)

    def _constant(self, name: str) -> np.ndarray:
        """Per-Gaussian values that no FaceState changes, computed once."""
        if name not in self._cache:
            self._cache["local_rotations"] = quaternions_to_matrices(self.local_quaternions)
            self._cache["opacities"] = (1 / (1 + np.exp(-self.opacity_logits))).astype(np.float32)
            self._cache["local_scales"] = np.exp(self.log_scales).astype(np.float32)
            # Gaussians without offsets (most of the hair and skull) are skipped when blending.
            for key, deltas in (("vertices", self.vertex_deltas_cm), ("moving", self.position_deltas_cm),
                                ("tinted", self.color_deltas)):
                rows = np.flatnonzero(np.any(deltas != 0, axis=(0, 2))).astype(np.int32)
                self._cache[key] = rows
                self._cache[key + "_deltas"] = np.ascontiguousarray(deltas[:, rows].transpose(1, 2, 0))
        return self._cache[name]

    def blend_mesh(self, weights: np.ndarray) -> np.ndarray:
        """[52] weights -> [V, 3] mesh vertices in head space (step 1)."""
        vertices = self.neutral_vertices_cm.copy()
        _add_offsets(np.asarray(weights, np.float32), self._constant("vertices"), self._constant("vertices_deltas"),
                     _IDENTITY, False, vertices)
        return vertices

    def evaluate(self, state: FaceState) -> Gaussians:
        """Place every Gaussian for `state` (steps 1-5): world-space Gaussians for a renderer."""
        weights = np.asarray(state.weights, dtype=np.float32)
        centroids, frames, tri_scales = triangle_frames(self.blend_mesh(weights), self.triangles)
        # The head pose is applied per triangle (F of them), before fanning out to N Gaussians.
        head_r = rotvec_to_matrix(state.head_rotation).astype(np.float32)
        world_frames = np.matmul(head_r, frames.astype(np.float32))
        world_centroids = centroids.astype(np.float32) @ head_r.T + state.head_translation_cm
        n = len(self)
        means = np.empty((n, 3), np.float32)
        rotations = np.empty((n, 3, 3), np.float32)
        scales = np.empty((n, 3), np.float32)
        _place(self.triangle_ids, world_frames, world_centroids.astype(np.float32), tri_scales.astype(np.float32),
               self.local_positions, self._constant("local_rotations"), self._constant("local_scales"),
               means, rotations, scales)
        _add_offsets(weights, self._constant("moving"), self._constant("moving_deltas"), head_r, False, means)
        colors, tinted = self.colors, self._constant("tinted")
        if len(tinted) and weights.any():
            colors = colors.copy()
            _add_offsets(weights, tinted, self._constant("tinted_deltas"), _IDENTITY, True, colors)
        return Gaussians(means, rotations, scales, self._constant("opacities"), colors)

    def to_bundle_arrays(self, prefix: str = "head/") -> dict[str, np.ndarray]:
        """The head's arrays for an `.avatar` bundle, under `prefix`.

        Colour offsets go in as float16 (off by at most 1/4096 of full scale, a sixteenth of an 8-bit step),
        which halves what they add to the file."""
        arrays = {prefix + name: getattr(self, name) for name in HEAD_ARRAYS}
        arrays[prefix + "color_deltas"] = self.color_deltas.astype(np.float16)
        return arrays

    @classmethod
    def from_bundle(cls, bundle: Bundle, prefix: str = "head/") -> "GaussianHead":
        """Read the head stored by `to_bundle_arrays`; BundleError if it is missing or inconsistent."""
        missing = [name for name in HEAD_ARRAYS if prefix + name not in bundle.arrays and name not in OPTIONAL_ARRAYS]
        if missing:
            raise BundleError(f"the bundle has no Gaussian head (missing {', '.join(missing)}): "
                              f"make it with `avatar capture` or `avatar demo`")
        try:
            return cls(**{name: bundle.arrays[prefix + name] for name in HEAD_ARRAYS if prefix + name in bundle.arrays})
        except ValueError as exc:
            raise BundleError(f"the bundle's Gaussian head is inconsistent ({exc})") from None
