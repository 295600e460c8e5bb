"""`avatar capture` (a person's video to an animatable Gaussian head), `avatar eval` (self-reenactment)
and `avatar export-dataset` (the capture as a nerfstudio dataset)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from capture import CaptureOptions

# `capture.tracking.FACE_CHOICES`, spelled out: importing tracking (MediaPipe) costs the command line 2 s.
FACE_CHOICES = ("largest", "left", "right")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    c = subparsers.add_parser(
        "capture", help="fit a person's Gaussian head from a video (or a photo)",
        description="Tracks the face, fits the person's face mesh and expression basis, masks the head, places "
                    "Gaussians on the face and a scaffold (skull and hair, mouth interior) and fits them with the "
                    "cpu backend's backward pass, or gsplat's kernels on a CUDA GPU. The last --holdout of the frames is never fitted to: the report "
                    "(NAME.report/: holdout.png, holdout.mp4, curves.png, metrics.json) scores them. A checkpoint "
                    "(NAME.avatar.ckpt) lets --resume go on, also with more --iterations later.")
    c.add_argument("input", type=Path, help="video of the person talking (10-20 s), a photo, or a folder of photos")
    c.add_argument("-o", "--output", type=Path, required=True, help="the .avatar bundle to write")
    c.add_argument("--quick", action="store_true", help="a fast low-resolution fit (~2-3 min)")
    c.add_argument("--iterations", type=int, help="fitting steps (default 10000; --quick 2500)")
    c.add_argument("--fit-minutes", type=float,
                   help="stop fitting after this long even if steps remain (default 13.5; --quick 1.2; 0: no time "
                        "limit on the fit at all, nor the --minutes budget)")
    c.add_argument("--minutes", type=float,
                   help="time budget for the whole capture: fitting on the CPU stops early enough to score the "
                        "held-out frames within it (default 14.5; --quick 2.8; 0: none)")
    c.add_argument("--gaussians", type=int, help="Gaussians to start with (default 30000; --quick 12000)")
    c.add_argument("--size", type=int, help="fitting resolution, longer side in px (default 512; --quick 256)")
    c.add_argument("--holdout", type=float, default=0.2, help="share of the frames held out, from the end; default 0.2")
    c.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="where to fit the Gaussians: cuda needs a GPU and gsplat; default auto (cuda when it can)")
    c.add_argument("--resume", action="store_true", help="go on from the checkpoint next to the output")
    c.add_argument("--no-speech-tuning", action="store_true",
                   help="keep the shipped speech model instead of tuning it on the video's own speech")
    c.add_argument("--face", choices=FACE_CHOICES,
                   help="whose face to capture where the video shows several (an interview): the largest, "
                        "leftmost or rightmost where first seen, then followed; without it such a video is refused")
    c.add_argument("--seed", type=int, default=0, help="random seed")
    c.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    c.add_argument("--json", action="store_true", help="print the metrics as JSON on the last line")
    c.set_defaults(run=run_capture)

    e = subparsers.add_parser(
        "eval", help="self-reenactment score of an avatar on a video, against nearest-neighbour retrieval",
        description="Tracks VIDEO, refines its head pose with the avatar's own face, takes the held-out frames "
                    "(those the capture recorded when VIDEO is its source, else the last 20%%), tracks their pose "
                    "and weights photometrically against the avatar, drives the avatar with them and compares "
                    "inside the head mask at 512 px. The baseline retrieves the "
                    "training frame nearest in weights + pose, aligned by the landmarks' similarity transform. "
                    'Last line: {"psnr", "ssim", "baseline_psnr", "baseline_ssim", "frames"}.')
    e.add_argument("avatar", type=Path, help=".avatar bundle made by avatar capture")
    e.add_argument("video", type=Path, help="video of the same person")
    e.add_argument("--track-steps", type=int,
                   help="photometric tracking steps per held-out frame (default: the capture's: 16, "
                        "up to 32 where it scored under 80 frames, --quick 3; 0: the pose and weights "
                        "fitted to the landmarks as they are)")
    e.add_argument("--side-by-side", type=Path, metavar="OUT.mp4",
                   help="also write the held-out frames, truth | render side by side, playing in real time")
    e.add_argument("--json", action="store_true", help="print only the JSON line")
    e.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    e.set_defaults(run=run_eval)
    add_export_parser(subparsers)


def run_capture(args: argparse.Namespace) -> int:
    import dataclasses
    import shutil

    import torch

    from avatar import InputError, check_writable
    from capture.pipeline import CaptureOptions

    check_writable(args.output)
    if not 0.0 <= args.holdout < 0.9:
        raise InputError(f"--holdout must be in [0, 0.9), got {args.holdout}")
    for name, low in (("iterations", 1), ("gaussians", 100), ("size", 32)):
        if getattr(args, name) is not None and getattr(args, name) < low:
            raise InputError(f"--{name} must be at least {low}, got {getattr(args, name)}")
    for name in ("fit_minutes", "minutes"):
        if getattr(args, name) is not None and getattr(args, name) < 0:
            raise InputError(f"--{name.replace('_', '-')} must be 0 (no limit) or more, got {getattr(args, name)}")
    if args.seed < 0:
        raise InputError(f"--seed must be 0 or more, got {args.seed}")
    torch.set_num_threads(2)
    options = CaptureOptions.quick() if args.quick else CaptureOptions()
    overrides = {"iterations": args.iterations, "num_gaussians": args.gaussians, "train_size_px": args.size}
    options = dataclasses.replace(options, holdout=args.holdout, seed=args.seed, device=args.device, face=args.face,
                                  **{k: v for k, v in overrides.items() if v is not None})
    if args.fit_minutes is not None:
        options = dataclasses.replace(options, fit_minutes=args.fit_minutes or None)
    if args.minutes is not None:
        options = dataclasses.replace(options, minutes=args.minutes or None)
    report = args.output.with_name(args.output.stem + ".report")
    made_report = not report.exists()
    report.mkdir(exist_ok=True)
    try:
        return _capture_with_report(args, options, report)
    except BaseException:
        if made_report:
            shutil.rmtree(report, ignore_errors=True)
        raise


def _capture_with_report(args: argparse.Namespace, options: CaptureOptions, report: Path) -> int:
    """`avatar capture` once the options are checked: the bundle, and the report in `report`."""
    import dataclasses

    import numpy as np

    from animation import MannerismProfile
    from avatar.model import Avatar
    from capture.pipeline import capture
    from capture.report import write_curves, write_mask_sheet, write_metrics, write_sheet

    checkpoint = args.output.with_name(args.output.name + ".ckpt")
    result = capture(args.input, options, checkpoint=checkpoint, resume=args.resume, progress=not args.quiet,
                     holdout_video=report / "holdout.mp4")
    metadata = result.metadata()
    track = result.input.track
    # Blink rate and duration as this person blinks (defaults when the clip is short or shows few blinks).
    weights = np.where(track.valid[:, None], track.weights, np.nan)
    mannerisms = dataclasses.asdict(MannerismProfile.from_track_weights(track.time_s, weights))
    avatar = Avatar(result.head, args.output.stem, {"made_by": "avatar capture", "capture": metadata,
                                                     "mannerisms": mannerisms},
                    face_fit_deltas_cm=result.input.face.vertex_deltas_cm)
    if result.input.source.has_audio and not args.no_speech_tuning:
        tuned = _tune_speech(result, args.seed)
        if tuned is not None:
            avatar.speech, avatar.metadata["speech_tuning"] = tuned
    avatar.save(args.output)
    scores = result.reenactment
    metrics = {**(scores.details() if scores else {}),
               "gaussians": len(result.head),
               "iterations": metadata["iterations_done"], "timings_s": {k: round(v, 1) for k, v in result.timings_s.items()},
               "holdout_frames": len(result.input.holdout), "train_frames": len(result.input.train),
               "expression_peaks": metadata["expression_peaks"], "warnings": metadata["warnings"]}
    if scores:
        metrics["per_frame"] = [{k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}
                                for row in scores.per_frame]
    write_metrics(report / "metrics.json", metrics)
    write_curves(report / "curves.png", result.log, result.reenactment)
    examples = result.mask_examples
    write_mask_sheet(report / "masks.png", examples.images, examples.masks, examples.frames)
    if result.reenactment is not None:
        write_sheet(report / "holdout.png", result.reenactment)
    total = sum(result.timings_s.values())
    print(f"{len(result.head)} Gaussians fitted in {metadata['iterations_done']} steps ({total / 60:.1f} min) "
          f"-> {args.output}; report in {report}/")
    if result.reenactment is not None:
        r, held = result.reenactment, len(result.input.holdout)
        scored = f"{r.frames}" if r.frames == held else f"{r.frames} of {held}, evenly spaced"
        print(f"held-out frames ({scored}): PSNR {r.psnr:.2f} dB, SSIM {r.ssim:.4f}; nearest-neighbour baseline "
              f"{r.baseline_psnr:.2f} dB, {r.baseline_ssim:.4f}")
    if args.json:
        print(json.dumps(metrics))
    return 0


def _tune_speech(result, seed: int):
    """(tuned speech model arrays, what tuning did) from the capture's own speech, or None.

    The model learns from the first 80% of the training frames and is kept only if jawOpen
    follows the tracked one at least as well as before on the other 20% (never the held-out frames).
    """
    import numpy as np

    from animation import load_default_model
    from animation.tuning import fine_tune, model_arrays
    from avatar.audio import read_audio

    info = result.input
    audio, rate = read_audio(info.source.path)
    track = info.track
    cut = round(0.8 * len(info.train))
    learn, check = np.zeros(len(track.time_s), bool), np.zeros(len(track.time_s), bool)
    learn[info.train[:cut]], check[info.train[cut:]] = True, True
    weights = np.where(track.valid[:, None], info.face.weights, np.nan)
    try:
        model, tuning = fine_tune(load_default_model(), audio, rate, weights, track.time_s, learn, score=check,
                                  seed=seed)
    except ValueError as exc:
        print(f"speech model not tuned: {exc}")
        return None
    before, after = tuning["jaw_corr_before"], tuning["jaw_corr_after"]
    if np.isnan(before) or np.isnan(after):
        print("speech model not tuned: under 2 s of validation frames to check it on; keeping the shipped model")
        return None
    if after < before:
        print(f"speech model not tuned: on the validation frames jawOpen correlation went {before:.2f} -> "
              f"{after:.2f}; keeping the shipped model")
        return None
    print(f"speech model tuned on the video's speech in {tuning['seconds']:.0f} s: jawOpen correlation on "
          f"validation frames {before:.2f} -> {after:.2f}")
    return model_arrays(model), tuning


def run_eval(args: argparse.Namespace) -> int:
    from contextlib import nullcontext

    from avatar import BundleError, InputError, check_writable
    from avatar.model import Avatar
    from capture.frame_refinement import REFINE_STEPS
    from capture.pipeline import retrack, tracking_steps
    from capture.reenactment import evaluate_reenactment, playback_fps
    from render import VideoWriter

    avatar = Avatar.load(args.avatar)
    record = avatar.metadata.get("capture")
    if not record:
        raise BundleError(f"{args.avatar} was not made by avatar capture: it has no capture record to evaluate")
    if args.track_steps is not None and args.track_steps < 0:
        raise InputError(f"--track-steps must be 0 or more, got {args.track_steps}")
    if args.side_by_side is not None:
        check_writable(args.side_by_side)
    info, same = retrack(args.video, avatar, progress=not args.quiet)
    if len(info.holdout) == 0:
        raise BundleError(f"no held-out frame with a face in {args.video}")
    if args.track_steps is not None:
        steps = args.track_steps
    else:  # as the capture chose them for as many frames (bundles from before `max_track_steps`: as recorded)
        recorded = record.get("options", {})
        base = int(recorded.get("track_steps", REFINE_STEPS))
        steps = tracking_steps(len(info.holdout), base, int(recorded.get("max_track_steps", base)))
    with VideoWriter(args.side_by_side, playback_fps(info.holdout, info.source.fps)) if args.side_by_side \
            else nullcontext() as video:
        result = evaluate_reenactment(avatar.head, info.source, info.track, info.face, info.holdout, info.train,
                                      refine_steps=steps, window=info.window, progress=not args.quiet, video=video)
    if not args.json:
        print(f"{'held-out' if same else 'last 20% of the'} frames of {info.source.path.name}: {result.frames}; PSNR "
              f"{result.psnr:.2f} dB, SSIM {result.ssim:.4f}; nearest-neighbour baseline {result.baseline_psnr:.2f} dB, "
              f"{result.baseline_ssim:.4f} (at the landmark-tracked pose, before photometric tracking: "
              f"{result.landmark_psnr:.2f} dB, {result.landmark_ssim:.4f}); the avatar leaves {result.uncovered:.2%} of "
              "the scored pixels uncovered")
    print(json.dumps(result.summary()))
    return 0


def add_export_parser(subparsers: argparse._SubParsersAction) -> None:
    x = subparsers.add_parser(
        "export-dataset", help="a capture's frames, head masks and cameras as a nerfstudio dataset",
        description="Tracks VIDEO (posed as the capture posed it when --avatar is given and VIDEO is its source, "
                    "with the avatar's face for another video, else with a fresh face fit), masks the head and "
                    "writes OUT/images, OUT/masks and OUT/transforms.json: cameras in head space (cm, OpenGL axes), "
                    "per-frame ARKit weights, and the train / held-out split (the avatar's, or the last --holdout).")
    x.add_argument("video", type=Path, help="the capture's video")
    x.add_argument("-o", "--output", type=Path, required=True, help="new folder for the dataset")
    x.add_argument("--avatar", type=Path, help=".avatar bundle made from this video (its face, focal and split)")
    x.add_argument("--size", type=int, default=512, help="longer side of the written frames, px; default 512")
    x.add_argument("--holdout", type=float, default=0.2, help="held-out share without --avatar; default 0.2")
    x.add_argument("--face", choices=FACE_CHOICES, help="whose face, without --avatar, where the video shows "
                                                        "several (as avatar capture --face)")
    x.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    x.set_defaults(run=run_export)


def run_export(args: argparse.Namespace) -> int:
    import numpy as np

    from avatar import OutputError
    from avatar.model import Avatar
    from capture.dataset import write_dataset
    from capture.frames import decode_frames, frame_masks
    from capture.pipeline import prepare, retrack

    if args.output.exists():
        raise OutputError(f"{args.output} already exists: choose a new folder for the dataset")
    progress = not args.quiet
    if args.avatar is not None:
        avatar = Avatar.load(args.avatar)
        info, same = retrack(args.video, avatar, progress)
        holdout = set(info.holdout.tolist()) if same else set()
    else:
        info = prepare(args.video, args.holdout, progress, args.face)
        holdout = set(info.holdout.tolist())
    source, track, face, window = info.source, info.track, info.face, info.window
    indices = np.concatenate([info.train, info.holdout])
    size = window.size(args.size)
    images = decode_frames(source, indices, size, progress, window)
    masks = frame_masks(images, window.landmarks(track.landmarks_px[indices]), (window.width_px, window.height_px),
                        progress)
    path = write_dataset(args.output, images, masks, indices, track, window.camera(face.camera, size),
                         face.head_rotation[indices], face.head_translation_cm[indices], face.weights[indices],
                         holdout, progress)
    print(f"{len(indices)} frames ({len(holdout)} held out), head masks and cameras -> {path}")
    return 0
