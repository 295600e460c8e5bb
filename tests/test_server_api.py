"""`avatar serve` on a real port: HTTP, the WebSocket protocol, limits and robustness; `avatar say`."""

from __future__ import annotations

import hashlib
import json
import signal
import socket
import time
import wave
from pathlib import Path

import av
import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from avatar.cli import main
from avatar.server.launch import serve_in_subprocess
from tests.test_server_session import pcm16, speech_like

TOKEN = "test-token-1234"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def server(avatar_path):
    with serve_in_subprocess(str(avatar_path), "--token", TOKEN, "--max-upload-mb", "1") as (url, process):
        yield url


@pytest.fixture(scope="module")
def limited_server(avatar_path):
    """No token (loopback), two sessions, 1 s idle limit, 4 s sessions, 64 KB messages."""
    with serve_in_subprocess(str(avatar_path), "--max-sessions", "2", "--idle-timeout-s", "1",
                             "--max-session-s", "4", "--max-message-bytes", "65536") as (url, process):
        yield url


@pytest.fixture(scope="module")
def speech_wav(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("speech") / "speech.wav"
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(22050)
        out.writeframes(pcm16(speech_like(1.5, 22050)))
    return path


def ws_url(url: str, query: str = "") -> str:
    return url.replace("http://", "ws://") + "/v1/stream" + (f"?{query}" if query else "")


def open_stream(url: str, query: str = "", token: str | None = TOKEN):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    ws = connect(ws_url(url, query), additional_headers=headers, max_size=None, open_timeout=20, legacy=True)
    return ws, json.loads(ws.recv(timeout=10))


def read_until(ws, predicate, timeout_s: float = 10.0) -> list[dict]:
    """Messages up to and including the first that satisfies `predicate`."""
    seen = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        message = json.loads(ws.recv(timeout=deadline - time.monotonic()))
        seen.append(message)
        if predicate(message):
            return seen
    raise AssertionError(f"nothing matched in {len(seen)} messages")


def close_code(ws, timeout_s: float = 10.0) -> int:
    with pytest.raises(ConnectionClosed) as closed:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            ws.recv(timeout=timeout_s)
    return closed.value.rcvd.code


def health(url: str) -> dict:
    return httpx.get(url + "/healthz", timeout=10).json()


def test_http_endpoints_need_the_token(server, avatar_path):
    assert health(server)["status"] == "ok"
    assert httpx.get(server + "/v1/avatars").status_code == 401
    assert httpx.get(server + "/v1/avatars", headers={"Authorization": "Bearer wrong-token"}).status_code == 401
    assert httpx.get(server + "/v1/avatars", params={"token": TOKEN}).status_code == 200
    assert httpx.get(server + "/v1/avatars", headers=AUTH).json() == {
        "avatars": [{"id": "astronaut", "name": "astronaut", "gaussians": 3000}]}
    details = httpx.get(server + "/v1/avatars/astronaut", headers=AUTH).json()
    model = httpx.get(server + "/v1/avatars/astronaut/model", headers=AUTH).content
    assert details["model_sha256"] == hashlib.sha256(model).hexdigest() == \
        hashlib.sha256(avatar_path.read_bytes()).hexdigest()
    missing = httpx.get(server + "/v1/avatars/nobody", headers=AUTH)
    assert missing.status_code == 404 and "GET /v1/avatars" in missing.json()["detail"]
    assert httpx.get(server + "/openapi.json", headers=AUTH).json()["paths"]["/v1/avatars/{avatar_id}/speak"]
    assert httpx.get(server + "/docs").status_code == 401
    assert "RTCPeerConnection" in httpx.get(server + "/viewer", params={"token": TOKEN}).text


def test_speak_returns_an_mp4_with_the_speech(server, speech_wav):
    response = httpx.post(server + "/v1/avatars/astronaut/speak?size=128", content=speech_wav.read_bytes(),
                          headers=AUTH, timeout=120)
    assert response.status_code == 200 and response.headers["content-type"] == "video/mp4"
    path = speech_wav.parent / "out.mp4"
    path.write_bytes(response.content)
    with av.open(str(path)) as container:
        video, audio = container.streams.video[0], container.streams.audio[0]
        assert (video.width, video.height) == (128, 128)
        frames = sum(1 for _ in container.decode(video))
    assert frames >= 1.5 * 30 and audio.rate > 0


@pytest.mark.parametrize("body, status, words", [
    (b"this is not audio at all", 422, "not a readable"),
    (b"", 400, "empty body"),
    (b"\0" * (2 << 20), 413, "at most 1.0 MB"),
])
def test_speak_rejects_bad_uploads_in_one_line(server, body, status, words):
    response = httpx.post(server + "/v1/avatars/astronaut/speak", content=body, headers=AUTH, timeout=60)
    assert response.status_code == status
    assert words in response.json()["detail"] and "\n" not in response.json()["detail"]
    assert health(server)["status"] == "ok"


def test_stream_speaks_then_ends_the_utterance(server):
    ws, ready = open_stream(server)
    with ws:
        assert ready["type"] == "ready" and ready["fps"] == 30 and len(ready["blendshapes"]) == 52
        assert ready["blendshapes"][0] == "browDownLeft" and 0.05 < ready["look_ahead_s"] <= 0.08
        ws.send(json.dumps({"type": "start", "sample_rate": 16000, "format": "pcm_s16le"}))
        audio = pcm16(speech_like(1.0))
        for i in range(0, len(audio), 640):
            ws.send(audio[i:i + 640])
        ws.send(json.dumps({"type": "end"}))
        messages = read_until(ws, lambda m: m["type"] == "utterance_end")
    frames = [m for m in messages if m["type"] == "frame"]
    speaking = [m for m in frames if m["speaking"]]
    assert len(speaking) == 30 and [round(m["t"] * 30) for m in speaking] == list(range(30))
    assert all(len(m["weights"]) == 52 and len(m["head"]) == 6 for m in frames)
    numbers = [m["frame"] for m in frames]
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))   # none dropped
    jaw = ready["blendshapes"].index("jawOpen")
    assert max(m["weights"][jaw] for m in speaking) > 0.1
    assert messages[-1] == {"type": "utterance_end", "utterance": 1, "interrupted": False}


def test_bad_messages_get_errors_and_the_session_goes_on(server):
    ws, _ = open_stream(server)
    with ws:
        for text, code in [("{not json", "bad_json"), ('{"type":"fly"}', "unknown_type"),
                           ('{"type":"start","sample_rate":5}', "bad_sample_rate"),
                           ('{"type":"emotion","name":"smug"}', "unknown_emotion"),
                           ('{"type":"gesture","name":"wave"}', "unknown_gesture"),
                           ('{"type":"end"}', "no_utterance")]:
            ws.send(text)
            error = read_until(ws, lambda m: m["type"] == "error")[-1]
            assert error["code"] == code, text
        ws.send(b"\0\1" * 100)   # audio before start
        assert read_until(ws, lambda m: m["type"] == "error")[-1]["code"] == "no_utterance"
        ws.send(json.dumps({"type": "emotion", "name": "happy", "intensity": 0.9}))
        ws.send(json.dumps({"type": "gesture", "name": "nod"}))
        read_until(ws, lambda m: m["type"] == "frame")
        # An odd sample rate is resampled.
        ws.send(json.dumps({"type": "start", "sample_rate": 11025}))
        ws.send(pcm16(speech_like(0.5, 11025)))
        ws.send(json.dumps({"type": "end"}))
        messages = read_until(ws, lambda m: m["type"] == "utterance_end")
    assert sum(m.get("speaking", False) for m in messages) == 15


def test_interrupt_mid_utterance_stops_speech_at_once(server):
    ws, _ = open_stream(server)
    with ws:
        ws.send(json.dumps({"type": "start", "sample_rate": 16000}))
        ws.send(pcm16(speech_like(3.0)))
        read_until(ws, lambda m: m.get("speaking"))
        ws.send(json.dumps({"type": "interrupt"}))
        messages = read_until(ws, lambda m: m["type"] == "utterance_end")
        assert messages[-1]["interrupted"] is True
        after = read_until(ws, lambda m: m["type"] == "frame" and not m["speaking"])
        settled = after[-1]["frame"]
        later = read_until(ws, lambda m: m.get("frame", 0) > settled + 10)
    assert sum(m.get("speaking", False) for m in after) <= 1 and not any(m.get("speaking") for m in later)


def test_stream_refuses_wrong_token_unknown_avatar_and_bad_fps(server):
    for query, token, code in [("", "wrong-token", 4401), ("", None, 4401), ("avatar=nobody", TOKEN, 4404),
                               ("fps=1000", TOKEN, 4400)]:
        ws = connect(ws_url(server, query), additional_headers={"Authorization": f"Bearer {token}"} if token else {},
                     legacy=True)
        assert close_code(ws) == code
    ws, ready = open_stream(server, f"token={TOKEN}&fps=60", token=None)   # browsers put the token in the query
    with ws:
        assert ready["fps"] == 60


def test_a_100_mb_message_closes_only_that_session(limited_server):
    ws, _ = open_stream(limited_server, token=None)
    ws.send(json.dumps({"type": "start", "sample_rate": 16000}))
    with pytest.raises(ConnectionClosed) as closed:
        ws.send(b"\0" * (100 << 20))
        while True:
            ws.recv(timeout=10)
    assert closed.value.rcvd is None or closed.value.rcvd.code == 1009
    assert health(limited_server)["status"] == "ok"
    ws, ready = open_stream(limited_server, token=None)
    with ws:
        assert ready["type"] == "ready"


def test_session_limits_idle_and_length(limited_server):
    first, _ = open_stream(limited_server, token=None)
    second, _ = open_stream(limited_server, token=None)
    third = connect(ws_url(limited_server), legacy=True)
    assert close_code(third) == 4429
    assert close_code(first) == 4408            # nobody spoke for 1 s
    second.close()
    talker, _ = open_stream(limited_server, token=None)
    started = last_sent = time.monotonic()
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            talker.recv(timeout=10)
            if time.monotonic() - last_sent > 0.2:   # talk, so the idle limit does not apply
                talker.send(json.dumps({"type": "gesture", "name": "nod"}))
                last_sent = time.monotonic()
    assert closed.value.rcvd.code == 4410 and 3.5 < time.monotonic() - started < 6


def test_a_client_vanishing_mid_utterance_frees_its_session(server):
    ws, _ = open_stream(server)
    ws.send(json.dumps({"type": "start", "sample_rate": 16000}))
    ws.send(pcm16(speech_like(0.5)))
    read_until(ws, lambda m: m.get("speaking"))
    ws.socket.shutdown(socket.SHUT_RDWR)   # no close handshake: the peer just disappears
    ws.socket.close()
    deadline = time.monotonic() + 20
    while health(server)["sessions"] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert health(server)["sessions"] == 0


def test_1000_open_close_cycles_leak_no_tasks_or_memory(server):
    def cycle():
        ws, ready = open_stream(server)
        assert ready["type"] == "ready"
        ws.close()

    for _ in range(50):
        cycle()
    time.sleep(0.5)
    before = health(server)
    for _ in range(1000):
        cycle()
    deadline = time.monotonic() + 10
    while health(server)["sessions"] and time.monotonic() < deadline:
        time.sleep(0.1)
    after = health(server)
    assert after["sessions"] == 0
    assert after["tasks"] <= before["tasks"]
    assert after["rss_mb"] - before["rss_mb"] < 25


def test_say_streams_a_file_and_writes_the_weights(server, speech_wav, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("AVATAR_TOKEN", TOKEN)
    csv = tmp_path / "weights.csv"
    assert main(["say", str(speech_wav), "--server", server, "-o", str(csv)]) == 0
    out = capsys.readouterr().out
    assert "45 speaking" in out and "latency p50" in out
    assert len(csv.read_text().splitlines()) == 46


def test_say_without_a_server_is_one_line(tmp_path, speech_wav, capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert main(["say", str(speech_wav), "--server", f"http://127.0.0.1:{port}"]) == 1
    err = capsys.readouterr().err
    assert "is `avatar serve` running" in err and len(err.strip().splitlines()) == 1


def test_serve_refuses_a_busy_port_and_an_exposed_host_without_token(capsys, avatar_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert main(["serve", str(avatar_path), "--port", str(port)]) == 1
    assert "cannot listen on 127.0.0.1" in capsys.readouterr().err
    assert main(["serve", str(avatar_path), "--host", "0.0.0.0"]) == 1
    assert "without a token" in capsys.readouterr().err
    assert main(["serve", str(avatar_path.parent / "missing.avatar")]) == 1


def test_python_client_lists_downloads_and_speaks(server, speech_wav, avatar_path, tmp_path):
    from avatar.client import AvatarClient, ClientError

    client = AvatarClient(server, token=TOKEN)
    assert [a["id"] for a in client.avatars()] == ["astronaut"]
    model = client.download_model("astronaut", tmp_path / "copy.avatar")
    assert model.read_bytes() == avatar_path.read_bytes()
    video = client.speak("astronaut", speech_wav, tmp_path / "said.mp4", size=96)
    with av.open(str(video)) as container:
        assert container.streams.video[0].width == 96 and container.streams.audio
    with pytest.raises(ClientError, match="401"):
        AvatarClient(server, token="wrong-token-123").avatars()
    with pytest.raises(ClientError, match="404"):
        client.avatar("nobody")


def test_bad_query_parameters_are_one_line(server, speech_wav):
    response = httpx.post(server + "/v1/avatars/astronaut/speak?fps=1000", content=speech_wav.read_bytes(),
                          headers=AUTH, timeout=60)
    assert response.status_code == 422 and response.json()["detail"].startswith("fps: ")


def test_say_can_ask_the_server_for_a_video(server, speech_wav, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("AVATAR_TOKEN", TOKEN)
    out = tmp_path / "said.mp4"
    assert main(["say", str(speech_wav), "--server", server, "--video", str(out)]) == 0
    with av.open(str(out)) as container:
        assert container.streams.video[0].width == 512 and container.streams.audio
    assert "astronaut says speech.wav" in capsys.readouterr().out


def test_webrtc_refuses_a_bad_offer_and_an_unknown_session(server):
    ws, ready = open_stream(server)
    with ws:
        bad = httpx.post(f"{server}/v1/stream/{ready['session']}/webrtc", headers=AUTH, timeout=30,
                         json={"sdp": "this is not SDP", "type": "offer"})
        assert bad.status_code == 422 and "\n" not in bad.json()["detail"]
        missing = httpx.post(f"{server}/v1/stream/nope/webrtc", headers=AUTH, timeout=30,
                             json={"sdp": "v=0", "type": "offer"})
        assert missing.status_code == 404
        read_until(ws, lambda m: m["type"] == "frame")   # the session goes on
    assert health(server)["status"] == "ok"


def test_serve_without_an_avatar_removes_its_sample_folder_when_terminated(tmp_path):
    with serve_in_subprocess(env={"TMPDIR": str(tmp_path)}) as (url, process):
        assert health(url)["status"] == "ok"
        assert [p.name for p in tmp_path.iterdir() if p.name.startswith("avatar-serve-")]
    assert process.returncode == 128 + signal.SIGTERM
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("avatar-serve-")]
