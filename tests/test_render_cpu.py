"""The numba tile rasterizer (`render.cpu`) against the torch reference and closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest

from avatar import Camera
from render.cpu import CpuRenderer
from render.gaussians import DILATION_PX2, MAX_ALPHA, MIN_ALPHA, Gaussians
from render.reference import render_reference
from render.renderer import create_renderer
from render.scenes import hard_scenes, head_like_scene

BACKGROUNDS = [(0.0, 0.0, 0.0), (0.2, 0.5, 0.9)]
SCENES = hard_scenes()


@pytest.fixture(scope="module")
def renderer() -> CpuRenderer:
    return CpuRenderer()


def psnr_db(image: np.ndarray, truth: np.ndarray) -> float:
    """Peak 1, over every pixel and channel given."""
    mse = float(np.mean((image.astype(np.float64) - truth) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(1 / mse)


def gaussians(means, scales, opacities, colors) -> Gaussians:
    """Axis-aligned Gaussians: [N, 3] means and scales, [N] opacities, [N, 3] colours."""
    n = len(means)
    return Gaussians(means=means, rotations=np.tile(np.eye(3), (n, 1, 1)), scales=scales,
                     opacities=opacities, colors=colors)


@pytest.mark.parametrize("background", BACKGROUNDS, ids=["black", "blue"])
@pytest.mark.parametrize("name", list(SCENES))
def test_matches_reference(renderer: CpuRenderer, name: str, background: tuple[float, float, float]):
    camera, scene = SCENES[name]
    image = renderer.render(camera, scene, background)
    truth = render_reference(camera, scene, background)
    assert image.shape == (camera.height_px, camera.width_px, 4) and image.dtype == np.float32
    assert psnr_db(image[..., :3], truth[..., :3]) >= 40
    assert psnr_db(image[..., 3], truth[..., 3]) >= 40


def test_single_isotropic_gaussian_matches_closed_form(renderer: CpuRenderer):
    # On the optical axis: the 2D covariance is (f s / d)^2 + dilation on both axes, and with
    # an odd image the mean sits on the centre of pixel (15, 12).
    camera = Camera.from_vertical_fov(31, 25, 50.0)
    depth_cm, scale_cm, opacity, color = 10.0, 0.3, 1.0, np.array([0.9, 0.4, 0.1])
    scene = gaussians([[0.0, 0.0, -depth_cm]], [[scale_cm] * 3], [opacity], [color])
    background = np.array([0.1, 0.2, 0.3])
    image = renderer.render(camera, scene, tuple(background))

    variance_px2 = (camera.fx_px * scale_cm / depth_cm) ** 2 + DILATION_PX2
    for i, j in [(15, 12), (16, 12), (17, 14), (12, 9), (20, 12), (15, 5)]:
        r2 = (i + 0.5 - camera.cx_px) ** 2 + (j + 0.5 - camera.cy_px) ** 2
        alpha = min(MAX_ALPHA, opacity * math.exp(-0.5 * r2 / variance_px2))
        alpha = alpha if alpha >= MIN_ALPHA else 0.0  # (15, 5): 7e-5, below the cutoff
        expected = np.append(alpha * color + (1 - alpha) * background, alpha)
        np.testing.assert_allclose(image[j, i], expected, atol=1e-5, err_msg=f"pixel ({i}, {j})")
    # Beyond the support the background is untouched, to the bit.
    np.testing.assert_array_equal(image[0, 0], np.append(background, 0.0).astype(np.float32))


def test_empty_scene_is_background(renderer: CpuRenderer):
    camera = Camera.from_vertical_fov(40, 30, 45.0)
    empty = gaussians(np.zeros((0, 3)), np.zeros((0, 3)), np.zeros(0), np.zeros((0, 3)))
    image = renderer.render(camera, empty, (0.2, 0.5, 0.9))
    np.testing.assert_array_equal(image, np.broadcast_to(np.float32([0.2, 0.5, 0.9, 0.0]), image.shape))


def test_gaussians_behind_the_camera_are_culled(renderer: CpuRenderer):
    camera = Camera.from_vertical_fov(40, 30, 45.0)
    rng = np.random.default_rng(1)
    behind = gaussians(rng.normal(size=(50, 3)) + [0, 0, 5], np.full((50, 3), 0.5), np.ones(50), rng.uniform(size=(50, 3)))
    image = renderer.render(camera, behind, (0.2, 0.5, 0.9))
    np.testing.assert_array_equal(image, np.broadcast_to(np.float32([0.2, 0.5, 0.9, 0.0]), image.shape))


def test_reused_buffers_do_not_leak_between_frames(renderer: CpuRenderer):
    big_camera, big = head_like_scene(3000, 128)
    camera, scene = SCENES["mixed"]
    renderer.render(big_camera, big)
    np.testing.assert_array_equal(renderer.render(camera, scene), CpuRenderer().render(camera, scene))


def test_keeps_state_for_a_backward_pass(renderer: CpuRenderer):
    camera, scene = SCENES["overlapping"]
    image = renderer.render(camera, scene)
    state = renderer.state
    np.testing.assert_allclose(state.to_image(state.final_t), 1 - image[..., 3], atol=1e-6)
    # Each pixel's contributing run lies within its own tile's list.
    assert np.all(state.ends >= state.tile_starts[:-1, None])
    assert np.all(state.ends <= state.tile_starts[1:, None])
    # A pixel no Gaussian reaches has T = 1 and an empty run.
    untouched = state.final_t == 1
    assert np.any(untouched) and np.all(state.ends[untouched] == np.broadcast_to(state.tile_starts[:-1, None], untouched.shape)[untouched])


def test_timings_and_backend_name(renderer: CpuRenderer):
    camera, scene = SCENES["mixed"]
    renderer.render(camera, scene)
    assert set(renderer.last_timings_ms) == {"project", "sort", "raster", "readback"}
    assert all(ms >= 0 for ms in renderer.last_timings_ms.values())
    assert create_renderer("cpu").name == "cpu"
