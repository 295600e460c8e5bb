"""The HTTP + WebSocket API (FastAPI): avatars, speech to MP4, live face streams, WebRTC video.

Endpoints (every one but `/healthz` checks the bearer token when the server has tokens):
- `GET /healthz`; `GET /v1/avatars`; `GET /v1/avatars/{id}`; `GET /v1/avatars/{id}/model`;
- `POST /v1/avatars/{id}/speak`: an audio file as the body → MP4 of the avatar saying it;
- `WS /v1/stream?avatar=ID&fps=30`: the live protocol of `avatar.server.protocol`;
- `POST /v1/stream/{session}/webrtc`: SDP offer in, answer out (video + speech tracks);
- `GET /viewer`: a page that plays a session over WebRTC; `GET /docs`: the OpenAPI docs.
A token is accepted as `Authorization: Bearer TOKEN` or as the `token` query parameter.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import secrets
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import psutil
from fastapi import Depends, FastAPI, HTTPException, Query, Request, WebSocket
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse
from pydantic import BaseModel, Field
from starlette.background import BackgroundTask
from starlette.websockets import WebSocketDisconnect, WebSocketState

from animation import EMOTIONS, load_default_model
from animation.model import Audio2Face
from avatar import __version__
from avatar.errors import AvatarError
from avatar.server.avatars import ServedAvatar
from avatar.server.config import ServerConfig
from avatar.server.protocol import (CloseCode, EmotionMessage, EndMessage, GestureMessage, InterruptMessage,
                                    ProtocolError, StartMessage, frame_message, parse_client_message,
                                    ready_message, utterance_end_message)
from avatar.server.session import StreamSession

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
MIN_FPS, MAX_FPS = 10.0, 60.0


@dataclass
class _Live:
    session: StreamSession
    websocket: WebSocket


@dataclass
class ServerState:
    """Everything the endpoints share; one per app."""

    config: ServerConfig
    avatars: dict[str, ServedAvatar]
    model: Audio2Face
    live: dict[str, _Live] = field(default_factory=dict)
    render_executor: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(1, "webrtc-render"))
    speak_executor: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(1, "speak-render"))

    def __post_init__(self) -> None:
        from avatar.server.webrtc import WebRtcPeers

        self.peers = WebRtcPeers(self.render_executor)
        self.speak_slot = asyncio.Semaphore(1)

    def authorized(self, header: str | None, query_token: str | None) -> bool:
        if not self.config.tokens:
            return True
        offered = [query_token] if query_token else []
        if header and header[:7].lower() == "bearer ":
            offered.append(header[7:].strip())
        return any(hmac.compare_digest(o.encode(), t.encode()) for o in offered for t in self.config.tokens)

    def avatar(self, avatar_id: str) -> ServedAvatar:
        if avatar_id not in self.avatars:
            raise HTTPException(404, f"no avatar {avatar_id!r}: GET /v1/avatars lists them")
        return self.avatars[avatar_id]


class AvatarSummary(BaseModel):
    id: str
    name: str
    gaussians: int


class AvatarList(BaseModel):
    avatars: list[AvatarSummary]


class AvatarDetails(AvatarSummary):
    model_bytes: int = Field(description="size of the .avatar bundle GET /v1/avatars/{id}/model returns")
    model_sha256: str
    metadata: dict[str, Any] = Field(description="how the avatar was made (free form)")


class Health(BaseModel):
    status: Literal["ok"]
    version: str
    avatars: int
    sessions: int
    webrtc_peers: int
    tasks: int = Field(description="asyncio tasks alive in the server, for leak checks")
    rss_mb: float = Field(description="resident memory of the server process, MB")


class SessionDescription(BaseModel):
    sdp: str
    type: Literal["offer", "answer"]
    width: int = Field(512, ge=64, le=2048, description="video width in pixels (offer only)")
    height: int = Field(512, ge=64, le=2048, description="video height in pixels (offer only)")


def create_app(config: ServerConfig, avatars: dict[str, ServedAvatar], model: Audio2Face | None = None) -> FastAPI:
    """The API for `avatars` (by id; the first is the default of `/v1/stream`)."""
    if not avatars:
        raise ValueError("a server needs at least one avatar")
    state = ServerState(config, avatars, model if model is not None else load_default_model())

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        for live in list(state.live.values()):
            await _close(live.websocket, CloseCode.GOING_AWAY, "the server is shutting down")
        for live in list(state.live.values()):
            await state.peers.close(live.session)
        state.render_executor.shutdown(wait=True)
        state.speak_executor.shutdown(wait=True)

    app = FastAPI(title="Avatar engine API", version=__version__, lifespan=lifespan, docs_url=None,
                  openapi_url=None, redoc_url=None,
                  description="Live talking heads for dialogue systems: stream speech in, get a face out. "
                              "Send the token as `Authorization: Bearer TOKEN` or `?token=TOKEN`.")
    app.state.avatar_server = state

    def require_token(request: Request) -> None:
        if not state.authorized(request.headers.get("authorization"), request.query_params.get("token")):
            raise HTTPException(401, "missing or wrong token: send Authorization: Bearer TOKEN",
                                headers={"WWW-Authenticate": "Bearer"})

    auth = [Depends(require_token)]

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _bad_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())[1:]) or "request"
        return JSONResponse({"detail": f"{where}: {first.get('msg', 'invalid')}"}, 422)

    @app.get("/healthz", response_model=Health, tags=["server"])
    async def healthz() -> Health:
        return Health(status="ok", version=__version__, avatars=len(state.avatars), sessions=len(state.live),
                      webrtc_peers=len(state.peers), tasks=len(asyncio.all_tasks()),
                      rss_mb=round(psutil.Process().memory_info().rss / 2**20, 1))

    @app.get("/openapi.json", dependencies=auth, include_in_schema=False)
    async def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/docs", dependencies=auth, include_in_schema=False)
    async def docs(token: str | None = None) -> HTMLResponse:
        url = "/openapi.json" + (f"?token={token}" if token else "")
        return get_swagger_ui_html(openapi_url=url, title="Avatar engine API")

    @app.get("/", include_in_schema=False)
    async def root(request: Request) -> RedirectResponse:
        query = request.url.query
        return RedirectResponse("/viewer" + (f"?{query}" if query else ""))

    @app.get("/viewer", dependencies=auth, response_class=HTMLResponse, tags=["viewer"],
             summary="A page that plays a live session over WebRTC")
    async def viewer() -> HTMLResponse:
        return HTMLResponse((STATIC / "viewer.html").read_text())

    @app.get("/v1/avatars", dependencies=auth, response_model=AvatarList, tags=["avatars"])
    async def list_avatars() -> AvatarList:
        return AvatarList(avatars=[AvatarSummary(**a.summary()) for a in state.avatars.values()])

    @app.get("/v1/avatars/{avatar_id}", dependencies=auth, response_model=AvatarDetails, tags=["avatars"])
    async def avatar_details(avatar_id: str) -> AvatarDetails:
        return AvatarDetails(**state.avatar(avatar_id).details())

    @app.get("/v1/avatars/{avatar_id}/model", dependencies=auth, tags=["avatars"], response_class=FileResponse,
             summary="The .avatar bundle, for rendering on the client",
             responses={200: {"content": {"application/octet-stream": {}}}})
    async def avatar_model(avatar_id: str) -> FileResponse:
        entry = state.avatar(avatar_id)
        return FileResponse(entry.path, media_type="application/octet-stream", filename=f"{entry.id}.avatar")

    @app.post("/v1/avatars/{avatar_id}/speak", dependencies=auth, tags=["avatars"], response_class=FileResponse,
              summary="An audio file in (any format and sample rate), an MP4 of the avatar saying it out",
              responses={200: {"content": {"video/mp4": {}}}, 413: {"description": "audio too big or too long"},
                         422: {"description": "not a readable audio file"}},
              openapi_extra={"requestBody": {"required": True, "content": {
                  "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}})
    async def speak(avatar_id: str, request: Request,
                    size: Annotated[int, Query(ge=64, le=2048, description="frame width and height, px")] = 512,
                    fps: Annotated[int, Query(ge=10, le=60, description="frames per second")] = 30,
                    emotion: Annotated[Literal[tuple(EMOTIONS)] | None, Query()] = None,  # type: ignore[valid-type]
                    intensity: Annotated[float, Query(ge=0, le=1)] = 0.7) -> FileResponse:
        entry = state.avatar(avatar_id)
        body = await _read_body(request, config.limits.max_upload_bytes)
        folder = Path(tempfile.mkdtemp(prefix="avatar-speak-"))
        try:
            (folder / "speech").write_bytes(body)
            async with state.speak_slot:
                await asyncio.get_running_loop().run_in_executor(
                    state.speak_executor, _render_speech, state, entry, folder, size, fps, emotion, intensity)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return FileResponse(folder / "speech.mp4", media_type="video/mp4", filename=f"{entry.id}.mp4",
                            background=BackgroundTask(shutil.rmtree, folder, ignore_errors=True))

    @app.post("/v1/stream/{session_id}/webrtc", dependencies=auth, response_model=SessionDescription, tags=["stream"],
              summary="SDP offer in, answer out: the session's face as video and its speech as audio")
    async def webrtc(session_id: str, offer: SessionDescription) -> SessionDescription:
        from aiortc import RTCSessionDescription

        live = state.live.get(session_id)
        if live is None:
            raise HTTPException(404, f"no open session {session_id!r}: open /v1/stream first and use its "
                                     "ready message's session")
        if offer.type != "offer":
            raise HTTPException(422, 'type must be "offer"')
        try:
            answer = await state.peers.answer(live.session, state.avatars[live.session.avatar_id].avatar,
                                              RTCSessionDescription(offer.sdp, "offer"), offer.width, offer.height)
        except ValueError as exc:
            raise HTTPException(422, f"unusable SDP offer: {exc}") from None
        return SessionDescription(sdp=answer.sdp, type="answer")

    @app.websocket("/v1/stream")
    async def stream(websocket: WebSocket, avatar: str | None = None, fps: str = "30",
                     token: str | None = None) -> None:
        await websocket.accept()
        if not state.authorized(websocket.headers.get("authorization"), token):
            await _close(websocket, CloseCode.UNAUTHORIZED,
                         "missing or wrong token: send Authorization: Bearer TOKEN or ?token=TOKEN")
            return
        avatar_id = avatar or next(iter(state.avatars))
        if avatar_id not in state.avatars:
            await _close(websocket, CloseCode.AVATAR_NOT_FOUND, f"no avatar {avatar_id[:60]!r}: GET /v1/avatars")
            return
        try:
            rate = float(fps)
        except ValueError:
            rate = float("nan")
        if not MIN_FPS <= rate <= MAX_FPS:
            await _close(websocket, CloseCode.BAD_REQUEST, f"fps must be a number from {MIN_FPS:g} to {MAX_FPS:g}")
            return
        if len(state.live) >= config.limits.max_sessions:
            await _close(websocket, CloseCode.TOO_MANY_SESSIONS,
                         f"the server is at its limit of {config.limits.max_sessions} sessions: try again later")
            return
        entry = state.avatars[avatar_id]
        session = StreamSession(secrets.token_urlsafe(9), avatar_id, rate, entry.speech_model or state.model,
                                entry.profile, seed=secrets.randbits(31))
        state.live[session.session_id] = _Live(session, websocket)
        try:
            await _run_session(websocket, session, state)
        finally:
            session.close()
            state.live.pop(session.session_id, None)
            await state.peers.close(session)

    return app


async def _run_session(websocket: WebSocket, session: StreamSession, state: ServerState) -> None:
    """Send frames while reading client messages, until either side closes."""
    lock = asyncio.Lock()
    limits = state.config.limits

    async def send(text: str) -> None:
        async with lock:
            await websocket.send_text(text)

    async def pump() -> None:
        async for frame in session.frames():
            await send(frame_message(frame.number, frame.state, frame.speaking))
            for utterance in frame.ended:
                await send(utterance_end_message(utterance))
            if frame.wall_s - session.last_message_s > limits.idle_timeout_s:
                await _close(websocket, CloseCode.IDLE_TIMEOUT, f"no message for {limits.idle_timeout_s:g} s")
                return
            if frame.wall_s - session.created_s > limits.max_session_s:
                await _close(websocket, CloseCode.SESSION_EXPIRED,
                             f"sessions last at most {limits.max_session_s:g} s: open a new one")
                return

    await send(ready_message(session.session_id, session.avatar_id, session.fps, session.look_ahead_s))
    sender = asyncio.create_task(pump())
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            session.touch()
            try:
                if message.get("bytes") is not None:
                    session.push_audio(message["bytes"])
                elif message.get("text") is not None:
                    for cut in _handle(session, parse_client_message(message["text"])):
                        await send(utterance_end_message(cut, interrupted=True))
            except ProtocolError as exc:
                await send(exc.to_message())
    except (WebSocketDisconnect, RuntimeError):
        return  # the client vanished mid-send or mid-receive
    finally:
        sender.cancel()
        await asyncio.gather(sender, return_exceptions=True)


def _handle(session: StreamSession, message) -> list[int]:
    """Apply one parsed client message; returns utterances an interrupt cut short."""
    if isinstance(message, StartMessage):
        session.start(message)
    elif isinstance(message, EndMessage):
        session.end()
    elif isinstance(message, InterruptMessage):
        return session.interrupt()
    elif isinstance(message, EmotionMessage):
        session.emotion(message)
    elif isinstance(message, GestureMessage):
        session.gesture(message)
    return []


async def _close(websocket: WebSocket, code: CloseCode, reason: str) -> None:
    """Close with `code` and a one-line reason (at most 123 bytes, as the protocol allows), if still open."""
    if websocket.application_state == WebSocketState.CONNECTED:
        try:
            await websocket.close(int(code), reason.encode()[:123].decode(errors="ignore"))
        except RuntimeError:
            pass


async def _read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing more than `limit` bytes before reading them where the length is declared."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"the audio is {int(declared) / 2**20:.1f} MB; this server takes at most "
                                 f"{limit / 2**20:.1f} MB")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"the audio is over {limit / 2**20:.1f} MB, this server's limit")
        chunks.append(chunk)
    if size == 0:
        raise HTTPException(400, "empty body: send the audio file itself as the request body")
    return b"".join(chunks)


def _render_speech(state: ServerState, entry: ServedAvatar, folder: Path, size: int, fps: int,
                   emotion: str | None, intensity: float) -> None:
    """`folder/speech` (any audio file) → `folder/speech.mp4`; HTTPException for unusable audio."""
    from avatar.audio import read_audio
    from avatar.speech import speech_states
    from avatar.video import render_video

    try:
        audio, rate = read_audio(folder / "speech")
    except AvatarError as exc:
        raise HTTPException(422, str(exc).replace(str(folder / "speech"), "the request body"))
    seconds = len(audio) / rate
    if seconds > state.config.limits.max_speak_s:
        raise HTTPException(413, f"the audio lasts {seconds:.1f} s; this server renders at most "
                                 f"{state.config.limits.max_speak_s:g} s: split it or use /v1/stream")
    if seconds == 0:
        raise HTTPException(422, "the audio holds no samples")
    states = speech_states(audio, rate, fps, model=entry.speech_model or state.model, profile=entry.profile,
                           emotion=emotion, intensity=intensity)
    camera = entry.avatar.front_camera(size, size)
    render_video(entry.avatar, [camera] * len(states), states, folder / "speech.mp4", fps=fps,
                 audio=(audio, rate), progress=False)

