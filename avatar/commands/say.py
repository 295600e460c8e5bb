"""`avatar say`: drive a running `avatar serve` with an audio file, as a dialogue system would."""

from __future__ import annotations

import argparse
from pathlib import Path

from avatar.commands.speech import EMOTIONS

CHUNK_S = 0.02


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "say", help="stream an audio file to a running server and receive the face",
        description="Streams the audio over /v1/stream in 20-ms chunks in real time and collects the frames: "
                    "prints how many and their latency (chunk sent -> frame at the chunk's time received), and "
                    "writes the speaking frames as a weights CSV with -o. With --video the server renders an MP4 "
                    "instead (POST /v1/avatars/ID/speak).")
    p.add_argument("audio", type=Path, help="speech audio file (any format and sample rate)")
    p.add_argument("--server", default="http://127.0.0.1:8000", help="server URL; default http://127.0.0.1:8000")
    p.add_argument("--token", help="bearer token; default $AVATAR_TOKEN")
    p.add_argument("--avatar", help="avatar id (default: the server's first)")
    p.add_argument("--fps", type=float, default=30.0, help="frames per second; default 30")
    p.add_argument("--emotion", choices=EMOTIONS, help="hold an emotion while speaking")
    p.add_argument("--fast", action="store_true", help="send the audio as fast as possible, not in real time")
    p.add_argument("-o", "--output", type=Path, help="weights CSV of the speaking frames (time_s + 52 names)")
    p.add_argument("--video", type=Path, help="have the server render this MP4 instead of streaming")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import asyncio

    from avatar import check_writable
    from avatar.audio import read_audio
    from avatar.client import AvatarClient

    for output in (args.output, args.video):
        if output is not None:
            check_writable(output)
    client = AvatarClient(args.server, args.token)
    if args.video is not None:
        avatar = args.avatar or client.avatars()[0]["id"]
        client.speak(avatar, args.audio, args.video, fps=int(args.fps), emotion=args.emotion)
        print(f"{avatar} says {args.audio.name} -> {args.video}")
        return 0
    audio, rate = read_audio(args.audio)
    result = asyncio.run(stream_utterance(client, audio, rate, avatar=args.avatar, fps=args.fps,
                                          emotion=args.emotion, realtime=not args.fast))
    latency = result["latency_ms"]
    print(f"{result['frames']} frames ({result['speaking_frames']} speaking) from session {result['session']}; "
          + (f"latency p50 {latency['p50']:.1f} ms, p95 {latency['p95']:.1f} ms (look-ahead "
             f"{result['look_ahead_ms']:.1f} ms)" if latency else "latency not measured (--fast)"))
    if args.output is not None:
        from avatar.weights_csv import write_weights_csv

        write_weights_csv(args.output, result["times_s"], result["weights"])
        print(f"{len(result['times_s'])} speaking frames -> {args.output}")
    return 0


async def stream_utterance(client, audio, rate: int, *, avatar: str | None = None, fps: float = 30,
                           emotion: str | None = None, realtime: bool = True) -> dict:
    """Say `audio` over one stream session; frames up to its utterance_end, and their latency.

    Latency of a speaking frame at utterance time t: its arrival minus the send time of the
    20-ms chunk that holds t (what a dialogue system sees: audio out, its face back).
    """
    import asyncio
    import time

    import numpy as np

    async with client.stream(avatar, fps) as stream:
        if emotion:
            await stream.emotion(emotion)
        sending = asyncio.create_task(stream.say(audio, rate, chunk_s=CHUNK_S, realtime=realtime))
        frames, speaking = 0, []
        async for message in stream.messages():
            if message["type"] == "frame":
                frames += 1
                if message["speaking"]:
                    speaking.append((time.monotonic(), message["t"], message["weights"]))
            elif message["type"] == "utterance_end":
                break
            elif message["type"] == "error":
                raise RuntimeError(f"the server rejected a message: {message['message']}")
        sent = await sending
    arrivals = np.array([s[0] for s in speaking])
    times = np.array([s[1] for s in speaking])
    latency, ms = {}, np.zeros(0)
    if realtime and len(times):
        chunk = np.minimum((times / CHUNK_S).astype(int), len(sent) - 1)
        ms = (arrivals - np.array(sent)[chunk]) * 1000
        latency = {"p50": float(np.percentile(ms, 50)), "p95": float(np.percentile(ms, 95)), "max": float(ms.max())}
    return {"session": stream.ready["session"], "frames": frames, "speaking_frames": len(speaking),
            "look_ahead_ms": stream.ready["look_ahead_s"] * 1000, "latency_ms": latency, "latencies_ms": ms,
            "times_s": times,
            "weights": np.array([s[2] for s in speaking], np.float32).reshape(-1, 52)}
