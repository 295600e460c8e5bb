"""`avatar animate` and `avatar speak` with the shipped speech model, on generated speech-like audio."""

from __future__ import annotations

import json
import shutil
import subprocess
import wave

import av
import cv2
import numpy as np
import pytest

from avatar import index_of
from avatar.cli import main
from avatar.commands.speech import EMOTIONS
from avatar.weights_csv import read_weights_csv


def speech_like(path, rate: int = 44100, seconds: float = 2.0) -> None:
    """espeak-ng saying a sentence when it is installed; else syllable-rate modulated voiced noise."""
    if shutil.which("espeak-ng"):
        subprocess.run(["espeak-ng", "-w", str(path), "Maybe we should talk about the budget"], check=True)
        return
    t = np.arange(int(rate * seconds)) / rate
    voiced = np.sign(np.sin(2 * np.pi * 120 * t)) * (0.5 + 0.5 * np.sin(2 * np.pi * 4 * t)) ** 2
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(rate)
        f.writeframes((0.3 * voiced * 32767).astype(np.int16).tobytes())


def test_emotion_names_match_the_animation_package():
    from animation import EMOTIONS as known

    assert set(EMOTIONS) == set(known)


def test_animate_writes_weights_that_follow_the_speech(tmp_path):
    speech_like(tmp_path / "s.wav")
    assert main(["animate", str(tmp_path / "s.wav"), "-o", str(tmp_path / "w.csv"), "--fps", "60"]) == 0
    time_s, weights = read_weights_csv(tmp_path / "w.csv")
    assert np.allclose(np.diff(time_s), 1 / 60, atol=1e-5)
    assert weights.min() >= 0 and weights.max() <= 1
    assert np.ptp(weights[:, index_of("jawOpen")]) > 0.05  # the mouth moves


def test_speak_renders_in_sync_with_the_audio_muxed(avatar_path, tmp_path):
    speech_like(tmp_path / "s.wav")
    out = tmp_path / "talk.mp4"
    assert main(["speak", str(avatar_path), str(tmp_path / "s.wav"), "-o", str(out), "--size", "96",
                 "--backend", "cpu", "--emotion", "happy", "-q"]) == 0
    with av.open(str(out)) as container:
        video, audio = container.streams.video[0], container.streams.audio[0]
        video_s = float(video.duration * video.time_base)
        audio_s = float(audio.duration * audio.time_base)
    assert audio_s > 0.5 and audio_s - 0.1 <= video_s <= audio_s + 0.8  # the face outlasts the speech by its tail


def test_bad_audio_is_a_one_line_error(avatar_path, tmp_path, capsys):
    (tmp_path / "bad.wav").write_text("no audio here")
    assert main(["speak", str(avatar_path), str(tmp_path / "bad.wav"), "-o", str(tmp_path / "o.mp4")]) == 1
    err = capsys.readouterr().err.strip()
    assert "not a readable audio file" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "o.mp4").exists()


def test_bench_lipsync_prints_its_keys_and_scores_the_track_itself_perfectly(tmp_path, face_model_path, capsys):
    from avatar.commands.bench_speech import LIPSYNC_KEYS, LipsyncClip
    from avatar.sample import sample_photo
    from render import VideoWriter
    from tests.test_server_session import speech_like as speech_samples

    # The astronaut shifted a few pixels each frame, rigidly: her lips move with the head only.
    fps, seconds, path = 10.0, 3.0, tmp_path / "talk.mp4"
    photo = sample_photo()
    with VideoWriter(path, fps, audio=speech_samples(seconds, 16000), sample_rate=16000) as video:
        for i in range(int(seconds * fps)):
            sway = np.float32([[1, 0, 3 * np.sin(i)], [0, 1, 2 * np.cos(i)]])
            video.write(cv2.warpAffine(photo, sway, (512, 512), borderMode=cv2.BORDER_REFLECT))
    assert main(["bench", "lipsync", str(path), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(printed) == set(LIPSYNC_KEYS)
    clip = LipsyncClip.load(path)
    assert len(clip.time_s) == 30
    own = clip.scores(clip.time_s, clip.tracked - clip.rest)
    assert own["jaw_corr"] == pytest.approx(1.0)
    assert own["lve"] < 0.5 * own["lve_neutral"], own
    assert own["lve_loudness"] == pytest.approx(printed["lve_loudness"], abs=1e-4)
