"""Emotions and gestures: ARKit weight presets and head-pose curves over time.

An emotion (happy, sad, angry, surprised, thinking) is held at an intensity
and fades in and out; a gesture (nod, shake, smile) plays once for about a
second. `Expressions` tracks both against a clock and sums them into one
contribution per frame. Head rotations follow `avatar.camera`: +x turns the
face down, +y to the subject's left, +z tilts it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from avatar.arkit import NUM_WEIGHTS, weights_from_named

DEFAULT_FADE_S = 0.3
# Shorter fades are lengthened to this: at 30 fps a smoothstep over 6 frames
# moves a full-strength preset (weights up to 0.8) by at most 0.2 a frame.
MIN_FADE_S = 0.2


@dataclass(frozen=True)
class Emotion:
    """A held expression at intensity 1.

    Attributes:
        weights: [52] float32 ARKit weights added to the face.
        head_rotation: [3] axis-angle bias of the head pose, radians.
        gaze_rad: [2] (yaw to the subject's left, pitch up) bias of where the eyes fixate.
    """

    weights: np.ndarray
    head_rotation: np.ndarray
    gaze_rad: np.ndarray


@dataclass(frozen=True)
class Gesture:
    """A one-shot movement at intensity 1: `curve(u)` scales head rotation and weights over u in [0, 1].

    Attributes:
        duration_s: how long it plays.
        head_rotation: [3] axis-angle at curve value 1, radians.
        weights: [52] float32 ARKit weights at curve value 1.
        curve: u in [0, 1] -> multiplier; 0 with zero slope at both ends, so it starts and stops smoothly.
    """

    duration_s: float
    head_rotation: np.ndarray
    weights: np.ndarray
    curve: Callable[[float], float]


def _emotion(weights: dict[str, float], head_rotation: tuple[float, float, float] = (0.0, 0.0, 0.0),
             gaze_rad: tuple[float, float] = (0.0, 0.0)) -> Emotion:
    return Emotion(weights_from_named(weights), np.array(head_rotation), np.array(gaze_rad))


def _both(stem: str, value: float) -> dict[str, float]:
    return {f"{stem}Left": value, f"{stem}Right": value}


# Presets after FACS: happy AU6+12, sad AU1+4+15, angry AU4+5+7+23, surprised
# AU1+2+5+26; thinking is a one-sided brow, pressed lips and a look up-aside.
EMOTIONS: dict[str, Emotion] = {
    "happy": _emotion({**_both("mouthSmile", 0.7), **_both("cheekSquint", 0.45), **_both("eyeSquint", 0.25),
                       **_both("mouthDimple", 0.15)},
                      head_rotation=(-0.03, 0.0, 0.03)),
    "sad": _emotion({"browInnerUp": 0.65, **_both("browDown", 0.15), **_both("mouthFrown", 0.5),
                     "mouthShrugLower": 0.3, **_both("mouthPress", 0.1), **_both("eyeSquint", 0.1)},
                    head_rotation=(0.08, 0.0, 0.0), gaze_rad=(0.0, -0.08)),
    "angry": _emotion({**_both("browDown", 0.75), **_both("eyeSquint", 0.3), **_both("eyeWide", 0.1),
                       **_both("noseSneer", 0.35), **_both("mouthPress", 0.3), **_both("mouthFrown", 0.2),
                       **_both("mouthUpperUp", 0.15)},
                      head_rotation=(0.04, 0.0, 0.0)),
    "surprised": _emotion({"browInnerUp": 0.8, **_both("browOuterUp", 0.75), **_both("eyeWide", 0.65),
                           "jawOpen": 0.25, "mouthFunnel": 0.1},
                          head_rotation=(-0.05, 0.0, 0.0)),
    "thinking": _emotion({"browDownLeft": 0.3, "browOuterUpRight": 0.35, "browInnerUp": 0.2,
                          **_both("mouthPress", 0.2), "mouthLeft": 0.2, **_both("eyeSquint", 0.15)},
                         head_rotation=(-0.06, 0.08, 0.04), gaze_rad=(0.2, 0.18)),
}


def _smoothstep(x: float) -> float:
    x = min(max(x, 0.0), 1.0)
    return x * x * (3.0 - 2.0 * x)


def _dips(cycles: float) -> Callable[[float], float]:
    """Head goes one way and back `cycles` times (a nod dips down, never up), under a sine window."""
    return lambda u: math.sin(math.pi * u) * 0.5 * (1.0 - math.cos(2.0 * math.pi * cycles * u))


def _swings(cycles: float) -> Callable[[float], float]:
    """Head swings both ways `cycles` times (half-integer cycles end at rest), under a sine window."""
    return lambda u: math.sin(math.pi * u) * math.sin(2.0 * math.pi * cycles * u)


def _hold(rise: float, fall: float) -> Callable[[float], float]:
    """Eased rise over the first `rise` of the time, hold, eased fall over the last `fall`."""
    return lambda u: _smoothstep(u / rise) * _smoothstep((1.0 - u) / fall)


GESTURES: dict[str, Gesture] = {
    "nod": Gesture(0.9, np.array([0.12, 0.0, 0.0]), np.zeros(NUM_WEIGHTS, dtype=np.float32), _dips(2)),
    "shake": Gesture(1.1, np.array([0.0, 0.15, 0.0]), np.zeros(NUM_WEIGHTS, dtype=np.float32), _swings(2.5)),
    "smile": Gesture(1.2, np.zeros(3),
                     weights_from_named({**_both("mouthSmile", 0.6), **_both("cheekSquint", 0.35),
                                         **_both("eyeSquint", 0.15), **_both("mouthDimple", 0.1)}),
                     _hold(0.25, 0.4)),
}


def emotion(name: str) -> Emotion:
    """The preset called `name`; ValueError naming the valid ones if there is none."""
    return _lookup(EMOTIONS, name, "emotion")


def gesture(name: str) -> Gesture:
    """The gesture called `name`; ValueError naming the valid ones if there is none."""
    return _lookup(GESTURES, name, "gesture")


_T = TypeVar("_T")


def _lookup(table: dict[str, _T], name: str, kind: str) -> _T:
    try:
        return table[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown {kind} {name!r}; valid: {', '.join(table)}") from None


def _check_intensity(intensity: float) -> float:
    if not 0.0 <= intensity <= 1.0:
        raise ValueError(f"intensity must be in [0, 1], got {intensity}")
    return float(intensity)


@dataclass
class _Ramp:
    """A value eased (smoothstep) from `start` to `end` over [t0_s, t0_s + duration_s]."""

    start: float
    end: float
    t0_s: float
    duration_s: float

    def value(self, t_s: float) -> float:
        return self.start + (self.end - self.start) * _smoothstep((t_s - self.t0_s) / self.duration_s)


class Expressions:
    """The emotion being held (with its fades) and the gestures under way, on a caller's clock.

    One emotion is the target at a time: setting another cross-fades, the old
    one fading out while the new one fades in. Gestures add to each other and
    to the emotion. Times are seconds on one clock that must not run backwards.
    """

    def __init__(self) -> None:
        self._levels: dict[str, _Ramp] = {}
        self._gestures: list[tuple[Gesture, float, float]] = []   # (gesture, start s, intensity)

    def set_emotion(self, name: str, intensity: float, t_s: float, fade_s: float = DEFAULT_FADE_S) -> None:
        """From `t_s`, fade `name` to `intensity` in [0, 1] and every other emotion out, over `fade_s`.

        Raises:
            ValueError: unknown name, or intensity outside [0, 1].
        """
        emotion(name)
        intensity = _check_intensity(intensity)
        for other in self._levels:
            if other != name:
                self._fade(other, 0.0, t_s, fade_s)
        self._fade(name, intensity, t_s, fade_s)

    def clear_emotion(self, t_s: float, fade_s: float = DEFAULT_FADE_S) -> None:
        """From `t_s`, fade every emotion out over `fade_s` (back to neutral)."""
        for name in self._levels:
            self._fade(name, 0.0, t_s, fade_s)

    def gesture(self, name: str, t_s: float, intensity: float = 1.0) -> None:
        """Start gesture `name` at `t_s`, scaled by `intensity` in [0, 1].

        Raises:
            ValueError: unknown name, or intensity outside [0, 1].
        """
        self._gestures.append((gesture(name), t_s, _check_intensity(intensity)))

    def level(self, name: str, t_s: float) -> float:
        """Current (faded) intensity of emotion `name` at `t_s`."""
        emotion(name)
        ramp = self._levels.get(name)
        return 0.0 if ramp is None else ramp.value(t_s)

    def evaluate(self, t_s: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Sum of emotions and gestures at `t_s`; finished fades and gestures are dropped.

        Returns:
            weights: [52] float32 to add to the face (not clipped).
            head_rotation: [3] axis-angle, radians (small: sums compose).
            gaze_rad: [2] (yaw, pitch) offset for where the eyes fixate.
        """
        weights = np.zeros(NUM_WEIGHTS, dtype=np.float32)
        rotation = np.zeros(3)
        gaze = np.zeros(2)
        for name, ramp in list(self._levels.items()):
            level = ramp.value(t_s)
            if level == 0.0 and t_s >= ramp.t0_s + ramp.duration_s:
                del self._levels[name]
                continue
            preset = EMOTIONS[name]
            weights += level * preset.weights
            rotation += level * preset.head_rotation
            gaze += level * preset.gaze_rad
        for g, start_s, intensity in self._gestures:
            u = (t_s - start_s) / g.duration_s
            if 0.0 < u < 1.0:
                c = intensity * g.curve(u)
                weights += c * g.weights
                rotation += c * g.head_rotation
        if self._gestures:
            self._gestures = [entry for entry in self._gestures if t_s < entry[1] + entry[0].duration_s]
        return weights, rotation, gaze

    def _fade(self, name: str, target: float, t_s: float, fade_s: float) -> None:
        """Ramp `name` from wherever it is now to `target`: a change mid-fade stays continuous."""
        if fade_s < 0:
            raise ValueError(f"fade_s must be >= 0, got {fade_s}")
        self._levels[name] = _Ramp(self.level(name, t_s), target, t_s, max(fade_s, MIN_FADE_S))
