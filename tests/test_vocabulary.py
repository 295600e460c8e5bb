"""The shared vocabulary: ARKit names, rotations, Camera, FaceState, atomic files."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest

from avatar import ARKIT_NAMES, Camera, FaceState, OutputError, atomic_output, check_writable, index_of, weights_from_named
from avatar.rotation import interpolate_rotvecs, matrix_to_rotvec, rotvec_to_matrix


def test_arkit_names_are_52_unique_and_alphabetical():
    assert len(ARKIT_NAMES) == 52 == len(set(ARKIT_NAMES))
    assert list(ARKIT_NAMES) == sorted(ARKIT_NAMES)
    assert ARKIT_NAMES[-1] == "tongueOut" and index_of("jawOpen") == ARKIT_NAMES.index("jawOpen")


def test_weights_map_by_name_dropping_unknown_and_zeroing_missing():
    w = weights_from_named([("_neutral", 0.9), ("jawOpen", 0.5), ("eyeBlinkLeft", 0.25)])
    assert w.shape == (52,) and w.dtype == np.float32
    assert w[index_of("jawOpen")] == 0.5 and w[index_of("eyeBlinkLeft")] == 0.25
    assert w[index_of("tongueOut")] == 0 and w.sum() == pytest.approx(0.75)
    assert np.array_equal(weights_from_named({"jawOpen": 0.5}), weights_from_named([("jawOpen", 0.5)]))


def test_rotation_round_trip_and_slerp_midpoint():
    rng = np.random.default_rng(0)
    rotvecs = rng.normal(size=(20, 3)) * 0.8
    matrices = rotvec_to_matrix(rotvecs)
    assert np.allclose(matrices @ np.swapaxes(matrices, -1, -2), np.eye(3), atol=1e-12)
    assert np.allclose(matrix_to_rotvec(matrices), rotvecs, atol=1e-9)
    keys = np.array([[0, 0, 0], [0, 0.6, 0]])
    mid = interpolate_rotvecs(np.array([0.0, 1.0]), keys, np.array([0.5]))
    assert np.allclose(mid, [[0, 0.3, 0]], atol=1e-9)


def test_camera_projects_with_y_up_and_minus_z_forward():
    cam = Camera.from_vertical_fov(640, 480, 60.0)
    assert cam.vertical_fov_deg == pytest.approx(60.0)
    f = 240 / math.tan(math.radians(30))
    uv, depth = cam.project(np.array([[0, 0, -50.0], [5, 5, -50.0], [0, 0, 10.0]]))
    assert np.allclose(uv[0], [320, 240]) and depth[0] == pytest.approx(50)
    assert np.allclose(uv[1], [320 + f * 0.1, 240 - f * 0.1])  # up in the world is up in the image
    assert depth[2] < 0  # behind the camera


def test_camera_pose_inverse_and_dict_round_trip():
    pose = np.eye(4)
    pose[:3, :3] = rotvec_to_matrix(np.array([0.1, -0.4, 0.2]))
    pose[:3, 3] = [3, -2, 40]
    cam = Camera.from_vertical_fov(512, 512, 45.0, camera_to_world=pose)
    assert np.allclose(cam.world_to_camera @ cam.camera_to_world, np.eye(4))
    points = np.random.default_rng(1).normal(size=(5, 3)) * 10
    again = Camera.from_dict(cam.to_dict())
    assert np.allclose(again.project(points)[0], cam.project(points)[0])


def test_face_state_defaults_and_shape_checks():
    state = FaceState()
    assert state.weights.shape == (52,) and np.allclose(state.head_to_world(), np.eye(4))
    with pytest.raises(ValueError, match="weights"):
        FaceState(weights=np.zeros(51))
    moved = FaceState(head_rotation=[0, math.pi / 2, 0], head_translation_cm=[1, 2, 3])
    assert np.allclose(moved.head_to_world()[:3, :3] @ [0, 0, 1], [1, 0, 0], atol=1e-6)


def test_atomic_output_commits_on_success_and_keeps_the_old_file_on_failure(tmp_path):
    target = tmp_path / "result.txt"
    with atomic_output(target) as tmp:
        tmp.write_text("first")
    assert target.read_text() == "first"
    with pytest.raises(RuntimeError):
        with atomic_output(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert target.read_text() == "first"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.txt"]


def test_check_writable_names_the_problem(tmp_path):
    with pytest.raises(OutputError, match="does not exist"):
        check_writable(tmp_path / "missing" / "x.npz")
    with pytest.raises(OutputError, match="is a folder"):
        check_writable(tmp_path)
    unwritable = "/proc/x.npz" if os.geteuid() == 0 else None
    if unwritable is None:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o555)
        unwritable = locked / "x.npz"
    with pytest.raises(OutputError, match="cannot write"):
        check_writable(unwritable)
