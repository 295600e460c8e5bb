"""From a video (or photos) of a person to a fitted GaussianHead: track, check, fit the face,
mask, scaffold, fit the Gaussians, and score the held-out frames.

The last `holdout` share of the frames with a face is never fitted to; it is what the
report (at most `MAX_SCORED_FRAMES` of it) and `avatar eval` score.
"""

from __future__ import annotations

import logging
import os
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, replace
from functools import cached_property
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from avatar import InputError, Track
from avatar.model import Avatar
from avatar.track import NUM_MESH_VERTICES
from capture.corrections import FrameCorrections
from capture.coverage import expression_peaks, missing_expressions
from capture.expression_basis import generic_expression_basis
from capture.face_fit import FaceFit, fit_face
from capture.face_mesh import load_canonical_mesh
from capture.frames import FrameWindow, decode_frames, frame_masks, head_window
from capture.fitting import CaptureOptions, fit_gaussians, mouth_shade, starting_head
from capture.head_fit import FitFrames, FitLog, HeadModel, TimeLimit
from capture.media import MediaSource, open_media
from capture.model_files import PERSON_SEGMENTER, resolve_model
from capture.reenactment import EVAL_SIZE_PX, Reenactment, evaluate_reenactment, playback_fps
from capture.tracking import FACE_CHOICES, TrackingStats, track_media
from render import GaussianHead, VideoWriter
from render.cuda import fitting_device

MIN_FOUND = 0.5            # share of frames with a face
MAX_SEVERAL_FACES = 0.2    # share of face frames with more than one face
MIN_SECONDS = 3.0          # of video with a face
MIN_BRIGHTNESS = 0.12      # mean of the head's pixels, 0..1
CHECKPOINT_EVERY = 500
MAX_TRAIN_FRAMES = 600     # decoded for fitting (20 s at 30 fps); longer videos are subsampled
# Held-out frames the capture's report scores, evenly spaced when there are more. Scoring one takes
# 1.4 s on a 2-core CPU (16 tracking steps at 512 px): a 60-s video at 25 fps scored its 300 for
# 7.1 min and fitted for 5.2 (3705 steps); scoring 120, it fitted for 9.8 (6741). The test videos
# hold out at most 117; `avatar eval` scores every held-out frame.
MAX_SCORED_FRAMES = 120
MASK_EXAMPLES = 6          # training frames shown with their masks in the report
# Scoring a held-out frame costs about its tracking steps and this many more (two renders, its
# mask, SSIM) in fitting steps, times the scoring size over the fitting size. Measured on d9
# (117 held-out frames): 1.07 s a frame at 8 steps with 128-ms fitting steps at 512 px, 0.36 s
# at 3 steps with 36-ms steps at 256 px.
SCORING_EXTRA_STEPS = 2
# Scoring may take the tracking steps of this many held-out frames at `track_steps` each: a short
# clip's few frames share them out, up to `max_track_steps` a frame. 32 steps instead of 16, the
# default avatars re-scored: May +0.31 dB (SSIM +0.006), AOC +0.19, vrt_face5 +0.13, vrt_face2 +0.13.
SCORING_FRAMES = 80
FINISHING_S = 40.0         # the speech model's tuning (24 s on d9), the bundle, the report, start-up
MIN_FIT_SHARE = 0.25       # of `fit_minutes`, however long scoring will take


@dataclass
class CaptureInput:
    """The tracked and checked input: track, face fit, the frame split, and the window holding the head."""

    source: MediaSource
    track: Track
    stats: TrackingStats
    face: FaceFit
    train: np.ndarray
    holdout: np.ndarray

    @cached_property
    def window(self) -> FrameWindow:
        """The part of the frames that holds the head in every frame with a face (`head_window`)."""
        return head_window(self.track.landmarks_px[self.track.valid], self.source.width_px, self.source.height_px)

    @property
    def expression_peaks(self) -> dict[str, float]:
        """How far the training frames go in the expressions `capture.coverage` checks."""
        return expression_peaks(self.track.weights[self.train])

    @property
    def warnings(self) -> list[str]:
        """The expressions a video's training frames never show, with what to record (none for photos)."""
        if self.source.kind != "video":
            return []
        return missing_expressions(self.track.weights[self.train], self.source.path.name)


@dataclass
class MaskExamples:
    """A few training frames as fitted (fit size) with their head masks, for the report."""

    images: np.ndarray   # [K, H, W, 3] uint8 RGB
    masks: np.ndarray    # [K, H, W] bool
    frames: np.ndarray   # [K] source frame indices


@dataclass
class CaptureResult:
    head: GaussianHead
    input: CaptureInput
    log: FitLog
    reenactment: Reenactment | None
    options: CaptureOptions
    mask_examples: MaskExamples
    timings_s: dict[str, float] = field(default_factory=dict)

    def metadata(self) -> dict:
        """What the bundle records of the capture (JSON-safe)."""
        info = self.input
        return {
            "source": info.source.path.name, "source_frames": int(len(info.track.time_s)),
            "source_fps": info.source.fps, "train_frames": info.train.tolist(),
            "holdout_frames": info.holdout.tolist(),
            "window_px": [info.window.x0_px, info.window.y0_px, info.window.width_px, info.window.height_px],
            "expression_peaks": info.expression_peaks, "warnings": info.warnings,
            "focal_scale": info.face.camera.fx_px / info.track.camera.fx_px,
            "options": asdict(self.options), "iterations_done": len(self.log.loss),
            "fit_seconds": round(self.log.seconds, 1),
            "metrics": self.reenactment.summary() if self.reenactment else None,
        }


def prepare(path: str | os.PathLike, holdout: float = 0.2, progress: bool = True, face: str | None = None
            ) -> CaptureInput:
    """Track `path`, refuse a poor capture (InputError saying what to re-record), fit the face.

    `face` picks whose face to follow where frames show several (`FACE_CHOICES`); None takes the
    largest and refuses a video that often shows more than one."""
    resolve_model(PERSON_SEGMENTER)  # the masks need it: a missing model is said before tracking, not after
    source = open_media(path)
    track, stats = track_media(source, progress=progress, face=face or "largest")
    name = source.path.name
    if stats.found_fraction < MIN_FOUND:
        raise InputError(f"the face is found in only {stats.found_fraction:.0%} of the frames of {name}: re-record "
                         "with the face in view and turned to the camera the whole time")
    if face is None and stats.several_faces_fraction > MAX_SEVERAL_FACES:
        raise InputError(f"{stats.several_faces_fraction:.0%} of the frames of {name} show more than one face: "
                         "re-record with only the person to capture in view, or say whose face to capture "
                         f"with --face ({', '.join(FACE_CHOICES)}: as first seen)")
    valid = np.flatnonzero(track.valid)
    if source.kind == "video" and len(valid) / source.fps < MIN_SECONDS:
        raise InputError(f"{name} has only {len(valid) / source.fps:.1f} s with a face: record at least "
                         f"{MIN_SECONDS:g} s (10-20 s of talking, turning the head a little, is best)")
    cut = len(valid) - (round(holdout * len(valid)) if source.kind == "video" else 0)
    train, held = valid[:cut], valid[cut:]
    info = CaptureInput(source, track, stats, fit_capture_face(track, train, held), train, held)
    for warning in info.warnings:
        logging.getLogger(__name__).warning(warning)
    return info


def fit_capture_face(track: Track, train: np.ndarray, held: np.ndarray) -> FaceFit:
    """The face a capture fits: shape, ARKit offsets and focal length to the `train` frames
    (indices), then the `held` frames' pose and weights with those fixed, so that nothing of a
    held-out frame but its pose and weights goes into the face."""
    mesh = load_canonical_mesh()
    basis = generic_expression_basis(mesh)
    face = fit_face(track, mesh, basis, frames=train)
    if len(held):
        refined = fit_face(track, mesh, basis, frames=held, fixed=face)
        face.head_rotation[held] = refined.head_rotation[held]
        face.head_translation_cm[held] = refined.head_translation_cm[held]
        face.rms_px[held] = refined.rms_px[held]
        face.weights[held] = refined.weights[held]
    return face


def evenly_spaced(frames: np.ndarray, max_frames: int) -> np.ndarray:
    """[K] of the [N] frame indices `frames`: all of them, or `max_frames` evenly spaced from first to last."""
    spaced = np.linspace(0, len(frames) - 1, min(max_frames, len(frames))).round().astype(int)
    return frames[np.unique(spaced)]


def training_indices(info: CaptureInput, max_frames: int = MAX_TRAIN_FRAMES) -> np.ndarray:
    """The source frame indices fitted on: the training frames, at most `max_frames` evenly spaced."""
    return evenly_spaced(info.train, max_frames)


def training_frames(info: CaptureInput, size_px: int, progress: bool = True,
                    max_frames: int = MAX_TRAIN_FRAMES) -> FitFrames:
    """The training frames at `size_px` (longer side) with their masks; InputError if too dark.

    At most `max_frames`, evenly spaced: they are held in memory (0.8 MB each at 512 px), and
    a random one is fitted per step, so more add little.
    """
    source, window = info.source, info.window
    size = window.size(size_px)
    picked = training_indices(info, max_frames)
    images = decode_frames(source, picked, size, progress, window)
    masks = frame_masks(images, window.landmarks(info.track.landmarks_px[picked]), (window.width_px, window.height_px),
                        progress)
    brightness = float(images[masks].mean()) / 255 if masks.any() else 0.0
    if brightness < MIN_BRIGHTNESS:
        raise InputError(f"{source.path.name} is too dark (the head's mean brightness is {brightness:.0%}): "
                         "re-record with the face well and evenly lit")
    return FitFrames(images, masks, window.camera(info.face.camera, size), info.face.weights[picked],
                     info.face.head_rotation[picked].astype(np.float32),
                     info.face.head_translation_cm[picked].astype(np.float32))


def fit_time_limit(options: CaptureOptions, spent_s: float, holdout_frames: int) -> TimeLimit | None:
    """How long the fit may run: `options.fit_minutes`, and fitting on the CPU, no longer than
    leaves time, after the `spent_s` already spent, to score `holdout_frames` and finish within
    `options.minutes`. Scoring's pace is the fit's own (a step's cost scaled from the fitting size
    to the scoring size), so the limit is a function of it. Never under `MIN_FIT_SHARE` of
    `fit_minutes`: a long video's capture then runs over rather than fits nothing."""
    if not options.fit_minutes:
        return None
    cap_s = options.fit_minutes * 60
    if not options.minutes or options.device != "cpu":
        return cap_s  # a GPU's step says nothing of scoring's pace on the CPU
    steps = tracking_steps(holdout_frames, options.track_steps, options.max_track_steps)
    scoring_steps = holdout_frames * (steps + SCORING_EXTRA_STEPS) * EVAL_SIZE_PX / options.train_size_px
    left_s = options.minutes * 60 - spent_s - FINISHING_S

    def limit(step_s: float) -> float:
        return min(cap_s, max(MIN_FIT_SHARE * cap_s, left_s - scoring_steps * step_s))
    return limit


def tracking_steps(frames: int, base: int, most: int) -> int:
    """Photometric tracking steps for each of `frames` scored held-out frames: `base` (a capture's
    `track_steps`), or the steps of `SCORING_FRAMES` frames at `base` shared out where fewer are
    scored, up to `most` (its `max_track_steps`)."""
    if frames <= 0:
        return base
    return max(base, min(most, SCORING_FRAMES * base // frames))


def capture(path: str | os.PathLike, options: CaptureOptions = CaptureOptions(), *,
            checkpoint: Path | None = None, resume: bool = False, progress: bool = True,
            holdout_video: Path | None = None) -> CaptureResult:
    """The whole capture; `checkpoint` is written every CHECKPOINT_EVERY steps and at the end,
    and with `resume` the fit goes on from it (to `options.iterations`, which may be larger).
    `holdout_video` gets the scored held-out frames, truth | render, playing in real time."""
    timings: dict[str, float] = {}
    device = fitting_device(options.device)
    options = replace(options, device=device.type)
    began = clock = time.perf_counter()
    info = prepare(path, options.holdout, progress, options.face)
    scored = evenly_spaced(info.holdout, MAX_SCORED_FRAMES)
    timings["track_and_face_s"] = time.perf_counter() - clock
    clock = time.perf_counter()
    frames = training_frames(info, options.train_size_px, progress)
    timings["frames_and_masks_s"] = time.perf_counter() - clock
    shown = np.unique(np.linspace(0, len(frames) - 1, MASK_EXAMPLES).round().astype(int))
    mask_examples = MaskExamples(frames.images[shown].copy(), frames.masks[shown].copy(),
                                 training_indices(info)[shown])
    clock = time.perf_counter()

    start, fit_log = 0, FitLog()
    shade = mouth_shade(frames.weights)
    if resume and checkpoint is not None and checkpoint.exists():
        try:
            state = torch.load(checkpoint, weights_only=False)
            saved_frames, saved_size = state["source_frames"], state["train_size_px"]
            model, start, fit_log = HeadModel(state["head"], shade).to(device), state["step"], state["log"]
            corrections = FrameCorrections.from_state(state["corrections"]) if state.get("corrections") else None
        except Exception as exc:  # a truncated or foreign file: pickle, zip and key errors alike
            raise InputError(f"the checkpoint {checkpoint} is unreadable ({type(exc).__name__}): delete it, or run "
                             "without --resume") from None
        if saved_frames != len(info.track.time_s) or saved_size != options.train_size_px:
            raise InputError(f"the checkpoint {checkpoint} is from another input or --size: start afresh "
                             "without --resume")
        options = replace(options, iterations=max(options.iterations, start))
    else:
        model = HeadModel(starting_head(info.face, frames, options, shade), shade).to(device)
        corrections = FrameCorrections.zeros(len(frames)) if options.refine_poses else None

    def save_checkpoint(step: int) -> None:
        if checkpoint is None:
            return
        tmp = checkpoint.with_name(checkpoint.name + ".tmp")
        torch.save({"head": model.to_head(), "step": step, "log": fit_log, "source_frames": len(info.track.time_s),
                    "train_size_px": options.train_size_px,
                    "corrections": corrections.state() if corrections is not None else None}, tmp)
        os.replace(tmp, checkpoint)

    with tqdm(total=options.iterations, initial=start, unit="step", desc="fitting", disable=not progress,
              leave=False) as bar:
        def on_step(step: int, log_: FitLog) -> None:
            bar.update()
            if step % 20 == 0:
                bar.set_postfix(loss=f"{np.mean(log_.loss[-20:]):.4f}", psnr=f"{np.mean(log_.psnr[-20:]):.2f}",
                                gaussians=len(model))
            if (step + 1) % CHECKPOINT_EVERY == 0:
                save_checkpoint(step + 1)

        fit_gaussians(model, frames, options, corrections, start=start, log=fit_log, on_step=on_step,
                      max_seconds=fit_time_limit(options, time.perf_counter() - began, len(scored)))
    save_checkpoint(len(fit_log.loss))
    timings["fit_s"] = time.perf_counter() - clock
    clock = time.perf_counter()
    head = model.to_head()
    reenactment = None
    if len(scored):
        steps = tracking_steps(len(scored), options.track_steps, options.max_track_steps)
        with VideoWriter(holdout_video, playback_fps(scored, info.source.fps)) if holdout_video else nullcontext() \
                as video:
            reenactment = evaluate_reenactment(head, info.source, info.track, info.face, scored, info.train,
                                               refine_steps=steps, window=info.window, progress=progress,
                                               video=video)
    timings["evaluate_s"] = time.perf_counter() - clock
    return CaptureResult(head, info, fit_log, reenactment, options, mask_examples, timings)


def retrack(path: str | os.PathLike, avatar: Avatar, progress: bool = True) -> tuple[CaptureInput, bool]:
    """Track a video of a captured person and fit its head pose.

    The capture's own video gets the capture's own face fit (`fit_capture_face` on its split),
    so that the held-out frames are posed as the capture posed them and scored as its report
    scored them: the avatar's face mesh carries the fit's corrections to its ARKit offsets,
    and posing with those moved d10's held-out score by 0.19 dB. Another video is posed with
    the avatar's neutral face and the offsets the capture fitted to its landmarks
    (`Avatar.face_fit_deltas_cm`), or, for an avatar without them, its own.

    Args:
        avatar: a captured avatar (its head's first 468 vertices are the face mesh; its
            metadata's "capture" record is `CaptureResult.metadata`).
    Returns:
        the input, and whether the video is the capture's source (same name and frame count):
        then the split is the capture's own, else the last 20% of the frames with a face are held out.
    """
    head, record = avatar.head, avatar.metadata.get("capture") or {}
    resolve_model(PERSON_SEGMENTER)
    source = open_media(path)
    face = (record.get("options") or {}).get("face") or "largest"
    track, stats = track_media(source, progress=progress, face=face)
    valid = np.flatnonzero(track.valid)
    same = source.path.name == record.get("source") and len(track.time_s) == record.get("source_frames")
    if same:
        train = np.intersect1d(record["train_frames"], valid)
        holdout = np.intersect1d(record["holdout_frames"], valid)
        return CaptureInput(source, track, stats, fit_capture_face(track, train, holdout), train, holdout), same
    cut = len(valid) - round(0.2 * len(valid))
    train, holdout = valid[:cut], valid[cut:]
    nan = np.full_like(track.head_rotation, np.nan)
    deltas = avatar.face_fit_deltas_cm
    if deltas is None:
        deltas = head.vertex_deltas_cm[:, :NUM_MESH_VERTICES]
    fixed = FaceFit(head.neutral_vertices_cm[:NUM_MESH_VERTICES], deltas, nan, nan.copy(),
                    track.camera.with_focal_scale(float(record.get("focal_scale", 1.0))),
                    np.full(len(track.time_s), np.nan, np.float32), track.weights)
    mesh = load_canonical_mesh()
    face = fit_face(track, mesh, generic_expression_basis(mesh), fixed=fixed)
    return CaptureInput(source, track, stats, face, train, holdout), same
