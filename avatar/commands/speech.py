"""`avatar animate` (speech to ARKit weights CSV) and `avatar speak` (speech to a talking-head MP4)."""

from __future__ import annotations

import argparse
from pathlib import Path

EMOTIONS = ("happy", "sad", "angry", "surprised", "thinking")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--fps", type=float, default=30.0, choices=(30.0, 60.0), help="frame rate: 30 (default) or 60")
    p.add_argument("--emotion", choices=EMOTIONS, help="hold an emotion while speaking")
    p.add_argument("--intensity", type=float, default=0.7, help="emotion intensity 0..1; default 0.7")
    p.add_argument("--model", type=Path, help="audio-to-face weights (.safetensors); default: the shipped model")
    p.add_argument("--seed", type=int, default=0, help="seed of the mannerisms (blinks, gaze, nods)")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    a = subparsers.add_parser("animate", help="speech audio to ARKit weights per frame (CSV)",
                              description="Lip-sync plus blinks, gaze and emotion, as the CSV `avatar render "
                                          "--weights` reads. Any audio format and sample rate.")
    a.add_argument("audio", type=Path, help="speech audio file (wav, mp3, ogg, flac, m4a, ...)")
    a.add_argument("-a", "--avatar", type=Path, help=".avatar bundle whose mannerisms to use")
    a.add_argument("-o", "--output", type=Path, required=True, help="CSV to write")
    _common(a)
    a.set_defaults(run=run_animate)

    s = subparsers.add_parser("speak", help="an avatar saying an audio file: MP4 with the speech muxed in",
                              description="Lip-sync, blinks, gaze, nods and optional emotion, rendered in sync "
                                          "with the audio, which is muxed into the video.")
    s.add_argument("avatar", type=Path, help=".avatar bundle")
    s.add_argument("audio", type=Path, help="speech audio file (any format and sample rate)")
    s.add_argument("-o", "--output", type=Path, required=True, help="video to write (.mp4)")
    s.add_argument("--size", type=int, default=512, metavar="PX", help="frame height and width; default 512")
    s.add_argument("--backend", default="auto", help="renderer: cpu, gl, reference or auto (default)")
    s.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    _common(s)
    s.set_defaults(run=run_speak)


def _states(args: argparse.Namespace, avatar):
    from animation import MannerismProfile, load_model
    from avatar.audio import read_audio
    from avatar.speech import speech_states

    audio, rate = read_audio(args.audio)
    profile = None
    if avatar is not None and avatar.metadata.get("mannerisms"):
        profile = MannerismProfile(**avatar.metadata["mannerisms"])
    # A model given wins; else the person's tuned one, if the capture made one; else the shipped one.
    model = load_model(args.model) if args.model else avatar.speech_model() if avatar is not None else None
    states = speech_states(audio, rate, args.fps, model=model, profile=profile, emotion=args.emotion,
                           intensity=args.intensity, seed=args.seed)
    return states, (audio, rate)


def run_animate(args: argparse.Namespace) -> int:
    import numpy as np

    from avatar import check_writable
    from avatar.model import Avatar
    from avatar.weights_csv import write_weights_csv

    check_writable(args.output)
    avatar = Avatar.load(args.avatar) if args.avatar else None
    states, _ = _states(args, avatar)
    write_weights_csv(args.output, np.array([s.time_s for s in states]), np.stack([s.weights for s in states]))
    print(f"{len(states)} frames at {args.fps:g} fps -> {args.output}")
    return 0


def run_speak(args: argparse.Namespace) -> int:
    from avatar import check_writable
    from avatar.model import Avatar
    from avatar.video import render_video

    check_writable(args.output)
    avatar = Avatar.load(args.avatar)
    states, audio = _states(args, avatar)
    camera = avatar.front_camera(args.size, args.size)
    backend = render_video(avatar, [camera] * len(states), states, args.output, fps=args.fps, backend=args.backend,
                           audio=audio, progress=not args.quiet)
    print(f"{len(states)} frames at {args.fps:g} fps ({backend} backend), speech muxed in -> {args.output}")
    return 0
