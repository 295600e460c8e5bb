"""A hand-authored ARKit expression basis for the canonical face mesh.

`generic_expression_basis(mesh)` gives one [468, 3] offset field per ARKit weight, in
cm in canonical face space (+x the subject's left, +y up, +z out of the face; see
`capture.face_mesh`), such that `mesh.vertices_cm + sum_k w_k * basis[k]` is a plausible
adult expression for weights in [0, 1]. There is no data behind it: each shape is a few
geometric rules with smooth falloffs, sized by `MAGNITUDES`. Only the subject's left
shapes are authored; each *Right shape is the mirror image of its *Left twin (the mesh
is mirror-symmetric about x = 0).

eyeLookUp/Down/In/Out Left/Right and tongueOut are all zero: the mesh has no eyeball
or tongue geometry to move. mouthClose follows ARKit: it undoes jawOpen's parting of the
lips, so on its own (without jawOpen) it pushes the lower lip up through the upper one.
"""

from __future__ import annotations

import cv2
import numpy as np

from avatar.arkit import ARKIT_NAMES, index_of
from capture.face_mesh import LANDMARK_GROUPS, CanonicalFaceMesh

# Sizes at weight 1. Vectors are (x, y, z) cm on the subject's LEFT side: +x outwards,
# +y up, +z forwards. Bare numbers are cm or degrees (_deg), except fractions: *_narrow of
# each lip point's x, press of its height above or below the mouth line, blink_*, squint_lower
# and close_lips of the rest lid or lip opening.
MAGNITUDES = {
    "jawOpen_deg": 20.0, "jawSide": 0.7, "jawForward": 0.6, "mouthSide_deg": 4.5,
    "browInnerUp": 0.6, "browOuterUp": 0.6, "browDown": (-0.15, -0.4, 0.0),
    "blink_upper": 0.87, "blink_lower": 0.1, "squint_lower": 0.3, "eyeWide": 0.15,
    "squint_cheek": (0.0, 0.1, 0.0), "cheekSquint": (0.0, 0.3, 0.1), "cheekPuff": 0.6,
    "noseSneer": (0.05, 0.3, 0.0), "smile": (0.3, 0.5, -0.2), "smile_cheek": (0.0, 0.3, 0.1),
    "frown": (0.1, -0.45, 0.0), "stretch": (0.45, -0.2, -0.15), "dimple": (0.15, 0.0, -0.3),
    "pucker_forward": 0.8, "pucker_narrow": 0.28, "funnel_forward": 0.6, "funnel_narrow": 0.12,
    "funnel_open": 0.35, "close_lips": 0.45, "roll": (0.0, 0.35, -0.3), "press": 0.35,
    "shrugUpper": (0.0, 0.2, 0.15), "shrugLower": (0.0, 0.25, 0.2),
    "upperUp": (0.0, 0.4, 0.1), "lowerDown": (0.0, -0.4, 0.1),
}
JAW_HINGE_YZ = (-3.0, -1.0)  # (y, z): in front of the earlobes, behind and above the mouth
# Left-side anchor landmarks: cheek beside the nostril, malar cheek under the eye, buccal
# cheek beside the mouth, nasal ala, upper and lower lip, outer lip corner; chin (mid-line).
CHEEK, MALAR, BUCCAL, ALA, UPPER_LIP, LOWER_LIP, CORNER, CHIN = 425, 348, 427, 278, 269, 405, 291, 18


def _smoothstep(edge0: float, edge1: float, x: np.ndarray) -> np.ndarray:
    """0 at edge0, 1 at edge1, C1-smooth between (edge0 > edge1 gives a falling step)."""
    t = np.clip((x - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _near(v: np.ndarray, anchors: np.ndarray, inner: float, outer: float) -> np.ndarray:
    """[V, 1] 1 within `inner` cm of the nearest of `anchors` [K, 3], falling to 0 at `outer`."""
    distance = np.linalg.norm(v[:, None, :] - anchors[None, :, :], axis=2).min(axis=1)
    return 1.0 - _smoothstep(inner, outer, distance)[:, None]


def _field(x, y, z) -> np.ndarray:
    """[V, 3] from per-vertex or constant components."""
    return np.stack(np.broadcast_arrays(x, y, z), axis=1)


def _mirror_indices(v: np.ndarray) -> np.ndarray:
    """[V] each vertex's mirror partner: the nearest vertex to (-x, y, z)."""
    return np.linalg.norm((v * (-1.0, 1.0, 1.0))[:, None, :] - v[None, :, :], axis=2).argmin(axis=1)


def _vertex_normals(v: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """[V, 3] unit area-weighted vertex normals, out of the face."""
    a, b, c = (v[triangles[:, k]] for k in range(3))
    normals = np.zeros_like(v)
    for k in range(3):
        np.add.at(normals, triangles[:, k], np.cross(b - a, c - a))
    return normals / np.linalg.norm(normals, axis=1, keepdims=True)


def _rotation(v: np.ndarray, pivot, axis, degrees: float) -> np.ndarray:
    """[V, 3] offsets that rotate every vertex by `degrees` about the line (pivot, axis)."""
    k = np.asarray(axis, float) / np.linalg.norm(axis)
    p, angle = v - np.asarray(pivot, float), np.radians(degrees)
    rotated = p * np.cos(angle) + np.cross(k, p) * np.sin(angle) + np.outer(p @ k, k) * (1 - np.cos(angle))
    return rotated - p


def _polyline_at(v: np.ndarray, ids: list[int], x: np.ndarray) -> np.ndarray:
    """[V, 3] the polyline through `ids` (sorted by x) at each x, constant beyond its ends."""
    return np.stack([np.interp(x, v[ids, 0], v[ids, k]) for k in range(3)], axis=1)


def _opening(v: np.ndarray, loop: np.ndarray, reach: float):
    """The lid or lip opening of a closed `loop` around each vertex: (gap, above, below).

    gap [V, 3]: the loop's lower arc minus its upper arc at the vertex's x (both arcs
    run between the loop's x-extreme corners, so gap is zero there and beyond);
    above / below [V, 1]: 1 on the upper / lower arc, fading to 0 `reach` cm above / below it.
    """
    loop = list(loop)
    i, j = sorted((int(np.argmin(v[loop, 0])), int(np.argmax(v[loop, 0]))))
    arcs = sorted((loop[i:j + 1], loop[j:] + loop[:i + 1]), key=lambda arc: -v[arc, 1].mean())
    top, bottom = (_polyline_at(v, sorted(arc, key=lambda n: v[n, 0]), v[:, 0]) for arc in arcs)
    upper_side = (v[:, 1] >= (top[:, 1] + bottom[:, 1]) / 2)[:, None]
    above = np.where(upper_side, 1.0 - _smoothstep(0.0, reach, v[:, 1] - top[:, 1])[:, None], 0.0)
    below = np.where(upper_side, 0.0, 1.0 - _smoothstep(0.0, reach, bottom[:, 1] - v[:, 1])[:, None])
    return bottom - top, above, below


def _mouth_line(v: np.ndarray) -> tuple[float, float]:
    """(y, half width) of the inner lip loop: where the lips meet, and how far out."""
    inner = v[LANDMARK_GROUPS["lips_inner"]]
    return float(inner[:, 1].mean()), float(np.abs(inner[:, 0]).max())


def _lip_mask(v: np.ndarray, reach: float) -> np.ndarray:
    """[V, 1] 1 inside the outer lip outline (front view), falling to 0 `reach` cm outside."""
    outline = v[LANDMARK_GROUPS["lips_outer"], :2].astype(np.float32).reshape(-1, 1, 2)
    inside = [cv2.pointPolygonTest(outline, (float(x), float(y)), True) for x, y in v[:, :2]]
    return _smoothstep(-reach, 0.0, np.array(inside))[:, None]


def _jaw_mask(v: np.ndarray) -> np.ndarray:
    """[V, 1] 1 on the jaw (lower lip, chin), 0 above the mouth line.

    The step is a narrow band at the middle of the lips, so the upper lip stays; it widens
    towards the mouth corners, so the opening tapers there, and on across the cheeks, so
    they stretch smoothly.
    """
    mouth_y, half_width = _mouth_line(v)
    band = 0.15 + 0.5 * np.maximum(np.abs(v[:, 0]) - 0.5 * half_width, 0.0)
    return _smoothstep(mouth_y + band, mouth_y - band, v[:, 1])[:, None]


def _brow_mask(v: np.ndarray, brows: list[str], reach: float = 2.5) -> np.ndarray:
    """[V, 1] 1 on the named brows, fading over `reach` cm, and 0 on and below the upper lids."""
    brow = np.concatenate([LANDMARK_GROUPS[name] for name in brows])
    lid_top = v[LANDMARK_GROUPS["left_eye"], 1].max()
    return _near(v, v[brow], 0.3, reach) * _smoothstep(lid_top, v[brow, 1].min(), v[:, 1])[:, None]


def _left_shapes(v: np.ndarray, jaw: np.ndarray, lips: np.ndarray) -> dict[str, np.ndarray]:
    """{name: [V, 3]} the one-sided shapes, authored on the subject's left (+x)."""
    m, x, y = MAGNITUDES, v[:, 0], v[:, 1]
    gap, above, below = _opening(v, LANDMARK_GROUPS["left_eye"], reach=1.0)
    lid_profile = np.linalg.norm(gap, axis=1, keepdims=True) / np.linalg.norm(gap, axis=1).max()
    brow = _brow_mask(v, ["left_brow"]) * _smoothstep(-1.0, 1.0, x)[:, None]
    malar = _near(v, v[[MALAR]], 0.5, 2.2)
    mouth_y, _ = _mouth_line(v)
    return {
        # The upper lid comes down onto the lower lid, which rises a little to meet it.
        "eyeBlinkLeft": gap * (m["blink_upper"] * above - m["blink_lower"] * below),
        "eyeSquintLeft": -gap * m["squint_lower"] * below + malar * m["squint_cheek"],
        "eyeWideLeft": lid_profile * above * (0.0, m["eyeWide"], 0.0),
        "browOuterUpLeft": brow * _smoothstep(2.0, 4.5, x)[:, None] * (0.0, m["browOuterUp"], 0.0),
        "browDownLeft": brow * m["browDown"],
        "cheekSquintLeft": malar * m["cheekSquint"],
        "noseSneerLeft": _near(v, v[[ALA]], 0.3, 1.6) * m["noseSneer"],
        # The corner goes up, out and back; the cheek above it bunches up.
        "mouthSmileLeft": (_near(v, v[[CORNER]], 0.3, 2.8) * m["smile"]
                           + _near(v, v[[CHEEK]], 0.5, 2.5) * m["smile_cheek"]),
        "mouthFrownLeft": _near(v, v[[CORNER]], 0.3, 2.2) * m["frown"],
        "mouthStretchLeft": _near(v, v[[CORNER]], 0.3, 2.5) * m["stretch"],
        "mouthDimpleLeft": _near(v, v[[CORNER]], 0.3, 1.5) * m["dimple"],
        # The lips on this side thin towards the line where they meet.
        "mouthPressLeft": lips * _field(0.0, (mouth_y - y) * m["press"] * _smoothstep(-1.5, 1.5, x), 0.0),
        "mouthUpperUpLeft": (1.0 - jaw) * _near(v, v[[UPPER_LIP]], 0.5, 2.0) * m["upperUp"],
        "mouthLowerDownLeft": jaw * _near(v, v[[LOWER_LIP]], 0.5, 2.0) * m["lowerDown"],
        # The mouth swings about a vertical axis behind it, so it follows the face's curve.
        "mouthLeft": _lip_mask(v, 1.5) * _rotation(v, (0.0, 0.0, -2.0), (0, 1, 0), m["mouthSide_deg"]),
        "jawLeft": jaw * (m["jawSide"], 0.0, 0.0),
    }


def generic_expression_basis(mesh: CanonicalFaceMesh) -> np.ndarray:
    """Procedural per-vertex offsets for the 52 ARKit weights.

    Args:
        mesh: the canonical face mesh (`load_canonical_mesh()`).
    Returns:
        [52, 468, 3] float32 offsets in cm, in `ARKIT_NAMES` order.
    """
    v = mesh.vertices_cm.astype(np.float64)
    m, x, y = MAGNITUDES, v[:, 0], v[:, 1]
    mirror = _mirror_indices(v)
    jaw, lips = _jaw_mask(v), _lip_mask(v, 0.8)
    upper = 1.0 - jaw  # above the mouth line
    mouth_y, half_width = _mouth_line(v)
    lip_gap, _, _ = _opening(v, LANDMARK_GROUPS["lips_inner"], reach=1.0)
    centre = np.sqrt(np.clip(1.0 - (x / half_width) ** 2, 0.0, 1.0))[:, None]  # 1 mid-mouth, 0 at corners
    vermilion = _smoothstep(0.0, 0.6, np.abs(y - mouth_y))[:, None]  # 0 where the lips meet, 1 at their outer edge
    jaw_open = jaw * _rotation(v, (0.0, *JAW_HINGE_YZ), (1, 0, 0), m["jawOpen_deg"])
    cheek_puff = _near(v, v[[BUCCAL]], 0.8, 3.0) * _vertex_normals(v, mesh.triangles) * m["cheekPuff"]
    shapes = {
        "jawOpen": jaw_open,
        # Lips only: put the lower lip back where jawOpen took it, and let both lips meet.
        "mouthClose": lips * (-jaw_open + m["close_lips"] * lip_gap * (upper - jaw)),
        "jawForward": jaw * (0.0, 0.0, m["jawForward"]),
        "browInnerUp": _brow_mask(v, ["left_brow", "right_brow"]) * (1.0 - _smoothstep(1.5, 4.0, np.abs(x)))[:, None]
        * (0.0, m["browInnerUp"], 0.0),
        "cheekPuff": cheek_puff + cheek_puff[mirror] * (-1.0, 1.0, 1.0),
        "mouthPucker": lips * _field(-m["pucker_narrow"] * x, 0.0, m["pucker_forward"]),
        # Lips forward and a little narrower; they part in the middle into a rounded opening.
        "mouthFunnel": lips * _field(-m["funnel_narrow"] * x, m["funnel_open"] * (centre * (upper - jaw))[:, 0],
                                     m["funnel_forward"]),
        # The vermilion curls in: its outer edge moves most, the line where the lips meet least.
        "mouthRollUpper": lips * upper * vermilion * centre * np.multiply(m["roll"], (1, -1, 1)),
        "mouthRollLower": lips * jaw * vermilion * centre * m["roll"],
        "mouthShrugUpper": lips * upper * m["shrugUpper"],
        "mouthShrugLower": np.maximum(lips * jaw, _near(v, v[[CHIN]], 0.8, 2.0)) * m["shrugLower"],
    }
    for name, left in _left_shapes(v, jaw, lips).items():
        shapes[name] = left
        shapes[name.replace("Left", "Right")] = left[mirror] * (-1.0, 1.0, 1.0)
    basis = np.zeros((len(ARKIT_NAMES), len(v), 3), np.float32)
    for name, offsets in shapes.items():
        basis[index_of(name)] = offsets
    return basis
