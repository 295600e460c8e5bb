"""Per-frame pose and weight corrections: their row-wise Adam, the head's gradients in pose and
weights, and photometric tracking bringing a misplaced frame back."""

from __future__ import annotations

import numpy as np
import torch

from capture.corrections import CorrectionRates, FrameCorrections
from capture.frame_refinement import refine_frames
from capture.head_fit import FitFrames, HeadModel, fit_head
from tests.test_capture_fit import _frames_of
from tests.test_head import small_head


def _opaque_head(n: int = 400):
    head = small_head(n, with_deltas=False)
    head.opacity_logits[:] = 3.0
    return head


def test_only_the_stepped_row_moves_and_weights_stay_in_range():
    corrections = FrameCorrections.zeros(4, CorrectionRates(weights=0.5))
    tracked = torch.full((52,), 0.9)
    for _ in range(5):
        rows = corrections.rows(2)
        (rows[0].sum() + rows[1].sum() - 10 * rows[2].sum()).backward()   # pushes the weights up
        corrections.step(2, rows, tracked)
    assert corrections.rotation[[0, 1, 3]].abs().max() == 0 and corrections.weights[[0, 1, 3]].abs().max() == 0
    assert (corrections.rotation[2] < 0).all() and (corrections.translation[2] < 0).all()
    np.testing.assert_allclose((tracked + corrections.weights[2]).numpy(), 1.0, atol=1e-6)
    again = FrameCorrections.from_state(corrections.state())
    torch.testing.assert_close(again.weights, corrections.weights)


def test_a_rate_of_zero_leaves_that_part_tracked():
    corrections = FrameCorrections.zeros(2)
    rotation, translation, weights = corrections.rows(0)
    assert rotation.requires_grad and translation.requires_grad and not weights.requires_grad


def test_head_is_differentiable_in_weights_and_pose():
    model = HeadModel(small_head(30)).double().requires_grad_(False)
    rng = np.random.default_rng(3)
    inputs = (torch.tensor(rng.uniform(0, 1, 52), requires_grad=True),
              torch.tensor([0.1, -0.2, 0.05], dtype=torch.float64, requires_grad=True),
              torch.tensor([1.0, -2.0, -40.0], dtype=torch.float64, requires_grad=True))
    probe = torch.tensor(rng.normal(size=(30, 3)))

    def projected(weights, rotation, translation):
        means, rotations, scales, _, _ = model(weights, rotation, translation)
        return (means * probe).sum() + rotations.sum() + scales.sum()

    assert torch.autograd.gradcheck(projected, inputs)


def _misplaced(frames: FitFrames, seed: int) -> tuple[FitFrames, np.ndarray]:
    """The frames with their tracked translations off by about 0.15 cm (the offsets returned)."""
    offsets = np.random.default_rng(seed).normal(0, 0.15, frames.translations_cm.shape).astype(np.float32)
    offsets[:, 2] = 0
    return FitFrames(frames.images, frames.masks, frames.camera, frames.weights, frames.rotations,
                     frames.translations_cm + offsets), offsets


def test_refine_frames_moves_a_misplaced_head_back_onto_its_frame():
    frames, offsets = _misplaced(_frames_of(_opaque_head(), count=3), seed=4)
    weights, rotations, translations = refine_frames(_opaque_head(), frames.camera, frames.images, frames.masks,
                                                     frames.weights, frames.rotations, frames.translations_cm,
                                                     steps=20)
    before = np.abs(offsets[:, :2]).mean()
    after = np.abs(translations - (frames.translations_cm - offsets))[:, :2].mean()
    assert after < 0.4 * before
    assert weights.shape == (3, 52) and rotations.shape == (3, 3)


def test_fitting_with_corrections_undoes_per_frame_tracking_errors():
    truth = _frames_of(_opaque_head())
    frames, offsets = _misplaced(truth, seed=5)
    corrections = FrameCorrections.zeros(len(frames), CorrectionRates(rotation_rad=0.0, translation_cm=1e-2))
    fit_head(HeadModel(_opaque_head()), frames, 300, densify_every=10**6, corrections=corrections, refine_from=0.0)
    # The head may move as a whole against the frames, so compare the spread of the residual errors.
    residual = offsets[:, :2] + corrections.translation.numpy()[:, :2]
    assert (residual - residual.mean(0)).std() < 0.5 * offsets[:, :2].std()
