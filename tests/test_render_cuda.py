"""The `cuda` backend (gsplat) against the reference and the `cpu` backend.

The camera conversion is checked on any machine with gsplat installed, through gsplat's own
pure-torch projection; rendering, gradients and fitting need a CUDA GPU and skip without one.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from avatar import InputError
from capture.corrections import FrameCorrections
from render.cuda import covariances, cuda_unavailable_reason, fitting_device, gsplat_camera
from render.differentiable import rasterize_cpu
from render.gaussians import DILATION_PX2, NEAR_CM
from render.reference import project, render_reference
from render.scenes import hard_scenes, head_like_scene
from tests.test_capture_fit import fit_perturbed_head

REASON = cuda_unavailable_reason()
needs_cuda = pytest.mark.skipif(REASON is not None, reason=f"the cuda backend cannot run here: {REASON}")
BACKGROUND = (0.2, 0.5, 0.7)
NAMES = ("means", "rotations", "scales", "opacities", "colors")
# Scenes whose every Gaussian is inside the view: gsplat clamps the EWA Jacobian at 1.3x the
# field of view (as the 3DGS reference code does) where `render.gaussians` does not.
IN_VIEW = ("rotated", "stretched", "overlapping", "mixed", "opaque_ties")


def _tensors(gaussians, device: str, dtype=torch.float32, grad: bool = False) -> list[torch.Tensor]:
    return [torch.tensor(np.asarray(getattr(gaussians, n)), dtype=dtype, device=device, requires_grad=grad)
            for n in NAMES]


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(-10 * np.log10(np.mean((a - b) ** 2)))


@pytest.mark.parametrize("name", ("rotated", "mixed"))
def test_the_gsplat_camera_projects_as_the_reference(name):
    impl = pytest.importorskip("gsplat.cuda._torch_impl", reason="gsplat is not installed")
    camera, gaussians = hard_scenes()[name]
    means, rotations, scales = (torch.tensor(np.asarray(getattr(gaussians, n)), dtype=torch.float64)
                                for n in ("means", "rotations", "scales"))
    covars = covariances(rotations, scales)
    view, k = gsplat_camera(camera, dtype=torch.float64)
    _, means2d, depths, conics, _ = impl._fully_fused_projection(
        means, covars, view, k, camera.width_px, camera.height_px, eps2d=DILATION_PX2, near_plane=NEAR_CM)
    truth = project(camera, means, covars)
    seen = truth.visible & (truth.means2d >= 0).all(1) & (truth.means2d[:, 0] < camera.width_px) \
        & (truth.means2d[:, 1] < camera.height_px)
    assert seen.sum() > 100
    torch.testing.assert_close(means2d[0][seen], truth.means2d[seen], rtol=1e-9, atol=1e-7)
    torch.testing.assert_close(depths[0][seen], truth.depths[seen], rtol=1e-9, atol=1e-7)
    torch.testing.assert_close(conics[0][seen], truth.conics[seen], rtol=1e-7, atol=1e-9)


def test_fitting_device_says_why_cuda_cannot_run():
    assert fitting_device("cpu") == torch.device("cpu")
    assert fitting_device("auto").type == ("cpu" if REASON else "cuda")
    with pytest.raises(InputError, match="unknown device"):
        fitting_device("tpu")
    if REASON:
        with pytest.raises(InputError, match="cannot fit on CUDA: .*--device cpu|cannot fit on CUDA: .*gsplat"):
            fitting_device("cuda")


def test_each_reason_the_cuda_backend_cannot_run_is_one_line(monkeypatch, caplog):
    import sys
    import types

    class Unbuildable(types.ModuleType):
        def __getattr__(self, name):
            raise RuntimeError("nvcc failed")  # what gsplat's first import raises when its build fails

    pytest.importorskip("gsplat", reason="gsplat is not installed")  # the parent packages must import
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setitem(sys.modules, "gsplat.cuda._backend", None)
    assert cuda_unavailable_reason().startswith("gsplat is not installed")
    unbuilt = types.ModuleType("gsplat.cuda._backend")
    unbuilt._C = None
    monkeypatch.setitem(sys.modules, "gsplat.cuda._backend", unbuilt)
    assert cuda_unavailable_reason().startswith("gsplat could not build its CUDA kernels")
    monkeypatch.setitem(sys.modules, "gsplat.cuda._backend", Unbuildable("gsplat.cuda._backend"))
    assert cuda_unavailable_reason().startswith("gsplat failed to build its CUDA kernels (RuntimeError)")
    with pytest.raises(InputError, match="^cannot fit on CUDA: gsplat failed"):
        fitting_device("cuda")
    assert fitting_device("auto").type == "cpu" and "fitting on the CPU although a GPU is visible" in caplog.text


@needs_cuda
@pytest.mark.parametrize("name", IN_VIEW)
def test_cuda_renders_as_the_reference(name):
    from render.cuda import rasterize_cuda

    camera, gaussians = hard_scenes()[name]
    with torch.no_grad():
        image = rasterize_cuda(camera, *_tensors(gaussians, "cuda"), BACKGROUND).cpu().numpy()
    assert _psnr(image, render_reference(camera, gaussians, BACKGROUND)) > 40


@needs_cuda
def test_cuda_renders_a_head_as_the_reference():
    from render.cuda import rasterize_cuda

    camera, gaussians = head_like_scene(20_000, 256)
    with torch.no_grad():
        image = rasterize_cuda(camera, *_tensors(gaussians, "cuda"), BACKGROUND).cpu().numpy()
    assert _psnr(image, render_reference(camera, gaussians, BACKGROUND)) > 40


@needs_cuda
@pytest.mark.parametrize("name", ("mixed", "stretched"))
def test_cuda_gradients_match_the_cpu_backend(name):
    from render.cuda import rasterize_cuda

    camera, gaussians = hard_scenes()[name]
    weights = np.random.default_rng(1).standard_normal((camera.height_px, camera.width_px, 4))
    gpu = _tensors(gaussians, "cuda", grad=True)
    (rasterize_cuda(camera, *gpu, BACKGROUND) * torch.tensor(weights, dtype=torch.float32, device="cuda")).sum() \
        .backward()
    cpu = _tensors(gaussians, "cpu", torch.float64, grad=True)
    (rasterize_cpu(camera, *cpu, BACKGROUND) * torch.tensor(weights)).sum().backward()
    for label, a, b in zip(NAMES, gpu, cpu):
        error = float((a.grad.cpu().double() - b.grad).norm() / b.grad.norm())
        assert error < 0.05, f"{name}: {label} gradient off by {error:.1e} (relative)"


@needs_cuda
def test_fitting_on_cuda_brings_a_perturbed_head_back_to_its_frames():
    log, model = fit_perturbed_head("cuda", densify_every=50, densify_until=0.5,
                                    corrections=FrameCorrections.zeros(6))
    assert np.mean(log.psnr[-10:]) > np.mean(log.psnr[:10]) + 6
    assert len(log.gaussians) == 1 and model.to_head().colors.shape == (len(model), 3)
    assert len(log.gaussians) == 1 and model.to_head().colors.shape == (len(model), 3)
