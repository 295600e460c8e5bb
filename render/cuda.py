"""The `cuda` backend for fitting: gsplat's kernels as a differentiable torch op.

gsplat (nerfstudio's CUDA rasterizer) implements the splatting equations of
`render.gaussians` with two differences: alpha is capped at 0.999 instead of `MAX_ALPHA`
(0.99), and the EWA Jacobian is evaluated with the view direction clamped to 1.3x the
field of view (as the 3DGS reference code does), which changes Gaussians off the edge of
the image only. The near plane (`NEAR_CM`) and the screen-space dilation (`DILATION_PX2`,
gsplat's `eps2d`) are passed as ours; the 1/255 alpha floor, the 1e-4 transmittance stop
and the pixel centres at (i + 0.5, j + 0.5) are the same. gsplat's cameras are OpenCV's
(y down, looking down +z); `gsplat_camera` turns one of ours (y up, looking down -z) into
its view matrix and intrinsics.

gsplat compiles its kernels the first time it is imported on a machine with CUDA
(60 s on a 16-core H200 machine; cached under ~/.cache/torch_extensions)."""

from __future__ import annotations

import logging

import numpy as np
import torch

from avatar import Camera, InputError
from render.gaussians import DILATION_PX2, NEAR_CM

# OpenGL camera axes (x right, y up, looking down -z) to OpenCV's (x right, y down, looking down +z).
_GL_TO_CV = np.diag([1.0, -1.0, -1.0, 1.0])
DEVICES = ("auto", "cpu", "cuda")
log = logging.getLogger(__name__)


def gsplat_camera(camera: Camera, device: torch.device | str = "cpu",
                  dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """gsplat's view matrix [1, 4, 4] (world to OpenCV camera, cm) and intrinsics [1, 3, 3] (px)."""
    view = _GL_TO_CV @ camera.world_to_camera
    k = np.array([[camera.fx_px, 0.0, camera.cx_px], [0.0, camera.fy_px, camera.cy_px], [0.0, 0.0, 1.0]])
    return (torch.as_tensor(view[None], dtype=dtype, device=device),
            torch.as_tensor(k[None], dtype=dtype, device=device))


def covariances(rotations: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """[N, 3, 3] world covariances R diag(s^2) R^T (cm^2) of rotations [N, 3, 3] and scales [N, 3] (cm)."""
    scaled = rotations * scales[:, None, :]
    return scaled @ scaled.transpose(1, 2)


def cuda_unavailable_reason() -> str | None:
    """None when the `cuda` backend can run here, else one line saying why not and what to do."""
    if not torch.cuda.is_available():
        return "no CUDA GPU is visible to torch (this torch build or machine has none): use --device cpu"
    try:
        from gsplat.cuda._backend import _C
    except ImportError:
        return "gsplat is not installed: pip install 'gsplat==1.5.3' (it needs CUDA's nvcc to build its kernels)"
    except Exception as exc:  # its first import compiles: a compiler error surfaces here
        return f"gsplat failed to build its CUDA kernels ({type(exc).__name__}): see its log, or use --device cpu"
    if _C is None:
        return "gsplat could not build its CUDA kernels (is nvcc on the PATH, or CUDA_HOME set?): use --device cpu"
    return None


def fitting_device(choice: str = "auto") -> torch.device:
    """The device to fit on: "cpu"; "cuda" (InputError saying why when it cannot run here); or
    "auto": CUDA when the `cuda` backend can run here, else the CPU."""
    if choice not in DEVICES:
        raise InputError(f"unknown device {choice!r}: use one of {', '.join(DEVICES)}")
    if choice == "cpu":
        return torch.device("cpu")
    reason = cuda_unavailable_reason()
    if reason is None:
        return torch.device("cuda")
    if choice == "cuda":
        raise InputError(f"cannot fit on CUDA: {reason}")
    if torch.cuda.is_available():
        log.warning("fitting on the CPU although a GPU is visible: %s", reason)
    return torch.device("cpu")


def rasterize_cuda(camera: Camera, means: torch.Tensor, rotations: torch.Tensor, scales: torch.Tensor,
                   opacities: torch.Tensor, colors: torch.Tensor,
                   background: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> torch.Tensor:
    """Render with gsplat on the tensors' CUDA device, differentiably: [H, W, 4] RGB over `background`, and alpha.

    Same arguments as `render.rasterize_cpu`: means [N, 3] cm; rotations [N, 3, 3] (columns =
    local axes); scales [N, 3] standard deviations, cm; opacities [N] in [0, 1]; colors [N, 3] RGB.
    Gradients flow to all five tensors.
    """
    from gsplat import rasterization

    device = means.device
    view, k = gsplat_camera(camera, device)
    rgb, alpha, _ = rasterization(
        means.float(), None, None, opacities.float(), colors.float(), view, k, camera.width_px, camera.height_px,
        near_plane=NEAR_CM, eps2d=DILATION_PX2, packed=False, render_mode="RGB",
        backgrounds=torch.tensor([background], dtype=torch.float32, device=device),
        covars=covariances(rotations.float(), scales.float()))
    return torch.cat([rgb[0], alpha[0]], dim=-1).to(means.dtype)
