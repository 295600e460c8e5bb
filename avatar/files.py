"""Atomic file output: a result is either complete or absent, never half-written."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from avatar.errors import OutputError


def check_writable(path: str | os.PathLike) -> Path:
    """Fail early, before any long work, if `path` cannot be written.

    Returns the path as a `Path`. Raises `OutputError` naming the reason.
    """
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise OutputError(f"output path {path} is a folder: give a file name")
    if not parent.is_dir():
        raise OutputError(f"cannot write {path}: folder {parent} does not exist (create it first)")
    if path.exists() and not os.access(path, os.W_OK):
        raise OutputError(f"cannot write {path}: the existing file is read-only (choose another output path)")
    # Trying is the only reliable test (root ignores modes; file systems can be read-only).
    try:
        fd, probe = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".probe", dir=parent)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror} (choose another output path)") from None
    os.close(fd)
    os.unlink(probe)
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class atomic_output:  # noqa: N801 (used like a function: `with atomic_output(path) as tmp`)
    """A temporary path next to `path`, renamed onto `path` on success.

    As a context manager it yields the temporary path, commits if the body
    succeeds and discards otherwise, so a failed or interrupted write never
    leaves a half-written output behind and an existing file stays untouched.
    Writers that outlive one block (a video) call `commit` / `discard`
    themselves. The temporary name keeps the suffix of `path`, for writers
    that choose the format by extension.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = check_writable(path)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{self.path.stem}.", suffix=f".part{self.path.suffix}",
                                        dir=self.path.parent)
        os.close(fd)
        self.tmp = Path(tmp_name)
        os.chmod(self.tmp, 0o666 & ~_umask())

    def commit(self) -> Path:
        os.replace(self.tmp, self.path)
        return self.path

    def discard(self) -> None:
        self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> Path:
        return self.tmp

    def __exit__(self, exc_type: type[BaseException] | None, *exc_info: object) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.discard()
