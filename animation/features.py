"""Streaming audio front end of the speech→face model: resampling to 16 kHz and log-mel frames.

Both stages carry their state between chunks, so any chunking of an utterance
gives the frames the whole-file functions give (`resample`, `log_mel`).

Feature frame k is centred on time k / 100 s: it windows 16 kHz samples
[160 k - 200, 160 k + 200) (25 ms Hann, zeros before the start), so it needs
12.5 ms of audio after its own time. Levels are relative to a causal
peak follower (an AGC), never to whole-file statistics:

    level[k] = 10 log10(Σ w² x² / Σ w²)                         (window RMS, dBFS)
    ref[k]   = max(level[k], ref[k-1] - release, ref_floor)    (ref[-1] = ref_start)
    feature  = (clip(mel_db - ref, -clip_db, headroom_db) + offset_db) / scale_db
    energy   = clip(1 + (level - ref) / energy_range_db, 0, 1)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from fractions import Fraction
from functools import lru_cache

import numpy as np

SAMPLE_RATE = 16_000
FRAME_RATE = 100
MIN_INPUT_RATE = 8_000
MAX_INPUT_RATE = 192_000


@dataclass(frozen=True)
class FeatureConfig:
    """Log-mel settings; stored in the model file, since a model only works with its own front end."""

    window: int = 400            # samples: 25 ms
    hop: int = 160               # samples: 10 ms, FRAME_RATE frames per second
    n_fft: int = 512
    n_mels: int = 64
    fmin_hz: float = 60.0
    fmax_hz: float = 7600.0
    ref_start_db: float = -40.0  # below most speech peaks, which then set it at once (fast attack)
    ref_floor_db: float = -60.0  # the AGC never amplifies quieter than this: long silences stay silent
    release_db_per_s: float = 6.0
    clip_db: float = 70.0
    headroom_db: float = 10.0
    offset_db: float = 30.0
    scale_db: float = 20.0
    energy_range_db: float = 40.0

    @property
    def look_ahead_s(self) -> float:
        """Audio needed after a frame's own time: half a window."""
        return self.window / 2 / SAMPLE_RATE

    def to_dict(self) -> dict:
        return asdict(self)


def resample_curves(values: np.ndarray, times_s: np.ndarray, new_times_s: np.ndarray) -> np.ndarray:
    """[T, C] values at `times_s` [T] (s, increasing) -> [N, C] at `new_times_s` [N], linearly.

    Held at the end values outside `times_s`. Frame times, not a frame rate, so that a
    variable-frame-rate video's frames meet the audio where they were filmed.
    """
    return np.stack([np.interp(new_times_s, times_s, values[:, c]) for c in range(values.shape[1])], axis=1
                    ).astype(np.float32)


def to_feature_rate(values: np.ndarray, times_s: np.ndarray, count: int) -> np.ndarray:
    """[T, C] values at `times_s` [T] -> [count, C] at FRAME_RATE (frame k at k / FRAME_RATE), linearly.

    How targets (ARKit weights from a synthesiser or a tracker) meet the features' frames.
    """
    return resample_curves(values, times_s, np.arange(count) / FRAME_RATE)


def num_frames(num_samples: int, config: FeatureConfig) -> int:
    """Frames of an utterance of `num_samples` 16 kHz samples: those centred before its end, ⌈S / hop⌉."""
    return -(-num_samples // config.hop)


def log_mel(audio: np.ndarray, config: FeatureConfig = FeatureConfig()) -> tuple[np.ndarray, np.ndarray]:
    """Whole-utterance features (the same as one `StreamingFeatures` push plus flush).

    Args:
        audio: [S] samples at 16 kHz, float in [-1, 1].
    Returns:
        features [N, n_mels] float32 and energy [N] float32 in 0..1, N = ⌈S / hop⌉.
    """
    frames = _frames(np.concatenate([np.zeros(config.window // 2), audio, np.zeros(config.window)]),
                     num_frames(len(audio), config), config)
    mel_db, level_db = _spectra(frames, config)
    return _normalise(mel_db, level_db, _agc(level_db, config.ref_start_db, config), config)


class StreamingFeatures:
    """`log_mel` chunk by chunk: push 16 kHz samples in any chunk sizes, get every frame once its window is full."""

    def __init__(self, config: FeatureConfig = FeatureConfig()) -> None:
        self.config = config
        self.reset()

    def reset(self) -> None:
        """Start a new utterance (silence before it)."""
        half = self.config.window // 2
        self._buffer = np.zeros(half)      # samples from index _buffer_start on
        self._buffer_start = -half
        self._received = 0                 # samples pushed in this utterance
        self._next_frame = 0
        self._ref_db = self.config.ref_start_db

    def push(self, samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Add [n] samples at 16 kHz; returns the frames now complete: features [k, n_mels], energy [k]."""
        self._buffer = np.concatenate([self._buffer, np.asarray(samples, dtype=np.float64)])
        self._received += len(samples)
        # Frame k needs samples up to hop · k + window / 2 - 1.
        ready = (self._received - self.config.window // 2) // self.config.hop + 1
        return self._emit(max(ready, self._next_frame))

    def flush(self) -> tuple[np.ndarray, np.ndarray]:
        """End of the utterance: the frames left (silence after it), then `reset`."""
        total = num_frames(self._received, self.config)
        self._buffer = np.concatenate([self._buffer, np.zeros(self.config.window)])
        out = self._emit(max(total, self._next_frame))
        self.reset()
        return out

    def _emit(self, end_frame: int) -> tuple[np.ndarray, np.ndarray]:
        hop, half = self.config.hop, self.config.window // 2
        count = end_frame - self._next_frame
        offset = self._next_frame * hop - half - self._buffer_start
        frames = _frames(self._buffer[offset:], count, self.config)
        mel_db, level_db = _spectra(frames, self.config)
        ref_db = _agc(level_db, self._ref_db, self.config)
        if count:
            self._ref_db = float(ref_db[-1])
        self._next_frame = end_frame
        keep_from = end_frame * hop - half - self._buffer_start
        self._buffer = self._buffer[keep_from:]
        self._buffer_start += keep_from
        return _normalise(mel_db, level_db, ref_db, self.config)


def _frames(padded: np.ndarray, count: int, config: FeatureConfig) -> np.ndarray:
    """[count, window] windows of `padded` (whose sample 0 starts frame 0), `hop` apart."""
    if count <= 0:
        return np.zeros((0, config.window))
    starts = np.arange(count) * config.hop
    return padded[starts[:, None] + np.arange(config.window)]


def _spectra(frames: np.ndarray, config: FeatureConfig) -> tuple[np.ndarray, np.ndarray]:
    """[N, window] samples -> mel power (dB) [N, n_mels] and window RMS level (dBFS) [N]."""
    window = _hann(config.window)
    windowed = frames * window
    # Scaled so that a full-scale sine puts power 1 (0 dB) in its bin.
    spectrum = np.fft.rfft(windowed, n=config.n_fft, axis=1) * (2.0 / window.sum())
    power = spectrum.real ** 2 + spectrum.imag ** 2
    mel_db = 10.0 * np.log10(power @ _mel_filters(config).T + 1e-12)
    level_db = 10.0 * np.log10((windowed ** 2).sum(axis=1) / (window ** 2).sum() + 1e-10)
    return mel_db, level_db


def _agc(level_db: np.ndarray, ref_start_db: float, config: FeatureConfig) -> np.ndarray:
    """Peak follower ref[k] = max(level[k], ref[k-1] - r, floor) in closed form, [N] -> [N].

    Unrolled: ref[k] = max(floor, max_{j≤k}(level[j] - r (k - j)), ref_start - r (k + 1)).
    """
    release = config.release_db_per_s * config.hop / SAMPLE_RATE
    ramp = release * np.arange(len(level_db))
    peak = np.maximum.accumulate(level_db + ramp) - ramp if len(level_db) else level_db
    return np.maximum(np.maximum(peak, ref_start_db - ramp - release), config.ref_floor_db)


def _normalise(mel_db: np.ndarray, level_db: np.ndarray, ref_db: np.ndarray,
               config: FeatureConfig) -> tuple[np.ndarray, np.ndarray]:
    relative = np.clip(mel_db - ref_db[:, None], -config.clip_db, config.headroom_db)
    features = (relative + config.offset_db) / config.scale_db
    energy = np.clip(1.0 + (level_db - ref_db) / config.energy_range_db, 0.0, 1.0)
    return features.astype(np.float32), energy.astype(np.float32)


@lru_cache(maxsize=8)
def _hann(length: int) -> np.ndarray:
    """Periodic Hann window [length]."""
    return 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(length) / length)


@lru_cache(maxsize=8)
def _mel_filters(config: FeatureConfig) -> np.ndarray:
    """[n_mels, n_fft/2 + 1] triangles of peak 1 on the HTK mel scale, mel(f) = 2595 log10(1 + f / 700)."""
    mel = np.linspace(_hz_to_mel(config.fmin_hz), _hz_to_mel(config.fmax_hz), config.n_mels + 2)
    edges = 700.0 * (10.0 ** (mel / 2595.0) - 1.0)
    bins = np.arange(config.n_fft // 2 + 1) * SAMPLE_RATE / config.n_fft
    lo, centre, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bins - lo) / (centre - lo)
    falling = (hi - bins) / (hi - centre)
    filters = np.maximum(0.0, np.minimum(rising, falling))
    # The lowest triangles are narrower than an FFT bin: give each its nearest bin so none is empty.
    empty = filters.sum(axis=1) == 0
    filters[empty, np.round(centre[empty, 0] * config.n_fft / SAMPLE_RATE).astype(int)] = 1.0
    return filters


def _hz_to_mel(hz: float) -> float:
    return 2595.0 * math.log10(1.0 + hz / 700.0)


class StreamingResampler:
    """Rational-ratio windowed-sinc resampler to 16 kHz that carries its input history between chunks.

    Output sample n sits at time n / 16000 s and is

        y[n] = Σ_k x[k] · h(n · rate_in / 16000 - k),   h(d) = c · sinc(c · d) · kaiser(d / half_width)

    with cutoff c = rolloff · min(1, 16000 / rate_in) (in cycles per 2 input samples), over the
    2·H input samples nearest to it (H = ⌈half_width⌉); x is 0 before the start and after `flush`.
    The ratio is exact (p / q in lowest terms), so the filter has p phases, tabulated once.
    """

    ZERO_CROSSINGS = 12
    ROLLOFF = 0.9
    KAISER_BETA = 8.0

    def __init__(self, rate_in: int) -> None:
        if not MIN_INPUT_RATE <= rate_in <= MAX_INPUT_RATE:
            raise ValueError(f"sample rate {rate_in} Hz is outside {MIN_INPUT_RATE}..{MAX_INPUT_RATE} Hz")
        self.rate_in = int(rate_in)
        ratio = Fraction(SAMPLE_RATE, self.rate_in)
        self._up, self._down = ratio.numerator, ratio.denominator
        self._taps, self._half = _polyphase_filters(self._up, self._down, self.ZERO_CROSSINGS,
                                                    self.ROLLOFF, self.KAISER_BETA)
        self.reset()

    @property
    def look_ahead_s(self) -> float:
        """Input audio needed after an output sample's time."""
        return self._half / self.rate_in

    def reset(self) -> None:
        """Start a new utterance (silence before it)."""
        self._buffer = np.zeros(self._half, np.float32)  # input samples from index _buffer_start on
        self._buffer_start = -self._half
        self._received = 0
        self._next_out = 0

    def push(self, samples: np.ndarray) -> np.ndarray:
        """Add [n] input samples; returns the 16 kHz samples [m] float32 now computable."""
        if self._up == self._down:
            self._received += len(samples)
            return np.asarray(samples, dtype=np.float32)
        self._buffer = np.concatenate([self._buffer, np.asarray(samples, dtype=np.float32)])
        self._received += len(samples)
        # Output n needs input up to floor(n q / p) + H < received.
        ready = -(-(self._received - self._half) * self._up // self._down)
        return self._emit(max(ready, self._next_out))

    def flush(self) -> np.ndarray:
        """End of the utterance: the output samples left, those before its end ⌈S · 16000 / rate_in⌉; then `reset`."""
        total = -(-self._received * self._up // self._down)
        if self._up == self._down:
            out = np.zeros(0, np.float32)
        else:
            self._buffer = np.concatenate([self._buffer, np.zeros(self._half + 1, np.float32)])
            out = self._emit(max(total, self._next_out))
        self.reset()
        return out

    def _emit(self, end: int) -> np.ndarray:
        n = np.arange(self._next_out, end)
        base = n * self._down // self._up
        phase = n * self._down % self._up
        index = base[:, None] + (np.arange(2 * self._half) - self._half + 1 - self._buffer_start)
        # float32: a quarter of float64's time here, and far finer than the features need.
        out = np.einsum("ij,ij->i", self._buffer[index], self._taps[phase])
        self._next_out = end
        keep_from = end * self._down // self._up - self._half + 1 - self._buffer_start
        self._buffer = self._buffer[max(keep_from, 0):]
        self._buffer_start += max(keep_from, 0)
        return out


def resample(audio: np.ndarray, rate_in: int) -> np.ndarray:
    """Whole-utterance `StreamingResampler`: [S] at rate_in -> [⌈S · 16000 / rate_in⌉] float32 at 16 kHz."""
    resampler = StreamingResampler(rate_in)
    return np.concatenate([resampler.push(audio), resampler.flush()])


@lru_cache(maxsize=16)
def _polyphase_filters(up: int, down: int, zero_crossings: int, rolloff: float,
                       beta: float) -> tuple[np.ndarray, int]:
    """Taps [up, 2H] for each output phase p (offset p / up input samples), and H."""
    cutoff = rolloff * min(1.0, up / down)
    half_width = zero_crossings / cutoff
    half = math.ceil(half_width)
    # d = time of the output minus time of the tap's input sample, in input samples.
    d = np.arange(up)[:, None] / up + (half - 1 - np.arange(2 * half))[None, :]
    inside = np.abs(d) < half_width
    window = np.where(inside, np.i0(beta * np.sqrt(np.clip(1 - (d / half_width) ** 2, 0, None))) / np.i0(beta), 0.0)
    return (cutoff * np.sinc(cutoff * d) * window).astype(np.float32), half
