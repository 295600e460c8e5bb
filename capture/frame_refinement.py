"""Photometric tracking of new frames against a fitted head: each frame's pose and ARKit weights
are moved, the head's Gaussians are not, until its render matches the frame inside the head mask.

This is what the field does for test frames (GaussianAvatars' tracker fits FLAME's pose and
expression to every frame photometrically); the pose and weights fitted to the landmarks
(`capture.face_fit`) are where it starts.
"""

from __future__ import annotations

import numpy as np
import torch
from tqdm import tqdm

from avatar import Camera
from capture.corrections import CorrectionRates, FrameCorrections
from capture.head_fit import BACKGROUND, FitFrames, HeadModel, frame_loss, loss_region, posed
from render import GaussianHead
from render.differentiable import rasterizer_for

# 16 rather than 8 steps a frame: +0.15-0.31 dB and +0.003-0.011 SSIM on AOC, vrt_face5 and May
# (0.9 s more a frame); the same 8 steps at twice the rates scored lower on all three.
REFINE_STEPS = 16
REFINE_RATES = CorrectionRates(rotation_rad=2e-3, translation_cm=2e-2, weights=1e-2, weights_prior=1e-3)


def refine_frames(head: GaussianHead, camera: Camera, images: np.ndarray, masks: np.ndarray, weights: np.ndarray,
                  rotations: np.ndarray, translations_cm: np.ndarray, steps: int = REFINE_STEPS,
                  rates: CorrectionRates = REFINE_RATES, progress: bool = False
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Refined (weights [T, 52], rotations [T, 3], translations_cm [T, 3]) of T frames in time order.

    Args:
        images: [T, H, W, 3] uint8 at `camera`'s size; masks: [T, H, W] bool head masks.
        weights, rotations, translations_cm: the tracked values (axis-angle, cm).
        steps: Adam steps per frame. Each frame starts from the previous one's corrections, so
            a run of video frames needs few.
    """
    model = HeadModel(head).requires_grad_(False)
    frames = FitFrames(images, masks, camera, weights.astype(np.float32), rotations.astype(np.float32),
                       translations_cm.astype(np.float32))
    corrections = FrameCorrections.zeros(len(frames), rates)
    rasterize = rasterizer_for("cpu")
    for f in tqdm(range(len(frames)), unit="frame", desc="tracking", disable=not progress, leave=False):
        if f:
            corrections.carry(f - 1, f)
        box, counted = loss_region(masks[f], camera)
        for _ in range(steps):
            rows = corrections.rows(f)
            image = rasterize(camera, *model(*posed(frames, f, corrections, rows)), BACKGROUND)
            loss, _ = frame_loss(image, images[f], masks[f], box, counted)
            loss.backward()
            corrections.step(f, rows, torch.from_numpy(frames.weights[f]))
    return corrections.applied(frames.weights, frames.rotations, frames.translations_cm)
