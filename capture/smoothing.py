"""Cleaning a Track over time: filling short gaps, and a One-Euro filter against jitter.

The One-Euro filter (Casiez et al., CHI 2012) is a low-pass filter whose cutoff
rises with speed: still faces get heavy smoothing (little jitter), fast motion
light smoothing (little lag). Per element, with frame step dt:

    alpha(f) = 1 / (1 + 1 / (2 pi f dt))
    dx_hat   = alpha(d_cutoff) * (x - x_hat_prev) / dt + (1 - alpha(d_cutoff)) * dx_hat_prev
    f_c      = min_cutoff + beta * |dx_hat|
    x_hat    = alpha(f_c) * x + (1 - alpha(f_c)) * x_hat_prev

Its lag is largest at rest: 1 / (2 pi min_cutoff) seconds for a slow drift.
`smooth_track` also measures the lag it adds on the actual motion.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import numpy as np
from scipy.ndimage import gaussian_filter1d

from avatar import Track
from avatar.rotation import interpolate_rotvecs


@dataclass(frozen=True)
class OneEuroParams:
    """Cutoffs in Hz; `beta` in Hz per unit of speed of the filtered signal (unit/s)."""

    min_cutoff_hz: float
    beta: float
    d_cutoff_hz: float = 1.0

    @property
    def lag_at_rest_s(self) -> float:
        return 1.0 / (2 * math.pi * self.min_cutoff_hz)


@dataclass(frozen=True)
class TrackSmoothing:
    """One-Euro settings per kind of signal, since their units differ (px, 0..1, rad, cm)."""

    landmarks: OneEuroParams = OneEuroParams(min_cutoff_hz=2.0, beta=0.02)
    weights: OneEuroParams = OneEuroParams(min_cutoff_hz=3.0, beta=2.0)
    rotation: OneEuroParams = OneEuroParams(min_cutoff_hz=2.0, beta=2.0)
    translation: OneEuroParams = OneEuroParams(min_cutoff_hz=2.0, beta=0.2)

    def with_landmark_cutoff(self, min_cutoff_hz: float, beta: float) -> "TrackSmoothing":
        """The same filter, with the landmark settings (the ones users tune) replaced."""
        return TrackSmoothing(OneEuroParams(min_cutoff_hz, beta), self.weights, self.rotation, self.translation)


def one_euro(x: np.ndarray, time_s: np.ndarray, params: OneEuroParams) -> np.ndarray:
    """Filter a signal causally along its first axis.

    Args:
        x: [T, ...] samples (no NaN).
        time_s: [T] increasing sample times.
    Returns:
        [T, ...] filtered samples; the first equals the input.
    """
    out = np.empty_like(x, dtype=np.float64)
    x_hat = np.asarray(x[0], dtype=np.float64)
    dx_hat = np.zeros_like(x_hat)
    out[0] = x_hat
    for i in range(1, len(x)):
        dt = max(float(time_s[i] - time_s[i - 1]), 1e-6)
        a_d = _alpha(params.d_cutoff_hz, dt)
        dx_hat = a_d * (x[i] - x_hat) / dt + (1 - a_d) * dx_hat
        a = _alpha(params.min_cutoff_hz + params.beta * np.abs(dx_hat), dt)
        x_hat = a * x[i] + (1 - a) * x_hat
        out[i] = x_hat
    return out.astype(x.dtype)


def _alpha(cutoff_hz: float | np.ndarray, dt: float) -> float | np.ndarray:
    return 1.0 / (1.0 + 1.0 / (2 * np.pi * cutoff_hz * dt))


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) index ranges where `mask` is True."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)))


def fill_gaps(track: Track, max_gap_s: float) -> Track:
    """Interpolate runs of frames without a face that last at most `max_gap_s`.

    Gaps between two found frames are filled linearly (rotations by slerp) and
    marked `valid`; longer gaps and gaps at the start or end stay invalid (NaN).
    """
    valid = track.valid.copy()
    arrays = {name: getattr(track, name).copy() for name in ("landmarks_px", "weights", "head_translation_cm")}
    rotation = track.head_rotation.copy()
    t = track.time_s
    for start, stop in _runs(~track.valid):
        if start == 0 or stop == len(track) or t[stop] - t[start - 1] > max_gap_s + 1e-9:
            continue
        s = (t[start:stop] - t[start - 1]) / (t[stop] - t[start - 1])
        for a in arrays.values():
            w = s.reshape((-1,) + (1,) * (a.ndim - 1))
            a[start:stop] = (1 - w) * a[start - 1] + w * a[stop]
        rotation[start:stop] = interpolate_rotvecs(t[[start - 1, stop]], rotation[[start - 1, stop]], t[start:stop])
        valid[start:stop] = True
    return replace(track, valid=valid, head_rotation=rotation, **arrays)


def measure_lag_s(raw: np.ndarray, filtered: np.ndarray, dt_s: float, max_lag_frames: int = 15) -> float:
    """Delay of `filtered` behind `raw` ([T, ...]), in seconds.

    The reference is `raw` smoothed with a symmetric (zero-delay) Gaussian, so
    that jitter does not pull the estimate towards 0; the delay is the shift
    that best aligns `filtered` with it, refined below one frame by a parabola.
    Returns 0 when the track is too short to tell.
    """
    flat_raw = raw.reshape(len(raw), -1).astype(np.float64)
    flat_fil = filtered.reshape(len(filtered), -1).astype(np.float64)
    if len(flat_raw) <= 3 * max_lag_frames:
        return 0.0
    reference = gaussian_filter1d(flat_raw, sigma=1.5, axis=0, mode="nearest")
    lags = np.arange(max_lag_frames + 1)
    n = len(flat_raw) - max_lag_frames
    errors = np.array([np.mean((flat_fil[k:k + n] - reference[:n]) ** 2) for k in lags])
    k = float(np.argmin(errors))
    i = int(k)
    if 0 < i < len(lags) - 1:
        denom = errors[i - 1] - 2 * errors[i] + errors[i + 1]
        k += 0.5 * (errors[i - 1] - errors[i + 1]) / denom if denom > 0 else 0.0
    return k * dt_s


def smooth_track(track: Track, settings: TrackSmoothing = TrackSmoothing()) -> Track:
    """One-Euro filter each valid stretch of the track; records settings and lag in `track.smoothing`.

    The recorded `lag_ms` is measured on this track's landmark motion (see
    `measure_lag_s`); `lag_at_rest_ms` is the filter's bound for slow drift.
    """
    signals = {
        "landmarks_px": settings.landmarks, "weights": settings.weights,
        "head_rotation": settings.rotation, "head_translation_cm": settings.translation,
    }
    out = {name: getattr(track, name).copy() for name in signals}
    for start, stop in _runs(track.valid):
        t = track.time_s[start:stop]
        for name, params in signals.items():
            out[name][start:stop] = one_euro(getattr(track, name)[start:stop], t, params)
    dt = float(np.median(np.diff(track.time_s))) if len(track) > 1 else 0.0
    lags = [measure_lag_s(track.landmarks_px[a:b, :, :2], out["landmarks_px"][a:b, :, :2], dt)
            for a, b in _runs(track.valid) if b - a > 40]
    record = asdict(settings)
    record["lag_ms"] = round(1000 * float(np.mean(lags)), 1) if lags else 0.0
    record["lag_at_rest_ms"] = round(1000 * settings.landmarks.lag_at_rest_s, 1)
    return replace(track, **out, smoothing=record)

