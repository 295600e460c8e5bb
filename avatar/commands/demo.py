"""`avatar demo`: the main job on a built-in default (scikit-image's astronaut photo).

Tracks the photo, places a Gaussian head on the tracked face, renders it
turning round and pulling faces, and has it say a sentence (espeak-ng's voice).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

DEMO_SIZE_PX = 512
DEMO_FPS = 30
DEMO_SENTENCE = "Hello! I am the avatar of an astronaut. I can talk, blink and smile, in real time, on a plain computer."


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("demo", help="run the main job on the built-in sample photo", description=__doc__)
    p.add_argument("-o", "--output-dir", type=Path, default=Path("out/demo"), help="folder for the results")
    p.add_argument("--backend", default="auto", help="renderer for the videos: cpu, gl or auto (default)")
    p.set_defaults(run=run)


def expression_states(seconds: float, fps: float) -> list:
    """FaceStates that open the jaw, smile, blink and raise the brows in turn."""
    import numpy as np

    from avatar import FaceState, index_of

    states = []
    for i in range(round(seconds * fps)):
        t = i / fps
        w = np.zeros(52, np.float32)
        w[index_of("jawOpen")] = max(0.0, math.sin(2 * math.pi * t / 2.0)) * 0.8
        w[index_of("mouthSmileLeft")] = w[index_of("mouthSmileRight")] = max(0.0, math.sin(2 * math.pi * (t - 1.0) / 4.0))
        w[[index_of("eyeBlinkLeft"), index_of("eyeBlinkRight")]] = 1.0 if (t % 1.5) < 0.15 else 0.0
        w[index_of("browInnerUp")] = max(0.0, math.sin(2 * math.pi * (t - 2.0) / 4.0))
        states.append(FaceState(time_s=t, weights=w, head_rotation=[0.0, 0.25 * math.sin(2 * math.pi * t / 4), 0.0]))
    return states


def run(args: argparse.Namespace) -> int:
    import cv2

    from avatar import FaceState, OutputError, atomic_output
    from avatar.sample import sample_avatar
    from avatar.speech import speech_states
    from avatar.video import render_video
    from capture import face_closeup, load_canonical_mesh, mesh_edges

    out = args.output_dir
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create {out} ({exc.strerror}): choose another --output-dir") from None
    avatar, image, track = sample_avatar()
    track.save(out / "astronaut.track.npz")
    picture = out / "astronaut_mesh.png"
    closeup = face_closeup(image, track.landmarks_px[0], mesh_edges(load_canonical_mesh().triangles))
    with atomic_output(picture) as tmp:
        cv2.imwrite(str(tmp), cv2.cvtColor(closeup, cv2.COLOR_RGB2BGR))
    print("tracked the sample photo: 478 landmarks, 52 ARKit weights, head pose")
    avatar.metadata["made_by"] = "avatar demo"
    avatar.save(out / "astronaut.avatar")
    seconds = 6.0
    count = round(seconds * DEMO_FPS)
    turntable = out / "astronaut_turntable.mp4"
    backend = render_video(
        avatar, avatar.turntable_cameras(count, DEMO_SIZE_PX, DEMO_SIZE_PX),
        [FaceState(time_s=i / DEMO_FPS) for i in range(count)], turntable, fps=DEMO_FPS, backend=args.backend,
        progress=False)
    states = expression_states(8.0, DEMO_FPS)
    expressions = out / "astronaut_expressions.mp4"
    front = avatar.front_camera(DEMO_SIZE_PX, DEMO_SIZE_PX)
    render_video(avatar, [front] * len(states), states, expressions, fps=DEMO_FPS, backend=args.backend,
                 progress=False)
    print(f"placed {len(avatar.head)} Gaussians on the face -> {out / 'astronaut.avatar'}; rendered with the {backend} backend")
    speaking = out / "astronaut_speaks.mp4"
    audio = say(DEMO_SENTENCE, out / "sentence.wav")
    states = speech_states(*audio, DEMO_FPS, emotion="happy", intensity=0.4)
    render_video(avatar, [front] * len(states), states, speaking, fps=DEMO_FPS, backend=args.backend, audio=audio,
                 progress=False)
    print(f"result: {picture}, {turntable}, {expressions}, {speaking}")
    return 0


def say(text: str, path: Path):
    """Speak `text` with espeak-ng into the WAV `path`; returns (samples, sample rate)."""
    import shutil
    import subprocess

    from avatar import AvatarError, atomic_output
    from avatar.audio import read_audio

    if shutil.which("espeak-ng") is None:
        raise AvatarError("espeak-ng is not installed: `apt-get install espeak-ng` (make demo does it)")
    with atomic_output(path) as tmp:
        subprocess.run(["espeak-ng", "-s", "150", "-w", str(tmp), text], check=True, capture_output=True)
    return read_audio(path)
