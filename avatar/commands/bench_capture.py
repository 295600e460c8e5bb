"""`avatar bench fit` (speed of capture's fitting step) and `avatar bench capture` (quality and time of
whole captures, held-out frames against the nearest-neighbour baseline)."""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path


def add_parsers(kinds: argparse._SubParsersAction) -> None:
    f = kinds.add_parser("fit", help="fitting steps per second (cpu backend's backward pass, or gsplat on CUDA)",
                         description="Fits N Gaussians placed on the sample photo's face and scaffold to that photo "
                                     "at --size: each step evaluates the head in torch, renders with the cpu "
                                     "backend (or gsplat's kernels with --device cuda), runs its backward pass, "
                                     "and takes an Adam step. Prints the warm steps per second and ms per step.")
    f.add_argument("--gaussians", type=int, default=30_000, help="Gaussians; default 30000")
    f.add_argument("--size", type=int, default=256, help="frame size, px; default 256")
    f.add_argument("--steps", type=int, default=100, help="timed steps (after 10 warm-up steps); default 100")
    f.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="where to fit; default auto (cuda when a GPU and gsplat are there)")
    f.add_argument("--json", action="store_true", help="print the results as JSON on the last line")
    f.set_defaults(run=run_fit)

    c = kinds.add_parser("capture", help="capture each video and score its held-out frames",
                         description="Runs avatar capture (defaults, or --quick) on each video into a temporary "
                                     "folder and prints per video: held-out PSNR / SSIM and the nearest-neighbour "
                                     "baseline's (inside the head mask at 512 px), the Gaussians, and the time.")
    c.add_argument("videos", type=Path, nargs="*", help="videos or folders of videos (default: ../shared/data/video)")
    c.add_argument("--quick", action="store_true", help="the --quick preset")
    c.add_argument("--iterations", type=int, help="override the preset's fitting steps")
    c.add_argument("--fit-minutes", type=float,
                   help="override the preset's cap on fitting time; 0 = no time limit on the fit at all (nor the "
                        "--minutes budget), so that a fixed --iterations gives the same fit whatever the machine's load "
                        "(for A/B comparisons)")
    c.add_argument("--minutes", type=float, help="override the preset's time budget for each whole capture; 0 = none")
    c.add_argument("--seed", type=int, help="override the preset's random seed (the Gaussians' placement, the "
                                            "frames' order, densification): an A/B on a second seed")
    c.add_argument("--keep", type=Path, help="keep the avatars and their reports (pictures) in this folder")
    c.add_argument("--json", action="store_true", help="print the results as JSON on the last line")
    c.set_defaults(run=run_capture)


def run_fit(args: argparse.Namespace) -> int:
    import cv2
    import numpy as np
    import torch

    from avatar.sample import sample_photo
    from capture import generic_expression_basis, load_canonical_mesh, track_image
    from capture.face_fit import fit_face
    from capture.head_fit import FitFrames, HeadModel, fit_head, initial_head
    from capture.masks import head_mask
    from capture.scaffold import build_scaffold
    from render.cuda import fitting_device

    device = fitting_device(args.device)
    torch.set_num_threads(2)
    photo = sample_photo()
    track = track_image(photo)
    mesh = load_canonical_mesh()
    face = fit_face(track, mesh, generic_expression_basis(mesh))
    image = cv2.resize(photo, (args.size, args.size), interpolation=cv2.INTER_AREA)
    mask = head_mask(image, track.landmarks_px[0, :, :2] * args.size / photo.shape[1])
    frames = FitFrames(image[None], mask[None], face.camera.resized(args.size, args.size), face.weights,
                       face.head_rotation.astype(np.float32), face.head_translation_cm.astype(np.float32))
    scaffold = build_scaffold(face.neutral_vertices_cm, face.vertex_deltas_cm, mesh.triangles)
    model = HeadModel(initial_head(scaffold, frames, 0, args.gaussians)).to(device)
    fit_head(model, frames, 10, densify_every=10**9)
    began = time.perf_counter()
    fit_head(model, frames, 10 + args.steps, start=10, densify_every=10**9)
    seconds = time.perf_counter() - began
    results = {"gaussians": args.gaussians, "size": args.size, "steps": args.steps,
               "steps_per_s": round(args.steps / seconds, 2), "ms_per_step": round(1000 * seconds / args.steps, 1),
               "device": device.type}
    print(f"{args.gaussians} Gaussians at {args.size}x{args.size} on the {device.type}: {results['steps_per_s']} "
          f"steps/s ({results['ms_per_step']} ms per step: evaluate, render, backward, Adam)")
    if args.json:
        print(json.dumps(results))
    return 0


def run_capture(args: argparse.Namespace) -> int:
    import dataclasses

    import torch

    from avatar import InputError
    from avatar.commands.bench import DEFAULT_VIDEOS
    from avatar.model import Avatar
    from capture.pipeline import CaptureOptions, capture
    from capture.report import write_curves, write_sheet

    videos = []
    for path in args.videos or [DEFAULT_VIDEOS]:
        videos += sorted(path.glob("*.mp4")) if path.is_dir() else [path]
    if not videos:
        raise InputError("no videos to capture: give video files or folders")
    if args.seed is not None and args.seed < 0:
        raise InputError(f"--seed must be 0 or more, got {args.seed}")
    torch.set_num_threads(2)
    options = CaptureOptions.quick() if args.quick else CaptureOptions()
    if args.iterations:
        options = dataclasses.replace(options, iterations=args.iterations)
    if args.fit_minutes is not None:
        options = dataclasses.replace(options, fit_minutes=args.fit_minutes or None)
    if args.minutes is not None:
        options = dataclasses.replace(options, minutes=args.minutes or None)
    if args.seed is not None:
        options = dataclasses.replace(options, seed=args.seed)
    results = {}
    with tempfile.TemporaryDirectory(prefix="avatar-bench-capture-") as scratch:
        folder = args.keep or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        for video in videos:
            began = time.perf_counter()
            result = capture(video, options, progress=False)
            minutes = (time.perf_counter() - began) / 60
            Avatar(result.head, video.stem, {"capture": result.metadata()},
                   face_fit_deltas_cm=result.input.face.vertex_deltas_cm).save(folder / f"{video.stem}.avatar")
            r = result.reenactment
            if args.keep:
                report = folder / f"{video.stem}.report"
                report.mkdir(exist_ok=True)
                write_sheet(report / "holdout.png", r)
                write_curves(report / "curves.png", result.log, r)
            results[video.name] = {**r.details(), "gaussians": len(result.head), "seed": options.seed,
                                   "iterations": len(result.log.loss), "minutes": round(minutes, 2),
                                   "margin_db": round(r.psnr - r.baseline_psnr, 2)}
            print(f"{video.name}: PSNR {r.psnr:.2f} dB (baseline {r.baseline_psnr:.2f}, margin "
                  f"{r.psnr - r.baseline_psnr:+.2f}; {r.landmark_psnr:.2f} at the landmark pose), SSIM {r.ssim:.4f} "
                  f"(baseline {r.baseline_ssim:.4f}), {r.uncovered:.2%} of the scored pixels uncovered, "
                  f"{len(result.head)} Gaussians, {len(result.log.loss)} steps, {minutes:.1f} min", flush=True)
    if args.json:
        print(json.dumps(results))
    return 0
