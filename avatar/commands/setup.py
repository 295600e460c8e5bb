"""`avatar setup`: fetch the model files once, so that every later run is offline."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("setup", help="fetch model files into the user cache (once, needs the network)",
                              description=__doc__)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from capture import MODELS, fetch_model

    for model in MODELS:
        print(f"{model.what} ready: {fetch_model(model)}")
    return 0
