"""Scores of a re-rendered frame against the real one inside its head mask, and the baseline
they are compared with: nearest-neighbour retrieval of a training frame, aligned by head pose."""

from __future__ import annotations

import cv2
import numpy as np
from skimage.metrics import structural_similarity

from capture.masks import head_box

# Pose counts in the retrieval distance as weight-units per radian and per cm.
RETRIEVAL_ROTATION_WEIGHT = 2.0
RETRIEVAL_TRANSLATION_WEIGHT = 0.2


def masked_psnr(image: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> float:
    """PSNR (dB, peak 1) over the RGB of the pixels in `mask`; images [H, W, 3] in [0, 1]."""
    mse = float(np.mean((image[mask] - truth[mask]) ** 2))
    return 10 * np.log10(1.0 / max(mse, 1e-12))


SSIM_WINDOW = 7


def masked_ssim(image: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> float:
    """Mean of the SSIM map (7x7 windows, per channel) over the pixels in `mask`.

    Computed on the mask's bounding box grown by a window (half would do), which holds every
    window a masked pixel's value depends on: the same number as on the whole frame, for a
    fraction of the work, and never a box narrower than a window.
    """
    if not mask.any():
        return float("nan")
    box = head_box(mask, SSIM_WINDOW)
    _, full = structural_similarity(image[box], truth[box], win_size=SSIM_WINDOW, channel_axis=2, data_range=1.0,
                                    full=True)
    return float(full.mean(axis=2)[mask[box]].mean())


def whole_frame_scores(render: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    """(PSNR dB, SSIM) over the whole frame, as GaussianAvatars scores its test images (whole
    images, the background removed): the truth matted to white by its head mask, against the
    render over white.

    The background then counts as perfectly drawn, and the mask's edge, which the scores inside
    the mask skip, counts in full: these are not the scores of `masked_psnr` and `masked_ssim`
    on another region, but another reading, here to set ours beside published ones.

    Args:
        render: [H, W, 3] RGB over white; truth: [H, W, 3]; both in [0, 1]. mask: [H, W] bool.
    """
    matted = np.where(mask[..., None], truth, 1.0).astype(render.dtype)
    psnr = masked_psnr(render, matted, np.ones(mask.shape, bool))
    # Where both are white over a whole window SSIM is exactly 1: compute the map only on the
    # box of what is not white, grown by a window, as `masked_ssim` does.
    drawn = ((render < 1) | (matted < 1)).any(axis=2)
    if not drawn.any():
        return psnr, 1.0
    box = head_box(drawn, SSIM_WINDOW)
    _, full = structural_similarity(render[box], matted[box], win_size=SSIM_WINDOW, channel_axis=2, data_range=1.0,
                                    full=True)
    outside = mask.size - full.shape[0] * full.shape[1]
    return psnr, float((full.mean(axis=2).sum() + outside) / mask.size)


def nearest_training_frame(weights: np.ndarray, rotation: np.ndarray, translation_cm: np.ndarray,
                           train_weights: np.ndarray, train_rotations: np.ndarray,
                           train_translations_cm: np.ndarray) -> int:
    """Index of the training frame closest in ARKit weights + head pose."""
    distance = ((train_weights - weights) ** 2).sum(1) \
        + RETRIEVAL_ROTATION_WEIGHT**2 * ((train_rotations - rotation) ** 2).sum(1) \
        + RETRIEVAL_TRANSLATION_WEIGHT**2 * ((train_translations_cm - translation_cm) ** 2).sum(1)
    return int(np.argmin(distance))


def align_by_landmarks(image: np.ndarray, from_px: np.ndarray, to_px: np.ndarray) -> np.ndarray:
    """Warp `image` by the similarity transform that takes its landmarks `from_px` [K, 2] onto `to_px`."""
    matrix, _ = cv2.estimateAffinePartial2D(from_px.astype(np.float32), to_px.astype(np.float32))
    if matrix is None:
        return image
    h, w = image.shape[:2]
    return cv2.warpAffine(image, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
