"""Lip-sync measures on synthetic data with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from animation.metrics import (JAW, MOUTH_CLOSE, bilabial_closure, correlation, fit_weights_to_landmarks,
                               frame_loudness_db, landmarks_from_weights, lip_vertex_error, loudness_jaw)


def test_linear_map_recovers_landmarks_and_lve_is_the_mean_worst_distance():
    rng = np.random.default_rng(0)
    weights = rng.uniform(0, 1, (200, 52))
    truth_map = rng.normal(size=(53, 12 * 3))
    landmarks = landmarks_from_weights(weights, truth_map)
    mapping = fit_weights_to_landmarks(weights, landmarks, ridge=1e-8)
    assert np.allclose(landmarks_from_weights(weights, mapping), landmarks, atol=1e-5)
    shifted = landmarks.copy()
    shifted[:, 3] += [0.3, 0.4, 0.0]  # one landmark off by 0.5 cm in every frame
    assert lip_vertex_error(shifted, landmarks) == pytest.approx(0.5)


def test_correlation_and_loudness_jaw():
    t = np.linspace(0, 10, 500)
    jaw = 0.3 + 0.2 * np.sin(t)
    assert correlation(jaw, 2 * jaw + 1) == pytest.approx(1.0)
    assert correlation(jaw, np.ones_like(jaw)) == 0.0
    fitted = loudness_jaw(20 * np.sin(t) - 30, jaw)
    assert np.allclose(fitted, jaw, atol=1e-6)


def test_frame_loudness_follows_the_level():
    rate, fps = 16000, 25.0
    audio = np.concatenate([0.5 * np.ones(rate), 0.05 * np.ones(rate)])
    db = frame_loudness_db(audio, rate, np.arange(50) / fps, 1 / fps)
    assert db[10] == pytest.approx(20 * np.log10(0.5), abs=0.1)
    assert db[40] == pytest.approx(20 * np.log10(0.05), abs=0.1)


def test_bilabial_closure_counts_hits_within_the_tolerance():
    fps = 100.0
    weights = np.zeros((100, 52))
    weights[:, JAW] = 0.3
    weights[20:23, MOUTH_CLOSE] = 0.8   # 30 ms before the first /m/ ends: a hit
    weights[75:78, MOUTH_CLOSE] = 0.8   # 100 ms after the /p/: a miss
    phones = [(0.0, 0.2, "ah"), (0.2, 0.3, "M"), (0.3, 0.5, "aa"), (0.5, 0.6, "P"), (0.6, 1.0, "iy")]
    result = bilabial_closure(weights, fps, phones)
    assert result["bilabials"] == 2 and result["closed_fraction"] == 0.5
    assert 0 < result["closed_elsewhere"] < 0.1
