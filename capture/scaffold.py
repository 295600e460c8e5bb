"""What the face mesh lacks, as extra triangles for Gaussians to bind to.

- **Skull and hair**: an ellipsoid shell around the head, sized from the face, keeping the
  triangles behind the face's rim or above the forehead. Rigid with the head, except next to
  the upper half of the face's rim (forehead and temples): there it moves as the rim does, so
  raised brows lift the hairline and the shell does not shear against the face's edge.
- **Mouth interior**: a cavity behind the inner lip ring, a ring pushed back and a deep centre,
  whose vertices follow the lip vertices they came from, so it opens with jawOpen.
- **Teeth**: two curved strips just behind the lips, as GaussianAvatars adds to FLAME. The
  upper row is rigid with the skull; the lower row moves as the chin does for the jaw's own
  weights (jawOpen, jawForward, jawLeft, jawRight) and not with the lips, so the teeth stay
  where they are while the lips pucker, stretch or smile around them.
The shell, cavity and teeth vertices are appended after the face mesh's, so the face keeps its ids.
The face mesh's own triangles across the closed eyes and mouth stay, and carry the eyes and the lips'
inside: eyeballs turned by the eyeLook* weights, and leaving those triangles out so the cavity shows,
lost on average in A/B fits (the README's "tried" table).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import ConvexHull

from avatar import NUM_WEIGHTS, index_of
from capture.face_mesh import LANDMARK_GROUPS

SHELL_POINTS = 900
# The skull around a face mesh of width W (x) and height H (y), head space, cm.
# Wide enough to reach the head mask's ellipse (`capture.masks.HEAD_WIDTH`) beside the jaw's
# corners, where long hair hangs: Gaussians stay near their triangles, so hair the shell does
# not reach renders transparent.
SKULL_RADII = np.array([0.64, 0.66, 0.66])     # times (W, H, H)
SKULL_CENTRE = np.array([0.0, 0.12, -0.25])    # times (W, H, H), from the face's centre
MOUTH_DEPTH_CM = 1.2
TEETH_HEIGHT_CM = 0.9        # each row, from the lip line
TEETH_BEHIND_LIPS_CM = 0.35
TEETH_WIDTH = 0.85           # the teeth's arc, relative to the inner lips' corners
JAW_WEIGHTS = tuple(index_of(name) for name in ("jawOpen", "jawForward", "jawLeft", "jawRight"))
CHIN = 152                   # the face mesh's chin vertex: the jaw's motion
# How far the skull follows the upper half of the face's rim (forehead and temples): a Gaussian
# of distance of this width (times H). In `--quick` A/B fits it gained 0.27 dB on average over
# the eight test clips (vrt_face5 +0.64, AOC +0.41, d3 +0.40, d9 +0.34; d10 -0.03): the fringe
# moves with raised brows. Twice the width gained nothing.
FOREHEAD_REACH = 0.1
# Below this share of the nearest rim vertex's motion a skull vertex stays rigid (its offsets
# exactly zero): the skull's far side then learns no offsets, and costs none when blending.
FOLLOW_CUTOFF = 0.05


@dataclass
class ScaffoldMesh:
    """The face mesh plus scaffold: vertices [V, 3] cm, deltas [52, V, 3] cm, triangles [F, 3].

    `region` [F] int8 names each triangle's part: 0 face, 1 skull/hair, 2 mouth interior;
    `teeth` [F] bool marks the mouth interior's teeth (the rest of it is the cavity).
    """

    vertices_cm: np.ndarray
    vertex_deltas_cm: np.ndarray
    triangles: np.ndarray
    region: np.ndarray
    teeth: np.ndarray

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

    teeth_vertices, teeth_deltas, teeth = _teeth(vertices_cm, vertex_deltas_cm, first + len(mouth_vertices))

    vertices = np.concatenate([vertices_cm, skull_vertices, mouth_vertices, teeth_vertices]).astype(np.float32)
    skull_deltas = _following_rim(skull_vertices, vertices_cm, vertex_deltas_cm, centre[1], FOREHEAD_REACH * size[1])
    deltas = np.concatenate([vertex_deltas_cm, skull_deltas, mouth_deltas, teeth_deltas], 1)
    all_triangles = np.concatenate([triangles, skull_triangles, tube, fan, teeth]).astype(np.int32)
    region = np.concatenate([np.zeros(len(triangles)), np.ones(len(skull_triangles)),
                             np.full(len(tube) + len(fan) + len(teeth), 2)]).astype(np.int8)
    return ScaffoldMesh(vertices, deltas.astype(np.float32), all_triangles, region,
                        np.arange(len(all_triangles)) >= len(all_triangles) - len(teeth))


def _following_rim(skull_cm: np.ndarray, vertices_cm: np.ndarray, vertex_deltas_cm: np.ndarray, above_cm: float,
                   reach_cm: float) -> np.ndarray:
    """[52, S, 3] deltas for skull vertices [S, 3]: a blend of the deltas of the face rim's vertices above
    `above_cm`, weighted by a Gaussian of distance (width `reach_cm`) and faded by the nearest one's
    weight, zero where that is under `FOLLOW_CUTOFF`."""
    oval = np.asarray(LANDMARK_GROUPS["face_oval"])
    rim = oval[vertices_cm[oval, 1] > above_cm]
    weights = np.exp(-((skull_cm[:, None] - vertices_cm[rim][None]) ** 2).sum(-1) / (2 * reach_cm**2))  # [S, R]
    fade = weights.max(1, keepdims=True)
    share = weights / np.maximum(weights.sum(1, keepdims=True), 1e-30) * np.where(fade > FOLLOW_CUTOFF, fade, 0.0)
    return np.einsum("sr,krc->ksc", share, vertex_deltas_cm[:, rim])


def _teeth(vertices_cm: np.ndarray, vertex_deltas_cm: np.ndarray, first: int
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Upper and lower teeth strips: vertices [2 * 2K, 3] cm, deltas [52, 2 * 2K, 3], triangles.

    Each strip runs along its half of the inner lip ring (corner to corner, K points), set
    `TEETH_BEHIND_LIPS_CM` back and narrowed to `TEETH_WIDTH`, from the lip line
    `TEETH_HEIGHT_CM` up (upper) or down (lower)."""
    ring = LANDMARK_GROUPS["lips_inner"]
    corner = int(np.flatnonzero(ring == 308)[0])       # the ring runs 78, lower lip, 308, upper lip
    lower_arc, upper_arc = ring[:corner + 1], np.concatenate([ring[corner:], ring[:1]])
    centre = vertices_cm[ring].mean(0)
    jaw = np.zeros((NUM_WEIGHTS, 1, 3))
    jaw[list(JAW_WEIGHTS), 0] = vertex_deltas_cm[list(JAW_WEIGHTS), CHIN]
    parts, part_deltas, strips = [], [], []
    for arc, up, moves in ((upper_arc, 1.0, False), (lower_arc, -1.0, True)):
        line = vertices_cm[arc].copy()
        line[:, 0] = centre[0] + TEETH_WIDTH * (line[:, 0] - centre[0])
        line[:, 1] = centre[1]
        line[:, 2] -= TEETH_BEHIND_LIPS_CM
        edge = line + [0.0, up * TEETH_HEIGHT_CM, 0.0]
        k = len(arc)
        start = first + sum(len(p) for p in parts)
        parts.append(np.concatenate([line, edge]))
        part_deltas.append(np.repeat(jaw if moves else np.zeros_like(jaw), 2 * k, axis=1))
        i = np.arange(k - 1)
        strips.append(start + np.concatenate([np.stack([i, i + 1, k + i], 1), np.stack([i + 1, k + i + 1, k + i], 1)]))
    return np.concatenate(parts), np.concatenate(part_deltas, axis=1), np.concatenate(strips)
