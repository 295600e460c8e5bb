"""Decoded, resized frames of a capture and their head masks, in the window that holds the head."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import cv2
import numpy as np
from tqdm import tqdm

from avatar import Camera
from capture.face_mesh import LANDMARK_GROUPS
from capture.masks import head_ellipse, head_mask
from capture.media import MediaSource
from capture.segmentation import person_probabilities

MASK_SIZE_PX = 256  # masks are computed at most this large and scaled up: GrabCut's cost grows with area
# The head's window: its ellipse's extent over the whole video, grown by this share on every side,
# and at least this many source pixels on a side (at the default 512 px, a head is never
# magnified). A window covering most of the frame is the whole frame.
WINDOW_MARGIN = 0.15
MIN_WINDOW_PX = 512
WHOLE_FRAME_SHARE = 0.6   # of the frame's area


@dataclass(frozen=True)
class FrameWindow:
    """The part of a video's frames (source pixels, origin top-left, y down) that is fitted and scored.

    A 16:9 video of a person at a desk shows the head in a fifth of the frame; resized whole to 512 px,
    the head would be fitted at a hundred pixels. The window keeps it at the source's resolution.
    """

    x0_px: int
    y0_px: int
    width_px: int
    height_px: int

    @classmethod
    def whole(cls, width_px: int, height_px: int) -> "FrameWindow":
        return cls(0, 0, width_px, height_px)

    def size(self, max_side_px: int) -> tuple[int, int]:
        """(width, height) of the window resized so its longer side is `max_side_px`."""
        return fit_size(self.width_px, self.height_px, max_side_px)

    def camera(self, camera: Camera, size: tuple[int, int]) -> Camera:
        """`camera` (of the whole source frame) for the window resized to `size` (W, H)."""
        window = Camera(self.width_px, self.height_px, camera.fx_px, camera.fy_px, camera.cx_px - self.x0_px,
                        camera.cy_px - self.y0_px, camera.camera_to_world)
        return window.resized(*size)

    def landmarks(self, landmarks_px: np.ndarray) -> np.ndarray:
        """[..., 2+] source-pixel landmarks in the window's pixels (u, v shifted; depth kept)."""
        shifted = np.array(landmarks_px, dtype=np.float32, copy=True)
        shifted[..., 0] -= self.x0_px
        shifted[..., 1] -= self.y0_px
        return shifted

    def crop(self, image: np.ndarray) -> np.ndarray:
        """[H, W, 3] source frame -> the window's pixels."""
        return image[self.y0_px:self.y0_px + self.height_px, self.x0_px:self.x0_px + self.width_px]


def head_window(landmarks_px: np.ndarray, width_px: int, height_px: int) -> FrameWindow:
    """The window that holds the head in every frame, from landmarks [T, 478, 2+] (source pixels,
    frames with a face): the union of the head's ellipses (`capture.masks.head_ellipse`) grown by
    `WINDOW_MARGIN`, at least `MIN_WINDOW_PX` a side, inside the frame; the whole frame when that
    covers `WHOLE_FRAME_SHARE` of it or more."""
    whole = FrameWindow.whole(width_px, height_px)
    if not len(landmarks_px):
        return whole
    ovals = landmarks_px[:, LANDMARK_GROUPS["face_oval"], :2]
    ellipses = [head_ellipse(oval) for oval in ovals]
    low = np.min([c - r for c, r in ellipses], axis=0)
    high = np.max([c + r for c, r in ellipses], axis=0)
    grown = (high - low) * (1 + 2 * WINDOW_MARGIN)
    side = np.minimum(np.maximum(grown, MIN_WINDOW_PX), [width_px, height_px]).round().astype(int)
    if side[0] * side[1] >= WHOLE_FRAME_SHARE * width_px * height_px:
        return whole
    corner = np.clip(np.round((low + high) / 2 - side / 2), 0, [width_px - side[0], height_px - side[1]]).astype(int)
    return FrameWindow(int(corner[0]), int(corner[1]), int(side[0]), int(side[1]))


def fit_size(width_px: int, height_px: int, max_side_px: int) -> tuple[int, int]:
    """(width, height) scaled so the longer side is `max_side_px`, aspect kept."""
    scale = max_side_px / max(width_px, height_px)
    return max(1, round(width_px * scale)), max(1, round(height_px * scale))


def decode_frames(source: MediaSource, indices: np.ndarray, size: tuple[int, int], progress: bool = False,
                  window: FrameWindow | None = None) -> np.ndarray:
    """[len(indices), H, W, 3] uint8 RGB: frames `indices` (sorted, unique), cropped to `window` (default:
    the whole frame) and resized to `size` (W, H)."""
    wanted = {int(i): k for k, i in enumerate(indices)}
    out = np.empty((len(indices), size[1], size[0], 3), np.uint8)
    with tqdm(total=len(indices), unit="frame", desc="decoding", disable=not progress, leave=False) as bar:
        for frame in source.frames(only=wanted):
            image = window.crop(frame.image) if window is not None else frame.image
            out[wanted[frame.index]] = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
            bar.update()
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
