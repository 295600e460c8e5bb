"""`avatar render AVATAR -o out.mp4`: a turntable, or the face driven by ARKit weights from a CSV."""

from __future__ import annotations

import argparse
from pathlib import Path

from avatar.errors import InputError


def parse_colour(text: str) -> tuple[float, float, float]:
    """'#rrggbb' or 'r,g,b' with components in [0, 1] -> an RGB triple."""
    try:
        if text.startswith("#") and len(text) == 7:
            return tuple(int(text[i:i + 2], 16) / 255 for i in (1, 3, 5))
        rgb = tuple(float(c) for c in text.split(","))
        if len(rgb) == 3 and all(0 <= c <= 1 for c in rgb):
            return rgb
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(f"{text!r} is not a colour: use #rrggbb or r,g,b with values in 0..1")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("render", help="render an avatar to MP4: turntable or ARKit weights",
                              description=__doc__)
    p.add_argument("avatar", type=Path, help=".avatar bundle")
    p.add_argument("-o", "--output", type=Path, required=True, help="video to write (.mp4)")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--turntable", action="store_true", help="orbit the neutral head once")
    what.add_argument("--weights", type=Path, metavar="CSV", help="ARKit weights per frame (time_s + names), "
                      "as `avatar track --weights-csv` writes")
    p.add_argument("--size", type=int, default=512, metavar="PX", help="frame height and width; default 512")
    p.add_argument("--fps", type=float, help="frame rate (default: 30 for a turntable, the CSV's own rate)")
    p.add_argument("--seconds", type=float, default=6.0, help="turntable length; default 6")
    p.add_argument("--backend", default="auto", help="renderer: cpu, gl, reference or auto (default)")
    p.add_argument("--background", type=parse_colour, default=(1.0, 1.0, 1.0), help="#rrggbb or r,g,b; default white")
    p.add_argument("--stereo", action="store_true", help="side-by-side stereo pair (left eye left)")
    p.add_argument("--ipd", type=float, default=6.3, metavar="CM", help="interpupillary distance for --stereo")
    p.add_argument("--audio", type=Path, help="audio file to mux into the video")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from avatar import FaceState, check_writable
    from avatar.audio import read_audio
    from avatar.model import Avatar
    from avatar.video import render_video
    from avatar.weights_csv import read_weights_csv
    from render import StereoRig

    check_writable(args.output)
    if args.size < 16 or args.size > 4096:
        raise InputError(f"--size {args.size} is out of range: use 16..4096 pixels")
    avatar = Avatar.load(args.avatar)
    audio = read_audio(args.audio) if args.audio else None
    if args.turntable:
        fps = args.fps or 30.0
        count = max(1, round(args.seconds * fps))
        cameras = avatar.turntable_cameras(count, args.size, args.size)
        states = [FaceState(time_s=i / fps) for i in range(count)]
    else:
        time_s, weights = read_weights_csv(args.weights)
        fps = args.fps or (1 / float(np.median(np.diff(time_s))) if len(time_s) > 1 else 30.0)
        cameras = [avatar.front_camera(args.size, args.size)] * len(time_s)
        states = [FaceState(time_s=float(t), weights=np.clip(w, 0, 1)) for t, w in zip(time_s, weights)]
    backend = render_video(avatar, cameras, states, args.output, fps=fps, backend=args.backend,
                           background=args.background, stereo=StereoRig(args.ipd) if args.stereo else None,
                           audio=audio, progress=not args.quiet)
    print(f"{len(states)} frames at {fps:g} fps ({backend} backend) -> {args.output}")
    return 0
