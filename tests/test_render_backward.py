"""The `cpu` backend's backward pass against torch autograd through the reference rasterizer."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from render.cpu import CpuRenderer
from render.cpu_backward import NUM_GRADS, raster_backward
from render.differentiable import rasterize_cpu
from render.reference import rasterize
from render.scenes import hard_scenes

SCENES = hard_scenes()
BACKGROUND = (0.2, 0.5, 0.7)
NAMES = ("means", "rotations", "scales", "opacities", "colors")


def _leaves(gaussians) -> list[torch.Tensor]:
    return [torch.tensor(np.asarray(getattr(gaussians, name), np.float64), requires_grad=True) for name in NAMES]


@pytest.mark.parametrize("name", sorted(SCENES))
def test_gradients_match_autograd_through_the_reference(name):
    camera, gaussians = SCENES[name]
    weights = torch.tensor(np.random.default_rng(1).standard_normal((camera.height_px, camera.width_px, 4)))

    fast = _leaves(gaussians)
    (rasterize_cpu(camera, *fast, BACKGROUND) * weights).sum().backward()
    truth = _leaves(gaussians)
    means, rotations, scales, opacities, colors = truth
    covariances = rotations @ torch.diag_embed(scales**2) @ rotations.transpose(1, 2)
    (rasterize(camera, means, covariances, opacities, colors, BACKGROUND) * weights).sum().backward()

    for label, a, b in zip(NAMES, fast, truth):
        assert b.grad.norm() > 0, f"{name}: no gradient reaches {label}"
        error = float((a.grad - b.grad).norm() / b.grad.norm())
        assert error < 1e-3, f"{name}: {label} gradient off by {error:.1e} (relative)"


def test_gradient_descent_pulls_a_perturbed_scene_back_to_its_picture():
    camera, gaussians = SCENES["mixed"]
    target = rasterize_cpu(camera, *_leaves(gaussians), BACKGROUND).detach()
    rng = np.random.default_rng(4)
    leaves = _leaves(gaussians)
    with torch.no_grad():
        leaves[0] += torch.tensor(rng.normal(0, 0.15, leaves[0].shape))
        leaves[4].copy_(torch.tensor(rng.uniform(0, 1, leaves[4].shape)))
    optimizer = torch.optim.Adam([leaves[0], leaves[4]], lr=0.01)
    renderer = CpuRenderer()
    losses = []
    for _ in range(60):
        optimizer.zero_grad()
        loss = (rasterize_cpu(camera, *leaves, BACKGROUND, renderer) - target).abs().mean()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_culled_gaussians_get_no_gradient():
    camera, gaussians = SCENES["off_screen"]
    renderer = CpuRenderer()
    renderer.render(camera, gaussians, BACKGROUND)
    grads = raster_backward(renderer.state, np.ones((camera.height_px, camera.width_px, 4), np.float32), BACKGROUND)
    culled = renderer.state.boxes[:, 0] > renderer.state.boxes[:, 1]
    assert grads.shape == (len(gaussians), NUM_GRADS) and culled.any()
    assert not grads[culled].any()


def test_projection_backward_matches_autograd_through_the_projection():
    from avatar import Camera
    from render.cpu_backward import projection_backward
    from render.reference import project

    rng = np.random.default_rng(4)
    camera = Camera.from_vertical_fov(200, 160, 40.0)
    n = 60
    means = rng.normal(0, 3, (n, 3)) + [0, 0, -20]
    means[0, 2] = 5.0          # behind the camera: zero gradients whatever comes from screen space
    rotations = np.linalg.qr(rng.normal(size=(n, 3, 3)))[0]
    scales = rng.uniform(0.05, 0.6, (n, 3))
    grads = rng.normal(size=(n, NUM_GRADS))
    leaves = [torch.tensor(a, requires_grad=True) for a in (means, rotations, scales)]
    m, r, s = leaves
    projected = project(camera, m, r @ torch.diag_embed(s * s) @ r.transpose(1, 2))
    seen = projected.visible[:, None].double()
    g = torch.from_numpy(grads)
    ((projected.means2d * g[:, :2]).mul(seen).sum() + (projected.conics * g[:, 2:5]).mul(seen).sum()).backward()
    for ours, leaf in zip(projection_backward(camera, means, rotations, scales, grads), leaves):
        np.testing.assert_allclose(ours, leaf.grad.numpy(), rtol=1e-9, atol=1e-9)
