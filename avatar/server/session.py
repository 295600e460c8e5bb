"""`StreamSession`: one client's live animation: speech audio in, one FaceState per frame out, paced in real time.

Pacing. Frames leave on a grid of 1/fps anchored at the last switch between
idling and speaking:
- idle frames (mannerisms, emotions, gestures) follow the grid;
- the first frame of speech leaves as soon as the audio model has produced it,
  so latency is the model's look-ahead, not that plus up to a frame of waiting;
  the grid is re-anchored there, and later speech frames leave when ready but
  at most `MAX_LEAD_S` ahead of it, so audio sent faster than real time still
  plays at real-time pace;
- mid-utterance, when the audio runs late, the face holds the last speech frame
  for up to `STALL_GRACE_S` before it idles (the mixer eases the mouth either way);
  after an utterance, idling resumes one frame period after its last frame;
- frames are never dropped: a late loop catches up, unless it is more than
  `MAX_CATCH_UP_S` behind, when the grid is re-anchored at now.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from animation import FaceMixer, MannerismProfile, StreamingAudio2Face
from animation.model import Audio2Face
from avatar.face_state import FaceState
from avatar.server.protocol import (PCM_FORMATS, EmotionMessage, GestureMessage, ProtocolError, StartMessage)

MAX_LEAD_S = 0.04
STALL_GRACE_S = 0.1
MAX_CATCH_UP_S = 0.5


@dataclass
class Frame:
    """One emitted frame.

    Attributes:
        number: the session's frame counter, from 0.
        state: the face; `state.time_s` is the utterance's audio time while speaking, else session time.
        speaking: whether it plays a speech frame.
        utterance: the utterance it plays (speaking frames), else None.
        ended: utterances whose last frame this was (or that ended with no frame at all).
        wall_s: when it left, on the session's clock (seconds).
    """

    number: int
    state: FaceState
    speaking: bool
    utterance: int | None
    ended: list[int]
    wall_s: float


class SessionListener(Protocol):
    """Something that follows a session as it runs (the WebRTC tracks)."""

    def on_audio(self, utterance: int, samples: np.ndarray, sample_rate: int) -> None:
        """[n] float32 mono samples of `utterance`, in order, as they arrive."""

    def on_frame(self, frame: Frame) -> None:
        """A frame has just been emitted."""

    def on_interrupt(self) -> None:
        """Speech stopped: drop what has not played."""


@dataclass
class _Utterance:
    number: int
    pushed: int = 0      # speech frames handed to the mixer
    played: int = 0      # of which emitted
    closed: bool = False


@dataclass
class StreamSession:
    """A live session: feed it client messages; iterate `frames()` for its output.

    Not thread-safe: one asyncio loop drives it.
    """

    session_id: str
    avatar_id: str
    fps: float
    model: Audio2Face
    profile: MannerismProfile | None = None
    seed: int = 0
    clock: Callable[[], float] = time.monotonic
    listeners: list[SessionListener] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.mixer = FaceMixer(self.fps, self.profile, self.seed)
        self.speech = StreamingAudio2Face(self.model, self.fps)
        self.created_s = self.last_message_s = self.clock()
        self.latest: Frame | None = None
        self.closed = False
        self._dt = 1.0 / self.fps
        self._wake = asyncio.Event()
        self._utterances: deque[_Utterance] = deque()
        self._open: _Utterance | None = None
        self._dtype = PCM_FORMATS["pcm_s16le"]
        self._rate = 16000
        self._partial = b""                  # bytes of a sample split across messages
        self._count = 0                      # utterances started
        self._frame_number = 0
        self._last_speaking = False
        self._anchor_s = self._last_emit_s = self.created_s
        self._anchor_frame = 0

    @property
    def look_ahead_s(self) -> float:
        return self.speech.look_ahead_s

    @property
    def speaking(self) -> bool:
        """An utterance is open or has frames still to play."""
        return bool(self._utterances)

    def touch(self) -> None:
        """Record a client message (for the idle timeout)."""
        self.last_message_s = self.clock()

    def start(self, message: StartMessage) -> None:
        """Open an utterance; one still open is ended first, so its frames still play."""
        if self._open is not None:
            self.end()
        self._count += 1
        self._open = _Utterance(self._count)
        self._utterances.append(self._open)
        self._dtype = PCM_FORMATS[message.format]
        self._rate = message.sample_rate
        self._partial = b""

    def push_audio(self, data: bytes) -> None:
        """Raw PCM of the open utterance, any length; ProtocolError when no utterance is open."""
        if self._open is None:
            raise ProtocolError("no_utterance", 'audio before "start": send {"type":"start","sample_rate":..,'
                                                '"format":"pcm_s16le"} first')
        data = self._partial + data
        usable = len(data) - len(data) % self._dtype.itemsize
        self._partial = data[usable:]
        samples = np.frombuffer(data[:usable], self._dtype).astype(np.float32)
        if self._dtype.kind == "i":
            samples *= 1.0 / 32768.0
        elif not np.isfinite(samples).all():
            raise ProtocolError("bad_audio", "the pcm_f32le audio holds NaN or infinite samples; they were dropped")
        if len(samples) == 0:
            return
        for listener in self.listeners:
            listener.on_audio(self._open.number, samples, self._rate)
        self._queue_speech(*self.speech.push_with_energy(samples, self._rate))

    def end(self) -> None:
        """Close the open utterance: its last frames are computed now and play after the others."""
        if self._open is None:
            raise ProtocolError("no_utterance", '"end" without an open utterance: send "start" and audio first')
        self._queue_speech(*self.speech.flush_with_energy())
        self._open.closed = True
        self._open = None
        self._partial = b""
        self.mixer.end_speech()
        self._wake.set()

    def interrupt(self) -> list[int]:
        """Stop speaking now; returns the utterances cut short (open or with frames left to play)."""
        cut = [u.number for u in self._utterances]
        self._utterances.clear()
        self._open = None
        self._partial = b""
        self.speech.reset()
        self.mixer.interrupt()
        for listener in self.listeners:
            listener.on_interrupt()
        self._wake.set()
        return cut

    def emotion(self, message: EmotionMessage) -> None:
        if message.name in (None, "neutral"):
            self.mixer.clear_emotion(message.fade_s)
            return
        try:
            self.mixer.set_emotion(message.name, message.intensity, message.fade_s)
        except ValueError as exc:
            raise ProtocolError("unknown_emotion", str(exc)) from None

    def gesture(self, message: GestureMessage) -> None:
        try:
            self.mixer.gesture(message.name, message.intensity)
        except ValueError as exc:
            raise ProtocolError("unknown_gesture", str(exc)) from None

    def close(self) -> None:
        self.closed = True
        self._wake.set()

    async def frames(self) -> AsyncIterator[Frame]:
        """Frames in real time until `close()`; see the module's notes on pacing."""
        while not self.closed:
            due = self._due_s()
            wait = due - self.clock()
            if wait > 0:
                self._wake.clear()
                try:
                    async with asyncio.timeout(wait):
                        await self._wake.wait()
                    continue  # something changed: work out the due time again
                except TimeoutError:
                    pass
            if self.closed:
                return
            yield self._emit()

    def _queue_speech(self, weights: np.ndarray, energy: np.ndarray) -> None:
        if len(weights):
            self.mixer.push_speech(weights, energy)
            self._utterances[-1].pushed += len(weights)
            self._wake.set()

    def _due_s(self) -> float:
        grid = self._anchor_s + (self._frame_number - self._anchor_frame) * self._dt
        if self.mixer.queued_frames:
            return grid - MAX_LEAD_S if self._last_speaking else -math.inf
        if self._last_speaking:
            # Speech may have run up to MAX_LEAD_S ahead of the grid: idle on from its last frame.
            after_speech = self._last_emit_s + self._dt
            return after_speech + STALL_GRACE_S if self._open is not None else min(grid, after_speech)
        return grid

    def _emit(self) -> Frame:
        now = self.clock()
        state, speaking = self.mixer.next_frame()
        grid = self._anchor_s + (self._frame_number - self._anchor_frame) * self._dt
        if speaking != self._last_speaking or now - grid > MAX_CATCH_UP_S:
            self._anchor_s, self._anchor_frame = now, self._frame_number
        self._last_speaking = speaking
        self._last_emit_s = now
        utterance = None
        if speaking:
            current = next(u for u in self._utterances if u.played < u.pushed)
            current.played += 1
            utterance = current.number
        ended = []
        while self._utterances and self._utterances[0].closed and \
                self._utterances[0].played == self._utterances[0].pushed:
            ended.append(self._utterances.popleft().number)
        frame = Frame(self._frame_number, state, speaking, utterance, ended, now)
        self._frame_number += 1
        self.latest = frame
        for listener in self.listeners:
            listener.on_frame(frame)
        return frame
