"""Subcommands of `avatar`: each module has `add_parser(subparsers)` and `run(args) -> int`."""
