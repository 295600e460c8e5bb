"""What every MediaPipe Tasks wrapper here shares: quiet creation, a quiet first call, a deterministic close."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from avatar.errors import ModelFileError


@contextlib.contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """Silence file descriptor 2 for a moment.

    MediaPipe's C++ side writes set-up chatter (XNNPACK, feedback tensors)
    straight to fd 2 before any logging flag applies; failures still reach
    Python as exceptions, so nothing of use is lost.
    """
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


class MediaPipeTask:
    """A MediaPipe Tasks object (`self._task`); a context manager, so its native graph is closed
    deterministically.

    Args:
        create: makes the task (`vision.X.create_from_options(...)`).
        what: the model's name for the error message ("face model").
        model_path: the model file, for the error message.
    Raises:
        ModelFileError: MediaPipe could not load the model.
    """

    def __init__(self, create: Callable[[], Any], what: str, model_path: str | os.PathLike) -> None:
        try:
            with native_stderr_silenced():
                self._task = create()
        except (RuntimeError, ValueError) as exc:
            raise ModelFileError(f"MediaPipe could not load the {what} {Path(model_path)} ({exc})") from None
        self._warmed_up = False

    def __enter__(self) -> "MediaPipeTask":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        if self._task is not None:
            self._task.close()
            self._task = None

    @contextlib.contextmanager
    def _quiet_first_call(self) -> Iterator[None]:
        """The first call sets up the native side, which chatters on fd 2: silence it once."""
        with native_stderr_silenced() if not self._warmed_up else contextlib.nullcontext():
            yield
        self._warmed_up = True
