"""Measure the `cuda` fitting backend on a GPU machine that has neither MediaPipe nor PyAV.

Tracking, masks and scoring need those and run here; what goes to the GPU machine is the
fitting problem itself, the same arrays `avatar capture` hands to `fit_head`:

    python scripts/gpu_check.py prepare DIR [--videos V ...] [--presets P ...]
        (here) the sample photo's `avatar bench fit` problem at 256 and 512 px, and for each
        video V its starting head, training-frame indices, masks, weights and poses at each
        preset (`quick`: 256 px, `default`: 512 px) as DIR/STEM-PRESET.npz, with a copy of V:
        the GPU machine decodes the frames itself with OpenCV (the same FFmpeg decoder as
        PyAV; identical pixels here), which travels far lighter than the frames do.
    python scripts/gpu_check.py run DIR OUT [--bench-steps N] [--skip-bench] [--problems NAME ...]
                                            [--parallel K] [--fit-minutes M] [--iterations N]
                                            [--max-gaussians G]
        (GPU machine) steps/s of the cpu and cuda backends on the bench problems, then the
        video problems' fits on CUDA with their presets' settings (no time limit unless M),
        K at a time in separate processes (a step is mostly Python and kernel launches, so
        one GPU serves several); each fitted head goes to OUT/NAME.npz.
    python scripts/gpu_check.py score DIR OUT [--sheets FOLDER]
        (here) the held-out PSNR/SSIM of OUT's heads, scored as `avatar capture` scores.

On the GPU machine of 2026-11-26 (torch 2.11 + CUDA 13, no registry), gsplat went over as
its wheel, installed with `pip install --no-index --no-deps --target /tmp/site`, and built
its kernels on first import with MAX_JOBS=16 TORCH_CUDA_ARCH_LIST=9.0 (60-85 s). A default
fit's head comes back in about 12 MB (45k Gaussians, 5 min on an H100 with 8 fits at once);
what a device call returns is bounded (8 files, 64 MiB together), so fit at most five a call."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from capture.corrections import FrameCorrections
from capture.fitting import CaptureOptions, fit_gaussians, mouth_shade, starting_head
from capture.head_fit import FitFrames, HeadModel, fit_head
from render import GaussianHead

REPO = Path(__file__).resolve().parents[1]
VIDEO_FOLDER = REPO.parent / "shared" / "data" / "video"
BENCH = {"bench_256": (256, 30_000), "bench_512": (512, 30_000)}
PRESETS = ("quick", "default")
DELTA_FLOOR_CM = 1e-4  # returned heads: blendshape offsets under 1 um (a 500th of a pixel) are zeroed, the rest float16
COLOR_DELTA_FLOOR = 1e-4  # colour offsets under a 40th of an 8-bit level likewise


def _options(preset: str) -> CaptureOptions:
    return CaptureOptions.quick() if preset == "quick" else CaptureOptions()


def _save_problem(path: Path, head: GaussianHead, frames: FitFrames, **source: np.ndarray) -> None:
    """`source`: `images` [T, H, W, 3] inline, or `video` (its file name beside `path`) and `frame_indices`."""
    c = frames.camera
    np.savez_compressed(
        path, **head.to_bundle_arrays(), masks=np.packbits(frames.masks, axis=-1), mask_width=frames.masks.shape[2],
        weights=frames.weights, rotations=frames.rotations, translations_cm=frames.translations_cm,
        camera=np.array([c.width_px, c.height_px, c.fx_px, c.fy_px, c.cx_px, c.cy_px]),
        camera_to_world=c.camera_to_world, **source)


def _decode_with_opencv(video: Path, indices: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """[len(indices), H, W, 3] uint8 RGB, as `capture.frames.decode_frames` makes them from PyAV."""
    capture = cv2.VideoCapture(str(video))
    wanted = {int(i): k for k, i in enumerate(indices)}
    out = np.empty((len(indices), size[1], size[0], 3), np.uint8)
    for index in range(int(indices.max()) + 1):
        ok, frame = capture.read()
        if not ok:
            raise RuntimeError(f"{video} ended at frame {index}")
        if index in wanted:
            out[wanted[index]] = cv2.resize(frame[..., ::-1], size, interpolation=cv2.INTER_AREA)
    return out


def _load_problem(path: Path) -> tuple[GaussianHead, FitFrames]:
    from avatar import Camera
    from render.head import HEAD_ARRAYS

    z = np.load(path)
    masks = np.unpackbits(z["masks"], axis=-1, count=int(z["mask_width"])).astype(bool)
    w, h, fx, fy, cx, cy = z["camera"]
    camera = Camera(int(w), int(h), fx, fy, cx, cy, z["camera_to_world"])
    images = z["images"] if "images" in z else \
        _decode_with_opencv(path.parent / str(z["video"]), z["frame_indices"], (int(w), int(h)))
    head = GaussianHead(**{name: z["head/" + name] for name in HEAD_ARRAYS})
    return head, FitFrames(images, masks, camera, z["weights"], z["rotations"], z["translations_cm"])


def prepare(args: argparse.Namespace) -> None:
    import shutil

    from avatar.sample import sample_photo
    from capture import generic_expression_basis, load_canonical_mesh, track_image
    from capture.face_fit import fit_face
    from capture.head_fit import initial_head
    from capture.masks import head_mask
    from capture.pipeline import prepare as prepare_capture, training_frames, training_indices
    from capture.scaffold import build_scaffold

    args.dir.mkdir(parents=True, exist_ok=True)
    photo = sample_photo()
    track = track_image(photo)
    mesh = load_canonical_mesh()
    face = fit_face(track, mesh, generic_expression_basis(mesh))
    scaffold = build_scaffold(face.neutral_vertices_cm, face.vertex_deltas_cm, mesh.triangles)
    for name, (size, gaussians) in BENCH.items():  # as `avatar bench fit` builds it
        image = cv2.resize(photo, (size, size), interpolation=cv2.INTER_AREA)
        mask = head_mask(image, track.landmarks_px[0, :, :2] * size / photo.shape[1])
        frames = FitFrames(image[None], mask[None], face.camera.resized(size, size), face.weights,
                           face.head_rotation.astype(np.float32), face.head_translation_cm.astype(np.float32))
        _save_problem(args.dir / f"{name}.npz", initial_head(scaffold, frames, 0, gaussians), frames,
                      images=frames.images)
    for video in tqdm(args.videos, desc="preparing", unit="video"):
        shutil.copyfile(video, args.dir / video.name)
        info = prepare_capture(video, progress=False)
        for preset in args.presets:
            options = _options(preset)
            frames = training_frames(info, options.train_size_px, progress=False)
            head = starting_head(info.face, frames, options, mouth_shade(frames.weights))
            _save_problem(args.dir / f"{video.stem}-{preset}.npz", head, frames, video=np.array(video.name),
                          frame_indices=training_indices(info))
    print("prepared:", ", ".join(f"{p.name} {p.stat().st_size / 1e6:.1f} MB" for p in sorted(args.dir.iterdir())))


def _save_head(path: Path, head: GaussianHead) -> None:
    arrays = head.to_bundle_arrays()
    for name, floor in (("head/position_deltas_cm", DELTA_FLOOR_CM), ("head/color_deltas", COLOR_DELTA_FLOOR)):
        arrays[name] = np.where(np.abs(arrays[name]) < floor, 0, arrays[name]).astype(np.float16)
    np.savez_compressed(path, **arrays)


def _load_head(path: Path) -> GaussianHead:
    z = np.load(path)
    return GaussianHead(**{k.removeprefix("head/"): z[k].astype(np.float32) for k in z.files})


def _steps_per_s(head: GaussianHead, frames: FitFrames, device: str, steps: int) -> float:
    model = HeadModel(head).to(device)
    fit_head(model, frames, 10, densify_every=10**9)
    if device == "cuda":
        torch.cuda.synchronize()
    began = time.perf_counter()
    fit_head(model, frames, 10 + steps, start=10, densify_every=10**9)
    if device == "cuda":
        torch.cuda.synchronize()
    return steps / (time.perf_counter() - began)


def _fit(problem: Path, out: Path, overrides: dict, device: str, threads: int) -> dict:
    """Fit one video problem with its preset's settings (and `overrides`); the head goes to OUT/NAME.npz."""
    began = time.perf_counter()
    torch.set_num_threads(threads)  # the machine's cores shared among the fits running at once
    head, frames = _load_problem(problem)
    options = dataclasses.replace(_options(problem.stem.rsplit("-", 1)[1]), **overrides)
    model = HeadModel(head, mouth_shade(frames.weights)).to(device)
    corrections = FrameCorrections.zeros(len(frames)) if options.refine_poses else None
    log = fit_gaussians(model, frames, options, corrections)
    if device == "cuda":
        torch.cuda.synchronize()
    _save_head(out / problem.name, model.to_head())
    return {"steps": len(log.loss), "fit_s": round(log.seconds, 1), "wall_s": round(time.perf_counter() - began, 1),
            "gaussians": len(model), "train_psnr_last_200": round(float(np.mean(log.psnr[-200:])), 2)}


def run(args: argparse.Namespace) -> None:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    args.out.mkdir(parents=True, exist_ok=True)
    results: dict = {"gpu": torch.cuda.get_device_name() if args.device == "cuda" else None, "torch": torch.__version__,
                     "cpu_threads": torch.get_num_threads()}
    for name in BENCH if not args.skip_bench else ():
        head, frames = _load_problem(args.dir / f"{name}.npz")
        for device in ("cpu", "cuda"):
            rate = _steps_per_s(head, frames, device, args.bench_steps if device == "cuda" else args.bench_steps // 4)
            results[f"{name}_{device}_steps_per_s"] = round(rate, 1)
            print(f"{name} {device}: {rate:.1f} steps/s", flush=True)
    problems = [args.dir / f"{name}.npz" for name in args.problems] if args.problems else \
        sorted(p for p in args.dir.glob("*-*.npz"))
    overrides = {k: v for k, v in (("fit_minutes", args.fit_minutes), ("iterations", args.iterations),
                                   ("max_gaussians", args.max_gaussians)) if v is not None}
    overrides.setdefault("fit_minutes", None)
    if args.device == "cuda":
        # gsplat builds its kernels on first use: once here, before the fits' processes would
        # each wait on the build's lock (4 fits at once spent 220 s in their first step).
        from render.cuda import cuda_unavailable_reason

        if reason := cuda_unavailable_reason():
            raise SystemExit(reason)
    threads = max(1, (os.cpu_count() or 1) // args.parallel)
    began = time.perf_counter()
    with ProcessPoolExecutor(args.parallel, mp_context=multiprocessing.get_context("spawn")) as pool:
        fits = {p.stem: pool.submit(_fit, p, args.out, overrides, args.device, threads) for p in problems}
        for name, fit in fits.items():
            results[name] = fit.result()
            print(name, results[name], flush=True)
    results["fits_wall_s"] = round(time.perf_counter() - began, 1)
    print(json.dumps(results))


def score(args: argparse.Namespace) -> None:
    from capture.pipeline import prepare as prepare_capture, tracking_steps
    from capture.reenactment import evaluate_reenactment
    from capture.report import write_sheet

    for head_file in sorted(args.out.glob("*-*.npz")):
        stem, preset = head_file.stem.rsplit("-", 1)
        info = prepare_capture(args.dir / f"{stem}.mp4", progress=False)
        head, options = _load_head(head_file), _options(preset)
        steps = tracking_steps(len(info.holdout), options.track_steps, options.max_track_steps)
        r = evaluate_reenactment(head, info.source, info.track, info.face, info.holdout, info.train,
                                 refine_steps=steps)
        if args.sheets:
            write_sheet(args.sheets / f"{head_file.stem}_holdout.png", r)
        print(json.dumps({"video": stem, "preset": preset, **r.summary(), "gaussians": len(head)}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    steps = parser.add_subparsers(dest="step", required=True)
    p = steps.add_parser("prepare")
    p.add_argument("dir", type=Path)
    p.add_argument("--videos", type=Path, nargs="*", default=sorted(VIDEO_FOLDER.glob("*.mp4")))
    p.add_argument("--presets", nargs="*", choices=PRESETS, default=["default"])
    p.set_defaults(run=prepare)
    r = steps.add_parser("run")
    r.add_argument("dir", type=Path)
    r.add_argument("out", type=Path)
    r.add_argument("--bench-steps", type=int, default=200)
    r.add_argument("--skip-bench", action="store_true")
    r.add_argument("--problems", nargs="*", help="DIR's NAME.npz to fit (default: every STEM-PRESET.npz)")
    r.add_argument("--device", choices=("cuda", "cpu"), default="cuda", help="where the video problems are fitted")
    r.add_argument("--parallel", type=int, default=1, help="fits at a time, each in its own process")
    r.add_argument("--fit-minutes", type=float, help="cap each fit (default: the presets' steps, no time limit)")
    r.add_argument("--iterations", type=int, help="fitting steps instead of the presets'")
    r.add_argument("--max-gaussians", type=int, help="Gaussian budget instead of the presets'")
    r.set_defaults(run=run)
    s = steps.add_parser("score")
    s.add_argument("dir", type=Path)
    s.add_argument("out", type=Path)
    s.add_argument("--sheets", type=Path, help="write each head's held-out sheet (truth | render | error) here")
    s.set_defaults(run=score)
    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
