"""Differentiable rendering on the CPU: the `cpu` backend's forward and backward as one torch op.

Both halves run in numba, as gsplat splits its kernels into projection and rasterization:
the per-pixel work (compositing and its gradients, `render.cpu`, `render.cpu_backward`)
and the per-Gaussian chain from screen space back to 3D through the EWA projection
(`render.cpu_backward.projection_backward`, checked against autograd through
`render.reference.project`).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import numpy as np
import torch

from avatar import Camera
from render.cpu import CpuRenderer, RasterState
from render.cpu_backward import GRAD_OPACITY, GRAD_R, projection_backward, raster_backward
from render.gaussians import Gaussians


def _numpy(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().to(torch.float32).cpu().numpy()


def _numpy_exact(tensor: torch.Tensor) -> np.ndarray:
    """In the tensor's own precision: the chain runs in float64 when gradients are checked."""
    return tensor.detach().cpu().numpy()


class _Rasterize(torch.autograd.Function):
    @staticmethod
    def forward(ctx, means, rotations, scales, opacities, colors, camera, background, renderer):
        image = renderer.render(camera, Gaussians(_numpy(means), _numpy(rotations), _numpy(scales),
                                                  _numpy(opacities), _numpy(colors)), background)
        state = renderer.state
        # The renderer reuses its buffers on the next frame: keep this frame's own copy.
        ctx.state = RasterState(state.params.copy(), state.boxes.copy(), state.tile_starts.copy(),
                                state.tile_list.copy(), state.tile_pixels.copy(), state.width, state.height)
        ctx.camera, ctx.background = camera, background
        ctx.save_for_backward(means, rotations, scales)
        return torch.from_numpy(image).to(means.dtype)

    @staticmethod
    def backward(ctx, grad_image):
        means, rotations, scales = ctx.saved_tensors
        grads = torch.from_numpy(raster_backward(ctx.state, _numpy(grad_image), ctx.background))
        grad_means, grad_rotations, grad_scales = (
            torch.from_numpy(g).to(t.dtype) if t.requires_grad else None
            for g, t in zip(projection_backward(ctx.camera, _numpy_exact(means), _numpy_exact(rotations),
                                                _numpy_exact(scales), grads.numpy()), (means, rotations, scales)))
        dtype = means.dtype
        return (grad_means, grad_rotations, grad_scales, grads[:, GRAD_OPACITY].to(dtype),
                grads[:, GRAD_R:].to(dtype), None, None, None)


def rasterize_cpu(camera: Camera, means: torch.Tensor, rotations: torch.Tensor, scales: torch.Tensor,
                  opacities: torch.Tensor, colors: torch.Tensor,
                  background: tuple[float, float, float] = (0.0, 0.0, 0.0),
                  renderer: CpuRenderer | None = None) -> torch.Tensor:
    """Render with the `cpu` backend, differentiably: [H, W, 4] RGB over `background`, and alpha.

    Args:
        means: [N, 3] cm; rotations: [N, 3, 3] (columns = local axes); scales: [N, 3] standard
            deviations, cm; opacities: [N] in [0, 1]; colors: [N, 3] RGB.
        renderer: a `CpuRenderer` to reuse its buffers across calls; None makes one.
    Gradients flow to all five tensors. The forward runs in float32, like the backend.
    """
    return _Rasterize.apply(means, rotations, scales, opacities, colors, camera, tuple(float(b) for b in background),
                            renderer if renderer is not None else CpuRenderer())


Rasterize = Callable[..., torch.Tensor]
"""(camera, means, rotations, scales, opacities, colors, background) -> [H, W, 4], as `rasterize_cpu`."""


def rasterizer_for(device: torch.device | str) -> Rasterize:
    """The differentiable rasterizer for tensors on `device`: the `cpu` backend with buffers of
    its own (one per fit: they are reused frame to frame), or gsplat's kernels on a CUDA device."""
    if torch.device(device).type == "cuda":
        from render.cuda import rasterize_cuda

        return rasterize_cuda
    return partial(rasterize_cpu, renderer=CpuRenderer())
