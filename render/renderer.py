"""Renderer backends behind one interface, chosen by name.

Every backend implements the equations in `render.gaussians`:
- `reference`: torch, dense and slow; the truth (`render.reference`).
- `cpu`: numba tile rasterizer, real time on a CPU (`render.cpu`).
- `gl`: moderngl + GLSL from `shaders/`, headless through EGL (`render.gl`).
`auto` picks `gl` when its context runs on a real GPU, else `cpu`.
"""

from __future__ import annotations

import abc
import importlib
import time
from typing import ClassVar

import numpy as np

from avatar import AvatarError, Camera
from render.gaussians import Gaussians

Background = tuple[float, float, float]
BACKENDS = ("reference", "cpu", "gl")


class Renderer(abc.ABC):
    """Renders `Gaussians` seen by a `Camera` into an RGBA image.

    `last_timings_ms` holds the milliseconds each stage of the last `render`
    took (for example project, sort/bin, raster, readback).
    """

    name: ClassVar[str]

    def __init__(self) -> None:
        self.last_timings_ms: dict[str, float] = {}

    @abc.abstractmethod
    def render(self, camera: Camera, gaussians: Gaussians, background: Background = (0.0, 0.0, 0.0)) -> np.ndarray:
        """[H, W, 4] float32: RGB composited over `background`, and alpha."""

    def close(self) -> None:
        """Release native resources (GL contexts); the renderer is unusable afterwards."""

    def __enter__(self) -> "Renderer":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class ReferenceRenderer(Renderer):
    """The torch reference (float64): for tests and parity, not for speed."""

    name = "reference"

    def render(self, camera: Camera, gaussians: Gaussians, background: Background = (0.0, 0.0, 0.0)) -> np.ndarray:
        from render.reference import render_reference

        start = time.perf_counter()
        image = render_reference(camera, gaussians, background)
        self.last_timings_ms = {"raster": 1000 * (time.perf_counter() - start)}
        return image


_MODULES = {"cpu": ("render.cpu", "CpuRenderer"), "gl": ("render.gl", "GlRenderer")}


def create_renderer(name: str = "auto") -> Renderer:
    """A renderer by backend name: `reference`, `cpu`, `gl` or `auto`.

    Raises:
        AvatarError: unknown name, or the backend cannot start here (the
            message says why, e.g. no EGL).
    """
    if name == "auto":
        try:
            renderer = create_renderer("gl")
        except AvatarError:
            return create_renderer("cpu")
        if getattr(renderer, "is_software", True):
            renderer.close()
            return create_renderer("cpu")
        return renderer
    if name == "reference":
        return ReferenceRenderer()
    if name not in _MODULES:
        raise AvatarError(f"unknown renderer backend {name!r}: choose one of {', '.join(BACKENDS)} or auto")
    module, cls = _MODULES[name]
    return getattr(importlib.import_module(module), cls)()
