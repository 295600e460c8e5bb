"""Rendering: a Gaussian head and a FaceState into pictures, and pictures into video.

`GaussianHead.evaluate(state)` gives world-space `Gaussians`; a `Renderer`
backend (`create_renderer("cpu" | "gl" | "reference" | "auto")`) turns them
into RGBA images for a `Camera`; `VideoWriter` streams frames to MP4.
"""

from render.cameras import DEFAULT_IPD_CM, StereoRig, look_at, orbit_camera, side_by_side
from render.gaussians import Gaussians
from render.head import GaussianHead
from render.renderer import BACKENDS, Renderer, create_renderer
from render.video import VideoWriter

__all__ = [
    "DEFAULT_IPD_CM", "StereoRig", "look_at", "orbit_camera", "side_by_side",
    "Gaussians", "GaussianHead", "BACKENDS", "Renderer", "create_renderer", "VideoWriter",
]
