"""The torch reference rasterizer: closed form, gradients, and the chunking that bounds its memory."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from avatar import Camera
from render.gaussians import DILATION_PX2
from render.reference import rasterize, render_reference
from render.scenes import head_like_scene


def test_single_gaussian_matches_the_closed_form():
    camera = Camera.from_vertical_fov(16, 12, 50.0)
    sigma_cm = 0.5
    means = torch.tensor([[0.0, 0.0, -20.0]], dtype=torch.float64)
    cov = torch.eye(3, dtype=torch.float64)[None] * sigma_cm**2
    image = rasterize(camera, means, cov, torch.tensor([0.8], dtype=torch.float64),
                      torch.tensor([[1.0, 0.5, 0.25]], dtype=torch.float64), (0.0, 0.0, 0.0))
    var_px = (camera.fy_px * sigma_cm / 20.0) ** 2 + DILATION_PX2
    for (row, col) in [(6, 8), (5, 9), (2, 3)]:
        du, dv = col + 0.5 - 8, row + 0.5 - 6
        alpha = 0.8 * math.exp(-0.5 * (du * du + dv * dv) / var_px)
        alpha = alpha if alpha >= 1 / 255 else 0.0
        assert float(image[row, col, 3]) == pytest.approx(alpha, rel=1e-6, abs=1e-9)
        assert float(image[row, col, 1]) == pytest.approx(0.5 * alpha, rel=1e-6, abs=1e-9)


def test_gradients_match_finite_differences():
    camera = Camera.from_vertical_fov(10, 8, 50.0)
    rng = np.random.default_rng(0)
    means = torch.tensor(rng.normal(size=(3, 3)) * 0.4 + [0, 0, -15], requires_grad=True)
    colors = torch.tensor(rng.uniform(0.2, 0.8, (3, 3)), requires_grad=True)
    opacities = torch.tensor([0.5, 0.6, 0.7], dtype=torch.float64, requires_grad=True)
    cov = torch.eye(3, dtype=torch.float64)[None].repeat(3, 1, 1) * 0.3

    def image(m, c, o):
        return rasterize(camera, m, cov, o, c, (0.1, 0.2, 0.3))

    # Pixels near an alpha = 1/255 edge are not differentiable: compare on a smooth weighting.
    assert torch.autograd.gradcheck(lambda m, c, o: (image(m, c, o) ** 2).sum(), (means, colors, opacities),
                                    eps=1e-6, atol=1e-5)


def test_bounded_chunks_give_the_same_image_as_one_chunk(monkeypatch):
    import render.reference as reference

    camera, gaussians = head_like_scene(1500, 48)
    chunked = render_reference(camera, gaussians, (1.0, 1.0, 1.0))
    monkeypatch.setattr(reference, "_CHUNK_ELEMENTS", 1 << 30)
    whole = render_reference(camera, gaussians, (1.0, 1.0, 1.0))
    assert np.abs(chunked - whole).max() < 1e-6
