"""`avatar track INPUT -o TRACK.npz`: landmarks, ARKit weights and head pose per frame."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from avatar.commands.capture import FACE_CHOICES


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "track", help="track the face in a video, a photo or a folder of photos", description=__doc__,
        epilog="Frames without a face are flagged; gaps up to --max-gap seconds are interpolated.")
    p.add_argument("input", type=Path, help="video (mp4/mov/webm/mkv), photo, or folder of photos")
    p.add_argument("-o", "--output", type=Path, required=True, help="track file to write (.npz)")
    p.add_argument("--preview", type=Path, help="also write the input with the tracked mesh drawn over it "
                   "(.mp4, or .png/.jpg for a photo)")
    p.add_argument("--weights-csv", type=Path, metavar="CSV",
                   help="also write the ARKit weights per frame as CSV (the input of `avatar render --weights`)")
    p.add_argument("--smooth", action="store_true", help="apply a One-Euro filter against jitter "
                   "(adds lag; the measured lag is printed and stored in the track)")
    p.add_argument("--smooth-min-cutoff", type=float, metavar="HZ",
                   help="One-Euro cutoff for landmarks at rest, Hz (lower: smoother, more lag); default 2")
    p.add_argument("--smooth-beta", type=float, metavar="B",
                   help="One-Euro speed coefficient for landmarks, Hz per px/s; default 0.02")
    p.add_argument("--max-gap", type=float, default=0.25, metavar="S",
                   help="interpolate gaps without a face up to this many seconds; default 0.25")
    p.add_argument("--face", choices=FACE_CHOICES, default="largest",
                   help="whose face to follow where frames show several: the largest, leftmost or rightmost "
                        "where first seen; default largest")
    p.add_argument("--face-model", type=Path, help="path to face_landmarker.task (default: the user cache)")
    p.add_argument("--json", action="store_true", help="print a JSON summary as the last line")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from avatar import check_writable
    from avatar.weights_csv import write_weights_csv
    from capture import TrackSmoothing, open_media, track_media, write_preview

    for path in (args.output, args.preview, args.weights_csv):
        if path:
            check_writable(path)
    source = open_media(args.input)
    smoothing = None
    if args.smooth:
        smoothing = TrackSmoothing()
        smoothing = smoothing.with_landmark_cutoff(args.smooth_min_cutoff or smoothing.landmarks.min_cutoff_hz,
                                                   args.smooth_beta or smoothing.landmarks.beta)
    track, stats = track_media(source, model_path=args.face_model, smoothing=smoothing,
                               max_gap_s=args.max_gap, progress=not args.quiet, face=args.face)
    track.save(args.output)
    if args.weights_csv:
        write_weights_csv(args.weights_csv, track.time_s, track.weights)
    if args.preview:
        write_preview(source, track, args.preview, progress=not args.quiet)
    summary = {
        "frames": stats.frames, "found_fraction": round(stats.found_fraction, 4),
        "valid_fraction": round(float(track.valid.mean()), 4), "ms_per_frame": round(stats.ms_per_frame, 2),
        "width": track.camera.width_px, "height": track.camera.height_px, "max_faces": stats.max_faces_seen,
        "smoothing_lag_ms": track.smoothing["lag_ms"] if track.smoothing else None,
        "output": str(args.output), "preview": str(args.preview) if args.preview else None,
    }
    if not args.json:
        lag = f", smoothing lag {summary['smoothing_lag_ms']} ms" if track.smoothing else ""
        print(f"{stats.frames} frames, face found in {100 * stats.found_fraction:.1f}%, "
              f"{stats.ms_per_frame:.1f} ms/frame{lag} -> {args.output}"
              + (f" (preview: {args.preview})" if args.preview else ""))
    else:
        print(json.dumps(summary))
    return 0
