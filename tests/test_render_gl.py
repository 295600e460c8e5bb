"""The gl backend against the torch reference: parity on the hard scenes, image orientation, state reuse."""

from __future__ import annotations

import numpy as np
import pytest

from avatar import AvatarError, Camera
from render.gaussians import Gaussians
from render.reference import render_reference
from render.scenes import hard_scenes

SCENES = hard_scenes()
BACKGROUNDS = {"black": (0.0, 0.0, 0.0), "blue": (0.25, 0.5, 0.9)}
MIN_PSNR_DB = 40.0


@pytest.fixture(scope="module")
def renderer():
    from render.gl import GlRenderer

    try:
        gl = GlRenderer()
    except AvatarError as exc:
        pytest.skip(f"no EGL/OpenGL context here: {exc}")
    yield gl
    gl.close()


def psnr_db(image: np.ndarray, truth: np.ndarray) -> float:
    """PSNR over the whole image with peak 1; infinite when the two are equal."""
    mse = float(np.mean((image.astype(np.float64) - truth) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(1 / mse)


def single_gaussian(position_cm: tuple[float, float, float], sigma_cm: float = 0.3) -> Gaussians:
    return Gaussians(means=np.array([position_cm]), rotations=np.eye(3)[None], scales=np.full((1, 3), sigma_cm),
                     opacities=np.array([0.9]), colors=np.array([[1.0, 0.5, 0.2]]))


@pytest.mark.parametrize("background", BACKGROUNDS.values(), ids=BACKGROUNDS.keys())
@pytest.mark.parametrize("scene", SCENES)
def test_matches_the_reference(renderer, scene, background):
    camera, gaussians = SCENES[scene]
    truth = render_reference(camera, gaussians, background)
    image = renderer.render(camera, gaussians, background)
    assert image.shape == truth.shape and image.dtype == np.float32
    rgb_db, alpha_db = psnr_db(image[..., :3], truth[..., :3]), psnr_db(image[..., 3], truth[..., 3])
    assert rgb_db >= MIN_PSNR_DB and alpha_db >= MIN_PSNR_DB, f"{scene}: RGB {rgb_db:.1f} dB, alpha {alpha_db:.1f} dB"


def test_row_zero_is_the_top_of_the_image(renderer):
    camera = Camera.from_vertical_fov(96, 72, 40.0)
    gaussian = single_gaussian((-6.0, 4.0, -30.0))  # left of and above the optical axis
    (u, v), _ = camera.project(gaussian.means[0])
    alpha = renderer.render(camera, gaussian)[..., 3]
    row, col = np.unravel_index(np.argmax(alpha), alpha.shape)
    assert (row, col) == (int(v), int(u))
    assert row < camera.height_px / 2 and col < camera.width_px / 2


def test_render_many_equals_one_render_per_camera(renderer):
    camera, gaussians = SCENES["mixed"]
    eyes = []
    for offset_cm in (-3.2, 3.2):
        pose = np.eye(4)
        pose[0, 3] = offset_cm
        eyes.append(Camera(camera.width_px, camera.height_px, camera.fx_px, camera.fy_px,
                           camera.cx_px, camera.cy_px, pose))
    together = renderer.render_many(eyes, gaussians, BACKGROUNDS["blue"])
    for eye, image in zip(eyes, together):
        np.testing.assert_allclose(image, renderer.render(eye, gaussians, BACKGROUNDS["blue"]), atol=1e-6)
    assert not np.allclose(together[0], together[1])


def test_earlier_frames_leave_nothing_behind(renderer):
    """Instance buffers shrink and grow, and the framebuffer changes size, between frames."""
    small_camera, small = SCENES["stretched"]
    first = renderer.render(small_camera, small)
    big_camera, big = SCENES["mixed"]
    renderer.render(Camera.from_vertical_fov(64, 48, 40.0, big_camera.camera_to_world), big)
    np.testing.assert_allclose(renderer.render(small_camera, small), first, atol=1e-6)
    empty = Gaussians(*(np.zeros((0, *shape)) for shape in ((3,), (3, 3), (3,), (), (3,))))
    blank = renderer.render(small_camera, empty, BACKGROUNDS["blue"])
    assert np.array_equal(blank, np.broadcast_to(np.float32([*BACKGROUNDS["blue"], 0.0]), blank.shape))


def test_reports_timings_and_device(renderer):
    camera, gaussians = SCENES["overlapping"]
    renderer.render(camera, gaussians)
    assert set(renderer.last_timings_ms) == {"sort", "upload", "draw", "readback"}
    assert all(ms >= 0 for ms in renderer.last_timings_ms.values())
    software = any(name in renderer.device.lower() for name in ("llvmpipe", "softpipe", "swrast"))
    assert renderer.is_software is software


def test_missing_egl_is_a_one_line_avatar_error(monkeypatch):
    import render.gl

    def no_egl(**kwargs):
        raise Exception("requested backend not found\nsecond line")

    monkeypatch.setattr(render.gl.moderngl, "create_context", no_egl)
    with pytest.raises(AvatarError, match="libegl1 libegl-mesa0 libgl1-mesa-dri") as error:
        render.gl.GlRenderer()
    assert "\n" not in str(error.value)
