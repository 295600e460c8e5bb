"""User-facing errors: one line that says what is wrong and what to do.

The command line prints an `AvatarError` as a single line and exits non-zero;
any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations


class AvatarError(Exception):
    """A problem with the user's input or environment, not a bug.

    The message is shown to the user as it is: say what is wrong and what to do.
    """

    exit_code: int = 1


class InputError(AvatarError):
    """An input file or folder is missing, unreadable or unusable."""


class OutputError(AvatarError):
    """An output path cannot be written."""


class BundleError(AvatarError):
    """An `.avatar` bundle is truncated, tampered with, or of an unknown version."""


class ModelFileError(AvatarError):
    """A model file the project needs is missing or does not match its checksum."""
