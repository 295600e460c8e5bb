"""`avatar bench stream|load|webrtc`: the live API measured from a client on loopback.

Each starts its own `avatar serve` (the built-in sample) in a child process unless
given `--server URL`, and speaks real audio into it (default: the demo sentence,
synthesised with espeak-ng) in 20-ms chunks sent in real time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from avatar.commands.say import CHUNK_S



def add_parsers(kinds: argparse._SubParsersAction) -> None:
    s = kinds.add_parser("stream", help="latency: audio chunk sent -> its frame received, on loopback",
                         description="Speaks the audio --utterances times over one /v1/stream session in 20-ms "
                                     "chunks sent in real time; the latency of a speaking frame at utterance time t "
                                     "is its arrival minus the send time of the chunk holding t. Target: p95 <= "
                                     "look-ahead + 30 ms.")
    s.add_argument("--utterances", type=int, default=3, help="times to say the audio; default 3")
    _common(s)
    s.set_defaults(run=run_stream)

    load = kinds.add_parser("load", help="many concurrent parameter-stream sessions: dropped and late frames",
                            description="Opens --sessions sessions at once, each saying the audio over and over "
                                        "in real time for --seconds; counts frames missing from each session's "
                                        "numbering (dropped), inter-arrival gaps over 2 frame periods (stalls), "
                                        "and the achieved frame rate.")
    load.add_argument("--sessions", type=int, default=20, help="concurrent sessions; default 20")
    load.add_argument("--seconds", type=float, default=20.0, help="how long; default 20")
    load.add_argument("--fps", type=float, default=30.0, help="frame rate of each session; default 30")
    _common(load)
    load.set_defaults(run=run_load)

    w = kinds.add_parser("webrtc", help="concurrent WebRTC sessions: video frames per second received",
                         description="Opens --sessions sessions with WebRTC video (--size, --fps) and audio, "
                                     "speaking the audio over and over, and receives them with an aiortc client "
                                     "on the same machine (its decoding shares the cores); prints the frame rate "
                                     "received per session over the last --seconds after a warm-up.")
    w.add_argument("--sessions", type=int, default=2, help="concurrent sessions; default 2")
    w.add_argument("--seconds", type=float, default=15.0, help="measured time after a 3 s warm-up; default 15")
    w.add_argument("--fps", type=float, default=25.0, help="video frame rate; default 25")
    w.add_argument("--size", type=int, default=512, help="video width and height, px; default 512")
    _common(w)
    w.set_defaults(run=run_webrtc)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("audio", type=Path, nargs="?", help="speech to send (default: the demo sentence, espeak-ng)")
    p.add_argument("--server", help="measure this running server instead of starting one")
    p.add_argument("--token", help="bearer token for --server; default $AVATAR_TOKEN")
    p.add_argument("--json", action="store_true", help="print the results as JSON on the last line")


@contextmanager
def _target(args: argparse.Namespace):
    """(AvatarClient, speech samples, sample rate, server process or None)."""
    from avatar.audio import read_audio
    from avatar.client import AvatarClient
    from avatar.commands.demo import DEMO_SENTENCE, say
    from avatar.server.launch import serve_in_subprocess

    with tempfile.TemporaryDirectory(prefix="avatar-bench-") as folder:
        audio, rate = read_audio(args.audio) if args.audio else say(DEMO_SENTENCE, Path(folder) / "sentence.wav")
        if args.server:
            yield AvatarClient(args.server, args.token), audio, rate, None
            return
        with serve_in_subprocess() as (url, process):
            yield AvatarClient(url), audio, rate, process


def _report(results: dict, as_json: bool, lines: list[str]) -> None:
    for line in lines:
        print(line)
    if as_json:
        print(json.dumps(results))


def run_stream(args: argparse.Namespace) -> int:
    from avatar.commands.say import stream_utterance

    with _target(args) as (client, audio, rate, _):
        runs = [asyncio.run(stream_utterance(client, audio, rate)) for _ in range(args.utterances)]
    latencies = np.concatenate([run["latencies_ms"] for run in runs])
    look_ahead = runs[0]["look_ahead_ms"]
    results = {"latency_p50_ms": round(float(np.percentile(latencies, 50)), 1),
               "latency_p95_ms": round(float(np.percentile(latencies, 95)), 1),
               "latency_max_ms": round(float(latencies.max()), 1), "look_ahead_ms": round(look_ahead, 1),
               "target_ms": round(look_ahead + 30, 1), "frames": int(len(latencies)), "chunk_ms": CHUNK_S * 1000}
    _report(results, args.json, [
        f"{results['frames']} speaking frames over {args.utterances} utterances, 20-ms chunks in real time",
        f"latency p50 {results['latency_p50_ms']} ms, p95 {results['latency_p95_ms']} ms, max "
        f"{results['latency_max_ms']} ms; target p95 <= look-ahead {results['look_ahead_ms']} + 30 = "
        f"{results['target_ms']} ms"])
    return 0


def run_load(args: argparse.Namespace) -> int:
    import psutil

    with _target(args) as (client, audio, rate, process):
        server = psutil.Process(process.pid) if process else None
        if server:
            server.cpu_percent()
        sessions = asyncio.run(_load(client, audio, rate, args.sessions, args.seconds, args.fps))
        cpu = server.cpu_percent() if server else None
    period = 1.0 / args.fps
    per_session = []
    for numbers, arrivals in sessions:
        numbers, arrivals = np.array(numbers), np.array(arrivals)
        gaps = np.diff(arrivals)
        per_session.append({"frames": len(numbers), "dropped": int(numbers[-1] - numbers[0] + 1 - len(numbers)),
                            "stalls": int((gaps > 2 * period).sum()), "max_gap_ms": float(gaps.max() * 1000),
                            "fps": float((len(numbers) - 1) / (arrivals[-1] - arrivals[0]))})
    results = {"sessions": args.sessions, "fps_target": args.fps, "seconds": args.seconds,
               "frames": sum(s["frames"] for s in per_session),
               "dropped_frames": sum(s["dropped"] for s in per_session),
               "stalls": sum(s["stalls"] for s in per_session),
               "max_gap_ms": round(max(s["max_gap_ms"] for s in per_session), 1),
               "fps_min": round(min(s["fps"] for s in per_session), 2),
               "server_cpu_percent": round(cpu, 1) if cpu is not None else None}
    _report(results, args.json, [
        f"{args.sessions} sessions at {args.fps:g} fps for {args.seconds:g} s, all speaking: {results['frames']} "
        f"frames, {results['dropped_frames']} dropped, {results['stalls']} gaps over {2 * period * 1000:.0f} ms "
        f"(longest {results['max_gap_ms']} ms), slowest session {results['fps_min']} fps"
        + (f", server CPU {results['server_cpu_percent']}% of one core" if cpu is not None else "")])
    return 0


async def _load(client, audio: np.ndarray, rate: int, count: int, seconds: float, fps: float):
    """Per session: (frame numbers, arrival times) received during `seconds`."""
    async def one(index: int):
        numbers, arrivals = [], []
        async with client.stream(fps=fps) as stream:
            async def speak():
                await asyncio.sleep(index * 0.05)  # don't start every utterance on the same frame
                while True:
                    await stream.say(audio, rate)
                    await asyncio.sleep(0.5)

            speaker = asyncio.create_task(speak())
            deadline = time.monotonic() + seconds
            async for message in stream.messages():
                if message["type"] == "frame":
                    numbers.append(message["frame"])
                    arrivals.append(time.monotonic())
                if time.monotonic() > deadline:
                    break
            speaker.cancel()
            await asyncio.gather(speaker, return_exceptions=True)
        return numbers, arrivals

    return await asyncio.gather(*(one(i) for i in range(count)))


def run_webrtc(args: argparse.Namespace) -> int:
    with _target(args) as (client, audio, rate, _):
        sessions = asyncio.run(_webrtc(client, audio, rate, args.sessions, args.seconds, args.fps, args.size))
    results = {"sessions": args.sessions, "size": args.size, "fps_target": args.fps, "seconds": args.seconds,
               "fps": [round(s["fps"], 2) for s in sessions], "fps_min": round(min(s["fps"] for s in sessions), 2),
               "frame_size": sessions[0]["frame_size"],
               "audio_rms": [round(s["audio_rms"], 4) for s in sessions]}
    _report(results, args.json, [
        f"{args.sessions} WebRTC sessions at {args.size}x{args.size}, {args.fps:g} fps, speaking: received "
        + ", ".join(f"{f:.1f}" for f in results["fps"]) + " fps; speech audio RMS "
        + ", ".join(f"{r:.3f}" for r in results["audio_rms"])])
    return 0


async def _webrtc(client, audio: np.ndarray, rate: int, count: int, seconds: float, fps: float, size: int):
    from aiortc import RTCPeerConnection, RTCSessionDescription

    async def one(index: int) -> dict:
        async with client.stream(fps=fps) as stream:
            pc = RTCPeerConnection()
            pc.addTransceiver("video", direction="recvonly")
            pc.addTransceiver("audio", direction="recvonly")
            tracks = {}
            pc.on("track", lambda track: tracks.__setitem__(track.kind, track))
            await pc.setLocalDescription(await pc.createOffer())
            answer = await asyncio.to_thread(client.webrtc_answer, stream.session, pc.localDescription.sdp, size)
            await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
            stats = {"video": [], "audio": []}

            async def drain(messages):
                async for _ in messages:
                    pass

            async def speak():
                while True:
                    await stream.say(audio, rate)
                    await asyncio.sleep(0.5)

            async def receive(kind: str):
                while kind not in tracks:
                    await asyncio.sleep(0.01)
                while True:
                    frame = await tracks[kind].recv()
                    stats[kind].append((time.monotonic(), frame))

            tasks = [asyncio.create_task(c) for c in (drain(stream.messages()), speak(), receive("video"),
                                                       receive("audio"))]
            await asyncio.sleep(3.0)
            start = time.monotonic()
            await asyncio.sleep(seconds)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await pc.close()
        video = [(t, f) for t, f in stats["video"] if t >= start]
        audio_pcm = np.concatenate([f.to_ndarray().reshape(-1) for t, f in stats["audio"] if t >= start] or [[0]])
        return {"fps": len(video) / seconds, "frame_size": [video[-1][1].width, video[-1][1].height] if video else None,
                "audio_rms": float(np.sqrt(np.mean((audio_pcm / 32768.0) ** 2)))}

    return await asyncio.gather(*(one(i) for i in range(count)))
