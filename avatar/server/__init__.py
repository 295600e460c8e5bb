"""The live API: FastAPI + uvicorn, WebSocket parameter streams, WebRTC video, a viewer page.

- `create_app(config, avatars)`: the ASGI app; `ServerConfig` / `Limits`: address, tokens, limits;
- `load_avatars` / `sample_served`: the avatars it offers;
- `StreamSession`: one live session (speech in, paced frames out);
- the wire protocol (`avatar.server.protocol`) is documented in the README.
"""

from avatar.server.app import create_app
from avatar.server.avatars import ServedAvatar, load_avatars, sample_served
from avatar.server.config import Limits, ServerConfig, resolve_tokens
from avatar.server.protocol import CloseCode, ProtocolError
from avatar.server.session import Frame, StreamSession

__all__ = ["create_app", "ServedAvatar", "load_avatars", "sample_served", "Limits", "ServerConfig",
           "resolve_tokens", "CloseCode", "ProtocolError", "Frame", "StreamSession"]
