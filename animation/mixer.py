"""`FaceMixer`: speech, mannerisms, emotions and external weights into one FaceState per frame.

Layering, per output frame:
- speech frames own the mouth/jaw channels (`SPEECH_CHANNELS`) while they play;
  their other channels are not used (mannerisms own the eyes, emotions the brows);
- emotions and gestures add to every channel, at `SPEAKING_EMOTION_MOUTH_GAIN`
  on the mouth while speaking so that lip-sync stays readable;
- mannerisms add blinks, gaze (as eyeLook* weights), head motion and breathing;
- external weights (a Live Link Face stream, say) replace the result by their blend;
- everything is clipped to [0, 1].
Every switch the mixer makes is eased: the mouth cross-fades from its last
output over `TRANSITION_S` when speech starts, ends, stalls or is interrupted,
emotions fade, and the external blend ramps over `EXTERNAL_FADE_S`.
"""

from __future__ import annotations

from collections import deque
from typing import NamedTuple

import numpy as np

from animation.expressions import DEFAULT_FADE_S, Expressions
from animation.mannerisms import MannerismProfile, Mannerisms
from avatar.arkit import ARKIT_NAMES, NUM_WEIGHTS, index_of
from avatar.face_state import FaceState

SPEECH_CHANNELS: tuple[str, ...] = tuple(
    n for n in ARKIT_NAMES if n.startswith(("jaw", "mouth")) or n in ("cheekPuff", "tongueOut"))
_SPEECH_MASK = np.array([n in SPEECH_CHANNELS for n in ARKIT_NAMES])
_JAW_OPEN = index_of("jawOpen")

# Mouth cross-fade at speech start/end/interrupt. At 30 fps it spans ~4 frames,
# so no frame moves a channel by more than 0.28 of the gap it closes (the
# release after an interrupt is over in 0.12 s: quick, yet no pop).
TRANSITION_S = 0.12
# Switching an external source in or out is a change of puppeteer, not of
# lip-sync: it can take longer, and at 30 fps its step (0.07) plus the mouth's
# (0.28) stays under 0.35 even when both transitions fall on the same frame.
EXTERNAL_FADE_S = 0.5
SPEAKING_EMOTION_MOUTH_GAIN = 0.35


class _Chunk(NamedTuple):
    weights: np.ndarray          # [k, 52] float32
    energy: np.ndarray | None    # [k] float32, or None: use jawOpen
    starts_utterance: bool


class FaceMixer:
    """Mixes all animation sources into one FaceState stream, one `next_frame` per output frame.

    Speech arrives in chunks (`push_speech`) at the output frame rate and plays
    in order, one frame per `next_frame`. An utterance is the run of frames
    pushed from the first `push_speech` until `end_speech` or `interrupt`;
    between utterances (and when the queue runs dry mid-utterance) the face
    idles: mannerisms, emotions and gestures go on.

    `FaceState.time_s` of a frame:
    - speaking frames (those that play a speech frame): the utterance's audio
      time, i.e. (frames of this utterance played before this one) / fps, so
      0.0 for its first frame; a stall does not advance it;
    - every other frame: the session time, (frames emitted since the mixer was
      made) / fps.
    Gaze is carried by the eyeLook* weights (as in tracked faces), so
    `FaceState.gaze_rad` stays 0 and a renderer does not turn the eyes twice.
    Head pose is an offset from the rest pose (translation in cm, rotation
    axis-angle), in `avatar.camera` conventions.
    """

    def __init__(self, fps: float, profile: MannerismProfile | None = None, seed: int = 0) -> None:
        if not fps > 0:
            raise ValueError(f"fps must be > 0, got {fps}")
        self.fps = float(fps)
        self._dt = 1.0 / self.fps
        self._mannerisms = Mannerisms(profile, seed)
        self._expressions = Expressions()
        self._frame = 0
        self._queue: deque[_Chunk] = deque()
        self._row = 0                  # next row of the chunk at the head of the queue
        self._queued = 0
        self._open = False             # an utterance is accepting frames
        self._utterance_frame = 0
        self._was_speaking = False
        self._mouth = np.zeros(NUM_WEIGHTS, dtype=np.float32)      # last mouth output (speech channels)
        self._snapshot = np.zeros(NUM_WEIGHTS, dtype=np.float32)   # mouth when the cross-fade began
        self._target = np.zeros(NUM_WEIGHTS, dtype=np.float32)
        self._fade = 1.0
        self._external = np.zeros(NUM_WEIGHTS, dtype=np.float32)
        self._external_blend = 0.0
        self._external_target = 0.0

    @property
    def session_time_s(self) -> float:
        """Session time of the next frame, seconds."""
        return self._frame * self._dt

    @property
    def queued_frames(self) -> int:
        """Speech frames waiting to play."""
        return self._queued

    def push_speech(self, weights: np.ndarray, energy: np.ndarray | None = None) -> None:
        """Queue speech frames to play after those already queued, one per output frame.

        The first push after `end_speech`/`interrupt` (or ever) starts a new utterance.

        Args:
            weights: [k, 52] (or [52]) ARKit weights at the output frame rate; copied.
            energy: [k] loudness per frame, any non-negative scale; its peaks
                nod the head on stressed syllables. None: jawOpen stands in.
        """
        weights = np.array(weights, dtype=np.float32, ndmin=2)
        if weights.ndim != 2 or weights.shape[1] != NUM_WEIGHTS:
            raise ValueError(f"speech weights must be [k, {NUM_WEIGHTS}], got {weights.shape}")
        if not np.isfinite(weights).all():
            raise ValueError("speech weights must be finite")
        if energy is not None:
            energy = np.array(energy, dtype=np.float32).reshape(-1)
            if len(energy) != len(weights) or not np.isfinite(energy).all():
                raise ValueError(f"energy must be [{len(weights)}] finite values, got shape {energy.shape}")
        if len(weights) == 0:
            return
        self._queue.append(_Chunk(weights, energy, not self._open))
        self._open = True
        self._queued += len(weights)

    def end_speech(self) -> None:
        """No more frames for this utterance: queued ones still play, then the mouth eases to rest."""
        self._open = False

    def interrupt(self) -> None:
        """Stop speech now: drop queued frames; the mouth releases to rest over `TRANSITION_S`."""
        self._queue.clear()
        self._row = self._queued = 0
        self._open = False

    def set_emotion(self, name: str, intensity: float = 1.0, fade_s: float = DEFAULT_FADE_S) -> None:
        """Fade to emotion `name` (happy, sad, angry, surprised, thinking) at intensity in [0, 1].

        Any other emotion fades out meanwhile. Raises ValueError for an unknown
        name (the message lists the valid ones) or an intensity outside [0, 1].
        """
        self._expressions.set_emotion(name, intensity, self.session_time_s, fade_s)

    def clear_emotion(self, fade_s: float = DEFAULT_FADE_S) -> None:
        """Fade back to a neutral expression."""
        self._expressions.clear_emotion(self.session_time_s, fade_s)

    def gesture(self, name: str, intensity: float = 1.0) -> None:
        """Play gesture `name` (nod, shake, smile) from the next frame; gestures add up.

        Raises ValueError for an unknown name (listing the valid ones).
        """
        self._expressions.gesture(name, self.session_time_s, intensity)

    def set_external(self, weights: np.ndarray | None, blend: float = 1.0) -> None:
        """Blend external weights over the mix: out = (1 - b) mix + b external.

        Call per incoming frame to stream. The effective blend b ramps to
        `blend` over `EXTERNAL_FADE_S`; None fades the last external weights out.

        Args:
            weights: [52] ARKit weights in `ARKIT_NAMES` order, or None.
            blend: in [0, 1].
        """
        if weights is None:
            self._external_target = 0.0
            return
        if not 0.0 <= blend <= 1.0:
            raise ValueError(f"blend must be in [0, 1], got {blend}")
        weights = np.asarray(weights, dtype=np.float32)
        if weights.shape != (NUM_WEIGHTS,) or not np.isfinite(weights).all():
            raise ValueError(f"external weights must be [{NUM_WEIGHTS}] finite values, got shape {weights.shape}")
        self._external[:] = weights
        self._external_target = float(blend)

    def next_frame(self) -> tuple[FaceState, bool]:
        """The next output frame, and whether it plays a speech frame; advances time by 1/fps."""
        t_s = self.session_time_s
        speech, energy, starts = self._pop_speech()
        speaking = speech is not None
        if starts:
            self._utterance_frame = 0
        if starts or speaking != self._was_speaking:
            self._snapshot[:] = self._mouth
            self._fade = 0.0
        self._was_speaking = speaking

        emotion_w, emotion_rot, emotion_gaze = self._expressions.evaluate(t_s)
        weights, rotation, translation, _ = self._mannerisms.step(
            t_s, speaking, energy, (float(emotion_gaze[0]), float(emotion_gaze[1])))
        self._mix_mouth(speech, emotion_w, weights)
        weights += emotion_w
        np.copyto(weights, self._mouth, where=_SPEECH_MASK)
        self._blend_external(weights)
        np.clip(weights, 0.0, 1.0, out=weights)
        rotation += emotion_rot

        time_s = self._utterance_frame * self._dt if speaking else t_s
        if speaking:
            self._utterance_frame += 1
        self._frame += 1
        return FaceState(time_s, weights, rotation, translation, np.zeros(2, dtype=np.float32)), speaking

    def _pop_speech(self) -> tuple[np.ndarray | None, float, bool]:
        """(speech row [52] or None, its energy, whether it starts an utterance)."""
        if not self._queue:
            return None, 0.0, False
        chunk = self._queue[0]
        row = self._row
        starts = chunk.starts_utterance and row == 0
        energy = float(chunk.weights[row, _JAW_OPEN] if chunk.energy is None else chunk.energy[row])
        self._row += 1
        self._queued -= 1
        if self._row == len(chunk.weights):
            self._queue.popleft()
            self._row = 0
        return chunk.weights[row], energy, starts

    def _mix_mouth(self, speech: np.ndarray | None, emotion_w: np.ndarray, manner_w: np.ndarray) -> None:
        """Update `self._mouth`: this frame's mouth target, cross-faded from the snapshot.

        mouth = snapshot + fade (target - snapshot), fade rising linearly from 0
        to 1 over TRANSITION_S after each switch; the target is speech plus
        damped emotion while speaking, else emotion plus breathing.
        """
        target = self._target
        if speech is not None:
            np.multiply(emotion_w, SPEAKING_EMOTION_MOUTH_GAIN, out=target)
            target += speech
        else:
            np.add(emotion_w, manner_w, out=target)
        np.clip(target, 0.0, 1.0, out=target)
        self._fade = min(1.0, self._fade + self._dt / TRANSITION_S)
        np.subtract(target, self._snapshot, out=self._mouth)
        self._mouth *= self._fade
        self._mouth += self._snapshot

    def _blend_external(self, weights: np.ndarray) -> None:
        """Ramp the external blend towards its target and apply it to `weights` in place."""
        step = self._dt / EXTERNAL_FADE_S
        self._external_blend += min(max(self._external_target - self._external_blend, -step), step)
        if self._external_blend > 0.0:
            weights += self._external_blend * (self._external - weights)
