"""The speech→face model: streaming equals whole-file, causality and look-ahead, ranges, files, a training smoke run.

Frame counts: an utterance of S samples at R Hz gives T = ⌈S · fps / R⌉ frames at
`fps` (frame i at i / fps, every frame with i / fps < S / R), i.e. ⌊duration · fps⌋ + 1
unless duration · fps is a whole number, then exactly that number.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from animation.features import StreamingFeatures, StreamingResampler, log_mel, resample
from animation.model import (Audio2Face, StreamingAudio2Face, load_default_model, load_model, model_size_bytes,
                             predict, predict_with_energy, save_weights)
from avatar.arkit import index_of
from avatar.errors import ModelFileError

REPO = Path(__file__).resolve().parents[1]
JAW = index_of("jawOpen")


@pytest.fixture(scope="module")
def model() -> Audio2Face:
    """An untrained network: streaming and causality are properties of the code, not of the weights."""
    torch.manual_seed(0)
    return Audio2Face()


def speech_like(seconds: float, rate: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A voiced tone with a random syllable-rate loudness envelope.

    Returns:
        audio [⌈seconds · rate⌉] float32, and the envelope [same] in 0..1 (the "jaw").
    """
    rng = np.random.default_rng(seed)
    t = np.arange(int(np.ceil(seconds * rate))) / rate
    knots = rng.uniform(0, 1, int(seconds * 5) + 2) * (rng.uniform(0, 1, int(seconds * 5) + 2) > 0.3)
    envelope = np.interp(t, np.linspace(0, seconds, len(knots)), knots)
    f0 = rng.uniform(100, 220)
    voice = sum(np.sin(2 * np.pi * f0 * h * t + rng.uniform(0, 6)) / h for h in range(1, 12) if f0 * h < rate / 2)
    audio = 0.2 * envelope * voice / 3 + 0.002 * rng.standard_normal(len(t))
    return audio.astype(np.float32), envelope


def in_chunks(stream: StreamingAudio2Face, audio: np.ndarray, rate: int, chunk_s: float) -> np.ndarray:
    step = int(round(rate * chunk_s))
    parts = [stream.push(audio[i:i + step], rate) for i in range(0, len(audio), step)]
    return np.concatenate(parts + [stream.flush()])


def test_features_stream_equals_whole_file_for_any_chunking():
    audio, _ = speech_like(1.37, 16_000)
    whole, energy = log_mel(audio)
    assert whole.shape == (-(-len(audio) // 160), 64) and energy.shape == (len(whole),)
    for sizes in ([320], [1, 7, 159, 161, 400, 1000], [len(audio)]):
        stream = StreamingFeatures()
        parts, i, k = [], 0, 0
        while i < len(audio):
            parts.append(stream.push(audio[i:i + sizes[k % len(sizes)]]))
            i, k = i + sizes[k % len(sizes)], k + 1
        parts.append(stream.flush())
        assert np.array_equal(np.concatenate([p[0] for p in parts]), whole)
        assert np.array_equal(np.concatenate([p[1] for p in parts]), energy)


def test_features_are_level_independent_after_the_first_peak():
    audio, _ = speech_like(3.0, 16_000, seed=3)
    loud, _ = log_mel(audio * 4)    # +12 dB
    quiet, _ = log_mel(audio / 4)   # -12 dB
    # The AGC starts from a fixed reference (-40 dB), which the quiet copy's peaks only pass after 1.5 s.
    assert np.abs(loud[150:] - quiet[150:]).max() < 0.01
    assert np.abs(loud[:20] - quiet[:20]).max() > 0.1


@pytest.mark.parametrize("rate", [8_000, 22_050, 44_100, 48_000])
def test_resampler_stream_equals_whole_file_and_keeps_a_tone(rate):
    t = np.arange(int(rate * 0.5)) / rate
    tone = np.sin(2 * np.pi * 440 * t)
    whole = resample(tone, rate)
    assert len(whole) == -(-len(tone) * 16_000 // rate)
    out = (np.arange(len(whole)) / 16_000)[200:-200]
    assert np.abs(whole[200:-200] - np.sin(2 * np.pi * 440 * out)).max() < 1e-3
    stream = StreamingResampler(rate)
    step = rate // 50
    chunks = [stream.push(tone[i:i + step]) for i in range(0, len(tone), step)] + [stream.flush()]
    assert np.allclose(np.concatenate(chunks), whole, atol=1e-6)


@pytest.mark.parametrize("rate", [16_000, 44_100, 48_000])
@pytest.mark.parametrize("fps", [30, 60])
def test_20ms_chunks_give_the_whole_file_curves(model, rate, fps):
    audio, _ = speech_like(1.5, rate, seed=rate)
    time_s, whole = predict(model, audio, rate, fps)
    chunked = in_chunks(StreamingAudio2Face(model, fps), audio, rate, 0.020)
    assert len(whole) == -(-len(audio) * fps // rate) == len(time_s)
    assert np.allclose(time_s, np.arange(len(whole)) / fps)
    assert chunked.shape == whole.shape == (len(whole), 52)
    assert np.abs(chunked - whole).max() <= 1e-5
    assert whole.min() >= 0 and whole.max() <= 1


def test_frame_count_rule_and_counters(model):
    for rate, samples, fps, expected in [(16_000, 16_000, 30, 30), (16_000, 16_001, 30, 31),
                                         (48_000, 47_999, 60, 60), (44_100, 4_410, 25, 3)]:
        stream = StreamingAudio2Face(model, fps)
        pushed = stream.push(np.zeros(samples, np.float32), rate)
        assert stream.frames_emitted == len(pushed)
        assert len(pushed) + len(stream.flush()) == expected
        assert stream.frames_emitted == 0  # flush starts the next utterance


def test_look_ahead_is_at_most_80_ms(model):
    for fps in (30, 60, 25, 29.97):
        stream = StreamingAudio2Face(model, fps)
        assert 0.05 < stream.look_ahead_s <= 0.080
        assert stream.fps == pytest.approx(fps)


@pytest.mark.parametrize("rate", [16_000, 48_000])
def test_causal_within_the_look_ahead(model, rate):
    fps = 60
    audio, _ = speech_like(2.0, rate, seed=5)
    _, before = predict(model, audio, rate, fps)
    look_ahead = StreamingAudio2Face(model, fps).look_ahead_s
    for t in (0.3, 1.0, 1.6):
        changed = audio.copy()
        cut = int(np.ceil((t + look_ahead) * rate))
        changed[cut:] = np.random.default_rng(1).uniform(-1, 1, len(audio) - cut)
        _, after = predict(model, changed, rate, fps)
        settled = int(np.floor(t * fps))          # frames at times ≤ t
        assert np.array_equal(after[:settled + 1], before[:settled + 1])
        assert not np.allclose(after, before)     # the change is seen, later


def test_streaming_emits_each_frame_as_soon_as_its_look_ahead_has_arrived(model):
    fps, rate = 60, 16_000
    stream = StreamingAudio2Face(model, fps)
    audio, _ = speech_like(1.0, rate)
    for i in range(0, len(audio), 160):
        stream.push(audio[i:i + 160], rate)
        heard_s = (i + 160) / rate
        # Every frame whose look-ahead is in is out; the latest one out needed audio past its own time.
        assert stream.frames_emitted >= np.floor((heard_s - stream.look_ahead_s) * fps) + 1
        assert (stream.frames_emitted - 1) / fps <= heard_s


def test_energy_follows_loudness_in_0_to_1(model):
    audio, envelope = speech_like(3.0, 16_000, seed=2)
    time_s, weights, energy = predict_with_energy(model, audio, 16_000, 30)
    assert energy.shape == (len(weights),) and energy.min() >= 0 and energy.max() <= 1
    at_frames = envelope[np.minimum((time_s * 16_000).astype(int), len(envelope) - 1)]
    assert np.corrcoef(energy, at_frames)[0, 1] > 0.7
    stream = StreamingAudio2Face(model, 30)
    parts = [stream.push_with_energy(audio[i:i + 320], 16_000) for i in range(0, len(audio), 320)]
    parts.append(stream.flush_with_energy())
    assert np.abs(np.concatenate([p[1] for p in parts]) - energy).max() <= 1e-6


def test_sample_rate_change_needs_a_new_utterance(model):
    stream = StreamingAudio2Face(model, 30)
    stream.push(np.zeros(480, np.float32), 48_000)
    with pytest.raises(ValueError, match="sample rate changed"):
        stream.push(np.zeros(160, np.float32), 16_000)
    stream.reset()
    stream.push(np.zeros(160, np.float32), 16_000)


def test_save_load_round_trip_and_size(model, tmp_path):
    path = save_weights(model, tmp_path / "a2f.safetensors", {"seed": 7})
    loaded = load_model(path)
    assert loaded.config == model.config and loaded.feature_config == model.feature_config
    assert loaded.training_info == {"seed": 7}
    audio, _ = speech_like(1.0, 16_000)
    assert np.array_equal(predict(loaded, audio, 16_000, 30)[1], predict(model, audio, 16_000, 30)[1])
    assert path.stat().st_size <= 10 * 2 ** 20 and model_size_bytes(model) <= 10 * 2 ** 20


def test_missing_or_foreign_model_file_is_a_clear_error(tmp_path):
    with pytest.raises(ModelFileError, match="does not exist"):
        load_model(tmp_path / "nothing.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a model")
    with pytest.raises(ModelFileError, match="not a readable"):
        load_model(tmp_path / "junk.safetensors")


def test_default_model_loads_when_shipped():
    if not (REPO / "assets" / "audio2face.safetensors").is_file():
        with pytest.raises(ModelFileError):
            load_default_model()
        pytest.fail("assets/audio2face.safetensors is missing: run `make train-audio2face`")
    model = load_default_model()
    assert model.training_info.get("steps", 0) > 0
    assert StreamingAudio2Face(model, 30).look_ahead_s <= 0.080


def write_tone_dataset(folder: Path, count: int, fps: float = 60.0) -> None:
    """Utterances in the dataset's .npz layout whose phones are "aa" where the tone is loud, else "pau"."""
    folder.mkdir()
    for i in range(count):
        audio, envelope = speech_like(2.5, 16_000, seed=100 + i)
        loud = envelope[::160] > 0.4  # at 100 Hz
        edges = np.flatnonzero(np.diff(loud)) + 1
        bounds = np.concatenate([[0], edges, [len(loud)]]) / 100
        phones = [(float(a), float(b), "aa" if loud[int(a * 100)] else "pau") for a, b in zip(bounds[:-1], bounds[1:])]
        voice = np.frombuffer(json.dumps({"engine": "test", "voice": "tone"}).encode(), np.uint8)
        np.savez(folder / f"{i:06d}.npz", audio=audio, fps=np.float64(fps),
                 phones_json=np.frombuffer(json.dumps(phones).encode(), np.uint8), voice=voice)


def test_a_short_training_run_lowers_the_loss(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("train_audio2face", REPO / "scripts" / "train_audio2face.py")
    script = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, script)  # its dataclasses look their module up
    spec.loader.exec_module(script)
    write_tone_dataset(tmp_path / "data", 8)
    settings = script.TrainSettings(seed=0, steps=40, batch=4, crop_s=(1.0, 1.5), learning_rate=3e-3,
                                    warmup_steps=5, evaluations=1, threads=1, augment=False)
    summary = script.train(tmp_path / "data", tmp_path / "a2f.safetensors", settings, log=lambda _: None)
    first, last = summary["history"][0], summary["history"][-1]
    assert summary["steps"] == 40
    assert last["loss"] < 0.7 * first["loss"]
    assert load_model(tmp_path / "a2f.safetensors").training_info["validation"]["loss"] == last["loss"]
