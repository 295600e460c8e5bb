"""`avatar serve`: the live API for dialogue systems and viewers (FastAPI + uvicorn)."""

from __future__ import annotations

import argparse
import logging
import signal
import socket
import tempfile
from pathlib import Path

from avatar.server.config import TOKEN_ENV, Limits


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    d = Limits()
    p = subparsers.add_parser(
        "serve", help="serve avatars over HTTP, WebSocket and WebRTC",
        description="Stream speech in and get a talking face out: 52 ARKit weights + head pose per frame over "
                    "WebSocket (/v1/stream), rendered video over WebRTC, MP4s over HTTP. With no token the "
                    f"server listens on loopback only. Tokens: --token, --token-file and ${TOKEN_ENV}, together.")
    p.add_argument("avatars", type=Path, nargs="*", metavar="AVATAR",
                   help=".avatar bundles to serve, by id = file name without .avatar (default: the built-in sample)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on; default 127.0.0.1")
    p.add_argument("--port", type=int, default=8000, help="port; 0 picks a free one; default 8000")
    p.add_argument("--token", action="append", metavar="TOKEN", help="accepted bearer token (repeatable)")
    p.add_argument("--token-file", type=Path, help="file of accepted tokens, one per line")
    p.add_argument("--max-sessions", type=int, default=d.max_sessions, help=f"open stream sessions; default {d.max_sessions}")
    p.add_argument("--max-message-bytes", type=int, default=d.max_message_bytes,
                   help=f"largest WebSocket message; default {d.max_message_bytes}")
    p.add_argument("--max-upload-mb", type=float, default=d.max_upload_bytes / 2**20,
                   help=f"largest audio file for /speak, MB; default {d.max_upload_bytes / 2**20:g}")
    p.add_argument("--max-session-s", type=float, default=d.max_session_s,
                   help=f"longest stream session, seconds; default {d.max_session_s:g}")
    p.add_argument("--idle-timeout-s", type=float, default=d.idle_timeout_s,
                   help=f"close a session after this long without a client message; default {d.idle_timeout_s:g}")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import torch
    import uvicorn

    from avatar.errors import InputError
    from avatar.server import ServerConfig, create_app, load_avatars, resolve_tokens, sample_served

    limits = Limits(max_sessions=args.max_sessions, max_message_bytes=args.max_message_bytes,
                    max_upload_bytes=int(args.max_upload_mb * 2**20), max_session_s=args.max_session_s,
                    idle_timeout_s=args.idle_timeout_s)
    config = ServerConfig(args.host, args.port, resolve_tokens(args.token, args.token_file), limits)
    config.check_exposure()
    try:
        family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((args.host, args.port))
        sock.listen(2048)  # clients may connect as soon as the address is printed
    except (OSError, OverflowError) as exc:
        raise InputError(f"cannot listen on {args.host}:{args.port} ({getattr(exc, 'strerror', None) or exc}): "
                         "choose another --port or --host") from None
    # Many small sessions share the cores: one thread per inference beats contention.
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="avatar-serve-") as folder:
        avatars = load_avatars(args.avatars) if args.avatars else {"astronaut": sample_served(Path(folder))}
        app = create_app(config, avatars)
        port = sock.getsockname()[1]
        host = f"[{args.host}]" if ":" in args.host else args.host
        names = ", ".join(avatars)
        print(f"serving {len(avatars)} avatar{'s' * (len(avatars) > 1)} ({names}) on http://{host}:{port}", flush=True)
        print(f"  viewer http://{host}:{port}/viewer   docs http://{host}:{port}/docs   "
              f"stream ws://{host}:{port}/v1/stream", flush=True)
        if not config.tokens:
            print("  no token configured: listening on loopback only, open to anyone on this machine", flush=True)
        level = "info" if logging.getLogger().level <= logging.INFO else "warning"
        server = uvicorn.Server(uvicorn.Config(app, log_level=level, ws_max_size=limits.max_message_bytes,
                                               ws="websockets-sansio", timeout_graceful_shutdown=5))
        # uvicorn shuts down on SIGTERM, then raises it again. Raised into a handler of ours it
        # unwinds as an exception, so the sample's temporary folder is removed on the way out.
        signal.signal(signal.SIGTERM, _exit_on_signal)
        server.run(sockets=[sock])
    return 0


def _exit_on_signal(signum: int, frame) -> None:
    raise SystemExit(128 + signum)
