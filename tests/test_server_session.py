"""The live protocol, sessions and the WebRTC audio release, without a network."""

from __future__ import annotations

import asyncio
import json
import time

import numpy as np
import pytest

from animation import load_default_model
from avatar.errors import InputError
from avatar.server.config import ServerConfig, resolve_tokens
from avatar.server.protocol import (EmotionMessage, GestureMessage, ProtocolError, StartMessage, frame_message,
                                    parse_client_message)
from avatar.server.session import MAX_LEAD_S, StreamSession
from avatar.face_state import FaceState

RATE = 16000


@pytest.fixture(scope="module")
def model():
    return load_default_model()


def speech_like(seconds: float, rate: int = RATE, seed: int = 0) -> np.ndarray:
    """Syllable-rate amplitude-modulated harmonics with noise: enough to move the jaw."""
    t = np.arange(int(seconds * rate)) / rate
    rng = np.random.default_rng(seed)
    voice = sum(np.sin(2 * np.pi * f * t) / k for k, f in enumerate((140, 280, 420, 700, 1100), 1))
    envelope = np.clip(np.sin(2 * np.pi * 4 * t), 0, None)
    return (0.3 * envelope * voice + 0.01 * rng.standard_normal(len(t))).astype(np.float32)


def pcm16(samples: np.ndarray) -> bytes:
    return (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()


@pytest.mark.parametrize("text, code", [
    ("{nope", "bad_json"),
    ("[1, 2]", "bad_message"),
    ('{"sample_rate": 16000}', "bad_message"),
    ('{"type": "dance"}', "unknown_type"),
    ('{"type": "start", "sample_rate": 0}', "bad_sample_rate"),
    ('{"type": "start", "sample_rate": 7999}', "bad_sample_rate"),
    ('{"type": "start", "sample_rate": "fast"}', "bad_sample_rate"),
    ('{"type": "start", "sample_rate": 16000, "format": "mp3"}', "bad_format"),
    ('{"type": "end", "extra": 1}', "bad_message"),
    ('{"type": "emotion", "name": "happy", "intensity": 2}', "bad_message"),
])
def test_bad_messages_get_an_error_code_and_one_line(text, code):
    with pytest.raises(ProtocolError) as caught:
        parse_client_message(text)
    assert caught.value.code == code
    reply = json.loads(caught.value.to_message())
    assert reply["type"] == "error" and reply["code"] == code and "\n" not in reply["message"]


def test_valid_messages_parse():
    start = parse_client_message('{"type":"start","sample_rate":22050,"format":"pcm_f32le"}')
    assert isinstance(start, StartMessage) and start.sample_rate == 22050 and start.format == "pcm_f32le"
    assert parse_client_message('{"type":"start","sample_rate":16000}').format == "pcm_s16le"
    assert isinstance(parse_client_message('{"type":"emotion","name":null}'), EmotionMessage)
    assert isinstance(parse_client_message('{"type":"gesture","name":"nod"}'), GestureMessage)


def test_frame_message_is_json_with_52_weights_and_a_6_value_head():
    state = FaceState(1.25, np.linspace(0, 1, 52), [0.1, -0.2, 0.3], [1.0, 2.0, -3.0])
    message = json.loads(frame_message(7, state, True))
    assert message["type"] == "frame" and message["frame"] == 7 and message["speaking"] is True
    assert message["t"] == 1.25 and len(message["weights"]) == 52 and message["weights"][-1] == 1.0
    assert message["head"] == [0.1, -0.2, 0.3, 1.0, 2.0, -3.0]


def _session(model, fps: float = 30) -> StreamSession:
    return StreamSession("s", "a", fps, model, seed=1)


def _play_all(session: StreamSession, count: int) -> list:
    """Emit `count` frames without waiting (the pacing is tested separately)."""
    return [session._emit() for _ in range(count)]


def test_audio_in_any_chunk_size_gives_the_same_frames(model):
    audio = speech_like(1.0)
    whole = _session(model)
    whole.start(StartMessage(type="start", sample_rate=RATE))
    whole.push_audio(pcm16(audio))
    whole.end()
    chunked = _session(model)
    chunked.start(StartMessage(type="start", sample_rate=RATE))
    data = pcm16(audio)
    cuts = np.cumsum(np.random.default_rng(0).integers(1, 997, size=200))  # odd sizes split samples
    for a, b in zip(np.r_[0, cuts], np.r_[cuts, len(data)]):
        if a < len(data):
            chunked.push_audio(data[a:min(b, len(data))])
    chunked.end()
    a, b = _play_all(whole, 40), _play_all(chunked, 40)
    assert [f.speaking for f in a] == [f.speaking for f in b] and sum(f.speaking for f in a) == 30
    np.testing.assert_allclose(np.stack([f.state.weights for f in a]), np.stack([f.state.weights for f in b]),
                               atol=1e-5)


def test_speaking_frames_carry_utterance_time_and_end_once(model):
    session = _session(model)
    for _ in range(2):
        session.start(StartMessage(type="start", sample_rate=44100))   # an odd rate: resampled
        session.push_audio(pcm16(speech_like(0.5, 44100)))
        session.end()
    frames = _play_all(session, 40)
    assert [f.number for f in frames] == list(range(40))
    speaking = [f for f in frames if f.speaking]
    assert len(speaking) == 30 and [f.utterance for f in speaking] == [1] * 15 + [2] * 15
    assert [round(f.state.time_s * 30) for f in speaking] == list(range(15)) * 2
    ends = [(f.number, f.ended) for f in frames if f.ended]
    assert ends == [(speaking[14].number, [1]), (speaking[29].number, [2])]
    assert not session.speaking


def test_interrupt_cuts_the_utterance_short(model):
    session = _session(model)
    session.start(StartMessage(type="start", sample_rate=RATE))
    session.push_audio(pcm16(speech_like(1.0)))
    frames = _play_all(session, 5)
    assert frames[-1].speaking
    assert session.interrupt() == [1]
    assert not any(f.speaking for f in _play_all(session, 5))
    with pytest.raises(ProtocolError) as caught:
        session.push_audio(pcm16(speech_like(0.1)))
    assert caught.value.code == "no_utterance"


def test_audio_before_start_and_end_without_start_are_refused(model):
    session = _session(model)
    for action in (lambda: session.push_audio(b"\0\0"), session.end):
        with pytest.raises(ProtocolError) as caught:
            action()
        assert caught.value.code == "no_utterance"
    with pytest.raises(ProtocolError) as caught:
        session.emotion(EmotionMessage(type="emotion", name="smug"))
    assert caught.value.code == "unknown_emotion" and "happy" in caught.value.message


def test_float_pcm_with_nan_is_refused(model):
    session = _session(model)
    session.start(StartMessage(type="start", sample_rate=RATE, format="pcm_f32le"))
    session.push_audio(np.full(320, 0.1, "<f4").tobytes())
    with pytest.raises(ProtocolError) as caught:
        session.push_audio(np.full(320, np.nan, "<f4").tobytes())
    assert caught.value.code == "bad_audio"


def test_frames_are_paced_in_real_time_even_when_audio_comes_all_at_once(model):
    async def run() -> list:
        session = _session(model)
        session.start(StartMessage(type="start", sample_rate=RATE))
        session.push_audio(pcm16(speech_like(1.0)))   # a second of audio, instantly
        session.end()
        frames = []
        async for frame in session.frames():
            frames.append((time.monotonic(), frame))
            if frame.ended:
                session.close()
        return frames

    frames = asyncio.run(run())
    speaking = [(t, f) for t, f in frames if f.speaking]
    assert len(speaking) == 30
    span = speaking[-1][0] - speaking[0][0]
    assert 29 / 30 - MAX_LEAD_S - 0.02 <= span <= 29 / 30 + 0.1


def test_idle_frames_keep_the_frame_rate(model):
    async def run() -> list[float]:
        session = _session(model, fps=50)
        times = []
        async for frame in session.frames():
            times.append(time.monotonic())
            if len(times) == 26:
                session.close()
        return times

    times = asyncio.run(run())
    assert abs((times[-1] - times[0]) - 0.5) < 0.05


def test_webrtc_audio_is_released_with_the_frames_that_show_it(model):
    from avatar.server.webrtc import AUDIO_RATE, SpeechAudioTrack

    session = _session(model)
    track = SpeechAudioTrack(session.fps)
    session.listeners.append(track)
    session.start(StartMessage(type="start", sample_rate=RATE))
    session.push_audio(pcm16(speech_like(0.5)))
    assert track._out_len == 0          # nothing plays before its frame is shown
    session.end()
    released = []
    for _ in range(16):
        session._emit()
        released.append(track._out_len)
    per_frame = AUDIO_RATE // 30
    assert released[:3] == [per_frame, 2 * per_frame, 3 * per_frame]
    assert abs(released[-1] - 0.5 * AUDIO_RATE) < per_frame   # the whole utterance, once
    session.interrupt()
    assert track._out_len == 0


def test_tokens_come_from_flags_file_and_environment(tmp_path, monkeypatch):
    file = tmp_path / "tokens"
    file.write_text("# team tokens\nfile-token-123\n\n")
    monkeypatch.setenv("AVATAR_TOKEN", "env-token-456")
    assert resolve_tokens(["flag-token-789"], file) == {"flag-token-789", "file-token-123", "env-token-456"}
    monkeypatch.delenv("AVATAR_TOKEN")
    with pytest.raises(InputError, match="at least 8"):
        resolve_tokens(["short"], None)
    with pytest.raises(InputError, match="cannot read"):
        resolve_tokens(None, tmp_path / "missing")


def test_no_token_means_loopback_only():
    ServerConfig("127.0.0.1").check_exposure()
    ServerConfig("::1").check_exposure()
    with pytest.raises(InputError, match="without a token"):
        ServerConfig("0.0.0.0").check_exposure()
    ServerConfig("0.0.0.0", tokens=frozenset({"a-long-token"})).check_exposure()


def test_avatars_are_served_by_file_name(avatar_path, tmp_path):
    import shutil

    from avatar.server import load_avatars

    other = tmp_path / "Ada Lovelace.avatar"
    shutil.copy(avatar_path, other)
    served = load_avatars([avatar_path, other])
    assert list(served) == ["astronaut", "ada-lovelace"]
    assert served["ada-lovelace"].summary() == {"id": "ada-lovelace", "name": "astronaut", "gaussians": 3000}
    twin = tmp_path / "twin" / "astronaut.avatar"
    twin.parent.mkdir()
    shutil.copy(avatar_path, twin)
    with pytest.raises(InputError, match="would both be served as 'astronaut'"):
        load_avatars([avatar_path, twin])
