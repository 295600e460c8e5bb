"""The `avatar` command line: one subcommand per job, each with its own --help.

User errors (`AvatarError`) print one line and exit non-zero; nothing else is
caught, so a bug keeps its traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys

from avatar.commands import bench, capture, demo, render, say, serve, setup, speech, track
from avatar.errors import AvatarError

COMMANDS = (setup, demo, track, capture, render, speech, serve, say, bench)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="avatar", description="Capture, animate and render photorealistic talking 3D heads.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more detail")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        command.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.run(args) or 0
    except AvatarError as exc:
        print(f"avatar {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"avatar {args.command}: interrupted; no output was written", file=sys.stderr)
        return 130
