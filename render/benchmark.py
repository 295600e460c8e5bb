"""Measuring the renderer backends: speed per stage on a head, and parity with the reference."""

from __future__ import annotations

import math
import resource
import time
from collections.abc import Sequence

import numpy as np

from avatar import NUM_WEIGHTS, Camera, FaceState
from render.head import GaussianHead
from render.renderer import Renderer
from render.scenes import hard_scenes


PSNR_CAP_DB = 100.0  # identical images: keeps the JSON finite


def psnr(image: np.ndarray, truth: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB of images with values in [0, 1], at most PSNR_CAP_DB."""
    mse = float(np.mean((np.asarray(image, np.float64) - np.asarray(truth, np.float64)) ** 2))
    return PSNR_CAP_DB if mse <= 10 ** (-PSNR_CAP_DB / 10) else 10 * math.log10(1.0 / mse)


def peak_rss_mb() -> float:
    """The process's peak resident memory so far, MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def talking_weights(time_s: float) -> np.ndarray:
    """[52] weights in [0, 0.3], each swinging at its own phase: a face that keeps every blendshape busy."""
    phases = np.arange(NUM_WEIGHTS, dtype=np.float32)
    return (0.15 * (1 + np.sin(2 * math.pi * 2.0 * time_s + phases))).astype(np.float32)


def time_backend(renderer: Renderer, head: GaussianHead, views: Sequence[Sequence[Camera]],
                 background: tuple[float, float, float] = (1.0, 1.0, 1.0), warmup: int = 3) -> dict:
    """Render frame i with every camera in `views[i]` (one, or two for stereo), the head turning a little and
    every ARKit weight moving (so a captured head's blendshape offsets are evaluated, as when it talks).

    The first `warmup` frames are not counted (compilation, buffer set-up).
    Returns:
        {"fps": frames per second from the median frame time, "frames": counted frames,
         "ms": {stage: median ms per frame}} with stage "deform" (GaussianHead.evaluate)
         followed by the backend's own stages, summed over the views of a frame.
    """
    stage_ms: dict[str, list[float]] = {}
    totals = []
    for i, cameras in enumerate(views):
        state = FaceState(time_s=i / 30, weights=talking_weights(i / 30),
                          head_rotation=[0.0, 0.3 * math.sin(i / 10), 0.0])
        start = time.perf_counter()
        gaussians = head.evaluate(state)
        stages = {"deform": 1000 * (time.perf_counter() - start)}
        for camera in cameras:
            renderer.render(camera, gaussians, background)
            for stage, ms in renderer.last_timings_ms.items():
                stages[stage] = stages.get(stage, 0.0) + ms
        total = 1000 * (time.perf_counter() - start)
        if i >= warmup:
            totals.append(total)
            for stage, ms in stages.items():
                stage_ms.setdefault(stage, []).append(ms)
    median_total = float(np.median(totals))
    return {"fps": round(1000 / median_total, 2), "frames": len(totals),
            "ms": {stage: round(float(np.median(ms)), 3) for stage, ms in stage_ms.items()}}


def parity(renderers: Sequence[Renderer], reference: Renderer, seed: int = 0) -> dict:
    """PSNR (dB, RGBA, peak 1) of each renderer against the reference on `hard_scenes`, two backgrounds.

    Returns:
        {"psnr_min": worst over all, "per_backend": {name: {"psnr_min": .., "scenes": {scene: dB}}}}
    """
    per_backend = {r.name: {"scenes": {}} for r in renderers}
    for scene, (camera, gaussians) in hard_scenes(seed).items():
        for background in ((0.0, 0.0, 0.0), (0.2, 0.5, 0.9)):
            truth = reference.render(camera, gaussians, background)
            for renderer in renderers:
                score = psnr(renderer.render(camera, gaussians, background), truth)
                scenes = per_backend[renderer.name]["scenes"]
                scenes[scene] = min(scenes.get(scene, math.inf), round(score, 2))
    for result in per_backend.values():
        result["psnr_min"] = min(result["scenes"].values())
    return {"psnr_min": min(r["psnr_min"] for r in per_backend.values()), "per_backend": per_backend}
