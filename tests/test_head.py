"""GaussianHead evaluation, camera rigs, weights CSV, audio reading, the Avatar bundle."""

from __future__ import annotations

import math

import numpy as np
import pytest

from avatar import ARKIT_NAMES, FaceState, InputError, index_of
from avatar.audio import read_audio
from avatar.rotation import rotvec_to_matrix
from avatar.weights_csv import read_weights_csv, write_weights_csv
from render import GaussianHead, StereoRig, look_at, orbit_camera, side_by_side
from render.head import quaternions_to_matrices, triangle_frames


def small_head(n: int = 200, seed: int = 0, with_deltas: bool = True) -> GaussianHead:
    """Two triangles forming a square in the z = 0 plane, Gaussians bound to both."""
    rng = np.random.default_rng(seed)
    vertices = np.array([[-1, -1, 0], [1, -1, 0], [1, 1, 0], [-1, 1, 0]], np.float32)
    deltas = np.zeros((52, 4, 3), np.float32)
    deltas[index_of("jawOpen"), :2, 1] = -0.5  # the lower edge drops
    position_deltas = rng.normal(size=(52, n, 3)).astype(np.float32) * 0.01 if with_deltas else np.zeros((52, n, 3))
    color_deltas = rng.normal(size=(52, n, 3)).astype(np.float32) * 0.05 if with_deltas else None
    return GaussianHead(
        neutral_vertices_cm=vertices, vertex_deltas_cm=deltas, triangles=np.array([[0, 1, 2], [0, 2, 3]]),
        triangle_ids=rng.integers(0, 2, n), local_positions=rng.normal(size=(n, 3)) * 0.2,
        local_quaternions=rng.normal(size=(n, 4)), log_scales=rng.normal(size=(n, 3)) - 2,
        colors=rng.uniform(0, 1, (n, 3)), opacity_logits=rng.normal(size=n), position_deltas_cm=position_deltas,
        color_deltas=color_deltas)


def evaluate_slowly(head: GaussianHead, state: FaceState):
    """The five steps of `render.head`, written out with plain numpy per Gaussian: means, rotations, scales, colours."""
    vertices = head.neutral_vertices_cm + np.tensordot(state.weights, head.vertex_deltas_cm, axes=1)
    centroids, frames, scales = triangle_frames(vertices, head.triangles)
    head_r = rotvec_to_matrix(state.head_rotation)
    local_r = quaternions_to_matrices(head.local_quaternions)
    means, rotations, colors = [], [], []
    for i, f in enumerate(head.triangle_ids):
        x = centroids[f] + scales[f] * frames[f] @ head.local_positions[i]
        x = x + np.tensordot(state.weights, head.position_deltas_cm[:, i], axes=1)
        means.append(head_r @ x + state.head_translation_cm)
        rotations.append(head_r @ frames[f] @ local_r[i])
        colors.append(np.clip(head.colors[i] + np.tensordot(state.weights, head.color_deltas[:, i], axes=1), 0, 1))
    return (np.array(means), np.array(rotations), scales[head.triangle_ids, None] * np.exp(head.log_scales),
            np.array(colors))


def test_evaluate_matches_the_equations_written_out():
    head = small_head()
    rng = np.random.default_rng(3)
    state = FaceState(weights=rng.uniform(0, 1, 52), head_rotation=[0.3, -0.2, 0.5], head_translation_cm=[1, 2, -40])
    g = head.evaluate(state)
    means, rotations, scales, colors = evaluate_slowly(head, state)
    assert np.allclose(g.means, means, atol=1e-4)
    assert np.allclose(g.rotations, rotations, atol=1e-5)
    assert np.allclose(g.scales, scales, rtol=1e-5)
    assert np.allclose(g.opacities, 1 / (1 + np.exp(-head.opacity_logits)), atol=1e-6)
    assert np.allclose(g.colors, colors, atol=1e-5)
    assert not np.allclose(g.colors, head.colors, atol=1e-2)   # the offsets tint
    assert np.array_equal(head.evaluate(FaceState()).colors, head.colors)


def test_evaluate_offsets_only_the_gaussians_that_have_them():
    head = small_head()
    still = np.arange(len(head)) % 3 == 0
    head.position_deltas_cm[:, still] = 0
    head.color_deltas[:, ~still] = 0
    state = FaceState(weights=np.random.default_rng(4).uniform(0, 1, 52), head_rotation=[0.1, 0.4, 0])
    g = head.evaluate(state)
    means, _, _, colors = evaluate_slowly(head, state)
    assert np.allclose(g.means, means, atol=1e-4) and np.allclose(g.colors, colors, atol=1e-5)
    assert np.array_equal(g.colors[~still], head.colors[~still])


def test_gaussians_follow_their_triangles_and_the_head_pose():
    head = small_head(with_deltas=False)
    rest = head.evaluate(FaceState())
    jaw = np.zeros(52)
    jaw[index_of("jawOpen")] = 1.0
    opened = head.evaluate(FaceState(weights=jaw))
    lower = head.triangle_ids == 0  # the triangle with both lower vertices moves most
    assert np.mean(opened.means[lower, 1] - rest.means[lower, 1]) < -0.2
    # A rigid pose moves every Gaussian rigidly: distances are kept.
    posed = head.evaluate(FaceState(head_rotation=[0, math.pi / 3, 0], head_translation_cm=[5, 0, -30]))
    d_rest = np.linalg.norm(rest.means[:20, None] - rest.means[None, :20], axis=-1)
    d_posed = np.linalg.norm(posed.means[:20, None] - posed.means[None, :20], axis=-1)
    assert np.allclose(d_rest, d_posed, atol=1e-4)
    assert np.allclose(np.linalg.det(posed.rotations), 1, atol=1e-4)


def test_head_rejects_inconsistent_arrays():
    head = small_head()
    with pytest.raises(ValueError, match="triangle_ids"):
        GaussianHead(**{**{k: getattr(head, k) for k in (
            "neutral_vertices_cm", "vertex_deltas_cm", "triangles", "local_positions", "local_quaternions",
            "log_scales", "colors", "opacity_logits", "position_deltas_cm")}, "triangle_ids": np.full(200, 7)})


def test_look_at_orbit_and_stereo_cameras():
    pose = look_at(np.array([0, 0, 50.0]), np.zeros(3))
    assert np.allclose(pose[:3, 2], [0, 0, 1]) and np.allclose(pose[:3, 1], [0, 1, 0])
    cam = orbit_camera(np.zeros(3), 50, math.pi / 2, 0, 64, 64, 30)
    uv, depth = cam.project(np.zeros((1, 3)))
    assert np.allclose(uv, [[32, 32]]) and depth[0] == pytest.approx(50)
    assert np.allclose(cam.camera_to_world[:3, 3], [50, 0, 0], atol=1e-9)
    left, right = StereoRig(ipd_cm=6.0).eyes(cam)
    assert np.linalg.norm(left.camera_to_world[:3, 3] - right.camera_to_world[:3, 3]) == pytest.approx(6.0)
    # Seen by the left eye, a point straight ahead appears right of centre.
    assert left.project(np.zeros((1, 3)))[0][0, 0] > 32 > right.project(np.zeros((1, 3)))[0][0, 0]
    assert side_by_side(np.zeros((4, 5, 3)), np.ones((4, 5, 3))).shape == (4, 10, 3)


def test_weights_csv_round_trip_by_name_and_bad_files(tmp_path):
    rng = np.random.default_rng(0)
    weights = rng.uniform(0, 1, (5, 52)).astype(np.float32)
    weights[2] = np.nan
    write_weights_csv(tmp_path / "w.csv", np.arange(5) / 30, weights)
    time_s, back = read_weights_csv(tmp_path / "w.csv")
    assert np.allclose(time_s, np.arange(5) / 30, atol=1e-6)
    assert np.allclose(back[[0, 1, 3, 4]], weights[[0, 1, 3, 4]], atol=1e-5) and np.allclose(back[2], back[1])
    (tmp_path / "subset.csv").write_text("jawOpen,time_s\n0.5,0\n0.25,0.04\n")
    _, subset = read_weights_csv(tmp_path / "subset.csv")
    assert subset[1, index_of("jawOpen")] == 0.25 and subset.sum() == pytest.approx(0.75)
    for text, message in [("time,jawOpen\n0,1\n", "time_s"), ("time_s,jawOpn\n0,1\n", "jawOpn"),
                          ("time_s,jawOpen\n0,x\n", "line 2"), ("time_s,jawOpen\n1,0\n0,0\n", "increase"),
                          ("time_s," + ",".join(ARKIT_NAMES) + "\n", "no rows")]:
        (tmp_path / "bad.csv").write_text(text)
        with pytest.raises(InputError, match=message):
            read_weights_csv(tmp_path / "bad.csv")


def test_read_audio_resamples_and_refuses_non_audio(tmp_path):
    import wave

    rate = 22050
    tone = (0.5 * np.sin(2 * np.pi * 440 * np.arange(rate) / rate) * 32767).astype(np.int16)
    with wave.open(str(tmp_path / "tone.wav"), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(rate)
        f.writeframes(tone.tobytes())
    samples, sr = read_audio(tmp_path / "tone.wav", sample_rate=16000)
    assert sr == 16000 and abs(len(samples) - 16000) < 200 and 0.45 < np.abs(samples).max() < 0.55
    (tmp_path / "text.wav").write_text("not audio")
    with pytest.raises(InputError, match="not a readable audio file"):
        read_audio(tmp_path / "text.wav")
    with pytest.raises(InputError, match="does not exist"):
        read_audio(tmp_path / "missing.wav")


def test_head_bundle_round_trip_keeps_colour_offsets_and_reads_older_bundles_without_them():
    from avatar import Bundle

    head = small_head()
    arrays = head.to_bundle_arrays()
    restored = GaussianHead.from_bundle(Bundle(arrays=arrays))
    assert restored.color_deltas.dtype == np.float32
    np.testing.assert_allclose(restored.color_deltas, head.color_deltas, atol=2e-4)
    del arrays["head/color_deltas"]
    older = GaussianHead.from_bundle(Bundle(arrays=arrays))
    assert older.color_deltas.shape == (52, len(head), 3) and not older.color_deltas.any()


def test_avatar_keeps_its_capture_face_offsets_and_reads_avatars_without_them(tmp_path):
    from avatar import BundleError
    from avatar.model import FACE_FIT_DELTAS, Avatar

    head = small_head()
    deltas = np.random.default_rng(1).normal(size=(52, 468, 3)).astype(np.float32)
    Avatar(head, "with", face_fit_deltas_cm=deltas).save(tmp_path / "with.avatar")
    np.testing.assert_array_equal(Avatar.load(tmp_path / "with.avatar").face_fit_deltas_cm, deltas)
    Avatar(head, "without").save(tmp_path / "without.avatar")
    assert Avatar.load(tmp_path / "without.avatar").face_fit_deltas_cm is None
    Avatar(head, "wrong", face_fit_deltas_cm=deltas[:, :, :2]).save(tmp_path / "wrong.avatar")
    with pytest.raises(BundleError, match=FACE_FIT_DELTAS):
        Avatar.load(tmp_path / "wrong.avatar")
