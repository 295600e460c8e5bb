"""Measuring tracking jitter: landmark motion over the stillest stretch of a track."""

from __future__ import annotations

import numpy as np


def frame_motion_px(landmarks_px: np.ndarray) -> np.ndarray:
    """[T, L, 2+] landmarks -> [T-1] mean distance each landmark moves per frame (px)."""
    return np.linalg.norm(np.diff(landmarks_px[:, :, :2], axis=0), axis=-1).mean(axis=1)


def stillest_window(landmarks_px: np.ndarray, found: np.ndarray, window: int) -> int | None:
    """Start of the `window` consecutive found frames whose landmarks move least; None if there is none.

    On a still stretch nearly all of the frame-to-frame motion is tracking noise,
    so the motion there bounds the jitter from above.
    """
    motion = frame_motion_px(landmarks_px)
    ok = found[1:] & found[:-1]
    motion = np.where(ok, motion, np.inf)
    if len(motion) < window - 1 or window < 2:
        return None
    sums = np.convolve(motion, np.ones(window - 1), mode="valid")
    best = int(np.argmin(sums))
    return best if np.isfinite(sums[best]) else None


def jitter_px(landmarks_px: np.ndarray, start: int, window: int) -> float:
    """Mean frame-to-frame landmark motion (px) over frames [start, start + window)."""
    return float(frame_motion_px(landmarks_px[start:start + window]).mean())
