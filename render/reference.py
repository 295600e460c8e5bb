"""The reference rasterizer: the splatting equations of `render.gaussians`, in plain torch.

Short and readable rather than fast: Gaussians go in depth-sorted chunks, and
each chunk meets every still-open pixel inside its supports' bounding box.
It is differentiable through torch autograd, and it is the truth the fast
backends are tested against.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from avatar import Camera
from render.gaussians import DILATION_PX2, MAX_ALPHA, MIN_ALPHA, MIN_TRANSMITTANCE, NEAR_CM, Gaussians

_CHUNK_ELEMENTS = 1 << 22  # Gaussians x pixels evaluated at once: bounds memory


@dataclass
class Projected:
    """Gaussians on the image plane.

    Attributes:
        means2d: [N, 2] pixel centres (u, v).
        conics: [N, 3] (a, b, c) of the inverse 2D covariance [[a, b], [b, c]], 1/px^2.
        depths: [N] distance in front of the camera, cm.
        visible: [N] bool, in front of the near plane.
    """

    means2d: torch.Tensor
    conics: torch.Tensor
    depths: torch.Tensor
    visible: torch.Tensor


def project(camera: Camera, means: torch.Tensor, covariances: torch.Tensor, near_cm: float = NEAR_CM) -> Projected:
    """EWA projection (steps 1-2 of `render.gaussians`).

    Args:
        means: [N, 3] world centres, cm.
        covariances: [N, 3, 3] world covariances, cm^2.
    """
    view = torch.as_tensor(camera.world_to_camera, dtype=means.dtype)
    r, t = view[:3, :3], view[:3, 3]
    p = means @ r.T + t
    depth = -p[:, 2]
    visible = depth > near_cm
    d = torch.where(visible, depth, torch.ones_like(depth))  # keeps culled rows finite
    zero = torch.zeros_like(d)
    jacobian = torch.stack([
        torch.stack([camera.fx_px / d, zero, camera.fx_px * p[:, 0] / d**2], dim=-1),
        torch.stack([zero, -camera.fy_px / d, -camera.fy_px * p[:, 1] / d**2], dim=-1),
    ], dim=1)  # [N, 2, 3]
    m = jacobian @ r
    cov2d = m @ covariances @ m.transpose(1, 2) + DILATION_PX2 * torch.eye(2, dtype=means.dtype)
    det = cov2d[:, 0, 0] * cov2d[:, 1, 1] - cov2d[:, 0, 1] ** 2
    conics = torch.stack([cov2d[:, 1, 1], -cov2d[:, 0, 1], cov2d[:, 0, 0]], dim=-1) / det[:, None]
    means2d = torch.stack([camera.cx_px + camera.fx_px * p[:, 0] / d, camera.cy_px - camera.fy_px * p[:, 1] / d], -1)
    return Projected(means2d, conics, depth, visible)


def rasterize(camera: Camera, means: torch.Tensor, covariances: torch.Tensor, opacities: torch.Tensor,
              colors: torch.Tensor, background: tuple[float, float, float] = (0.0, 0.0, 0.0),
              near_cm: float = NEAR_CM) -> torch.Tensor:
    """Render Gaussians (steps 1-4 of `render.gaussians`).

    Args:
        means: [N, 3] cm; covariances: [N, 3, 3] cm^2; opacities: [N] in [0, 1];
        colors: [N, 3] RGB.
    Returns:
        [H, W, 4] RGB composited over `background`, and alpha = 1 - T.
    """
    proj = project(camera, means, covariances, near_cm)
    keep = proj.visible & (opacities >= MIN_ALPHA)
    order = torch.argsort(proj.depths[keep], stable=True)
    index = torch.nonzero(keep).squeeze(1)[order]
    means2d, conics, opac, rgb = proj.means2d[index], proj.conics[index], opacities[index], colors[index]

    # Each Gaussian's support (alpha >= MIN_ALPHA) fits in a circle of this radius, px.
    a, b, c = conics.unbind(-1)
    lambda_min_conic = 0.5 * (a + c) - torch.sqrt(0.25 * (a - c) ** 2 + b**2)
    radii = torch.sqrt(2 * torch.log(opac / MIN_ALPHA) / lambda_min_conic)

    dtype = means.dtype
    v, u = torch.meshgrid(torch.arange(camera.height_px, dtype=dtype) + 0.5,
                          torch.arange(camera.width_px, dtype=dtype) + 0.5, indexing="ij")
    pixels = torch.stack([u.reshape(-1), v.reshape(-1)], dim=-1)  # [P, 2]
    transmittance = torch.ones(len(pixels), dtype=dtype)
    color = torch.zeros(len(pixels), 3, dtype=dtype)
    done = torch.zeros(len(pixels), dtype=torch.bool)
    start, k = 0, 1
    while start < len(index):
        # Only pixels that are still open and inside the chunk's supports can change; the
        # chunk shrinks until Gaussians x pixels fits the memory bound.
        while True:
            sl = slice(start, start + k)
            lo = (means2d[sl] - radii[sl, None]).detach().min(0).values
            hi = (means2d[sl] + radii[sl, None]).detach().max(0).values
            open_pixels = torch.nonzero(~done & (pixels >= lo).all(1) & (pixels <= hi).all(1)).squeeze(1)
            if k == 1 or k * len(open_pixels) <= _CHUNK_ELEMENTS:
                break
            k = max(1, _CHUNK_ELEMENTS // len(open_pixels))
        start += k
        k = min(256, max(1, _CHUNK_ELEMENTS // max(1, len(open_pixels))))
        if not len(open_pixels):
            continue
        delta = pixels[None, open_pixels] - means2d[sl, None]  # [K, P', 2]
        a, b, c = (conics[sl, i, None] for i in range(3))
        power = -0.5 * (a * delta[..., 0] ** 2 + 2 * b * delta[..., 0] * delta[..., 1] + c * delta[..., 1] ** 2)
        alpha = torch.clamp(opac[sl, None] * torch.exp(power), max=MAX_ALPHA)
        alpha = torch.where(alpha < MIN_ALPHA, torch.zeros_like(alpha), alpha)
        # A pixel stops before the Gaussian that would push T below the floor, and stays stopped.
        t_open = transmittance[open_pixels]
        t_after = t_open * torch.cumprod(1 - alpha, dim=0)
        include = torch.cumprod((t_after >= MIN_TRANSMITTANCE).to(dtype), dim=0)
        alpha = alpha * include
        t_before = t_open * torch.cumprod(torch.cat([torch.ones_like(alpha[:1]), 1 - alpha[:-1]]), dim=0)
        color = color.index_put((open_pixels,), color[open_pixels] + (alpha * t_before).T @ rgb[sl])
        transmittance = transmittance.index_put((open_pixels,), t_before[-1] * (1 - alpha[-1]))
        done = done.index_put((open_pixels,), include[-1] == 0)
    out = torch.cat([color + transmittance[:, None] * torch.as_tensor(background, dtype=dtype),
                     (1 - transmittance)[:, None]], dim=-1)
    return out.reshape(camera.height_px, camera.width_px, 4)


def render_reference(camera: Camera, gaussians: Gaussians,
                     background: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> np.ndarray:
    """Render in float64 without gradients: [H, W, 4] float32 RGBA."""
    with torch.no_grad():
        f64 = lambda a: torch.as_tensor(np.asarray(a, dtype=np.float64))  # noqa: E731
        image = rasterize(camera, f64(gaussians.means), f64(gaussians.covariances()), f64(gaussians.opacities),
                          f64(gaussians.colors), background)
    return image.numpy().astype(np.float32)
