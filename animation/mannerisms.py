"""Mannerisms: the blinks, saccades, head motion and breathing that keep a face alive.

`MannerismProfile` holds a person's rates and amplitudes (blinks learned from a
capture when it has enough of them, human defaults otherwise); `Mannerisms`
turns a profile into a seeded, deterministic per-frame stream of weight deltas,
head pose and gaze.

Conventions (`avatar.camera`): head space has y up, the face looking along +z,
x towards the subject's left. So a positive rotation about x turns the face
down (a nod), about y turns it to the subject's left, about z tilts it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

import numpy as np

from avatar.arkit import NUM_WEIGHTS, index_of

# Eye rotation at which an eyeLook* weight reaches 1 (about 30 degrees): the
# weights are a linear read-out of the gaze angle within that range.
EYE_LOOK_RANGE_RAD = 0.5

_BLINK_L, _BLINK_R = index_of("eyeBlinkLeft"), index_of("eyeBlinkRight")
_LOOK_OUT_L, _LOOK_IN_L = index_of("eyeLookOutLeft"), index_of("eyeLookInLeft")
_LOOK_OUT_R, _LOOK_IN_R = index_of("eyeLookOutRight"), index_of("eyeLookInRight")
_LOOK_UP = (index_of("eyeLookUpLeft"), index_of("eyeLookUpRight"))
_LOOK_DOWN = (index_of("eyeLookDownLeft"), index_of("eyeLookDownRight"))
_JAW_OPEN = index_of("jawOpen")
_NOSTRILS = (index_of("noseSneerLeft"), index_of("noseSneerRight"))

# Blink detection in tracked weights (MediaPipe: open eyes ~0.0-0.15, blinks
# peak at ~0.5-0.8 when sampled at 25-30 fps). Rises above the clip's median.
_BLINK_ON_RISE = 0.25
_BLINK_OFF_RISE = 0.12
_MAX_BLINK_FWHM_S = 0.5    # longer closures are deliberate (squints, eyes shut), not blinks
_MIN_CLIP_S = 10.0         # shorter clips say too little about a blink rate
_MIN_BLINKS = 3
_LEARNED_RATE_RANGE = (4.0, 40.0)        # per minute: outside this the detector was fooled
_LEARNED_DURATION_RANGE = (0.05, 0.4)    # seconds

# Blink shape: the lids close in a third of the blink and reopen in two thirds;
# with half-cosine ramps the time spent more than half closed is 1.5 x closing.
_BLINK_OPEN_OVER_CLOSE = 2.0
_PAUSE_BLINK_PROBABILITY = 0.6           # a speech pause invites a blink
_PAUSE_BLINK_DELAY_S = (0.05, 0.25)

_LOOK_AWAY_PROBABILITY = {False: 0.15, True: 0.3}   # speakers avert their gaze more than listeners
_LOOK_AWAY_SCALE = 3.0
_MIN_FIXATION_S = 0.2
_MAX_GAZE_RAD = 0.45
_DRIFT_SIGMA_RAD = 0.003   # fixation drift: an Ornstein-Uhlenbeck process
_DRIFT_TAU_S = 0.5

_SPEAKING_TAU_S = 0.4      # how fast head motion follows the start and end of speech
_SWAY_AXES = np.array([1.0, 1.0, 0.6])   # pitch, yaw, roll: heads tilt less than they turn
_SWAY_TRANSLATION_CM = np.array([0.4, 0.0, 0.3])
_NOISE_SINES = 4
_SLOW_BAND_HZ = (0.05, 0.3)
_LIVELY_BAND_HZ = (0.3, 1.2)

_ENERGY_TAU_S = 3.0        # running mean/variance of speech energy: loudness-scale free
_NOD_PROMINENCE = 1.5      # energy peaks this many standard deviations up count as stress
_NOD_PROBABILITY = 0.7
_NOD_PEAK_S = 0.15         # time to the bottom of a stress nod
_LISTENING_NOD_PEAK_S = 0.25
_LISTENING_NOD_SCALE = 0.8

_INHALE_FRACTION = 0.4
_BREATH_PITCH_RAD = -0.006   # the head tips back a little on the in-breath
_BREATH_RISE_CM = 0.15
_BREATH_JAW = 0.015
_BREATH_NOSTRILS = 0.04
_BREATH_RATE_JITTER = 0.1


@dataclass(frozen=True)
class MannerismProfile:
    """How a person blinks, looks, moves the head and breathes.

    Defaults are typical adult values in conversation (blinks: about 17 per
    minute at rest, Bentivoglio et al. 1997).

    Attributes:
        blink_rate_per_min: mean blinks per minute (0 disables blinks).
        blink_duration_s: time the lids spend more than half closed in a blink
            (full width at half maximum; the whole blink takes twice as long).
        blink_refractory_s: shortest time between the starts of two blinks.
        saccade_interval_s: mean time between gaze shifts.
        gaze_amplitude_rad: spread (standard deviation per axis) of fixations
            while looking at the listener; look-aways go about 3x further.
        head_sway_amplitude_rad: amplitude of the slow idle head sway.
        speaking_sway_gain: extra, livelier head motion while speaking, as a
            multiple of `head_sway_amplitude_rad`.
        nod_amplitude_rad: depth of a nod on a stressed syllable.
        nod_cooldown_s: shortest time between two nods.
        listening_nod_interval_s: mean time between nods while not speaking
            (`math.inf` disables them).
        breathing_rate_per_min: breaths per minute.
    """

    blink_rate_per_min: float = 17.0
    blink_duration_s: float = 0.12
    blink_refractory_s: float = 0.8
    saccade_interval_s: float = 1.0
    gaze_amplitude_rad: float = 0.05
    head_sway_amplitude_rad: float = 0.02
    speaking_sway_gain: float = 1.5
    nod_amplitude_rad: float = 0.05
    nod_cooldown_s: float = 0.6
    listening_nod_interval_s: float = 12.0
    breathing_rate_per_min: float = 14.0

    def __post_init__(self) -> None:
        for f in fields(self):
            if not getattr(self, f.name) >= 0:
                raise ValueError(f"MannerismProfile.{f.name} must be >= 0, got {getattr(self, f.name)}")
        for name in ("blink_duration_s", "saccade_interval_s", "listening_nod_interval_s"):
            if getattr(self, name) == 0:
                raise ValueError(f"MannerismProfile.{name} must be > 0")

    @classmethod
    def from_track_weights(cls, time_s: np.ndarray, weights: np.ndarray,
                           defaults: MannerismProfile | None = None) -> MannerismProfile:
        """Learn blink rate and duration from the eyeBlink* weights of a tracked video.

        Falls back to `defaults` (human defaults when None) for both when the
        clip has under 10 s of valid frames or under 3 blinks; see
        `detect_blinks` for what counts as a blink.

        Args:
            time_s: [T] frame times, seconds, increasing.
            weights: [T, 52] ARKit weights; NaN rows (frames without a face) are gaps.
        """
        defaults = cls() if defaults is None else defaults
        time_s = np.asarray(time_s, dtype=np.float64)
        blinks = detect_blinks(time_s, weights)
        valid_s = _valid_duration_s(time_s, _blink_signal(weights))
        if valid_s < _MIN_CLIP_S or len(blinks) < _MIN_BLINKS:
            return defaults
        rate = float(np.clip(60.0 * len(blinks) / valid_s, *_LEARNED_RATE_RANGE))
        duration = float(np.clip(np.mean([fwhm for _, fwhm in blinks]), *_LEARNED_DURATION_RANGE))
        return replace(defaults, blink_rate_per_min=rate, blink_duration_s=duration)


def detect_blinks(time_s: np.ndarray, weights: np.ndarray) -> list[tuple[float, float]]:
    """Blinks in tracked weights: both eyes closing and reopening within 0.5 s.

    The signal is min(eyeBlinkLeft, eyeBlinkRight) (so winks don't count). A
    blink starts when it rises 0.25 above the clip's median and ends when it
    falls back below median + 0.12 (hysteresis, so noise near one threshold
    does not split a blink). Its duration is the full width at half its peak
    above the median, with crossings interpolated between frames. Blinks that
    touch a gap (NaN) or the clip's ends are dropped.

    Args:
        time_s: [T] frame times, seconds, increasing.
        weights: [T, 52] ARKit weights.
    Returns:
        (peak time s, duration s) per blink, in time order.
    """
    time_s = np.asarray(time_s, dtype=np.float64)
    signal = _blink_signal(weights)
    if not np.isfinite(signal).any():
        return []
    baseline = float(np.nanmedian(signal))
    on, off = baseline + _BLINK_ON_RISE, baseline + _BLINK_OFF_RISE
    blinks = []
    start, closed = 0, False
    for i, value in enumerate(signal):
        if not np.isfinite(value):
            closed = False            # a gap ends any blink in progress, which is then dropped
        elif not closed and value > on:
            closed, start = True, i
        elif closed and value < off:
            closed = False
            blink = _measure_blink(time_s, signal, start, i, baseline)
            if blink is not None and blink[1] <= _MAX_BLINK_FWHM_S:
                blinks.append(blink)
    return blinks


def _blink_signal(weights: np.ndarray) -> np.ndarray:
    """[T, 52] weights -> [T] float64 min of the two eyeBlink weights (NaN in gaps)."""
    weights = np.asarray(weights, dtype=np.float64)
    if weights.ndim != 2 or weights.shape[1] != NUM_WEIGHTS:
        raise ValueError(f"weights must be [T, {NUM_WEIGHTS}], got {weights.shape}")
    return np.minimum(weights[:, _BLINK_L], weights[:, _BLINK_R])


def _valid_duration_s(time_s: np.ndarray, signal: np.ndarray) -> float:
    """Seconds covered by frames with data: one median frame interval per valid frame."""
    if len(time_s) != len(signal):
        raise ValueError(f"time_s has {len(time_s)} frames but weights has {len(signal)}")
    if len(time_s) < 2:
        return 0.0
    return float(np.isfinite(signal).sum() * np.median(np.diff(time_s)))


def _measure_blink(time_s: np.ndarray, signal: np.ndarray, start: int, end: int,
                   baseline: float) -> tuple[float, float] | None:
    """(peak time, FWHM) of the blink in frames [start, end), or None if it touches a gap or an end."""
    peak_i = start + int(np.argmax(signal[start:end]))
    half = 0.5 * (baseline + signal[peak_i])
    i = j = peak_i
    while i > 0 and signal[i - 1] > half:      # NaN compares False: a gap stops the walk
        i -= 1
    while j + 1 < len(signal) and signal[j + 1] > half:
        j += 1
    if i == 0 or j + 1 == len(signal) or not (np.isfinite(signal[i - 1]) and np.isfinite(signal[j + 1])):
        return None
    rise = _crossing_s(time_s, signal, i - 1, i, half)
    fall = _crossing_s(time_s, signal, j, j + 1, half)
    return float(time_s[peak_i]), fall - rise


def _crossing_s(time_s: np.ndarray, signal: np.ndarray, a: int, b: int, level: float) -> float:
    """Time between frames a and b where the linearly interpolated signal equals `level`."""
    span = signal[b] - signal[a]
    u = 0.5 if span == 0 else float(np.clip((level - signal[a]) / span, 0.0, 1.0))
    return float(time_s[a] + u * (time_s[b] - time_s[a]))


def gaze_to_eye_look(gaze_rad: tuple[float, float], out: np.ndarray) -> None:
    """Write the eyeLook* weights that turn both eyes to `gaze_rad` into `out`.

    Args:
        gaze_rad: (yaw to the subject's left, pitch up), radians.
        out: [52] weights; only the eight eyeLook* entries are written.
    """
    yaw, pitch = gaze_rad[0] / EYE_LOOK_RANGE_RAD, gaze_rad[1] / EYE_LOOK_RANGE_RAD
    left, right = min(max(yaw, 0.0), 1.0), min(max(-yaw, 0.0), 1.0)
    # Looking to the subject's left turns the left eye outwards and the right eye inwards.
    out[_LOOK_OUT_L], out[_LOOK_IN_R] = left, left
    out[_LOOK_IN_L], out[_LOOK_OUT_R] = right, right
    up, down = min(max(pitch, 0.0), 1.0), min(max(-pitch, 0.0), 1.0)
    for i in _LOOK_UP:
        out[i] = up
    for i in _LOOK_DOWN:
        out[i] = down


class _SmoothNoise:
    """Band-limited noise: per channel, a sum of sines with random frequencies and phases.

    value(t)[c] = sum_k a_k sin(2 pi f_ck t + phi_ck), scaled to unit RMS.
    Smooth at any frame rate and free of state, so cheap and deterministic.
    """

    def __init__(self, rng: np.random.Generator, channels: int, band_hz: tuple[float, float]) -> None:
        self._omega = 2 * math.pi * rng.uniform(*band_hz, size=(channels, _NOISE_SINES))
        self._phase = rng.uniform(0, 2 * math.pi, size=(channels, _NOISE_SINES))
        self._gain = math.sqrt(2.0 / _NOISE_SINES)

    def value(self, t_s: float) -> np.ndarray:
        """[channels] noise at time t_s, zero mean, unit RMS."""
        return self._gain * np.sin(self._omega * t_s + self._phase).sum(axis=1)


def _pulse(tau_s: float, peak_s: float) -> float:
    """Smooth one-sided pulse (tau/peak)^2 e^(2 (1 - tau/peak)): 0 at tau 0, 1 at the peak, ~0 by 5x the peak."""
    if tau_s <= 0:
        return 0.0
    x = tau_s / peak_s
    return x * x * math.exp(2.0 * (1.0 - x))


def _min_jerk(u: float) -> float:
    """Minimum-jerk ease 10u^3 - 15u^4 + 6u^5 on [0, 1] (the velocity profile of a saccade)."""
    u = min(max(u, 0.0), 1.0)
    return u * u * u * (10.0 + u * (-15.0 + 6.0 * u))


class Mannerisms:
    """Seeded, deterministic generator of blinks, saccades, head motion and breathing.

    Call `step` once per output frame with increasing times. Random choices are
    drawn at events (a blink, a saccade, a nod), so the same seed and inputs
    give the same stream.
    """

    def __init__(self, profile: MannerismProfile | None = None, seed: int = 0) -> None:
        self.profile = MannerismProfile() if profile is None else profile
        self._rng = np.random.default_rng(seed)
        self._slow = _SmoothNoise(self._rng, 5, _SLOW_BAND_HZ)      # pitch, yaw, roll, x, z
        self._lively = _SmoothNoise(self._rng, 3, _LIVELY_BAND_HZ)  # pitch, yaw, roll
        self._t = None
        self._was_speaking = False
        self._speaking_level = 0.0
        self._blink_start = -math.inf
        self._blink_amplitude = 1.0
        self._next_blink = self._blink_gap()
        self._gaze_from = (0.0, 0.0)
        self._gaze_to = (0.0, 0.0)
        self._saccade_start = -math.inf
        self._saccade_s = 0.0
        self._looking_away = False
        self._next_saccade = self._fixation_s()
        self._drift = np.zeros(2)
        self._energy_mean = None
        self._energy_var = 0.0
        self._energy_prev = (0.0, 0.0)    # the two previous frames' energy, for peak picking
        self._nods: list[tuple[float, float, float]] = []   # (start s, amplitude rad, time to peak s)
        self._last_nod = -math.inf
        self._next_listening_nod = self._rng.exponential(self.profile.listening_nod_interval_s)
        self._breath_phase = 0.0
        self._breath_rate = 1.0

    def step(self, t_s: float, speaking: bool, energy: float = 0.0,
             gaze_offset_rad: tuple[float, float] = (0.0, 0.0)
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Advance to time `t_s` and return this frame's mannerisms.

        Args:
            t_s: time, seconds; must not decrease between calls.
            speaking: the face is speaking this frame.
            energy: loudness of this speech frame, any non-negative scale (it
                is normalised by its running mean and spread); peaks nod the head.
            gaze_offset_rad: (yaw, pitch) added to where the eyes fixate (an
                emotion's look up or aside); saccades go on around it.
        Returns:
            weights_delta: [52] float32 to add to the face: eyeBlink*, eyeLook*
                (the gaze below), and breathing's jawOpen/noseSneer*.
            head_rotation: [3] float32 axis-angle, radians (small: sums compose).
            head_translation_cm: [3] float32 offset from the rest position.
            gaze_rad: [2] float32 (yaw to the subject's left, pitch up): the
                direction the eyeLook* weights already encode, not an extra.
        """
        dt = 0.0 if self._t is None else t_s - self._t
        if dt < 0:
            raise ValueError(f"time went backwards: {t_s} s after {self._t} s")
        self._t = t_s
        if self._was_speaking and not speaking:
            self._on_speech_pause(t_s)
        self._was_speaking = speaking
        self._speaking_level += (float(speaking) - self._speaking_level) * (1.0 - math.exp(-dt / _SPEAKING_TAU_S))

        weights = np.zeros(NUM_WEIGHTS, dtype=np.float32)
        blink = self._blink(t_s)
        weights[_BLINK_L] = weights[_BLINK_R] = blink
        gaze = self._gaze(t_s, dt, speaking)
        gaze = (gaze[0] + gaze_offset_rad[0], gaze[1] + gaze_offset_rad[1])
        gaze_to_eye_look(gaze, weights)

        rotation = np.zeros(3)
        translation = np.zeros(3)
        self._head_sway(t_s, rotation, translation)
        rotation[0] += self._nod(t_s, dt, speaking, energy)
        breath = self._breath(dt)
        rotation[0] += _BREATH_PITCH_RAD * breath
        translation[1] += _BREATH_RISE_CM * breath
        weights[_JAW_OPEN] = _BREATH_JAW * breath
        for i in _NOSTRILS:
            weights[i] = _BREATH_NOSTRILS * breath
        return (weights, rotation.astype(np.float32), translation.astype(np.float32),
                np.array(gaze, dtype=np.float32))

    # Blinks -----------------------------------------------------------------

    def _blink_gap(self) -> float:
        """Seconds from one blink's start to the next: refractory + exponential, mean 60/rate."""
        p = self.profile
        if p.blink_rate_per_min == 0:
            return math.inf
        mean_free = max(60.0 / p.blink_rate_per_min - p.blink_refractory_s, 0.05)
        return p.blink_refractory_s + self._rng.exponential(mean_free)

    def _blink(self, t_s: float) -> float:
        """Lid closure in [0, 1] at t_s; starts the next blink when it is due."""
        if t_s >= self._next_blink:
            self._blink_start = self._next_blink
            self._blink_amplitude = self._rng.uniform(0.85, 1.0)   # not every blink closes fully
            self._next_blink = self._blink_start + self._blink_gap()
        close_s = self.profile.blink_duration_s / (0.5 + 0.5 * _BLINK_OPEN_OVER_CLOSE)
        tau = t_s - self._blink_start
        if tau < close_s:
            return self._blink_amplitude * (0.5 - 0.5 * math.cos(math.pi * tau / close_s))
        tau -= close_s
        open_s = _BLINK_OPEN_OVER_CLOSE * close_s
        if tau < open_s:
            return self._blink_amplitude * (0.5 + 0.5 * math.cos(math.pi * tau / open_s))
        return 0.0

    def _on_speech_pause(self, t_s: float) -> None:
        """Speakers tend to blink as they stop: bring the next blink forward, refractory allowing.

        Listening nods restart their clock, so that none falls due the moment speech ends.
        """
        self._next_listening_nod = t_s + self._rng.exponential(self.profile.listening_nod_interval_s)
        if (self.profile.blink_rate_per_min > 0 and self._rng.uniform() < _PAUSE_BLINK_PROBABILITY
                and t_s - self._blink_start > self.profile.blink_refractory_s):
            self._next_blink = min(self._next_blink, t_s + self._rng.uniform(*_PAUSE_BLINK_DELAY_S))

    # Gaze -------------------------------------------------------------------

    def _fixation_s(self) -> float:
        return _MIN_FIXATION_S + self._rng.exponential(max(self.profile.saccade_interval_s - _MIN_FIXATION_S, 0.01))

    def _gaze(self, t_s: float, dt: float, speaking: bool) -> tuple[float, float]:
        """Eye direction (yaw, pitch) at t_s: saccades between fixations, plus drift."""
        if t_s >= self._next_saccade:
            self._start_saccade(t_s, speaking)
        yaw, pitch = self._saccade_position(t_s)
        decay = math.exp(-dt / _DRIFT_TAU_S)
        drift = self._drift
        drift *= decay
        drift += _DRIFT_SIGMA_RAD * math.sqrt(1.0 - decay * decay) * self._rng.standard_normal(2)
        return yaw + float(drift[0]), pitch + float(drift[1])

    def _start_saccade(self, t_s: float, speaking: bool) -> None:
        """Pick the next fixation: near the listener, or (sometimes) a brief look away and back."""
        amplitude = self.profile.gaze_amplitude_rad
        self._gaze_from = self._saccade_position(t_s)
        if not self._looking_away and self._rng.uniform() < _LOOK_AWAY_PROBABILITY[speaking]:
            angle = self._rng.uniform(0, 2 * math.pi)
            radius = _LOOK_AWAY_SCALE * amplitude * self._rng.uniform(0.7, 1.3)
            target = (radius * math.cos(angle), radius * math.sin(angle))
            self._looking_away = True
        else:
            target = self._rng.normal(0.0, amplitude, size=2)
            self._looking_away = False
        self._gaze_to = (min(max(float(target[0]), -_MAX_GAZE_RAD), _MAX_GAZE_RAD),
                         min(max(float(target[1]), -_MAX_GAZE_RAD), _MAX_GAZE_RAD))
        # Main sequence: a saccade of A degrees takes about 21 + 2.2 A ms.
        degrees = math.degrees(math.hypot(self._gaze_to[0] - self._gaze_from[0], self._gaze_to[1] - self._gaze_from[1]))
        self._saccade_s = 0.021 + 0.0022 * degrees
        self._saccade_start = t_s
        self._next_saccade = t_s + self._fixation_s()

    def _saccade_position(self, t_s: float) -> tuple[float, float]:
        """Where the eyes are along the current saccade (at its target once it is over)."""
        s = _min_jerk((t_s - self._saccade_start) / self._saccade_s) if self._saccade_s > 0 else 1.0
        (y0, p0), (y1, p1) = self._gaze_from, self._gaze_to
        return y0 + s * (y1 - y0), p0 + s * (p1 - p0)

    # Head -------------------------------------------------------------------

    def _head_sway(self, t_s: float, rotation: np.ndarray, translation: np.ndarray) -> None:
        """Add the smooth idle sway, and livelier motion while speaking, to rotation/translation."""
        p = self.profile
        slow = self._slow.value(t_s)
        rotation += p.head_sway_amplitude_rad * _SWAY_AXES * slow[:3]
        lively_amplitude = p.head_sway_amplitude_rad * p.speaking_sway_gain * self._speaking_level
        if lively_amplitude > 0:
            rotation += lively_amplitude * _SWAY_AXES * self._lively.value(t_s)
        translation[0] += _SWAY_TRANSLATION_CM[0] * slow[3]
        translation[2] += _SWAY_TRANSLATION_CM[2] * slow[4]

    def _nod(self, t_s: float, dt: float, speaking: bool, energy: float) -> float:
        """Head pitch (rad) of the nods under way; starts one on a stressed syllable or while listening."""
        p = self.profile
        if speaking:
            prominence = self._energy_peak_prominence(energy, dt)
            if (prominence > _NOD_PROMINENCE and t_s - self._last_nod >= p.nod_cooldown_s
                    and self._rng.uniform() < _NOD_PROBABILITY):
                scale = min(1.0, 0.5 + (prominence - _NOD_PROMINENCE) / 3.0)
                self._start_nod(t_s, scale * p.nod_amplitude_rad, _NOD_PEAK_S)
        else:
            self._energy_prev = (0.0, 0.0)
            if t_s >= self._next_listening_nod:
                if t_s - self._last_nod >= p.nod_cooldown_s:
                    self._start_nod(t_s, _LISTENING_NOD_SCALE * p.nod_amplitude_rad, _LISTENING_NOD_PEAK_S)
                self._next_listening_nod = t_s + self._rng.exponential(p.listening_nod_interval_s)
        if self._nods and t_s - self._nods[0][0] > 6 * self._nods[0][2]:
            self._nods.pop(0)
        return sum(amplitude * _pulse(t_s - start, peak) for start, amplitude, peak in self._nods)

    def _start_nod(self, t_s: float, amplitude_rad: float, peak_s: float) -> None:
        self._nods.append((t_s, amplitude_rad, peak_s))
        self._last_nod = t_s

    def _energy_peak_prominence(self, energy: float, dt: float) -> float:
        """How many running standard deviations the previous frame's energy peak stands out (0 if no peak).

        The peak is found one frame late (the frame after it is lower), well
        inside the nod's own rise time. Mean and variance are exponential
        moving averages over ~3 s of speech, so any loudness scale works.
        """
        e1, e2 = self._energy_prev      # the previous frame, the one before it
        self._energy_prev = (energy, e1)
        if self._energy_mean is None:
            self._energy_mean, self._energy_var = energy, (0.5 * energy) ** 2
            return 0.0
        prominence = 0.0
        if e1 > e2 and e1 > energy:
            prominence = (e1 - self._energy_mean) / math.sqrt(self._energy_var + 1e-12)
        a = 1.0 - math.exp(-dt / _ENERGY_TAU_S)
        deviation = energy - self._energy_mean
        self._energy_mean += a * deviation
        self._energy_var += a * (deviation * deviation - self._energy_var)
        return prominence

    # Breathing --------------------------------------------------------------

    def _breath(self, dt: float) -> float:
        """Breath in [0, 1] (1 = lungs full): a quicker in-breath, a slower out-breath."""
        self._breath_phase += dt * self.profile.breathing_rate_per_min / 60.0 * self._breath_rate
        if self._breath_phase >= 1.0:
            self._breath_phase %= 1.0
            self._breath_rate = 1.0 + self._rng.uniform(-_BREATH_RATE_JITTER, _BREATH_RATE_JITTER)
        phase = self._breath_phase
        if phase < _INHALE_FRACTION:
            return 0.5 - 0.5 * math.cos(math.pi * phase / _INHALE_FRACTION)
        return 0.5 + 0.5 * math.cos(math.pi * (phase - _INHALE_FRACTION) / (1.0 - _INHALE_FRACTION))
