"""`avatar setup`: fetch the model files once, so that every later run is offline."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("setup", help="fetch model files into the user cache (once, needs the network)",
                              description=__doc__)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from capture import fetch_face_model

    path = fetch_face_model()
    print(f"face model ready: {path}")
    return 0
