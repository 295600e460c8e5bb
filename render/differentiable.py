"""Differentiable rendering on the CPU: the `cpu` backend's forward and backward as one torch op.

The per-pixel work (compositing and its gradients) runs in numba (`render.cpu`,
`render.cpu_backward`); the per-Gaussian chain from screen space back to 3D (the EWA
projection, `render.reference.project`) runs in torch autograd, as gsplat splits
its kernels into projection and rasterization.
"""

from __future__ import annotations

import numpy as np
import torch

from avatar import Camera
from render.cpu import CpuRenderer, RasterState
from render.cpu_backward import GRAD_A, GRAD_B, GRAD_C, GRAD_OPACITY, GRAD_R, GRAD_U, GRAD_V, raster_backward
from render.gaussians import Gaussians
from render.reference import project


def _numpy(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().to(torch.float32).cpu().numpy()


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
        needed = [t.requires_grad for t in (means, rotations, scales)]
        grad_means = grad_rotations = grad_scales = None
        if any(needed):
            with torch.enable_grad():
                # The chain runs in the inputs' precision: float32 when fitting, float64 when checking.
                leaves = [t.detach().requires_grad_(True) for t in (means, rotations, scales)]
                m, r, s = leaves
                covariances = r @ torch.diag_embed(s * s) @ r.transpose(1, 2)
                projected = project(ctx.camera, m, covariances)
                g = grads.to(m.dtype)
                surrogate = (projected.means2d * g[:, [GRAD_U, GRAD_V]]).sum() \
                    + (projected.conics * g[:, [GRAD_A, GRAD_B, GRAD_C]]).sum()
                inputs = [leaf for leaf, need in zip(leaves, needed) if need]
                found = iter(torch.autograd.grad(surrogate, inputs))
                grad_means, grad_rotations, grad_scales = (
                    next(found).to(t.dtype) if need else None for t, need in zip((means, rotations, scales), needed))
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
