"""Capture's parts on generated inputs: face fit, masks, scaffold, the torch head, fitting, metrics, dataset."""

from __future__ import annotations

import math
import json

import cv2
import numpy as np
import pytest
import torch

from avatar import Camera, FaceState, OutputError, Track, index_of
from capture import generic_expression_basis, load_canonical_mesh
from capture.dataset import head_space_cameras, write_dataset
from capture.face_fit import fit_face
from capture.head_fit import FitFrames, FitLog, HeadModel, _densify_and_prune, fit_head, ssim
from capture.masks import head_mask
from capture.metrics import align_by_landmarks, masked_psnr, nearest_training_frame
from capture.scaffold import ScaffoldMesh, build_scaffold
from render.cpu import CpuRenderer
from tests.test_head import small_head


@pytest.fixture(scope="module")
def mesh():
    return load_canonical_mesh()


def synthetic_track(mesh, basis, frames: int = 40, seed: int = 0) -> tuple[Track, np.ndarray]:
    """Landmarks of a known face (the canonical one, widened 5%) under known poses and weights."""
    rng = np.random.default_rng(seed)
    truth = mesh.vertices_cm * np.array([1.05, 1.0, 1.0], np.float32)
    camera = Camera.from_vertical_fov(512, 512, 63.0)
    weights = np.clip(rng.normal(0, 0.15, (frames, 52)), 0, 1).astype(np.float32)
    rotations = rng.normal(0, 0.1, (frames, 3)).astype(np.float32)
    translations = np.tile(np.float32([0, 0, -45]), (frames, 1)) + rng.normal(0, 1, (frames, 3)).astype(np.float32)
    landmarks = np.zeros((frames, 478, 3), np.float32)
    from avatar.rotation import rotvec_to_matrix

    for f in range(frames):
        shape = truth + np.tensordot(weights[f], basis, axes=1)
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


def test_head_mask_keeps_the_face_and_drops_border_and_neck(mesh):
    from avatar.sample import sample_photo
    from capture import track_image

    image = sample_photo()
    track = track_image(image)
    landmarks = track.landmarks_px[0]
    mask = head_mask(image, landmarks)
    face = np.zeros(mask.shape, np.uint8)
    from capture import LANDMARK_GROUPS

    cv2.fillPoly(face, [np.round(landmarks[LANDMARK_GROUPS["face_oval"], :2] * 0.9
                                 + landmarks[LANDMARK_GROUPS["face_oval"], :2].mean(0) * 0.1).astype(np.int32)], 1)
    assert mask[face > 0].mean() > 0.97
    assert not mask[:4].any() and not mask[:, :4].any()
    chin = int(landmarks[152, 1])
    assert not mask[chin + 10:].any()
    assert 0.03 < mask.mean() < 0.5


def test_scaffold_adds_a_skull_behind_the_face_and_a_mouth_that_opens(mesh):
    basis = generic_expression_basis(mesh)
    scaffold = build_scaffold(mesh.vertices_cm, basis, mesh.triangles)
    counts = np.bincount(scaffold.region)
    assert counts[ScaffoldMesh.FACE] == len(mesh.triangles) and counts[ScaffoldMesh.SKULL] > 500
    assert scaffold.triangles.max() < len(scaffold.vertices_cm)
    np.testing.assert_array_equal(scaffold.vertices_cm[:468], mesh.vertices_cm)
    skull = np.unique(scaffold.triangles[scaffold.region == ScaffoldMesh.SKULL])
    assert not scaffold.vertex_deltas_cm[:, skull].any()          # rigid with the head
    mouth = np.unique(scaffold.triangles[scaffold.region == ScaffoldMesh.MOUTH])
    mouth = mouth[mouth >= 468]
    jaw = scaffold.vertex_deltas_cm[index_of("jawOpen"), mouth]
    assert (np.linalg.norm(jaw, axis=1) > 0).mean() > 0.5          # the cavity follows the jaw
    assert scaffold.vertices_cm[skull, 2].min() < mesh.vertices_cm[:, 2].min() - 5  # the back of the head


def test_teeth_sit_behind_the_lips_the_upper_row_rigid_the_lower_with_the_jaw_alone(mesh):
    from capture import LANDMARK_GROUPS
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
