"""Capture's parts on generated inputs: face fit, masks, scaffold, the torch head, fitting, metrics, dataset."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import cv2
import numpy as np
import pytest
import torch

from avatar import Camera, FaceState, OutputError, Track, index_of
from capture import LANDMARK_GROUPS, generic_expression_basis, load_canonical_mesh
from capture.blur import convolution_blur, gaussian_blur, gaussian_window
from capture.dataset import head_space_cameras, write_dataset
from capture.face_fit import FaceFit, fit_face
from capture.fitting import MOUTH_SHADE, mouth_shade
from capture.head_fit import (BACKGROUND, CAVITY_SHADE, FitFrames, FitLog, HeadModel, _densify_and_prune, between_lips,
                              fit_head, frame_loss, head_box, initial_head, loss_region, off_edge, ssim)
from capture.masks import _JAW, head_ellipse, head_mask
from capture.metrics import align_by_landmarks, masked_psnr, masked_ssim, nearest_training_frame, whole_frame_scores
from capture.scaffold import ScaffoldMesh, build_scaffold
from render import GaussianHead
from render.cpu import CpuRenderer
from tests.test_head import small_head


@pytest.fixture(scope="module")
def mesh():
    return load_canonical_mesh()


def synthetic_track(mesh, basis, frames: int = 40, seed: int = 0, missed: int | None = None
                    ) -> tuple[Track, np.ndarray]:
    """Landmarks of a known face (the canonical one, widened 5%) under known poses and weights.

    With `missed` (an ARKit index), the first eighth of the frames show that expression at 0.6 in
    their landmarks, and the track's weights miss it (0 there)."""
    rng = np.random.default_rng(seed)
    truth = mesh.vertices_cm * np.array([1.05, 1.0, 1.0], np.float32)
    camera = Camera.from_vertical_fov(512, 512, 63.0)
    weights = np.clip(rng.normal(0, 0.15, (frames, 52)), 0, 1).astype(np.float32)
    shown = weights.copy()
    if missed is not None:
        shown[: frames // 8, missed], weights[: frames // 8, missed] = 0.6, 0.0
    rotations = rng.normal(0, 0.1, (frames, 3)).astype(np.float32)
    translations = np.tile(np.float32([0, 0, -45]), (frames, 1)) + rng.normal(0, 1, (frames, 3)).astype(np.float32)
    landmarks = np.zeros((frames, 478, 3), np.float32)
    from avatar.rotation import rotvec_to_matrix

    for f in range(frames):
        shape = truth + np.tensordot(shown[f], basis, axes=1)
        cam = shape @ rotvec_to_matrix(rotations[f]).T + translations[f]
        uv, _ = camera.project(cam)
        landmarks[f, :468, :2] = uv
        landmarks[f, 468:, :2] = uv[:10]
    track = Track(np.arange(frames) / 25.0, np.ones(frames, bool), np.ones(frames, bool), landmarks, weights,
                  rotations + rng.normal(0, 0.01, rotations.shape).astype(np.float32), translations, camera)
    return track, truth


def test_face_fit_recovers_the_landmarks_and_a_fixed_fit_moves_only_the_pose(mesh):
    basis = generic_expression_basis(mesh)
    track, truth = synthetic_track(mesh, basis)
    fit = fit_face(track, mesh, basis, iterations=300)
    assert np.nanmedian(fit.rms_px) < 0.5
    width = lambda v: v[:, 0].max() - v[:, 0].min()  # noqa: E731
    assert abs(width(fit.neutral_vertices_cm) / width(truth) - 1) < 0.03
    again = fit_face(track, mesh, basis, frames=np.arange(10), fixed=fit)
    np.testing.assert_array_equal(again.neutral_vertices_cm, fit.neutral_vertices_cm)
    assert again.camera.fx_px == pytest.approx(fit.camera.fx_px)
    assert np.nanmedian(again.rms_px[:10]) < 0.6 and np.isnan(again.rms_px[10:]).all()


def test_face_fit_finds_an_expression_the_tracked_weights_missed(mesh):
    """MediaPipe's weights miss some expressions its landmarks show (d10's frowns come out as
    browDown 0): the weights fitted to the landmarks find them, and keep the others."""
    basis = generic_expression_basis(mesh)
    brow = index_of("browDownLeft")
    track, truth = synthetic_track(mesh, basis, missed=brow)
    nan = np.full_like(track.head_rotation, np.nan)
    face = FaceFit(truth, basis, nan, nan.copy(), track.camera, np.full(len(track.time_s), np.nan, np.float32),
                   track.weights)
    fit = fit_face(track, mesh, basis, frames=np.arange(10), fixed=face)
    # Shrunk towards the track's 0 by the prior, and more so for this face of ~130 px than d10's ~230.
    assert (fit.weights[:5, brow] > 0.3).all() and (fit.weights[:5, brow] < 0.7).all()
    others = np.delete(np.arange(52), brow)
    assert np.abs(fit.weights[:10, others] - track.weights[:10, others]).mean() < 0.02
    np.testing.assert_array_equal(fit.weights[10:], track.weights[10:])
    assert fit.weights.min() >= 0 and fit.weights.max() <= 1
    assert np.nanmedian(fit.rms_px[:5]) < 0.3


def test_head_mask_keeps_the_face_and_drops_border_and_neck(mesh):
    from avatar.sample import sample_photo
    from capture import track_image

    image = sample_photo()
    track = track_image(image)
    landmarks = track.landmarks_px[0]
    mask = head_mask(image, landmarks)
    face = np.zeros(mask.shape, np.uint8)
    cv2.fillPoly(face, [np.round(landmarks[LANDMARK_GROUPS["face_oval"], :2] * 0.9
                                 + landmarks[LANDMARK_GROUPS["face_oval"], :2].mean(0) * 0.1).astype(np.int32)], 1)
    assert mask[face > 0].mean() > 0.97
    assert not mask[:4].any() and not mask[:, :4].any()
    chin = int(landmarks[152, 1])
    assert not mask[chin + 10:].any()
    assert 0.03 < mask.mean() < 0.5


def test_the_cut_below_the_jaw_turns_with_the_head(mesh):
    from capture.masks import _below_jaw

    oval = mesh.vertices_cm[LANDMARK_GROUPS["face_oval"], :2] * [10, -10]   # frontal, 10 px/cm, y down
    for degrees in (0, 15, -15):
        angle = math.radians(degrees)
        turned = oval @ np.array([[math.cos(angle), math.sin(angle)], [-math.sin(angle), math.cos(angle)]]) + 256
        below = _below_jaw(turned.astype(np.float32), 512, 512)
        corners = turned[_JAW][[0, -1]]
        corners = corners[np.argsort(corners[:, 0])]
        across = (corners[1] - corners[0]) / np.linalg.norm(corners[1] - corners[0])
        down = np.array([-across[1], across[0]])
        # 40 px beyond each corner, a level cut would be 10 px off at 15 degrees.
        for corner, outward in ((corners[0], -across), (corners[1], across)):
            beyond = corner + 40 * outward
            (ax, ay), (ux, uy) = (beyond - 4 * down).astype(int), (beyond + 4 * down).astype(int)
            assert not below[ay, ax] and below[uy, ux], degrees


def test_the_head_window_keeps_a_small_head_at_the_source_resolution(mesh):
    from capture.frames import MIN_WINDOW_PX, FrameWindow, head_window

    oval = mesh.vertices_cm[:, :2] * [10, -10]  # frontal, 10 px/cm, y down: a face 150 px wide
    landmarks = np.stack([np.pad(oval + shift, ((0, 10), (0, 1))) for shift in ([1400, 500], [1420, 510])])
    window = head_window(landmarks, 1920, 1080)
    assert window.width_px == window.height_px == MIN_WINDOW_PX
    assert 0 <= window.x0_px and window.x0_px + window.width_px <= 1920 and window.y0_px + window.height_px <= 1080
    for frame in landmarks:
        centre, radii = head_ellipse(frame[LANDMARK_GROUPS["face_oval"], :2])
        assert (centre - radii >= [window.x0_px, window.y0_px]).all()
        assert (centre + radii <= [window.x0_px + window.width_px, window.y0_px + window.height_px]).all()
    # Near the frame's edge the window stays inside it; a head filling the frame keeps the whole frame.
    assert head_window(landmarks - [1390, 0, 0], 1920, 1080).x0_px == 0
    assert head_window(landmarks - [1144, 244, 0], 512, 560) == FrameWindow.whole(512, 560)
    assert head_window(landmarks[:0], 1920, 1080) == FrameWindow.whole(1920, 1080)


def test_a_window_camera_sees_each_point_where_the_crop_shows_it():
    from capture.frames import FrameWindow

    camera = Camera(1920, 1080, 1500.0, 1490.0, 950.0, 545.0)
    window = FrameWindow(1144, 244, 512, 640)
    size = window.size(256)
    assert size == (205, 256)
    points = np.array([[18.0, -1.0, -60.0], [20.0, -4.0, -55.0], [15.0, 5.0, -70.0]])  # inside the window
    source_uv, _ = camera.project(points)
    window_uv, _ = window.camera(camera, size).project(points)
    expected = window.landmarks(source_uv) * [size[0] / window.width_px, size[1] / window.height_px]
    assert ((window_uv > 0) & (window_uv < size)).all()
    np.testing.assert_allclose(window_uv, expected, atol=1e-4)  # landmarks are float32
    image = np.arange(1080 * 1920 * 3, dtype=np.uint32).reshape(1080, 1920, 3)
    assert window.crop(image).shape == (640, 512, 3) and window.crop(image)[0, 0, 0] == image[244, 1144, 0]


def test_scaffold_adds_a_skull_behind_the_face_and_a_mouth_that_opens(mesh):
    basis = generic_expression_basis(mesh)
    scaffold = build_scaffold(mesh.vertices_cm, basis, mesh.triangles)
    counts = np.bincount(scaffold.region)
    assert counts[ScaffoldMesh.FACE] == len(mesh.triangles) and counts[ScaffoldMesh.SKULL] > 500
    assert scaffold.triangles.max() < len(scaffold.vertices_cm)
    np.testing.assert_array_equal(scaffold.vertices_cm[:468], mesh.vertices_cm)
    skull = np.unique(scaffold.triangles[scaffold.region == ScaffoldMesh.SKULL])
    mouth = np.unique(scaffold.triangles[scaffold.region == ScaffoldMesh.MOUTH])
    mouth = mouth[mouth >= 468]
    jaw = scaffold.vertex_deltas_cm[index_of("jawOpen"), mouth]
    assert (np.linalg.norm(jaw, axis=1) > 0).mean() > 0.5          # the cavity follows the jaw
    assert scaffold.vertices_cm[skull, 2].min() < mesh.vertices_cm[:, 2].min() - 5  # the back of the head


def test_the_skull_follows_the_forehead_near_it_and_is_rigid_elsewhere(mesh):
    """Raised brows lift the hairline: the shell next to the face's upper rim moves as the rim does."""
    basis = generic_expression_basis(mesh)
    brows = index_of("browInnerUp")
    oval = np.asarray(LANDMARK_GROUPS["face_oval"])
    forehead = oval[np.argsort(mesh.vertices_cm[oval, 1])[-7:]]
    jaw_line = oval[mesh.vertices_cm[oval, 1] < mesh.vertices_cm[:, 1].mean() - 2]
    basis[brows] = 0
    basis[brows, forehead] = [0.0, 0.5, 0.0]       # the forehead's top lifted 5 mm
    basis[index_of("jawOpen"), jaw_line] = [0.0, -1.0, 0.3]
    scaffold = build_scaffold(mesh.vertices_cm, basis, mesh.triangles)
    skull = np.unique(scaffold.triangles[scaffold.region == ScaffoldMesh.SKULL])
    lift = scaffold.vertex_deltas_cm[brows, skull]
    top = forehead[-1]
    distance = np.linalg.norm(scaffold.vertices_cm[skull] - mesh.vertices_cm[top], axis=1)
    nearest = np.argmin(distance)
    assert 0.25 < lift[nearest, 1] <= 0.5 and np.allclose(lift[nearest, [0, 2]], 0)
    away = np.linalg.norm(scaffold.vertices_cm[skull, None] - mesh.vertices_cm[forehead], axis=2).min(1)
    assert np.abs(lift[away > 0.3 * np.ptp(mesh.vertices_cm[:, 1])]).max() < 0.005  # the back of the head stays
    assert not scaffold.vertex_deltas_cm[index_of("jawOpen"), skull].any()      # the hair beside the jaw too
    np.testing.assert_array_equal(scaffold.vertex_deltas_cm[:, :468], basis)    # the face as it was


def test_skull_reaches_the_head_masks_width_beside_the_jaw(mesh):
    """Hair hanging beside the jaw's corners is inside the head mask; the shell must reach it."""
    scaffold = build_scaffold(mesh.vertices_cm, generic_expression_basis(mesh), mesh.triangles)
    oval = mesh.vertices_cm[LANDMARK_GROUPS["face_oval"], :2] * [1, -1]  # seen from the front, y down as in images
    centre, axes = head_ellipse(oval)
    jaw_y = oval[_JAW][[0, -1], 1].mean()
    mask_half_width = axes[0] * math.sqrt(1 - ((jaw_y - centre[1]) / axes[1]) ** 2)
    skull = scaffold.vertices_cm[np.unique(scaffold.triangles[scaffold.region == ScaffoldMesh.SKULL]), :2] * [1, -1]
    band = skull[np.abs(skull[:, 1] - jaw_y) < 0.05 * np.ptp(oval[:, 1])]
    assert np.abs(band[:, 0] - centre[0]).max() > 0.95 * mask_half_width


def test_teeth_sit_behind_the_lips_the_upper_row_rigid_the_lower_with_the_jaw_alone(mesh):
    from capture.scaffold import CHIN, TEETH_HEIGHT_CM

    basis = generic_expression_basis(mesh)
    scaffold = build_scaffold(mesh.vertices_cm, basis, mesh.triangles)
    first = len(scaffold.vertices_cm) - 44            # two strips of two 11-point rows: upper, then lower
    upper, lower = np.arange(first, first + 22), np.arange(first + 22, first + 44)
    teeth, lips = scaffold.vertices_cm[first:], mesh.vertices_cm[LANDMARK_GROUPS["lips_inner"]]
    assert teeth[:, 2].max() < lips[:, 2].max() and np.ptp(teeth[:, 1]) == pytest.approx(2 * TEETH_HEIGHT_CM)
    assert not scaffold.vertex_deltas_cm[:, upper].any()
    jaw_open, funnel = index_of("jawOpen"), index_of("mouthFunnel")
    np.testing.assert_allclose(scaffold.vertex_deltas_cm[jaw_open, lower], np.tile(basis[jaw_open, CHIN], (22, 1)))
    assert basis[funnel, LANDMARK_GROUPS["lips_inner"]].any() and not scaffold.vertex_deltas_cm[funnel, lower].any()
    assert scaffold.teeth.sum() == 40 and (scaffold.triangles[scaffold.teeth] >= first).all()


def test_a_capture_that_never_opens_the_mouth_starts_with_a_dark_mouth_inside(mesh):
    scaffold = build_scaffold(mesh.vertices_cm, generic_expression_basis(mesh), mesh.triangles)
    camera = Camera.from_vertical_fov(64, 64, 40.0)
    frames = FitFrames(np.full((1, 64, 64, 3), (200, 100, 50), np.uint8), np.ones((1, 64, 64), bool), camera,
                       np.zeros((1, 52), np.float32), np.zeros((1, 3), np.float32), np.float32([[0, 0, -60]]))
    seen = np.float32([200, 100, 50]) / 255
    plain = initial_head(scaffold, frames, 0, 3000)
    np.testing.assert_allclose(plain.colors, np.tile(seen, (3000, 1)), rtol=1e-6)
    assert not plain.color_deltas.any()
    head = initial_head(scaffold, frames, 0, 3000, mouth_shade=3.0)
    cavity = ((scaffold.region == ScaffoldMesh.MOUTH) & ~scaffold.teeth)[head.triangle_ids]
    lips_inside = between_lips(scaffold.triangles, len(scaffold.vertices_cm))[head.triangle_ids]
    assert cavity.sum() > 20 and scaffold.teeth[head.triangle_ids].sum() > 20 and lips_inside.sum() > 5
    np.testing.assert_allclose(head.colors[cavity], np.tile(CAVITY_SHADE * seen, (cavity.sum(), 1)), rtol=1e-6)
    np.testing.assert_allclose(head.colors[~cavity], np.tile(seen, ((~cavity).sum(), 1)), rtol=1e-6)
    np.testing.assert_allclose(head.color_deltas[index_of("jawOpen"), lips_inside], -3.0 * head.colors[lips_inside])
    head.color_deltas[index_of("jawOpen"), lips_inside] = 0
    assert not head.color_deltas.any()


def test_only_training_frames_that_never_open_the_mouth_shade_it():
    weights = np.zeros((50, 52), np.float32)
    weights[:, index_of("jawOpen")] = np.linspace(0, 0.07, 50)     # liveportrait_d3's training frames
    assert mouth_shade(weights) == MOUTH_SHADE
    weights[10:12, index_of("jawOpen")] = 0.3
    assert mouth_shade(weights) == 0.0


def test_the_mouth_shade_darkens_the_lips_inside_with_jaw_open_and_goes_into_the_heads_offsets(mesh):
    rng = np.random.default_rng(0)
    scaffold = build_scaffold(mesh.vertices_cm, generic_expression_basis(mesh), mesh.triangles)
    n = len(mesh.triangles)                     # one Gaussian on each of the face mesh's triangles
    ring = set(LANDMARK_GROUPS["lips_inner"])
    inside = np.array([set(t) <= ring for t in mesh.triangles])
    colors = rng.uniform(0.2, 0.8, (n, 3))
    color_deltas = np.zeros((52, n, 3))
    color_deltas[index_of("jawOpen"), inside] = -3.0 * colors[inside]    # as `initial_head` starts them
    head = GaussianHead(neutral_vertices_cm=scaffold.vertices_cm, vertex_deltas_cm=scaffold.vertex_deltas_cm,
                        triangles=scaffold.triangles, triangle_ids=np.arange(n), local_positions=np.zeros((n, 3)),
                        local_quaternions=np.tile([1.0, 0, 0, 0], (n, 1)), log_scales=np.full((n, 3), -2.0),
                        colors=colors, opacity_logits=np.zeros(n), position_deltas_cm=np.zeros((52, n, 3)),
                        color_deltas=color_deltas)
    model = HeadModel(head, mouth_shade=3.0)
    assert float(model.color_deltas.detach().abs().max()) < 1e-6   # what is learnt: the difference from the shade
    state = FaceState(0.0, np.zeros(52), [0.0, 0.0, 0.0], [0.0, 0.0, -40.0])
    state.weights[index_of("jawOpen")] = 0.2
    with torch.no_grad():
        colors = model(*(torch.from_numpy(np.asarray(a, np.float32)) for a in
                         (state.weights, state.head_rotation, state.head_translation_cm)))[4].numpy()
    assert inside.sum() == 18 and np.array_equal(between_lips(scaffold.triangles, len(scaffold.vertices_cm))[:n], inside)
    np.testing.assert_allclose(colors[inside], 0.4 * head.colors[inside], rtol=1e-5)
    np.testing.assert_allclose(colors[~inside], head.colors[~inside], rtol=1e-6)
    np.testing.assert_allclose(model.to_head().color_deltas, head.color_deltas, atol=1e-6)
    for shade in (0.0, 3.0):                    # scoring's model, and a resumed fit's
        with torch.no_grad():
            again = HeadModel(head, mouth_shade=shade)(*(torch.from_numpy(np.asarray(a, np.float32)) for a in
                                                         (state.weights, state.head_rotation, state.head_translation_cm)))
        np.testing.assert_allclose(again[4].numpy(), colors, atol=1e-6)


def test_head_model_matches_gaussian_head_evaluate():
    head = small_head(300)
    model = HeadModel(head)
    rng = np.random.default_rng(1)
    state = FaceState(0.0, rng.uniform(0, 1, 52), [0.1, -0.2, 0.05], [1.0, -2.0, -40.0])
    expected = head.evaluate(state)
    with torch.no_grad():
        means, rotations, scales, opacities, colors = model(
            torch.from_numpy(state.weights), torch.from_numpy(state.head_rotation),
            torch.from_numpy(state.head_translation_cm))
    np.testing.assert_allclose(means.numpy(), expected.means, atol=1e-4)
    np.testing.assert_allclose(rotations.numpy(), expected.rotations, atol=1e-5)
    np.testing.assert_allclose(scales.numpy(), expected.scales, rtol=1e-5)
    np.testing.assert_allclose(opacities.numpy(), expected.opacities, rtol=1e-6)
    np.testing.assert_allclose(colors.numpy(), expected.colors, atol=1e-5)
    restored = model.to_head()
    np.testing.assert_allclose(restored.evaluate(state).means, expected.means, atol=1e-5)
    np.testing.assert_allclose(restored.evaluate(state).colors, expected.colors, atol=1e-6)


def test_the_head_models_gradients_are_the_same_on_every_run():
    """A fit must be repeatable bit for bit: gathering per Gaussian by indexing summed the
    Gaussians' gradients back into their triangles on the CPU's threads in a varying order,
    and two runs of the same --quick capture drifted apart by up to 0.12 dB."""
    model = HeadModel(small_head(40_000, with_deltas=False))
    rng = np.random.default_rng(3)
    weights = torch.from_numpy(rng.uniform(0, 1, 52).astype(np.float32))
    projections = [torch.from_numpy(rng.normal(size=shape).astype(np.float32))
                   for shape in ((40_000, 3), (40_000, 3, 3), (40_000, 3), (40_000,), (40_000, 3))]

    def gradients() -> list[np.ndarray]:
        rotation = torch.tensor([0.1, -0.2, 0.05], requires_grad=True)
        translation = torch.tensor([1.0, -2.0, -40.0], requires_grad=True)
        model.zero_grad(set_to_none=True)
        outputs = model(weights, rotation, translation)
        sum((o * p).sum() for o, p in zip(outputs, projections)).backward()
        return [rotation.grad.numpy().copy(), translation.grad.numpy().copy(),
                model.vertex_delta_corrections_cm.grad.numpy().copy(), model.local_positions.grad.numpy().copy()]

    first = gradients()
    for _ in range(5):
        for a, b in zip(first, gradients()):
            np.testing.assert_array_equal(a, b)


def test_the_mesh_offsets_corrections_move_only_vertices_a_weight_moves_and_go_into_the_head():
    head = small_head(300)
    head.vertex_deltas_cm[:, 3] = 0.0                     # vertex 3: rigid
    model = HeadModel(head)
    with torch.no_grad():
        model.vertex_delta_corrections_cm.normal_(0, 0.1)
    state = FaceState(0.0, np.random.default_rng(1).uniform(0, 1, 52), [0.1, -0.2, 0.05], [1.0, -2.0, -40.0])
    with torch.no_grad():
        means = model(*(torch.from_numpy(np.asarray(a, np.float32)) for a in
                        (state.weights, state.head_rotation, state.head_translation_cm)))[0]
    corrected = model.to_head()
    assert not corrected.vertex_deltas_cm[:, 3].any()
    assert np.abs(corrected.vertex_deltas_cm[:, :3] - head.vertex_deltas_cm[:, :3]).max() > 0.1
    np.testing.assert_allclose(corrected.evaluate(state).means, means.numpy(), atol=1e-4)
    with torch.no_grad():
        model.vertex_delta_corrections_cm.fill_(0.3)            # the same everywhere: smooth
        assert float(model.mesh_roughness()) == 0.0
        model.vertex_delta_corrections_cm.zero_()
        model.vertex_delta_corrections_cm[0, 0, 0] = 1.0        # vertex 0 ends 3 of the square's 5 edges
        assert float(model.mesh_roughness()) == pytest.approx(3 / (52 * 5))


def test_fitting_corrects_a_mesh_offset_the_landmarks_got_wrong(monkeypatch):
    from capture import head_fit

    truth = small_head(400, with_deltas=False)                  # jawOpen drops the square's lower edge 0.5 cm
    truth.opacity_logits[:] = 3.0
    frames = _frames_of(truth, count=8, only=index_of("jawOpen"))
    start = small_head(400, with_deltas=False)
    start.opacity_logits[:] = 3.0
    start.vertex_deltas_cm *= 0.5                               # the landmarks saw only half of it
    monkeypatch.setitem(head_fit.LEARNING_RATES, "vertex_delta_corrections_cm", 5e-2)
    model = HeadModel(start)
    fit_head(model, frames, 200, densify_every=10**6)
    lower_edge_y = model.to_head().vertex_deltas_cm[index_of("jawOpen"), :2, 1]
    np.testing.assert_allclose(lower_edge_y, -0.5, atol=0.05)  # from -0.25


def _frames_of(head, count: int = 6, size: int = 64, only: int | None = None) -> FitFrames:
    """`count` frames of `head` at random weights in [0, 0.5] (all 0 but weight `only`, if given) and poses."""
    camera = Camera.from_vertical_fov(size, size, 30.0)
    renderer = CpuRenderer()
    rng = np.random.default_rng(2)
    weights = rng.uniform(0, 0.5, (count, 52)).astype(np.float32)
    if only is not None:
        weights[:, np.arange(52) != only] = 0.0
    rotations = rng.normal(0, 0.05, (count, 3)).astype(np.float32)
    translations = np.tile(np.float32([0, 0, -6]), (count, 1))
    images, masks = [], []
    for k in range(count):
        rgba = renderer.render(camera, head.evaluate(FaceState(0, weights[k], rotations[k], translations[k])),
                               (1.0, 1.0, 1.0))
        images.append((np.clip(rgba[..., :3], 0, 1) * 255).round().astype(np.uint8))
        masks.append(rgba[..., 3] > 0.5)
    return FitFrames(np.stack(images), np.stack(masks), camera, weights, rotations, translations)


def fit_perturbed_head(device: str = "cpu", **options) -> tuple[FitLog, HeadModel]:
    """150 fitting steps on `device` from a grey copy of a head to six frames rendered from it."""
    head = small_head(400, with_deltas=False)
    head.opacity_logits[:] = 3.0
    frames = _frames_of(head)
    start = small_head(400, with_deltas=False)
    start.opacity_logits[:] = 3.0
    start.colors[:] = 0.5
    model = HeadModel(start).to(device)
    return fit_head(model, frames, 150, **options), model


def test_fitting_brings_a_perturbed_head_back_to_its_frames():
    log, _ = fit_perturbed_head(densify_every=10**6)
    assert np.mean(log.psnr[-10:]) > np.mean(log.psnr[:10]) + 6


def test_a_time_limit_of_the_steps_pace_stops_the_fit_when_it_runs_out():
    paces = []

    def limit(step_s: float) -> float:
        paces.append(step_s)
        return 5 * step_s if step_s else 60.0  # about five steps' worth, whatever the machine

    log, _ = fit_perturbed_head(densify_every=10**6, max_seconds=limit)
    assert 4 <= len(log.loss) <= 8 and paces[0] == 0.0 and all(p > 0 for p in paces[1:])


def test_the_fit_leaves_time_to_score_the_held_out_frames_within_the_budget():
    from capture.pipeline import FINISHING_S, MIN_FIT_SHARE, SCORING_EXTRA_STEPS, CaptureOptions, fit_time_limit

    options = CaptureOptions(fit_minutes=10.0, minutes=14.0, train_size_px=256, track_steps=5, device="cpu")
    limit = fit_time_limit(options, spent_s=60.0, holdout_frames=100)
    steps = 100 * (5 + SCORING_EXTRA_STEPS) * 512 / 256
    assert limit(0.0) == 600.0  # capped by fit_minutes
    assert limit(0.1) == pytest.approx(14 * 60 - 60 - FINISHING_S - steps * 0.1)
    assert limit(1.0) == MIN_FIT_SHARE * 600.0  # scoring alone would overrun: the fit still gets its share
    assert fit_time_limit(replace(options, minutes=None), 60.0, 100) == 600.0
    assert fit_time_limit(replace(options, device="cuda"), 60.0, 100) == 600.0
    assert fit_time_limit(replace(options, fit_minutes=None), 60.0, 100) is None


def test_a_short_clips_few_held_out_frames_are_tracked_longer():
    from capture.pipeline import SCORING_FRAMES, CaptureOptions, tracking_steps

    def steps_of(options: CaptureOptions, frames: int) -> int:
        return tracking_steps(frames, options.track_steps, options.max_track_steps)

    options = CaptureOptions()
    assert steps_of(options, SCORING_FRAMES) == options.track_steps == 16
    assert steps_of(options, 117) == 16 and steps_of(options, 71) == 18
    assert steps_of(options, 40) == steps_of(options, 1) == options.max_track_steps == 32
    assert steps_of(CaptureOptions.quick(), 8) == 3 and steps_of(options, 0) == 16


def test_densify_and_prune_keep_every_array_consistent():
    model = HeadModel(small_head(200))
    with torch.no_grad():
        model.opacity_logits[:20] = -10.0   # 20 nearly transparent: pruned
    _densify_and_prune(model, torch.rand(200), 1000, np.random.default_rng(0))
    n = len(model)
    assert n == 180 + 10
    assert model.position_deltas_cm.shape == model.color_deltas.shape == (52, n, 3)
    assert model.local_positions.shape == (n, 3)
    assert model.to_head().evaluate(FaceState()).means.shape == (n, 3)


def test_a_large_gaussian_is_split_in_two_smaller_ones_around_it():
    model = HeadModel(small_head(200))
    with torch.no_grad():
        model.log_scales[0] += 2.0          # the largest
    before_position, before_scale = model.local_positions[0].clone(), model.log_scales[0].clone()
    grad = torch.zeros(200)
    grad[0] = 1.0                           # and the one with the largest gradient (among the top 10)
    _densify_and_prune(model, grad, 1000, np.random.default_rng(0))
    halves = model.local_positions.detach()[[0, 200]]
    torch.testing.assert_close(halves.mean(0), before_position)
    assert float((halves[0] - halves[1]).norm()) > 0
    torch.testing.assert_close(model.log_scales.detach()[[0, 200]], (before_scale - math.log(1.6)).expand(2, 3))


def test_ssim_is_one_for_equal_images_and_lower_for_noise():
    image = torch.rand(40, 50, 3)
    assert float(ssim(image, image)) == pytest.approx(1.0, abs=1e-5)
    assert float(ssim(image, (image + 0.2 * torch.randn_like(image)).clamp(0, 1))) < 0.9


def test_the_cpu_blur_matches_the_convolution_in_values_and_gradients():
    stack = torch.rand(5, 23, 31, dtype=torch.float64, requires_grad=True)
    outgoing = torch.rand(5, 23, 31, dtype=torch.float64)
    opencv, convolution = gaussian_blur(stack, 11, 1.5), convolution_blur(stack, gaussian_window(11, 1.5))
    torch.testing.assert_close(opencv, convolution)
    torch.testing.assert_close(torch.autograd.grad((opencv * outgoing).sum(), stack)[0],
                               torch.autograd.grad((convolution * outgoing).sum(), stack)[0])
    assert torch.autograd.gradcheck(lambda s: gaussian_blur(s, 5, 1.0), (stack[:2, :9, :7].detach().requires_grad_(),))
    assert gaussian_blur(stack.float(), 11, 1.5).dtype == torch.float32


def test_off_edge_leaves_out_the_band_on_both_sides_of_the_masks_edge():
    mask = np.zeros((20, 20), bool)
    mask[5:15, 5:15] = True
    counted = off_edge(mask, 2)
    assert counted[0, 0] and counted[10, 10]              # far outside, deep inside
    assert not counted[3, 10] and not counted[6, 10]      # 2 px out, 2 px in
    assert not counted[3, 3] and not counted[16, 16]      # 2 px out diagonally, at the corners
    assert counted[2, 10] and counted[7, 10]              # 3 px out, 3 px in
    assert off_edge(np.ones((8, 8), bool), 1).all()       # no edge, nothing skipped


def test_the_loss_region_is_the_masks_box_less_a_band_scaled_with_the_image():
    for size, band in ((512, 2), (256, 1), (128, 1)):
        mask = np.zeros((size, size), bool)
        mask[size // 4:3 * size // 4, size // 4:3 * size // 4] = True
        box, counted = loss_region(mask, Camera.from_vertical_fov(size, size, 40.0))
        assert box == head_box(mask)
        assert np.array_equal(counted, off_edge(mask[box], band))


def test_the_colour_terms_skip_the_band_at_the_masks_edge_and_only_it(monkeypatch):
    rng = np.random.default_rng(5)
    frame = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    mask = np.zeros((32, 32), bool)
    mask[8:24, 8:24] = True
    matted = np.where(mask[..., None], frame / 255, BACKGROUND)
    image = torch.from_numpy(np.concatenate([matted, mask[..., None]], axis=2)).float()
    box = head_box(mask)
    band = off_edge(mask[box], 1)
    assert float(frame_loss(image, frame, mask, box, band)[0]) == pytest.approx(0.0, abs=1e-5)
    at_edge, inside = image.clone(), image.clone()
    at_edge[7:25, 7, :3] = 0.0       # the column just outside the mask's left edge
    at_edge[8:24, 8, :3] = 0.0       # and just inside it
    inside[12:20, 12, :3] = 0.0      # 4 px in
    # SSIM's windows from the pixels beside the band still see into it; L1 does not.
    with_band, without = (float(frame_loss(at_edge, frame, mask, box, c)[0]) for c in (band, None))
    assert with_band < 0.5 * without
    monkeypatch.setattr("capture.head_fit.SSIM_WEIGHT", 0.0)
    assert float(frame_loss(at_edge, frame, mask, box, band)[0]) == pytest.approx(0.0, abs=1e-6)
    assert float(frame_loss(at_edge, frame, mask, box)[0]) > 0.01
    assert float(frame_loss(inside, frame, mask, box, band)[0]) > float(frame_loss(inside, frame, mask, box)[0])


def test_masked_ssim_on_the_masks_box_equals_it_on_the_whole_frame():
    from skimage.metrics import structural_similarity

    rng = np.random.default_rng(4)
    truth = cv2.GaussianBlur(rng.uniform(0, 1, (96, 80, 3)).astype(np.float32), (0, 0), 1.5)
    image = np.clip(truth + rng.normal(0, 0.05, truth.shape), 0, 1).astype(np.float32)
    _, full = structural_similarity(image, truth, channel_axis=2, data_range=1.0, full=True)
    for rows, cols in ((slice(30, 70), slice(20, 60)), (slice(0, 10), slice(70, 80)), (slice(0, 1), slice(0, 1))):
        mask = np.zeros(truth.shape[:2], bool)
        mask[rows, cols] = True
        assert masked_ssim(image, truth, mask) == pytest.approx(float(full.mean(axis=2)[mask].mean()), abs=1e-12)


def test_whole_frame_scores_are_those_of_the_matted_frames_as_a_whole():
    from skimage.metrics import structural_similarity

    rng = np.random.default_rng(5)
    truth = cv2.GaussianBlur(rng.uniform(0, 1, (96, 80, 3)).astype(np.float32), (0, 0), 1.5)
    mask = np.zeros(truth.shape[:2], bool)
    mask[30:70, 20:50] = True
    render = np.ones_like(truth)
    render[28:70, 20:52] = np.clip(truth[28:70, 20:52] + rng.normal(0, 0.05, (42, 32, 3)), 0, 1)
    matted = np.where(mask[..., None], truth, 1.0).astype(np.float32)
    _, full = structural_similarity(render, matted, win_size=7, channel_axis=2, data_range=1.0, full=True)
    psnr, ssim_value = whole_frame_scores(render, truth, mask)
    assert ssim_value == pytest.approx(float(full.mean()), abs=1e-6)  # float32 sums in another order
    assert psnr == pytest.approx(masked_psnr(render, matted, np.ones(mask.shape, bool)), abs=1e-9)
    # The white background counts as drawn perfectly: higher than inside the mask.
    assert ssim_value > masked_ssim(render, truth, mask)
    assert whole_frame_scores(np.ones_like(truth), truth, np.zeros(mask.shape, bool)) == (pytest.approx(120.0), 1.0)


def test_metrics_and_retrieval():
    rng = np.random.default_rng(3)
    truth = rng.uniform(0, 1, (32, 32, 3))
    mask = np.zeros((32, 32), bool)
    mask[8:24, 8:24] = True
    noisy = truth.copy()
    noisy[~mask] = 0           # outside the mask: not scored
    assert masked_psnr(noisy, truth, mask) > 100
    assert masked_psnr(truth + 0.1, truth, mask) == pytest.approx(20.0, abs=1e-6)
    train_w = rng.uniform(0, 1, (10, 52))
    zeros = np.zeros((10, 3))
    assert nearest_training_frame(train_w[7], np.zeros(3), np.zeros(3), train_w, zeros, zeros) == 7
    points = rng.uniform(0, 32, (20, 2))
    np.testing.assert_allclose(align_by_landmarks(truth.astype(np.float32), points, points), truth, atol=1e-5)


def test_dataset_has_nerfstudio_transforms_and_nothing_half_written(tmp_path):
    count = 4
    rng = np.random.default_rng(4)
    images = rng.integers(0, 255, (count, 24, 32, 3), dtype=np.uint8)
    masks = rng.uniform(size=(count, 24, 32)) > 0.5
    rotations = rng.normal(0, 0.2, (count, 3))
    translations = rng.normal(0, 1, (count, 3)) + [0, 0, -40]
    track = Track(np.arange(count) / 25, np.ones(count, bool), np.ones(count, bool),
                  np.zeros((count, 478, 3), np.float32), rng.uniform(0, 1, (count, 52)).astype(np.float32),
                  rotations.astype(np.float32), translations.astype(np.float32),
                  Camera.from_vertical_fov(32, 24, 50.0))
    indices = np.arange(count)
    path = write_dataset(tmp_path / "set", images, masks, indices, track, track.camera, rotations, translations,
                         track.weights, {3})
    data = json.loads(path.read_text())
    assert data["camera_model"] == "OPENCV" and (data["w"], data["h"]) == (32, 24)
    assert data["val_filenames"] == ["images/frame_00003.png"] and len(data["train_filenames"]) == 3
    first = data["frames"][0]
    np.testing.assert_allclose(first["arkit_weights"], track.weights[0], atol=1e-5)
    saved = cv2.cvtColor(cv2.imread(str(tmp_path / "set" / first["file_path"])), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(saved, images[0])
    # The camera in head space sees the head where the real camera saw it.
    pose = np.array(first["transform_matrix"])
    from avatar.rotation import rotvec_to_matrix

    head_to_camera = np.eye(4)
    head_to_camera[:3, :3], head_to_camera[:3, 3] = rotvec_to_matrix(rotations[0]), translations[0]
    np.testing.assert_allclose(pose @ head_to_camera, np.eye(4), atol=1e-4)
    np.testing.assert_allclose(head_space_cameras(rotations, translations)[0], pose, atol=1e-5)
    with pytest.raises(OutputError, match="already exists"):
        write_dataset(tmp_path / "set", images, masks, indices, track, track.camera, rotations, translations,
                      track.weights, set())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set"]


def test_colour_offsets_are_learnt_where_the_mesh_moves_and_follow_their_gaussians():
    head = small_head(200)
    head.vertex_deltas_cm[:] = 0
    head.vertex_deltas_cm[index_of("jawOpen"), 1, 1] = -0.5    # vertex 1 is in triangle 0 only
    still = head.triangle_ids == 1
    head.color_deltas[:, still] = 0
    model = HeadModel(head)
    assert torch.equal(model.tinted, torch.from_numpy(np.flatnonzero(~still)))
    with torch.no_grad():
        model.opacity_logits[:20] = -10.0
    _densify_and_prune(model, torch.rand(200), 1000, np.random.default_rng(0))
    after = model.to_head()
    assert not after.color_deltas[:, after.triangle_ids == 1].any()
    np.testing.assert_array_equal(after.color_deltas[:, :180], head.color_deltas[:, 20:])
