"""Tuning the speech model on a capture's own audio, and carrying it in the avatar bundle."""

from __future__ import annotations

import numpy as np
import pytest

from animation import load_default_model, predict
from animation.metrics import correlation
from animation.tuning import fine_tune, model_arrays, model_from_arrays
from avatar import index_of
from avatar.model import Avatar
from tests.test_server_session import speech_like

JAW = index_of("jawOpen")


def talking_clip(seconds: float = 16.0, fps: float = 25.0, rate: int = 16000, every_other_after_s: float | None = None):
    """Speech-like audio and a 'tracked' face whose jaw follows its loudness envelope, 60 ms late.

    Returns (audio, rate, weights [T, 52], frame times [T] in s). With `every_other_after_s`, every
    other frame after that time is dropped, as a variable-frame-rate video does.
    """
    audio = speech_like(seconds, rate, seed=5)
    t = np.arange(int(seconds * fps)) / fps
    if every_other_after_s is not None:
        t = t[(t < every_other_after_s) | (np.arange(len(t)) % 2 == 0)]
    envelope = np.clip(np.sin(2 * np.pi * 4 * (t - 0.06)), 0, None)
    weights = np.full((len(t), 52), 0.02, np.float32)
    weights[:, JAW] = 0.05 + 0.5 * envelope
    return audio, rate, weights, t


def test_tuning_learns_the_persons_jaw_on_held_out_frames():
    audio, rate, weights, times_s = talking_clip()
    train = np.arange(len(weights)) < 0.75 * len(weights)
    model = load_default_model()
    tuned, info = fine_tune(model, audio, rate, weights, times_s, train, steps=120)
    assert info["jaw_corr_after"] > max(0.8, info["jaw_corr_before"])
    # The original is left alone.
    _, before = predict(model, audio, rate, 25.0)
    _, again = predict(load_default_model(), audio, rate, 25.0)
    np.testing.assert_array_equal(before, again)


def test_tuning_meets_a_variable_frame_rate_at_its_frame_times():
    audio, rate, weights, times_s = talking_clip(every_other_after_s=6.0)
    assert len(times_s) < 16 * 25  # uneven: frame i is not at i / (frames per second on average)
    train = times_s < 12.0
    tuned, info = fine_tune(load_default_model(), audio, rate, weights, times_s, train, steps=120)
    assert info["train_s"] == pytest.approx(12.0, abs=0.1) and info["scored_s"] == pytest.approx(4.0, abs=0.1)
    assert info["jaw_corr_after"] > max(0.8, info["jaw_corr_before"])


def test_tuning_needs_enough_speech():
    audio, rate, weights, times_s = talking_clip(seconds=4.0)
    with pytest.raises(ValueError, match="tuning needs"):
        fine_tune(load_default_model(), audio, rate, weights, times_s, np.ones(len(weights), bool), steps=2)


def test_a_tuned_model_travels_in_the_bundle(avatar_path, tmp_path):
    audio, rate, weights, times_s = talking_clip()
    tuned, _ = fine_tune(load_default_model(), audio, rate, weights, times_s, np.ones(len(weights), bool), steps=5)
    avatar = Avatar.load(avatar_path)
    assert avatar.speech_model() is None
    avatar.speech = model_arrays(tuned)
    path = avatar.save(tmp_path / "tuned.avatar")
    loaded = Avatar.load(path).speech_model()
    _, expected = predict(tuned, audio[:rate * 2], rate, 25.0)
    _, got = predict(loaded, audio[:rate * 2], rate, 25.0)
    np.testing.assert_allclose(got, expected, atol=1e-6)
    with pytest.raises(ValueError, match="does not fit"):
        model_from_arrays({"nope": np.zeros(3, np.float32)}, tuned)
    assert correlation(got[:, JAW], got[:, JAW]) == pytest.approx(1.0)
