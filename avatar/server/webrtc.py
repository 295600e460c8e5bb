"""WebRTC for clients that don't render: a session's face as a video track and its speech as an audio track.

Sync. Speech audio is released to the audio track as the session emits the
speaking frame that shows it (frame k of an utterance releases its audio over
[k/fps, (k+1)/fps)), so sound and picture leave together; the audio track keeps
`PREROLL_S` in hand after an underrun so that frame-sized releases play without
gaps. The video track renders the session's latest frame at the session's fps.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from concurrent.futures import Executor
from fractions import Fraction

import av
import numpy as np
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

from avatar.face_state import FaceState
from avatar.model import Avatar
from avatar.server.session import Frame, StreamSession
from avatar.video import to_uint8

log = logging.getLogger(__name__)

AUDIO_RATE = 48_000
AUDIO_FRAME = 960               # 20 ms at 48 kHz, what Opus packs
PREROLL_S = 0.04
VIDEO_CLOCK = 90_000
BACKGROUND = (1.0, 1.0, 1.0)


class _Pacer:
    """Sleeps until tick n of a fixed-rate clock that starts at the first call."""

    def __init__(self, period_s: float) -> None:
        self.period_s = period_s
        self.count = 0
        self._start: float | None = None

    async def tick(self) -> int:
        if self._start is None:
            self._start = time.monotonic()
        else:
            self.count += 1
            wait = self._start + self.count * self.period_s - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
        return self.count


class AvatarVideoTrack(MediaStreamTrack):
    """The session's latest face, rendered at `size` on one shared render thread."""

    kind = "video"

    def __init__(self, session: StreamSession, avatar: Avatar, width_px: int, height_px: int,
                 executor: Executor) -> None:
        super().__init__()
        self._session = session
        self._avatar = avatar
        self._camera = avatar.front_camera(width_px, height_px)
        self._executor = executor
        self._renderer = None
        self._pacer = _Pacer(1.0 / session.fps)

    def _render(self, state: FaceState) -> np.ndarray:
        from render import create_renderer

        if self._renderer is None:
            self._renderer = create_renderer("auto")
        gaussians = self._avatar.head.evaluate(state)
        return to_uint8(self._renderer.render(self._camera, gaussians, BACKGROUND)[..., :3])

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        count = await self._pacer.tick()
        latest = self._session.latest
        state = latest.state if latest is not None else FaceState()
        rgb = await asyncio.get_running_loop().run_in_executor(self._executor, self._render, state)
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
        frame.pts = round(count * VIDEO_CLOCK / self._session.fps)
        frame.time_base = Fraction(1, VIDEO_CLOCK)
        return frame

    def stop(self) -> None:
        super().stop()
        renderer, self._renderer = self._renderer, None
        if renderer is not None:
            self._executor.submit(renderer.close)  # on the thread that made it (GL contexts are per thread)


class SpeechAudioTrack(MediaStreamTrack):
    """The session's speech at 48 kHz mono, released frame by frame as the face shows it; silence between."""

    kind = "audio"

    def __init__(self, fps: float) -> None:
        super().__init__()
        self._dt = 1.0 / fps
        self._resampler: av.AudioResampler | None = None
        self._utterance: int | None = None
        self._heard = np.zeros(0, np.int16)   # resampled audio of `_utterance` not yet released
        self._heard_start = 0                 # its first sample's index in the utterance
        self._out: deque[np.ndarray] = deque()
        self._out_len = 0
        self._playing = False
        self._pacer = _Pacer(AUDIO_FRAME / AUDIO_RATE)

    def on_audio(self, utterance: int, samples: np.ndarray, sample_rate: int) -> None:
        if utterance != self._utterance:
            self._release_all()
            self._utterance, self._heard, self._heard_start = utterance, np.zeros(0, np.int16), 0
            self._resampler = av.AudioResampler(format="s16", layout="mono", rate=AUDIO_RATE)
        pcm = np.clip(samples * 32768.0, -32768, 32767).astype(np.int16)[None]
        frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
        frame.sample_rate = sample_rate
        parts = [f.to_ndarray().reshape(-1) for f in self._resampler.resample(frame)]
        self._heard = np.concatenate([self._heard, *parts])

    def on_frame(self, frame: Frame) -> None:
        if frame.speaking and frame.utterance == self._utterance:
            self._release(round((frame.state.time_s + self._dt) * AUDIO_RATE))
        if self._utterance in frame.ended:
            self._release_all()

    def on_interrupt(self) -> None:
        self._utterance = None
        self._heard = np.zeros(0, np.int16)
        self._out.clear()
        self._out_len = 0
        self._playing = False

    def _release(self, until: int) -> None:
        take = max(0, until - self._heard_start)
        if take:
            self._out.append(self._heard[:take])
            self._out_len += len(self._out[-1])
            self._heard, self._heard_start = self._heard[take:], self._heard_start + take

    def _release_all(self) -> None:
        self._release(self._heard_start + len(self._heard))

    def _take(self, n: int) -> np.ndarray:
        out = np.zeros(n, np.int16)
        filled = 0
        while filled < n and self._out:
            head = self._out[0]
            k = min(n - filled, len(head))
            out[filled:filled + k] = head[:k]
            filled += k
            if k == len(head):
                self._out.popleft()
            else:
                self._out[0] = head[k:]
        self._out_len -= filled
        return out

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        count = await self._pacer.tick()
        if not self._playing and self._out_len >= PREROLL_S * AUDIO_RATE:
            self._playing = True
        pcm = self._take(AUDIO_FRAME) if self._playing else np.zeros(AUDIO_FRAME, np.int16)
        if self._playing and self._out_len == 0:
            self._playing = False
        frame = av.AudioFrame.from_ndarray(pcm[None], format="s16", layout="mono")
        frame.sample_rate = AUDIO_RATE
        frame.pts = count * AUDIO_FRAME
        frame.time_base = Fraction(1, AUDIO_RATE)
        return frame


class WebRtcPeers:
    """One peer connection per session at most; closed with the session or when the peer goes."""

    def __init__(self, executor: Executor) -> None:
        self._executor = executor
        self._peers: dict[str, tuple[RTCPeerConnection, SpeechAudioTrack]] = {}

    def __len__(self) -> int:
        return len(self._peers)

    async def answer(self, session: StreamSession, avatar: Avatar, offer: RTCSessionDescription,
                     width_px: int, height_px: int) -> RTCSessionDescription:
        """Answer a client's offer with the session's video and audio tracks (a new offer replaces the old)."""
        await self.close(session)
        pc = RTCPeerConnection()
        audio = SpeechAudioTrack(session.fps)
        self._peers[session.session_id] = (pc, audio)
        session.listeners.append(audio)

        @pc.on("connectionstatechange")
        async def _on_state() -> None:
            if pc.connectionState in ("failed", "closed") and \
                    self._peers.get(session.session_id, (None,))[0] is pc:
                await self.close(session)

        try:
            await pc.setRemoteDescription(offer)
            pc.addTrack(AvatarVideoTrack(session, avatar, width_px, height_px, self._executor))
            pc.addTrack(audio)
            await pc.setLocalDescription(await pc.createAnswer())
        except Exception:
            await self.close(session)
            raise
        return pc.localDescription

    async def close(self, session: StreamSession) -> None:
        entry = self._peers.pop(session.session_id, None)
        if entry is None:
            return
        pc, audio = entry
        if audio in session.listeners:
            session.listeners.remove(audio)
        for sender in pc.getSenders():
            if sender.track is not None:
                sender.track.stop()
        await pc.close()
