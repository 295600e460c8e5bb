"""`avatar bench`: measurements that print numbers (and JSON with --json)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from avatar.commands.bench_capture import add_parsers as add_capture_benches
from avatar.commands.bench_server import add_parsers as add_server_benches
from avatar.commands.bench_speech import run_bilabials, run_lipsync

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
DEFAULT_VIDEOS = SHARED_DATA / "video"
DEFAULT_LIBRIVOX = SHARED_DATA / "audio" / "librivox"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("bench", help="benchmarks (speed and quality numbers)", description=__doc__)
    kinds = p.add_subparsers(dest="bench", metavar="BENCH", required=True)
    t = kinds.add_parser("track", help="tracking speed, found fraction and jitter with and without smoothing",
                         description="For each video: frames, found fraction, ms per frame (decode + track), "
                                     "jitter (mean frame-to-frame landmark motion in px over the stillest "
                                     "0.5 s) raw and smoothed, and the smoothing's measured lag.")
    t.add_argument("videos", type=Path, nargs="*",
                   help=f"videos or folders of videos (default: {DEFAULT_VIDEOS})")
    t.add_argument("--json", action="store_true", help="print the results as JSON on the last line")
    t.set_defaults(run=run_track)

    r = kinds.add_parser("render", help="renderer speed per stage on a Gaussian head, every backend on one scene",
                         description="Places N Gaussians on the sample photo's face (or takes an avatar's head), "
                                     "frames it, and renders frames with the head turning and its weights moving; "
                                     "prints FPS and median ms per stage "
                                     "(deform = GaussianHead.evaluate) of a warm run, and the peak RSS.")
    r.add_argument("--gaussians", type=int, default=30_000, metavar="N", help="Gaussians on the head; default 30000")
    r.add_argument("--avatar", type=Path, metavar="NAME.avatar",
                   help="render this avatar's head (a capture's, with its offsets) instead; --gaussians is ignored")
    r.add_argument("--size", type=_size, default=(512, 512), metavar="S|WxH",
                   help="frame size: S for SxS, or WxH; default 512")
    r.add_argument("--backend", default="all", choices=("cpu", "gl", "reference", "all"),
                   help="backend to measure; all = each one on the same scene (default)")
    r.add_argument("--frames", type=int, default=60, help="frames per fast backend (reference: 1); default 60")
    r.add_argument("--stereo", action="store_true", help="two eyes per frame (6.3 cm apart), each of --size")
    r.add_argument("--json", action="store_true", help="print the results as JSON on the last line")
    r.set_defaults(run=run_render)

    q = kinds.add_parser("parity", help="PSNR of every backend against the reference on hard scenes",
                         description="Rotated, stretched, overlapping, near-plane, off-screen and opaque-tie "
                                     "scenes, on black and on a colour; PSNR over RGBA with peak 1.")
    q.add_argument("--json", action="store_true", help="print the results as JSON on the last line")
    q.set_defaults(run=run_parity)

    s = kinds.add_parser("lipsync", help="speech-to-face accuracy on real talking videos, against two baselines",
                         description="Predicts ARKit weights from each video's own audio (default model, no tuning "
                                     "on the clip) and compares them with the weights and lip landmarks tracked in "
                                     "the video: lip vertex error (cm, canonical pose-free space, lips mapped "
                                     "from weights by a ridge fit on the clip's own track, every candidate added "
                                     "to the person's resting face = each weight's 10th percentile) and jawOpen "
                                     "correlation, for the model, a loudness-driven jaw (affine fit to the tracked "
                                     "jaw) and the resting face alone.")
    s.add_argument("videos", type=Path, nargs="+", help="talking-head videos with their speech")
    s.add_argument("--model", type=Path, help="audio-to-face weights (.safetensors); default: the shipped model")
    s.add_argument("--json", action="store_true", help="print the results as JSON on the last line")
    s.set_defaults(run=run_lipsync)

    b = kinds.add_parser("bilabials", help="do the lips meet on p/b/m? (speech with phone timings)",
                         description="For every p/b/m phone in the recordings' .phone.json alignments: do the "
                                     "predicted lips meet (mouthClose or press >= 0.35) within 40 ms of it.")
    b.add_argument("folder", type=Path, nargs="?", default=DEFAULT_LIBRIVOX,
                   help=f"folder of .wav + .phone.json pairs (default: {DEFAULT_LIBRIVOX})")
    b.add_argument("--model", type=Path, help="audio-to-face weights (.safetensors); default: the shipped model")
    b.add_argument("--json", action="store_true", help="print the results as JSON on the last line")
    b.set_defaults(run=run_bilabials)
    add_server_benches(kinds)
    add_capture_benches(kinds)


def _size(text: str) -> tuple[int, int]:
    try:
        w, _, h = text.lower().partition("x")
        size = (int(w), int(h or w))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size: use S or WxH in pixels") from None
    if not all(16 <= v <= 8192 for v in size):
        raise argparse.ArgumentTypeError(f"{text!r} is out of range: 16..8192 pixels")
    return size


def _fast_backends(requested: str) -> list[str]:
    """The backends to time; with `all`, those that can start here (a missing GL is reported, not fatal)."""
    import logging

    from avatar import AvatarError
    from render import create_renderer

    if requested != "all":
        return [requested]
    names = []
    for name in ("cpu", "gl"):
        try:
            create_renderer(name).close()
            names.append(name)
        except AvatarError as exc:
            logging.getLogger(__name__).warning("skipping the %s backend: %s", name, exc)
    return names + ["reference"]


def run_render(args: argparse.Namespace) -> int:
    from avatar.model import Avatar
    from avatar.sample import sample_avatar
    from render import StereoRig, create_renderer
    from render.benchmark import peak_rss_mb, time_backend

    if args.avatar is not None:
        avatar = Avatar.load(args.avatar)
    else:
        avatar, _, _ = sample_avatar(args.gaussians)
    head = avatar.head
    width, height = args.size
    camera = avatar.front_camera(width, height)
    eyes = StereoRig().eyes(camera) if args.stereo else (camera,)
    results = {}
    for name in _fast_backends(args.backend):
        # The dense reference takes minutes per frame at full size: one warm-up, one timed frame.
        frames, warmup = (2, 1) if name == "reference" else (args.frames + 3, 3)
        with create_renderer(name) as renderer:
            results[name] = time_backend(renderer, head, [eyes] * frames, warmup=warmup)
        if not args.json:
            stages = ", ".join(f"{k} {v:.2f}" for k, v in results[name]["ms"].items())
            print(f"{name:10s} {results[name]['fps']:8.2f} FPS   ms: {stages}")
    summary = {"backends": results, "gaussians": len(head), "size": f"{width}x{height}",
               "stereo": args.stereo, "avatar": None if args.avatar is None else str(args.avatar),
               "peak_rss_mb": round(peak_rss_mb(), 1)}
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"{len(head)} Gaussians, {width}x{height}{' x2 (stereo)' if args.stereo else ''}, "
              f"peak RSS {summary['peak_rss_mb']} MB")
    return 0


def run_parity(args: argparse.Namespace) -> int:
    from render import create_renderer
    from render.benchmark import parity

    renderers = [create_renderer(name) for name in _fast_backends("all") if name != "reference"]
    try:
        result = parity(renderers, create_renderer("reference"))
    finally:
        for renderer in renderers:
            renderer.close()
    if args.json:
        print(json.dumps(result))
    else:
        for name, row in result["per_backend"].items():
            print(f"{name:6s} min {row['psnr_min']:6.2f} dB   " +
                  "  ".join(f"{scene} {db:.1f}" for scene, db in row["scenes"].items()))
    return 0


def _video_paths(given: list[Path]) -> list[Path]:
    from avatar import InputError
    from capture.media import VIDEO_SUFFIXES

    roots = given or [DEFAULT_VIDEOS]
    paths = []
    for root in roots:
        if root.is_dir():
            paths += sorted(p for p in root.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
        elif root.exists():
            paths.append(root)
        else:
            raise InputError(f"{root} does not exist: give videos or folders of videos")
    if not paths:
        raise InputError(f"no videos found in {', '.join(map(str, roots))}")
    return paths


def run_track(args: argparse.Namespace) -> int:
    from capture import TrackSmoothing, jitter_px, open_media, smooth_track, stillest_window, track_media

    results = {}
    for path in _video_paths(args.videos):
        source = open_media(path)
        track, stats = track_media(source, progress=not args.json)
        smoothed = smooth_track(track, TrackSmoothing())
        window = max(2, round(source.fps / 2))
        start = stillest_window(track.landmarks_px, track.found, window)
        row = {
            "size": f"{source.width_px}x{source.height_px}", "frames": stats.frames,
            "found_fraction": round(stats.found_fraction, 4), "ms_per_frame": round(stats.ms_per_frame, 2),
            "jitter_px": None, "jitter_px_smoothed": None, "still_start_s": None,
            "smoothing_lag_ms": smoothed.smoothing["lag_ms"],
        }
        if start is not None:
            row["jitter_px"] = round(jitter_px(track.landmarks_px, start, window), 3)
            row["jitter_px_smoothed"] = round(jitter_px(smoothed.landmarks_px, start, window), 3)
            row["still_start_s"] = round(float(track.time_s[start]), 2)
        results[path.name] = row
        if not args.json:
            print(f"{path.name:48s} {row['size']:>8s} {row['frames']:5d} frames  found {row['found_fraction']:.3f}  "
                  f"{row['ms_per_frame']:6.2f} ms/frame  jitter {row['jitter_px']} px -> "
                  f"{row['jitter_px_smoothed']} px smoothed (lag {row['smoothing_lag_ms']} ms)")
    if args.json:
        print(json.dumps({"videos": results}))
    return 0

