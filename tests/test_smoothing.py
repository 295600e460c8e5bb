"""Gap filling, the One-Euro filter, its lag measurement, and the jitter metric."""

from __future__ import annotations

import numpy as np
import pytest

from avatar import Camera, Track
from capture import OneEuroParams, TrackSmoothing, fill_gaps, jitter_px, one_euro, smooth_track, stillest_window
from capture.smoothing import measure_lag_s

FPS = 30.0


def make_track(landmarks_xy: np.ndarray, found: np.ndarray) -> Track:
    """A Track whose landmarks all sit at `landmarks_xy` [T, 2] per frame (NaN where not found)."""
    t = len(found)
    landmarks = np.zeros((t, 478, 3), dtype=np.float32)
    landmarks[:, :, :2] = landmarks_xy[:, None, :] + np.linspace(0, 50, 478)[None, :, None]
    rotation = np.zeros((t, 3), dtype=np.float32)
    rotation[:, 1] = np.linspace(0, 0.5, t)
    arrays = {
        "landmarks_px": landmarks, "weights": np.tile(np.linspace(0, 1, t)[:, None], (1, 52)).astype(np.float32),
        "head_rotation": rotation, "head_translation_cm": np.tile([0, 0, -30], (t, 1)).astype(np.float32),
    }
    for a in arrays.values():
        a[~found] = np.nan
    return Track(time_s=np.arange(t) / FPS, found=found, valid=found.copy(), camera=Camera.from_vertical_fov(256, 256, 63),
                 **arrays)


def test_fill_gaps_interpolates_short_gaps_exactly_and_leaves_long_ones():
    t = 60
    xy = np.stack([np.arange(t) * 2.0, np.full(t, 100.0)], axis=1)
    found = np.ones(t, dtype=bool)
    found[[0, 1]] = False          # leading: no left neighbour
    found[10:13] = False           # 3 frames = 0.13 s: filled
    found[30:45] = False           # 15 frames = 0.53 s: too long
    track = make_track(xy, found)
    filled = fill_gaps(track, max_gap_s=0.25)
    assert filled.found.sum() == track.found.sum()
    assert np.array_equal(filled.valid, found | np.isin(np.arange(t), [10, 11, 12]))
    assert np.allclose(filled.landmarks_px[10:13, 0, 0], [20, 22, 24])
    assert np.allclose(filled.head_rotation[10:13, 1], np.linspace(0, 0.5, t)[10:13], atol=1e-6)
    assert np.isnan(filled.landmarks_px[[0, 1, 35]]).all()


def test_one_euro_keeps_constants_and_cuts_noise():
    rng = np.random.default_rng(0)
    time_s = np.arange(300) / FPS
    assert np.allclose(one_euro(np.full((300, 4), 7.0), time_s, OneEuroParams(1.0, 0.1)), 7.0)
    noisy = 100 + rng.normal(scale=0.5, size=(300, 2))
    smooth = one_euro(noisy, time_s, OneEuroParams(2.0, 0.02))
    assert np.abs(np.diff(smooth, axis=0)).mean() < 0.4 * np.abs(np.diff(noisy, axis=0)).mean()


def test_measured_lag_finds_a_known_delay():
    rng = np.random.default_rng(1)
    signal = np.cumsum(rng.normal(size=(400, 3)), axis=0)
    delayed = np.concatenate([np.repeat(signal[:3], 1, axis=0)[:3], signal[:-3]])
    assert measure_lag_s(signal, delayed, 1 / FPS) == pytest.approx(3 / FPS, abs=0.2 / FPS)


def test_smooth_track_reduces_jitter_on_a_still_stretch_and_reports_its_lag():
    rng = np.random.default_rng(2)
    t = 240
    xy = np.zeros((t, 2))
    xy[120:, 0] = 40 * np.sin(np.linspace(0, 6 * np.pi, 120))  # still, then moving
    xy += rng.normal(scale=0.6, size=xy.shape)
    track = make_track(xy, np.ones(t, dtype=bool))
    smoothed = smooth_track(track, TrackSmoothing())
    start = stillest_window(track.landmarks_px, track.found, 15)
    assert start is not None and start + 15 <= 120
    assert jitter_px(smoothed.landmarks_px, start, 15) < 0.5 * jitter_px(track.landmarks_px, start, 15)
    assert 0 < smoothed.smoothing["lag_ms"] < smoothed.smoothing["lag_at_rest_ms"]
    assert smoothed.smoothing["landmarks"]["min_cutoff_hz"] == TrackSmoothing().landmarks.min_cutoff_hz


def test_stillest_window_skips_frames_without_a_face():
    xy = np.zeros((50, 2))
    found = np.zeros(50, dtype=bool)
    assert stillest_window(make_track(xy, found).landmarks_px, found, 10) is None
