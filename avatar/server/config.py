"""Server settings: where it listens, who may use it, and how much each client may ask for."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path

from avatar.errors import InputError

TOKEN_ENV = "AVATAR_TOKEN"


@dataclass(frozen=True)
class Limits:
    """What one server grants its clients.

    Attributes:
        max_sessions: streaming sessions open at once; more are refused (close code 4429).
        max_message_bytes: largest WebSocket message; a bigger one closes the session (1009).
        max_upload_bytes: largest audio file `POST /speak` accepts (HTTP 413).
        max_session_s: a stream session's longest life, seconds (close code 4410).
        idle_timeout_s: a stream session with no client message for this long is closed (4408).
        max_speak_s: longest audio `POST /speak` renders, seconds (HTTP 413).
    """

    max_sessions: int = 32
    max_message_bytes: int = 1 << 20
    max_upload_bytes: int = 50 << 20
    max_session_s: float = 3600.0
    idle_timeout_s: float = 300.0
    max_speak_s: float = 120.0

    def __post_init__(self) -> None:
        for name in ("max_sessions", "max_message_bytes", "max_upload_bytes", "max_session_s", "idle_timeout_s",
                     "max_speak_s"):
            if not getattr(self, name) > 0:
                raise InputError(f"{name.replace('_', '-')} must be positive, got {getattr(self, name)}")


@dataclass(frozen=True)
class ServerConfig:
    """Listening address, accepted bearer tokens (empty: no auth, loopback only) and limits."""

    host: str = "127.0.0.1"
    port: int = 8000
    tokens: frozenset[str] = frozenset()
    limits: Limits = field(default_factory=Limits)

    @property
    def auth_required(self) -> bool:
        return bool(self.tokens)

    def check_exposure(self) -> None:
        """Refuse to listen beyond this machine without a token: InputError saying how to fix it."""
        if not self.tokens and not is_loopback(self.host):
            raise InputError(f"refusing to listen on {self.host} without a token: anyone on the network could drive "
                             f"the avatar; give --token, --token-file or ${TOKEN_ENV}, or use --host 127.0.0.1")


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def resolve_tokens(tokens: list[str] | None, token_file: Path | None) -> frozenset[str]:
    """Bearer tokens from --token, a token file (one per line, # comments) and $AVATAR_TOKEN, together."""
    found = [t.strip() for t in tokens or []]
    if token_file is not None:
        try:
            lines = Path(token_file).read_text().splitlines()
        except OSError as exc:
            raise InputError(f"cannot read the token file {token_file} ({exc.strerror})") from None
        found += [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
        if not found:
            raise InputError(f"the token file {token_file} holds no token: put one token per line")
    if os.environ.get(TOKEN_ENV, "").strip():
        found.append(os.environ[TOKEN_ENV].strip())
    for token in found:
        if not token or any(c.isspace() for c in token) or len(token) < 8:
            raise InputError("a token must be at least 8 characters with no spaces")
    return frozenset(found)
