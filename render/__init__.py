"""Rendering: a Gaussian head and a FaceState into pictures, and pictures into video.

`GaussianHead.evaluate(state)` gives world-space `Gaussians`; a `Renderer`
backend (`create_renderer("cpu" | "gl" | "reference" | "auto")`) turns them
into RGBA images for a `Camera`; `VideoWriter` streams frames to MP4.
`rasterize_cpu` is the `cpu` backend as a differentiable torch op (numba forward and
backward, `render.differentiable`; `render.cuda` is gsplat's on a GPU). It and `VideoWriter`
are loaded on first use, so that rendering alone imports neither torch nor PyAV.
"""

from render.cameras import DEFAULT_IPD_CM, StereoRig, look_at, orbit_camera, side_by_side
from render.gaussians import Gaussians
from render.head import GaussianHead
from render.renderer import BACKENDS, Renderer, create_renderer

__all__ = [
    "DEFAULT_IPD_CM", "StereoRig", "look_at", "orbit_camera", "side_by_side",
    "Gaussians", "GaussianHead", "BACKENDS", "Renderer", "create_renderer", "VideoWriter", "rasterize_cpu",
]


def __getattr__(name: str):
    if name == "rasterize_cpu":
        from render.differentiable import rasterize_cpu

        return rasterize_cpu
    if name == "VideoWriter":
        from render.video import VideoWriter

        return VideoWriter
    raise AttributeError(f"module 'render' has no attribute {name!r}")
