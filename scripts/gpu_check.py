"""Measure the `cuda` fitting backend on a GPU machine that has neither MediaPipe nor PyAV.

Tracking, masks and scoring need those and run here; what goes to the GPU machine is the
fitting problem itself, the same arrays `avatar capture` hands to `fit_head`:

    python scripts/gpu_check.py prepare DIR [--video V]
        (here) the sample photo's `avatar bench fit` problem at 256 and 512 px, and video V's
        training frames (JPEG, quality 95) with its starting head at the --quick (256 px) and
        default (512 px) settings.
    python scripts/gpu_check.py run DIR OUT [--bench-steps N] [--skip-bench] [--presets P ...]
                                            [--fit-minutes M] [--iterations N] [--max-gaussians G]
        (GPU machine) steps/s of the cpu and cuda backends on the bench problems, then V's
        fits on CUDA with the presets' settings (no time limit unless M); the fitted heads go to OUT.
    python scripts/gpu_check.py score DIR OUT [--video V] [--sheets FOLDER]
        (here) the held-out PSNR/SSIM of OUT's heads, scored as `avatar capture` scores.

On the GPU machine of 2026-11-26 (torch 2.11 + CUDA 13, no registry), gsplat went over as
its wheel, installed with `pip install --no-index --no-deps --target /tmp/site`, and built
its kernels on first import with MAX_JOBS=16 TORCH_CUDA_ARCH_LIST=9.0 (60 s)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from capture.corrections import FrameCorrections
from capture.fitting import CaptureOptions, fit_gaussians, starting_head
from capture.head_fit import FitFrames, HeadModel, fit_head
from render import GaussianHead

REPO = Path(__file__).resolve().parents[1]
DEFAULT_VIDEO = REPO.parent / "shared" / "data" / "video" / "mimictalk_German_20s.mp4"
BENCH = {"bench_256": (256, 30_000), "bench_512": (512, 30_000)}
PRESETS = ("quick", "default")
PART_BYTES = 12 << 20  # files coming back from the GPU machine are limited to 16 MiB each


def _options(preset: str) -> CaptureOptions:
    return CaptureOptions.quick() if preset == "quick" else CaptureOptions()


def _save_problem(path: Path, head: GaussianHead, frames: FitFrames, jpeg: bool) -> None:
    images = [cv2.imencode(".jpg", im[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])[1] for im in frames.images] \
        if jpeg else list(frames.images)
    c = frames.camera
    np.savez_compressed(
        path, **head.to_bundle_arrays(), masks=np.packbits(frames.masks, axis=-1), mask_width=frames.masks.shape[2],
        weights=frames.weights, rotations=frames.rotations, translations_cm=frames.translations_cm,
        camera=np.array([c.width_px, c.height_px, c.fx_px, c.fy_px, c.cx_px, c.cy_px]),
        camera_to_world=c.camera_to_world, jpeg=jpeg, **{f"image_{k}": im for k, im in enumerate(images)})


def _load_problem(path: Path) -> tuple[GaussianHead, FitFrames]:
    from avatar import Camera
    from render.head import HEAD_ARRAYS

    z = np.load(path)
    count = len(z["weights"])
    images = np.stack([cv2.imdecode(z[f"image_{k}"], cv2.IMREAD_COLOR)[..., ::-1] if z["jpeg"] else z[f"image_{k}"]
                       for k in range(count)])
    masks = np.unpackbits(z["masks"], axis=-1, count=int(z["mask_width"])).astype(bool)
    w, h, fx, fy, cx, cy = z["camera"]
    camera = Camera(int(w), int(h), fx, fy, cx, cy, z["camera_to_world"])
    head = GaussianHead(**{name: z["head/" + name] for name in HEAD_ARRAYS})
    return head, FitFrames(images, masks, camera, z["weights"], z["rotations"], z["translations_cm"])


def prepare(args: argparse.Namespace) -> None:
    from avatar.sample import sample_photo
    from capture import generic_expression_basis, load_canonical_mesh, track_image
    from capture.face_fit import fit_face
    from capture.head_fit import initial_head
    from capture.masks import head_mask
    from capture.pipeline import prepare as prepare_capture, training_frames
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
        frames = FitFrames(image[None], mask[None], face.camera.resized(size, size), track.weights,
                           face.head_rotation.astype(np.float32), face.head_translation_cm.astype(np.float32))
        _save_problem(args.dir / f"{name}.npz", initial_head(scaffold, frames, 0, gaussians), frames, jpeg=False)
    info = prepare_capture(args.video, progress=False)
    for preset in PRESETS:
        options = _options(preset)
        frames = training_frames(info, options.train_size_px, progress=False)
        _save_problem(args.dir / f"{preset}.npz", starting_head(info.face, frames, options), frames, jpeg=True)
    print("prepared:", ", ".join(f"{p.name} {p.stat().st_size / 1e6:.1f} MB" for p in sorted(args.dir.glob("*.npz"))))


def _save_head(folder: Path, name: str, head: GaussianHead) -> None:
    """The head as NAME_head.npz and its blendshape offsets in parts under `PART_BYTES` each."""
    arrays = head.to_bundle_arrays()
    deltas = arrays.pop("head/position_deltas_cm")
    parts = np.array_split(deltas, max(1, -(-deltas.nbytes // PART_BYTES)), axis=0)
    np.savez(folder / f"{name}_head.npz", **arrays, parts=len(parts))
    for k, part in enumerate(parts):
        np.save(folder / f"{name}_deltas_{k}.npy", part)


def _load_head(folder: Path, name: str) -> GaussianHead:
    z = dict(np.load(folder / f"{name}_head.npz"))
    deltas = np.concatenate([np.load(folder / f"{name}_deltas_{k}.npy") for k in range(int(z.pop("parts")))])
    return GaussianHead(**{k.removeprefix("head/"): v for k, v in z.items()}, position_deltas_cm=deltas)


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


def run(args: argparse.Namespace) -> None:
    args.out.mkdir(parents=True, exist_ok=True)
    results: dict = {"gpu": torch.cuda.get_device_name(), "torch": torch.__version__,
                     "cpu_threads": torch.get_num_threads()}
    for name in BENCH if not args.skip_bench else ():
        head, frames = _load_problem(args.dir / f"{name}.npz")
        for device in ("cpu", "cuda"):
            rate = _steps_per_s(head, frames, device, args.bench_steps if device == "cuda" else args.bench_steps // 4)
            results[f"{name}_{device}_steps_per_s"] = round(rate, 1)
            print(f"{name} {device}: {rate:.1f} steps/s", flush=True)
    for preset in args.presets:
        head, frames = _load_problem(args.dir / f"{preset}.npz")
        options = dataclasses.replace(_options(preset), fit_minutes=args.fit_minutes)
        if args.iterations:
            options = dataclasses.replace(options, iterations=args.iterations)
        if args.max_gaussians:
            options = dataclasses.replace(options, max_gaussians=args.max_gaussians)
        model = HeadModel(head).to("cuda")
        corrections = FrameCorrections.zeros(len(frames)) if options.refine_poses else None
        log = fit_gaussians(model, frames, options, corrections)
        torch.cuda.synchronize()
        results[preset] = {"steps": len(log.loss), "fit_s": round(log.seconds, 1), "gaussians": len(model),
                           "train_psnr_last_200": round(float(np.mean(log.psnr[-200:])), 2)}
        print(preset, results[preset], flush=True)
        _save_head(args.out, preset, model.to_head())
    (args.out / f"results{'_fits' if args.skip_bench else ''}.json").write_text(json.dumps(results, indent=1))
    print(json.dumps(results))


def score(args: argparse.Namespace) -> None:
    from capture.pipeline import prepare as prepare_capture
    from capture.reenactment import evaluate_reenactment
    from capture.report import write_sheet

    info = prepare_capture(args.video, progress=False)
    for preset in (p for p in PRESETS if (args.out / f"{p}_head.npz").exists()):
        head = _load_head(args.out, preset)
        r = evaluate_reenactment(head, info.source, info.track, info.face, info.holdout, info.train,
                                 refine_steps=_options(preset).track_steps)
        if args.sheets:
            write_sheet(args.sheets / f"{preset}_holdout.png", r)
        print(json.dumps({"preset": preset, **r.summary(), "gaussians": len(head)}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    steps = parser.add_subparsers(dest="step", required=True)
    p = steps.add_parser("prepare")
    p.add_argument("dir", type=Path)
    p.add_argument("--video", type=Path, default=DEFAULT_VIDEO)
    p.set_defaults(run=prepare)
    r = steps.add_parser("run")
    r.add_argument("dir", type=Path)
    r.add_argument("out", type=Path)
    r.add_argument("--bench-steps", type=int, default=200)
    r.add_argument("--skip-bench", action="store_true")
    r.add_argument("--presets", nargs="*", choices=PRESETS, default=list(PRESETS))
    r.add_argument("--fit-minutes", type=float, help="cap each fit (default: the presets' steps, no time limit)")
    r.add_argument("--iterations", type=int, help="fitting steps instead of the presets'")
    r.add_argument("--max-gaussians", type=int, help="Gaussian budget instead of the presets'")
    r.set_defaults(run=run)
    s = steps.add_parser("score")
    s.add_argument("dir", type=Path)
    s.add_argument("out", type=Path)
    s.add_argument("--video", type=Path, default=DEFAULT_VIDEO)
    s.add_argument("--sheets", type=Path, help="write each head's held-out sheet (truth | render | error) here")
    s.set_defaults(run=score)
    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
