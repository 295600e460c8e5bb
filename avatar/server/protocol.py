"""The `/v1/stream` WebSocket protocol: client messages, server messages, error and close codes.

Client → server (JSON text unless noted):
- `{"type":"start","sample_rate":16000,"format":"pcm_s16le"}` opens an utterance
  (`format` also `pcm_f32le`; `sample_rate` 8000..192000 Hz);
- binary: the utterance's raw mono PCM, any chunk size (a sample may straddle two);
- `{"type":"end"}` flushes it; `{"type":"interrupt"}` stops speaking now;
- `{"type":"emotion","name":"happy","intensity":0.7}` (`name` null or "neutral" clears);
- `{"type":"gesture","name":"nod"}`.
Server → client: `ready`, then one `frame` per frame, `utterance_end`, `error`
(the session goes on after an error). Frames carry `frame`, the session's frame
number, so a client can tell that none was dropped.
"""

from __future__ import annotations

import json
from enum import IntEnum
from typing import Annotated, Literal, Union

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from animation.features import MAX_INPUT_RATE, MIN_INPUT_RATE
from avatar.arkit import ARKIT_NAMES
from avatar.face_state import FaceState

PCM_FORMATS = {"pcm_s16le": np.dtype("<i2"), "pcm_f32le": np.dtype("<f4")}


class CloseCode(IntEnum):
    """WebSocket close codes the server uses (4xxx mirror the HTTP status they resemble)."""

    NORMAL = 1000
    GOING_AWAY = 1001          # the server is shutting down
    MESSAGE_TOO_BIG = 1009     # a message over the limit (sent by the WebSocket layer)
    BAD_REQUEST = 4400         # a bad query parameter (fps)
    UNAUTHORIZED = 4401        # missing or wrong token
    AVATAR_NOT_FOUND = 4404
    IDLE_TIMEOUT = 4408        # no client message for `idle_timeout_s`
    SESSION_EXPIRED = 4410     # open longer than `max_session_s`
    TOO_MANY_SESSIONS = 4429


class ProtocolError(Exception):
    """A bad client message: sent back as `{"type":"error"}`; the session goes on."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def to_message(self) -> str:
        return json.dumps({"type": "error", "code": self.code, "message": self.message})


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StartMessage(_Message):
    type: Literal["start"]
    sample_rate: int = Field(ge=MIN_INPUT_RATE, le=MAX_INPUT_RATE, description="Hz, of the PCM that follows")
    format: Literal["pcm_s16le", "pcm_f32le"] = "pcm_s16le"


class EndMessage(_Message):
    type: Literal["end"]


class InterruptMessage(_Message):
    type: Literal["interrupt"]


class EmotionMessage(_Message):
    type: Literal["emotion"]
    name: str | None = Field(description="happy, sad, angry, surprised, thinking; null or neutral clears")
    intensity: float = Field(0.7, ge=0.0, le=1.0)
    fade_s: float = Field(0.3, ge=0.0, le=10.0)


class GestureMessage(_Message):
    type: Literal["gesture"]
    name: str = Field(description="nod, shake, smile")
    intensity: float = Field(1.0, ge=0.0, le=1.0)


ClientMessage = Annotated[Union[StartMessage, EndMessage, InterruptMessage, EmotionMessage, GestureMessage],
                          Field(discriminator="type")]
_CLIENT_MESSAGE = TypeAdapter(ClientMessage)
_TYPES = ("start", "end", "interrupt", "emotion", "gesture")


def parse_client_message(text: str) -> StartMessage | EndMessage | InterruptMessage | EmotionMessage | GestureMessage:
    """One client text message; ProtocolError (code, one-line message) when it is not valid."""
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        raise ProtocolError("bad_json", "the message is not valid JSON: send one JSON object per text message")
    if not isinstance(data, dict) or "type" not in data:
        raise ProtocolError("bad_message", 'a message must be a JSON object with a "type"')
    if data["type"] not in _TYPES:
        raise ProtocolError("unknown_type", f"unknown message type {str(data['type'])[:40]!r}: "
                                            f"use one of {', '.join(_TYPES)}")
    try:
        return _CLIENT_MESSAGE.validate_python(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(p) for p in error["loc"][1:]) or "message"
        code = "bad_sample_rate" if field == "sample_rate" else "bad_format" if field == "format" else "bad_message"
        raise ProtocolError(code, f"{data['type']}: {field}: {error['msg']}")


def ready_message(session_id: str, avatar_id: str, fps: float, look_ahead_s: float) -> str:
    return json.dumps({"type": "ready", "session": session_id, "avatar": avatar_id, "fps": fps,
                       "blendshapes": list(ARKIT_NAMES), "look_ahead_s": round(look_ahead_s, 4)})


def frame_message(frame_number: int, state: FaceState, speaking: bool) -> str:
    """`{"type":"frame","frame":n,"t":..,"weights":[52],"head":[rx,ry,rz,tx,ty,tz],"speaking":..}`.

    Rotation is axis-angle in radians, translation in cm (`avatar.camera` conventions);
    values are rounded to 4 decimals (~250 bytes of numbers).
    """
    weights = ",".join(f"{w:.4f}" for w in state.weights.tolist())
    head = ",".join(f"{v:.4f}" for v in (*state.head_rotation.tolist(), *state.head_translation_cm.tolist()))
    return (f'{{"type":"frame","frame":{frame_number},"t":{state.time_s:.4f},"weights":[{weights}],'
            f'"head":[{head}],"speaking":{"true" if speaking else "false"}}}')


def utterance_end_message(utterance: int, interrupted: bool = False) -> str:
    return json.dumps({"type": "utterance_end", "utterance": utterance, "interrupted": interrupted})
