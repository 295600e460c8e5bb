"""`avatar bench`: measurements that print numbers (and JSON with --json)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

DEFAULT_VIDEOS = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "video"


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
