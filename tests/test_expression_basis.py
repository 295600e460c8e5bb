"""The procedural ARKit expression basis on the canonical face mesh: layout, mirror
symmetry, the jaw, lids and mouth corners doing what their names say, and no folds."""

from __future__ import annotations

import numpy as np
import pytest

from avatar.arkit import ARKIT_NAMES, index_of
from capture.expression_basis import generic_expression_basis
from capture.face_mesh import LANDMARK_GROUPS, CanonicalFaceMesh, load_canonical_mesh

ZERO_SHAPES = [name for name in ARKIT_NAMES if name.startswith("eyeLook")] + ["tongueOut"]
LEFT_SHAPES = [name for name in ARKIT_NAMES if name.endswith("Left")]
UPPER_LIP, LOWER_LIP, CHIN, FOREHEAD = 13, 14, 152, 10  # inner lip centre points, chin, forehead
LEFT_UPPER_LID, LEFT_LOWER_LID = 386, 374


@pytest.fixture(scope="module")
def mesh(face_model_path) -> CanonicalFaceMesh:
    return load_canonical_mesh(face_model_path)


@pytest.fixture(scope="module")
def basis(mesh) -> np.ndarray:
    return generic_expression_basis(mesh)


def _posed(mesh: CanonicalFaceMesh, basis: np.ndarray, *names: str) -> np.ndarray:
    """[468, 3] the mesh with each named weight at 1."""
    return mesh.vertices_cm + sum(basis[index_of(name)] for name in names)


def _distance(v: np.ndarray, a: int, b: int) -> float:
    return float(np.linalg.norm(v[a] - v[b]))


def _normal_z(v: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """[F] the z component of each triangle's unit normal."""
    a, b, c = (v[triangles[:, k]] for k in range(3))
    normals = np.cross(b - a, c - a)
    return normals[:, 2] / np.linalg.norm(normals, axis=1)


def test_shape_and_dtype(basis):
    assert basis.shape == (52, 468, 3) and basis.dtype == np.float32
    assert np.isfinite(basis).all()


def test_only_eye_look_and_tongue_are_zero(basis):
    for k, name in enumerate(ARKIT_NAMES):
        assert (not basis[k].any()) == (name in ZERO_SHAPES), name


def test_left_and_right_shapes_are_mirror_images(mesh, basis):
    v = mesh.vertices_cm
    mirror = np.linalg.norm((v * (-1, 1, 1))[:, None] - v[None], axis=2).argmin(axis=1)
    assert np.linalg.norm(v[mirror] * (-1, 1, 1) - v, axis=1).max() < 1e-3  # the mesh is symmetric
    assert len(LEFT_SHAPES) == 20  # 18 *Left names plus mouthLeft and jawLeft
    for left in LEFT_SHAPES:
        right = basis[index_of(left.replace("Left", "Right"))]
        np.testing.assert_allclose(right[mirror], basis[index_of(left)] * (-1, 1, 1), atol=1e-6, err_msg=left)


def test_unsided_shapes_are_symmetric_and_sided_ones_act_on_their_side(mesh, basis):
    v = mesh.vertices_cm
    mirror = np.linalg.norm((v * (-1, 1, 1))[:, None] - v[None], axis=2).argmin(axis=1)
    for k, name in enumerate(ARKIT_NAMES):
        if "Left" not in name and "Right" not in name:
            np.testing.assert_allclose(basis[k][mirror] * (-1, 1, 1), basis[k], atol=1e-5, err_msg=name)
    for name in LEFT_SHAPES:
        if name in ("mouthLeft", "jawLeft"):  # these move the whole mouth or jaw towards +x
            assert basis[index_of(name)][:, 0].mean() > 0.05, name
        elif name not in ZERO_SHAPES:
            moved = np.linalg.norm(basis[index_of(name)], axis=1)
            assert moved[v[:, 0] > 0].sum() > 5 * moved[v[:, 0] < 0].sum(), name


def test_jaw_open_parts_the_lips_and_drops_the_chin(mesh, basis):
    rest, opened = mesh.vertices_cm, _posed(mesh, basis, "jawOpen")
    widening = _distance(opened, UPPER_LIP, LOWER_LIP) - _distance(rest, UPPER_LIP, LOWER_LIP)
    assert 1.0 < widening < 3.0
    assert opened[CHIN, 1] < rest[CHIN, 1] - 0.5
    jaw = basis[index_of("jawOpen")]
    assert np.linalg.norm(jaw[[FOREHEAD, UPPER_LIP]], axis=1).max() < 0.05


def test_mouth_close_shuts_the_lips_over_an_open_jaw(mesh, basis):
    assert _distance(_posed(mesh, basis, "jawOpen", "mouthClose"), UPPER_LIP, LOWER_LIP) < 0.3


def test_lid_points_are_the_left_eye_mid_points(mesh):
    v, loop = mesh.vertices_cm, LANDMARK_GROUPS["left_eye"].tolist()
    corners = v[[loop[np.argmin(v[loop, 0])], loop[np.argmax(v[loop, 0])]], 0]
    upper, lower = v[LEFT_UPPER_LID], v[LEFT_LOWER_LID]
    assert LEFT_UPPER_LID in loop and LEFT_LOWER_LID in loop
    assert abs(upper[0] - lower[0]) < 0.05 and upper[1] > lower[1] and upper[0] > 0
    assert abs(upper[0] - corners.mean()) < (corners[1] - corners[0]) / 6  # the middle third


def test_blink_left_closes_the_left_eye_only(mesh, basis):
    rest, blink = mesh.vertices_cm, _posed(mesh, basis, "eyeBlinkLeft")
    assert _distance(blink, LEFT_UPPER_LID, LEFT_LOWER_LID) < 0.2 * _distance(rest, LEFT_UPPER_LID, LEFT_LOWER_LID)
    assert not basis[index_of("eyeBlinkLeft")][LANDMARK_GROUPS["right_eye"]].any()


@pytest.mark.parametrize(("name", "corner", "outwards"), [("mouthSmileLeft", 291, 1), ("mouthSmileRight", 61, -1)])
def test_smile_raises_the_mouth_corner(basis, name, corner, outwards):
    up_out = basis[index_of(name)][corner]
    assert up_out[1] > 0.3 and up_out[0] * outwards > 0.1


def test_no_vertex_moves_more_than_3_cm(basis):
    assert np.linalg.norm(basis, axis=2).max() < 3.0


# mouthClose alone pushes the lower lip through the upper one by design (ARKit's meaning:
# it undoes jawOpen's parting of the lips), so it is checked over an open jaw instead.
@pytest.mark.parametrize("names", [(n,) for n in ARKIT_NAMES if n not in ZERO_SHAPES + ["mouthClose"]]
                         + [("jawOpen", "mouthClose")], ids="+".join)
def test_shapes_do_not_fold_the_mesh(mesh, basis, names):
    rest_z = _normal_z(mesh.vertices_cm, mesh.triangles)
    posed_z = _normal_z(_posed(mesh, basis, *names), mesh.triangles)
    front = rest_z > 0.3
    assert np.count_nonzero(front & (posed_z <= 0)) < 0.02 * np.count_nonzero(front)
