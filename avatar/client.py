"""A Python client for `avatar serve`: HTTP calls (avatars, models, MP4s) and live streams.

    from avatar.client import AvatarClient

    client = AvatarClient("http://127.0.0.1:8000", token="...")
    client.speak("astronaut", "hello.wav", "hello.mp4")           # an MP4, rendered by the server

    async with client.stream() as stream:                        # 52 weights + head pose per frame
        sending = asyncio.create_task(stream.say(samples, 16000))  # 20-ms chunks in real time
        async for message in stream.messages():
            if message["type"] == "frame": ...
            if message["type"] == "utterance_end": break
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import numpy as np

from avatar.errors import AvatarError
from avatar.files import atomic_output

TOKEN_ENV = "AVATAR_TOKEN"


class ClientError(AvatarError):
    """The server refused a request, closed a stream, or could not be reached."""


class AvatarClient:
    """One server; the token defaults to $AVATAR_TOKEN."""

    def __init__(self, url: str = "http://127.0.0.1:8000", token: str | None = None, timeout_s: float = 120.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ClientError(f"server URL {url!r} must look like http://HOST:PORT")
        self.url = url.rstrip("/")
        self.token = token if token is not None else os.environ.get(TOKEN_ENV) or None
        self.timeout_s = timeout_s

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def _request(self, method: str, path: str, headers: dict[str, str] | None = None, **kwargs) -> Any:
        import httpx

        try:
            response = httpx.request(method, self.url + path, headers={**self._headers(), **(headers or {})},
                                     timeout=self.timeout_s, **kwargs)
        except httpx.HTTPError as exc:
            raise ClientError(f"cannot reach {self.url} ({exc}): is `avatar serve` running there?") from None
        if response.status_code >= 400:
            try:
                detail = response.json()["detail"]
            except (ValueError, KeyError, TypeError):
                detail = response.text[:200]
            raise ClientError(f"{method} {path}: {response.status_code}: {detail}")
        return response

    def health(self) -> dict[str, Any]:
        return self._request("GET", "/healthz").json()

    def avatars(self) -> list[dict[str, Any]]:
        """`[{"id": .., "name": .., "gaussians": ..}, ..]`."""
        return self._request("GET", "/v1/avatars").json()["avatars"]

    def avatar(self, avatar_id: str) -> dict[str, Any]:
        return self._request("GET", f"/v1/avatars/{avatar_id}").json()

    def download_model(self, avatar_id: str, path: str | os.PathLike) -> Path:
        """The avatar's `.avatar` bundle, written atomically to `path`."""
        data = self._request("GET", f"/v1/avatars/{avatar_id}/model").content
        with atomic_output(Path(path)) as tmp:
            tmp.write_bytes(data)
        return Path(path)

    def speak(self, avatar_id: str, audio_path: str | os.PathLike, output_path: str | os.PathLike, *,
              size: int = 512, fps: int = 30, emotion: str | None = None, intensity: float = 0.7) -> Path:
        """The server renders the avatar saying `audio_path` (any audio file); the MP4 goes to `output_path`."""
        try:
            audio = Path(audio_path).read_bytes()
        except OSError as exc:
            raise ClientError(f"cannot read {audio_path} ({exc.strerror})") from None
        query = {"size": size, "fps": fps, "intensity": intensity, **({"emotion": emotion} if emotion else {})}
        data = self._request("POST", f"/v1/avatars/{avatar_id}/speak?{urlencode(query)}", content=audio,
                             headers={"Content-Type": "application/octet-stream"}).content
        with atomic_output(Path(output_path)) as tmp:
            tmp.write_bytes(data)
        return Path(output_path)

    def webrtc_answer(self, session: str, offer_sdp: str, size: int = 512) -> str:
        """SDP answer for a WebRTC offer on an open stream session (video `size` x `size` px + speech audio)."""
        body = {"sdp": offer_sdp, "type": "offer", "width": size, "height": size}
        return self._request("POST", f"/v1/stream/{session}/webrtc", json=body).json()["sdp"]

    def stream(self, avatar: str | None = None, fps: float = 30) -> "Stream":
        """A live session (`async with client.stream() as s:`)."""
        parts = urlsplit(self.url)
        query = urlencode({"fps": fps, **({"avatar": avatar} if avatar else {})})
        url = urlunsplit(("wss" if parts.scheme == "https" else "ws", parts.netloc, parts.path + "/v1/stream",
                          query, ""))
        return Stream(url, self._headers())


class Stream:
    """A `/v1/stream` session: send speech and commands, read frames (see `avatar.server.protocol`)."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        self.url = url
        self._headers = headers
        self._ws = None
        self.ready: dict[str, Any] = {}

    async def __aenter__(self) -> "Stream":
        import websockets

        try:
            self._ws = await websockets.connect(self.url, additional_headers=self._headers, max_size=None,
                                                open_timeout=30)
            self.ready = json.loads(await self._ws.recv())
        except websockets.ConnectionClosed as exc:
            raise ClientError(f"the server closed the stream ({exc.rcvd.code if exc.rcvd else '?'}): "
                              f"{exc.rcvd.reason if exc.rcvd else ''}") from None
        except (OSError, websockets.InvalidHandshake, asyncio.TimeoutError) as exc:
            raise ClientError(f"cannot open {self.url} ({exc}): is `avatar serve` running there?") from None
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def session(self) -> str:
        return self.ready["session"]

    @property
    def fps(self) -> float:
        return float(self.ready["fps"])

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()

    async def send_json(self, message: dict[str, Any]) -> None:
        await self._ws.send(json.dumps(message))

    async def start(self, sample_rate: int, format: str = "pcm_s16le") -> None:
        await self.send_json({"type": "start", "sample_rate": sample_rate, "format": format})

    async def send_audio(self, samples: np.ndarray | bytes) -> None:
        """Raw bytes as they are, or float samples in [-1, 1] as pcm_s16le."""
        if not isinstance(samples, bytes):
            samples = (np.clip(np.asarray(samples, np.float32), -1, 1) * 32767).astype("<i2").tobytes()
        await self._ws.send(samples)

    async def end(self) -> None:
        await self.send_json({"type": "end"})

    async def interrupt(self) -> None:
        await self.send_json({"type": "interrupt"})

    async def emotion(self, name: str | None, intensity: float = 0.7) -> None:
        await self.send_json({"type": "emotion", "name": name, "intensity": intensity})

    async def gesture(self, name: str, intensity: float = 1.0) -> None:
        await self.send_json({"type": "gesture", "name": name, "intensity": intensity})

    async def say(self, samples: np.ndarray, sample_rate: int, *, chunk_s: float = 0.02,
                  realtime: bool = True) -> list[float]:
        """One utterance: start, `chunk_s` chunks (paced in real time unless told not), end.

        Returns the `time.monotonic()` at which each chunk was sent (for latency measurements).
        """
        await self.start(sample_rate)
        step = max(1, round(chunk_s * sample_rate))
        sent: list[float] = []
        began = time.monotonic()
        for k, i in enumerate(range(0, len(samples), step)):
            if realtime:
                await asyncio.sleep(max(0.0, began + k * chunk_s - time.monotonic()))
            await self.send_audio(samples[i:i + step])
            sent.append(time.monotonic())
        await self.end()
        return sent

    async def messages(self) -> AsyncIterator[dict[str, Any]]:
        """Server messages as dicts, until the stream closes (ClientError if the server closed it with an error)."""
        import websockets

        try:
            async for text in self._ws:
                yield json.loads(text)
        except websockets.ConnectionClosedError as exc:
            raise ClientError(f"the server closed the stream ({exc.rcvd.code if exc.rcvd else '?'}): "
                              f"{exc.rcvd.reason if exc.rcvd else 'connection lost'}") from None
        if self._ws.close_code not in (None, 1000, 1001):
            raise ClientError(f"the server closed the stream ({self._ws.close_code}): {self._ws.close_reason}")
