"""The fitting stage of a capture: its options, the starting head and the fit itself.

Everything here works on arrays (`FitFrames`), so it needs neither PyAV nor MediaPipe: the
stage can run on a machine that only fits (`scripts/gpu_check.py`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from capture.corrections import FrameCorrections
from capture.coverage import OPEN_MOUTH, never_shown
from capture.face_fit import FaceFit
from capture.face_mesh import load_canonical_mesh
from capture.frame_refinement import REFINE_STEPS
from capture.head_fit import FitFrames, FitLog, HeadModel, fit_head, initial_head
from capture.scaffold import build_scaffold
from render import GaussianHead


@dataclass(frozen=True)
class CaptureOptions:
    """How hard to fit. The defaults aim at quality within 15 min for 20 s of 512x512 video on 2 cores:
    fitting stops after `iterations` steps or `fit_minutes`, whichever comes first (a head that
    fills more of the frame costs more per step), and, fitting on the CPU, early enough that the
    whole capture, held-out scoring included, ends within `minutes` (`capture.pipeline.fit_time_limit`;
    `fit_minutes` None lifts both limits). `refine_poses` refines the training frames'
    tracked pose photometrically while fitting (`capture.corrections`); `track_steps` are the
    photometric tracking steps per held-out frame when scoring them (`capture.frame_refinement`),
    and up to `max_track_steps` when few frames are scored (`capture.pipeline.tracking_steps`).
    `device` is where the Gaussians are fitted (`render.cuda.fitting_device`: "auto" takes a CUDA
    GPU with gsplat when there is one); tracking, masks and scoring run on the CPU. `face` picks
    the person to capture where the video shows several (`capture.tracking.FACE_CHOICES`); None
    refuses such a video."""

    iterations: int = 10_000
    train_size_px: int = 512
    num_gaussians: int = 30_000
    max_gaussians: int = 45_000
    holdout: float = 0.2
    seed: int = 0
    fit_minutes: float | None = 13.5
    minutes: float | None = 14.5
    refine_poses: bool = True
    track_steps: int = REFINE_STEPS
    max_track_steps: int = 2 * REFINE_STEPS
    device: str = "auto"
    face: str | None = None

    @classmethod
    def quick(cls) -> "CaptureOptions":
        """A fast, low-resolution fit (~2-3 min)."""
        return cls(iterations=2500, train_size_px=256, num_gaussians=12_000, max_gaussians=16_000, fit_minutes=1.2,
                   minutes=2.8, track_steps=3, max_track_steps=3)



# How fast the lips' inside darkens with jawOpen where the training frames never open the mouth
# (`HeadModel`'s `mouth_shade`): black from jawOpen 1/3. liveportrait_d3's held-out open mouth
# then shows dark, as it is, instead of a brown smear of stretched lips; its score hardly moves
# (26.85 -> 26.82 dB at the defaults). Applied to every clip, it lost on those whose frames do
# open the mouth (`--quick`: d10 -0.31 dB, mimictalk -0.11).
MOUTH_SHADE = 3.0


def mouth_shade(weights: np.ndarray) -> float:
    """`HeadModel`'s `mouth_shade` for a fit to training frames with [T, 52] weights:
    `MOUTH_SHADE` where they never show an open mouth (`capture.coverage.OPEN_MOUTH`), else 0."""
    return MOUTH_SHADE if OPEN_MOUTH in never_shown(weights) else 0.0


def starting_head(face: FaceFit, frames: FitFrames, options: CaptureOptions, shade: float) -> GaussianHead:
    """Gaussians on the person's face and scaffold, coloured from the training frame nearest the
    neutral face, with the dark-mouth guess of `shade` (the fit's `mouth_shade`, which its
    `HeadModel` must be given too)."""
    scaffold = build_scaffold(face.neutral_vertices_cm, face.vertex_deltas_cm, load_canonical_mesh().triangles)
    rest = int(np.argmin(frames.weights.sum(1)))
    return initial_head(scaffold, frames, rest, options.num_gaussians, options.seed, shade)


def fit_gaussians(model: HeadModel, frames: FitFrames, options: CaptureOptions,
                  corrections: FrameCorrections | None, **kwargs) -> FitLog:
    """`fit_head` with the options' steps, Gaussian budget and seed (`kwargs`: start, log, on_step, and
    max_seconds, by default `fit_minutes`)."""
    kwargs.setdefault("max_seconds", options.fit_minutes * 60 if options.fit_minutes else None)
    return fit_head(model, frames, options.iterations, max_gaussians=options.max_gaussians, seed=options.seed,
                    corrections=corrections, **kwargs)
