"""The speech training-data recipe: phone → ARKit targets, audio augmentation, the dataset script."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from animation.augment import augment
from animation.visemes import PHONES, VISEME_WEIGHTS, VISUAL_LEAD_S, canonical_phone, phone_targets
from avatar.arkit import NUM_WEIGHTS, index_of

REPO = Path(__file__).resolve().parents[1]
JAW, CLOSE = index_of("jawOpen"), index_of("mouthClose")


def _between(middle: str, middle_s: float, vowel: str = "aa", vowel_s: float = 0.15) -> list:
    """pau, vowel, `middle`, vowel, pau; `middle` centred at 0.5 s."""
    a, b = 0.5 - middle_s / 2, 0.5 + middle_s / 2
    return [(0.0, a - vowel_s, "pau"), (a - vowel_s, a, vowel), (a, b, middle),
            (b, b + vowel_s, vowel), (b + vowel_s, 1.0, "pau")]


def test_table_is_in_range() -> None:
    for phone, weights in VISEME_WEIGHTS.items():
        assert weights.shape == (NUM_WEIGHTS,) and weights.dtype == np.float32, phone
        assert np.all((weights >= 0) & (weights <= 1)), phone


def test_shape_dtype_and_frame_times() -> None:
    phones = [(0.0, 0.3, "pau"), (0.3, 0.5, "aa"), (0.5, 1.01, "pau")]
    weights = phone_targets(phones, fps=60, duration_s=1.01)
    assert weights.shape == (math.ceil(1.01 * 60), NUM_WEIGHTS) and weights.dtype == np.float32
    assert phone_targets(phones, fps=30, duration_s=0.1).shape == (3, NUM_WEIGHTS)
    # frame i is at i / fps: the same instants agree across frame rates
    np.testing.assert_allclose(phone_targets(phones, 120, 1.0)[::4], phone_targets(phones, 30, 1.0), atol=1e-6)
    # the jaw opens during the vowel, shown VISUAL_LEAD_S early, not before or after it
    peak_s = np.argmax(weights[:, JAW]) / 60 + VISUAL_LEAD_S
    assert 0.3 <= peak_s <= 0.5
    assert weights[0, JAW] < 0.02 and weights[-1, JAW] < 0.02


@pytest.mark.parametrize("bilabial", ["p", "b", "m"])
@pytest.mark.parametrize("duration_s", [0.03, 0.07, 0.15])
def test_bilabials_close_between_open_vowels(bilabial: str, duration_s: float) -> None:
    weights = phone_targets(_between(bilabial, duration_s), fps=100, duration_s=1.0)
    centre = weights[50]  # frame at 0.5 s, the bilabial's centre
    assert centre[CLOSE] >= 0.5
    assert centre[JAW] <= 0.08
    # and the vowels on either side still open the jaw (the one after less, when the lead
    # brings its opening into the closure)
    assert weights[:50, JAW].max() > 0.2 and weights[50:, JAW].max() > 0.12


@pytest.mark.parametrize("vowel", ["aa", "ae", "ah", "ao", "aw", "ay"])
def test_open_vowels_open_the_jaw(vowel: str) -> None:
    phones = [(0.0, 0.2, "pau"), (0.2, 0.28, "t"), (0.28, 0.4, vowel), (0.4, 0.48, "d"), (0.48, 0.8, "pau")]
    weights = phone_targets(phones, fps=60, duration_s=0.8)
    assert weights[:, JAW].max() > 0.15
    assert weights[:, CLOSE].max() < 0.2  # no bilabial, no closure


def test_lead_shows_the_mouth_shapes_early_but_not_the_closures() -> None:
    vowels = [(0.0, 0.3, "pau"), (0.3, 0.45, "aa"), (0.45, 0.6, "uw"), (0.6, 1.0, "pau")]
    led, on_time = phone_targets(vowels, 100, 1.0), phone_targets(vowels, 100, 1.0, lead_s=0.0)
    shift = round(VISUAL_LEAD_S * 100)
    np.testing.assert_allclose(led[:-shift], on_time[shift:], atol=1e-6)
    closure = phone_targets(_between("m", 0.1), 100, 1.0)[:, CLOSE]
    assert abs(np.argmax(closure) / 100 - 0.5) <= 0.035  # still shut at the phone's centre


def test_symbols_are_normalised() -> None:
    assert canonical_phone("AA1") == "aa"
    assert canonical_phone("sil") == "pau"
    assert canonical_phone("axr") == "er"
    assert canonical_phone("xx") is None
    upper = phone_targets([(0.0, 0.2, "M"), (0.2, 0.4, "IY1")], 60, 0.4)
    np.testing.assert_array_equal(upper, phone_targets([(0.0, 0.2, "m"), (0.2, 0.4, "iy")], 60, 0.4))


def test_unknown_phone_is_neutral_with_a_warning() -> None:
    with pytest.warns(UserWarning, match="xyz"):
        weights = phone_targets([(0.0, 0.5, "xyz")], fps=60, duration_s=0.5)
    np.testing.assert_array_equal(weights, 0.0)
    assert phone_targets([], fps=60, duration_s=0.5).shape == (30, NUM_WEIGHTS)


def test_targets_are_smooth_and_bounded() -> None:
    """Random phone strings at realistic and fast rates: no frame-to-frame jump above 0.5 at 60 fps."""
    rng = np.random.default_rng(0)
    symbols = sorted(PHONES)
    for _ in range(20):
        durations = rng.uniform(0.025, 0.2, size=40)
        ends = np.cumsum(durations)
        starts = ends - durations
        phones = [(float(s), float(e), symbols[i]) for s, e, i in zip(starts, ends, rng.integers(len(symbols), size=40))]
        weights = phone_targets(phones, fps=60, duration_s=float(ends[-1]))
        assert np.all((weights >= 0) & (weights <= 1))
        assert np.abs(np.diff(weights, axis=0)).max() <= 0.5


def test_targets_are_deterministic() -> None:
    phones = _between("b", 0.06, "uw")
    np.testing.assert_array_equal(phone_targets(phones, 60, 1.0), phone_targets(phones, 60, 1.0))


def test_augment_keeps_length_and_changes_level() -> None:
    t = np.arange(16_000) / 16_000
    speech_like = (0.5 * np.sin(2 * np.pi * 220 * t) * (np.sin(2 * np.pi * 3 * t) > 0)).astype(np.float32)
    peaks = []
    for seed in range(12):
        out = augment(speech_like, np.random.default_rng(seed))
        assert out.shape == speech_like.shape and out.dtype == np.float32
        assert np.all(np.isfinite(out))
        peaks.append(20 * np.log10(np.abs(out).max()))
    assert -20.5 <= min(peaks) and max(peaks) <= 1e-3
    assert np.ptp(peaks) > 3  # the level varies
    np.testing.assert_array_equal(augment(speech_like, np.random.default_rng(3)),
                                  augment(speech_like, np.random.default_rng(3)))


@pytest.mark.skipif(shutil.which("festival") is None,
                    reason="festival is not installed (Debian packages: scripts/speech-packages.txt)")
def test_dataset_script_writes_utterances(tmp_path: Path) -> None:
    fps = 30.0
    subprocess.run([sys.executable, str(REPO / "scripts" / "make_speech_dataset.py"), "--out", str(tmp_path),
                    "--count", "2", "--seed", "3", "--fps", str(fps)], check=True, capture_output=True, timeout=120)
    files = sorted(tmp_path.glob("*.npz"))
    assert [f.name for f in files] == ["000000.npz", "000001.npz"]
    for path in files:
        with np.load(path, allow_pickle=False) as data:
            audio, weights = data["audio"], data["weights"]
            phones = json.loads(data["phones_json"].tobytes())
            voice = json.loads(data["voice"].tobytes())
            assert float(data["fps"]) == fps
        assert audio.dtype == np.float32 and audio.ndim == 1 and 0 < np.abs(audio).max() <= 1
        assert weights.dtype == np.float32 and weights.shape == (math.ceil(audio.size / 16_000 * fps), NUM_WEIGHTS)
        assert voice["engine"] in ("festival", "flite")
        ends = [end for _, end, _ in phones]
        assert ends == sorted(ends) and abs(ends[-1] - audio.size / 16_000) < 0.2
        assert all(canonical_phone(p) is not None for _, _, p in phones)
