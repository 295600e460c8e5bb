"""Training-time audio augmentation for the audio→face model: rooms, phone lines, noise, level.

Synthetic speech is clean and studio-level; real input is not. Every effect here keeps
the length and the timing (zero-phase filters, reverb tails cut), so the frame targets
computed from the clean phone timings stay aligned.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import butter, fftconvolve, sosfiltfilt

SAMPLE_RATE = 16_000

_REVERB_PROBABILITY = 0.3
_RT60_RANGE_S = (0.1, 0.6)
_DIRECT_TO_REVERB_DB = (0.0, 10.0)  # a close talker in a small room to one across it
_TELEPHONE_PROBABILITY = 0.2
_TELEPHONE_BAND_HZ = (300.0, 3400.0)
_NOISE_PROBABILITY = 0.8
_SNR_RANGE_DB = (10.0, 40.0)
_LEVEL_RANGE_DBFS = (-20.0, 0.0)


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def reverb(audio: np.ndarray, rt60_s: float, rng: np.random.Generator,
           sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """A synthetic room: convolve with a direct path plus exponentially decaying noise.

    h(t) = δ(t) + g · n(t) · exp(−6.91 t / RT60),  n white Gaussian, so the tail falls
    by 60 dB (ln 1000 = 6.91) in RT60 seconds; g gives the tail an energy of
    0..10 dB (random) below the direct path.

    Args:
        audio: [S] samples.
    Returns:
        [S] samples at the input's RMS (the tail past S is cut).
    """
    t = np.arange(int(rt60_s * sample_rate)) / sample_rate
    tail = rng.standard_normal(t.size) * np.exp(-6.91 * t / rt60_s)
    gain = 10 ** (-rng.uniform(*_DIRECT_TO_REVERB_DB) / 20) / (_rms(tail) * np.sqrt(t.size) + 1e-12)
    response = np.concatenate([[1.0], gain * tail])
    wet = fftconvolve(audio, response)[: audio.size]
    return wet * (_rms(audio) / (_rms(wet) + 1e-12))


def band_limit(audio: np.ndarray, band_hz: tuple[float, float] = _TELEPHONE_BAND_HZ,
               sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """[S] → [S] zero-phase 4th-order Butterworth band-pass (zero phase: no delay against the targets)."""
    sos = butter(4, band_hz, btype="bandpass", fs=sample_rate, output="sos")
    return sosfiltfilt(sos, audio)


def coloured_noise(num_samples: int, slope: float, rng: np.random.Generator) -> np.ndarray:
    """[num_samples] unit-RMS noise with power ∝ 1/f^slope (0 white, 1 pink, 2 brown)."""
    spectrum = np.fft.rfft(rng.standard_normal(num_samples))
    freqs = np.fft.rfftfreq(num_samples)
    freqs[0] = freqs[1] if num_samples > 1 else 1.0
    noise = np.fft.irfft(spectrum / freqs ** (slope / 2), n=num_samples)
    return noise / (_rms(noise) + 1e-12)


def augment(audio: np.ndarray, rng: np.random.Generator, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """A random degradation of clean speech: reverb (sometimes), telephone band (sometimes),
    noise at 10-40 dB SNR against the clip's RMS (mostly), then a peak level of -20..0 dBFS.

    Args:
        audio: [S] float samples in [-1, 1].
        rng: the only source of randomness (seed it for reproducible training).
    Returns:
        [S] float32 samples, peak ≤ 1.
    """
    x = np.asarray(audio, dtype=np.float64)
    if rng.random() < _REVERB_PROBABILITY:
        x = reverb(x, rng.uniform(*_RT60_RANGE_S), rng, sample_rate)
    if rng.random() < _TELEPHONE_PROBABILITY:
        x = band_limit(x, _TELEPHONE_BAND_HZ, sample_rate)
    if rng.random() < _NOISE_PROBABILITY and x.size:
        snr_db = rng.uniform(*_SNR_RANGE_DB)
        x = x + coloured_noise(x.size, rng.uniform(0.0, 2.0), rng) * _rms(x) * 10 ** (-snr_db / 20)
    peak = np.max(np.abs(x)) if x.size else 0.0
    if peak > 0:
        x = x * (10 ** (rng.uniform(*_LEVEL_RANGE_DBFS) / 20) / peak)
    return x.astype(np.float32)
