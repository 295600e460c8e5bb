"""Decoded, resized frames of a capture and their head masks."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
from tqdm import tqdm

from capture.masks import head_mask
from capture.media import MediaSource
from capture.segmentation import person_probabilities

MASK_SIZE_PX = 256  # masks are computed at most this large and scaled up: GrabCut's cost grows with area


def fit_size(width_px: int, height_px: int, max_side_px: int) -> tuple[int, int]:
    """(width, height) scaled so the longer side is `max_side_px`, aspect kept."""
    scale = max_side_px / max(width_px, height_px)
    return max(1, round(width_px * scale)), max(1, round(height_px * scale))


def decode_frames(source: MediaSource, indices: np.ndarray, size: tuple[int, int], progress: bool = False,
                  ) -> np.ndarray:
    """[len(indices), H, W, 3] uint8 RGB: frames `indices` (sorted, unique) resized to `size` (W, H)."""
    wanted = {int(i): k for k, i in enumerate(indices)}
    out = np.empty((len(indices), size[1], size[0], 3), np.uint8)
    last = max(wanted) if wanted else -1
    with tqdm(total=len(indices), unit="frame", desc="decoding", disable=not progress, leave=False) as bar:
        for frame in source.frames():
            if frame.index in wanted:
                out[wanted[frame.index]] = cv2.resize(frame.image, size, interpolation=cv2.INTER_AREA)
                bar.update()
            if frame.index >= last:
                break
    return out


def frame_masks(images: np.ndarray, landmarks_px: np.ndarray, source_size: tuple[int, int],
                progress: bool = False) -> np.ndarray:
    """[T, H, W] bool head masks of `images` [T, H, W, 3], from landmarks [T, 478, 2+] in source pixels.

    GrabCut seeded by the landmarks, vetoed where the person segmentation sees background.
    """
    h, w = images.shape[1:3]
    small = fit_size(w, h, min(MASK_SIZE_PX, max(w, h)))
    scale = np.array([small[0] / source_size[0], small[1] / source_size[1]])
    masks = np.empty(images.shape[:3], bool)
    smalls = np.stack([cv2.resize(im, small, interpolation=cv2.INTER_AREA) for im in images]) \
        if small != (w, h) else images
    person = person_probabilities(smalls)

    def mask_of(k: int) -> None:
        cv2.setRNGSeed(k)  # GrabCut's k-means draws from this thread's generator: same frame, same mask
        mask = head_mask(smalls[k], landmarks_px[k, :, :2] * scale, person[k])
        masks[k] = mask if small == (w, h) else \
            cv2.resize(mask.astype(np.uint8) * 255, (w, h), interpolation=cv2.INTER_LINEAR) >= 128

    # GrabCut runs on one core and releases the GIL: one frame per core at a time.
    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        for _ in tqdm(pool.map(mask_of, range(len(images))), total=len(images), unit="frame", desc="masking",
                      disable=not progress, leave=False):
            pass
    return masks
