"""Rendering an Avatar through a sequence of cameras and FaceStates into an MP4."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from avatar.camera import Camera
from avatar.face_state import FaceState
from avatar.model import Avatar
from render import StereoRig, VideoWriter, create_renderer, side_by_side


def to_uint8(rgb: np.ndarray) -> np.ndarray:
    """[H, W, 3] float in [0, 1] -> uint8, rounded."""
    return np.clip(rgb * 255 + 0.5, 0, 255).astype(np.uint8)


def render_video(avatar: Avatar, cameras: Sequence[Camera], states: Sequence[FaceState], path: str | os.PathLike,
                 *, fps: float, backend: str = "auto", background: tuple[float, float, float] = (1.0, 1.0, 1.0),
                 stereo: StereoRig | None = None, audio: tuple[np.ndarray, int] | None = None,
                 progress: bool = True) -> str:
    """Render frame i with `cameras[i]` and `states[i]`; returns the backend's name.

    With `stereo`, each frame is the rig's left and right eye side by side.
    `audio` is (samples [S], sample rate in Hz), muxed in sync from t = 0.
    """
    with create_renderer(backend) as renderer, \
            VideoWriter(Path(path), fps, audio=audio[0] if audio else None,
                        sample_rate=audio[1] if audio else 16000) as video:
        for camera, state in tqdm(zip(cameras, states), total=len(states), unit="frame", desc="rendering",
                                  disable=not progress, leave=False):
            gaussians = avatar.head.evaluate(state)
            views = stereo.eyes(camera) if stereo else (camera,)
            images = [renderer.render(view, gaussians, background)[..., :3] for view in views]
            video.write(to_uint8(side_by_side(*images) if stereo else images[0]))
        return renderer.name
