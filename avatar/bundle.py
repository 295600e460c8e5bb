"""The `.avatar` bundle: one zip holding a versioned `manifest.json` and named `.npy` arrays.

Bundles travel between people, so reading trusts nothing: no pickle, every array checksummed, every member listed.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import zipfile
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

import numpy as np

from avatar.errors import BundleError, InputError, OutputError
from avatar.files import atomic_output

BUNDLE_FORMAT = "avatar"
BUNDLE_VERSION = 1
MANIFEST_NAME = "manifest.json"

# Segments start with a letter, digit or underscore, so no name can be absolute, hidden or `..`.
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*(/[A-Za-z0-9_][A-Za-z0-9_.-]*)*")
# A fixed member time keeps two writes of the same arrays byte-identical apart from `created_utc`.
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
# Errors zipfile and zlib raise for a damaged member: bad CRC, broken deflate stream, early end, bad offset,
# or a compression/encryption (RuntimeError) this Python cannot read.
_MEMBER_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, UnicodeDecodeError, NotImplementedError,
                  RuntimeError)


@dataclass(frozen=True, eq=False)
class Bundle:
    """Named arrays plus JSON metadata: what one `.avatar` file holds.

    Attributes:
        arrays: name -> array of any shape and a non-object dtype; names may use `/` for groups (`head/means`).
        metadata: JSON-able user metadata (dicts with string keys, lists, str, int, float, bool, None).
        version: format version the bundle was read from; `write_bundle` always writes `BUNDLE_VERSION`.
    """

    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    version: int = BUNDLE_VERSION


def _array_path(name: str) -> str:
    return f"arrays/{name}.npy"


def _valid_name(name: object) -> bool:
    return isinstance(name, str) and _NAME.fullmatch(name) is not None and ".." not in name


class _HashingWriter:
    """Passes writes to `dest` while hashing them, so an array is never held twice in memory."""

    def __init__(self, dest: IO[bytes]) -> None:
        self.dest, self.sha256 = dest, hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.sha256.update(data)
        return self.dest.write(data)


def write_bundle(path: str | os.PathLike, bundle: Bundle) -> Path:
    """Write `bundle` to `path` atomically: the file is complete or absent (an old one stays intact).

    Everything is checked before the first byte is written. Raises `BundleError` for a bad array name,
    an object-dtype array or metadata that does not survive JSON; `OutputError` if `path` cannot be written.

    Returns:
        `path` as a `Path`.
    """
    for name, array in bundle.arrays.items():
        if not _valid_name(name):
            raise BundleError(f"invalid array name {name!r}: use letters, digits, '_', '.', '-', "
                              "with '/' between groups (e.g. 'head/means'), no leading '/' or '..'")
        if np.asarray(array).dtype.hasobject:
            raise BundleError(f"array {name!r} has an object dtype, which cannot be stored without pickle: "
                              "convert it to a numeric or string dtype")
    try:
        # Strict JSON (no NaN) so other tools can read it; the equality check catches tuples and non-string keys.
        metadata_json = json.dumps(bundle.metadata, allow_nan=False)
        if not isinstance(bundle.metadata, dict) or json.loads(metadata_json) != bundle.metadata:
            raise ValueError("it changes when stored as JSON")
    except (TypeError, ValueError) as exc:
        raise BundleError(f"bundle metadata is not plain JSON ({_brief(exc)}): use a dict with string keys and "
                          "lists, str, int, float (not NaN), bool or None values") from None

    entries: dict[str, dict[str, Any]] = {}
    with atomic_output(path) as tmp:
        try:
            with zipfile.ZipFile(tmp, "w") as zf:
                # Arrays are stored, not deflated: float data barely compresses and stored members read faster.
                for name, array in bundle.arrays.items():
                    array = np.asarray(array)
                    info = zipfile.ZipInfo(_array_path(name), _ZIP_TIME)
                    with zf.open(info, "w", force_zip64=array.nbytes > 2**30) as dest:
                        writer = _HashingWriter(dest)
                        np.save(writer, array, allow_pickle=False)
                    entries[name] = {"path": info.filename, "dtype": str(array.dtype),
                                     "shape": list(array.shape), "sha256": writer.sha256.hexdigest()}
                manifest = {"format": BUNDLE_FORMAT, "version": BUNDLE_VERSION,
                            "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                            "metadata": json.loads(metadata_json), "arrays": entries}
                info = zipfile.ZipInfo(MANIFEST_NAME, _ZIP_TIME)
                info.compress_type = zipfile.ZIP_DEFLATED
                zf.writestr(info, json.dumps(manifest, indent=2, allow_nan=False))
        except OSError as exc:
            raise OutputError(f"could not write {path}: {exc.strerror or exc} (check free space and permissions)") \
                from None
    return Path(path)


def read_bundle(path: str | os.PathLike) -> Bundle:
    """Read and verify the bundle at `path`.

    Every array is checked against the manifest (sha256, dtype, shape) and nothing unlisted may be in the zip.
    Raises `InputError` if `path` is missing or unreadable, `BundleError` for a truncated, damaged, tampered
    or unsupported bundle; the message says what is wrong and what to do.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"no bundle at {path}: " + ("it is a folder" if path.is_dir() else "the file does not exist")
                         + " (check the path)")
    try:
        file = open(path, "rb")
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc} (check its permissions)") from None
    with file:
        try:
            with zipfile.ZipFile(file) as zf:
                return _read_zip(path, zf)
        # A damaged central directory can also give zipfile a bad offset (OSError), version field or file name.
        except (zipfile.BadZipFile, NotImplementedError, OSError, UnicodeDecodeError):
            raise BundleError(f"{path} is not an .avatar bundle, or is truncated or damaged (not a readable zip "
                              "file): re-copy or re-export it") from None


def _brief(exc: BaseException) -> str:
    """First line of an exception's message: errors reach the user as one line."""
    return (str(exc).splitlines() or [type(exc).__name__])[0]


def _read_member(path: Path, zf: zipfile.ZipFile, member: str) -> bytes:
    try:
        return zf.read(member)
    except KeyError:
        raise BundleError(f"{path} is incomplete: {member} is missing (re-copy or re-export it)") from None
    except _MEMBER_ERRORS as exc:
        raise BundleError(f"{path} is damaged: {member} cannot be read ({_brief(exc)}); "
                          "re-copy or re-export it") from None


def _read_zip(path: Path, zf: zipfile.ZipFile) -> Bundle:
    if MANIFEST_NAME not in zf.namelist():
        raise BundleError(f"{path} is not an .avatar bundle: it has no {MANIFEST_NAME} (was it written by avatar?)")
    try:
        manifest = json.loads(_read_member(path, zf, MANIFEST_NAME))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise BundleError(f"{path} is damaged: {MANIFEST_NAME} is not valid JSON (re-copy or re-export it)") from None
    if not isinstance(manifest, dict) or manifest.get("format") != BUNDLE_FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else None
        raise BundleError(f"{path} is not an .avatar bundle (manifest format is {found!r}, expected "
                          f"{BUNDLE_FORMAT!r})")
    version = manifest.get("version")
    if type(version) is int and version > BUNDLE_VERSION:
        raise BundleError(f"{path} was written by a newer version of avatar (v{version}); upgrade avatar to read it")
    if type(version) is not int or version != BUNDLE_VERSION:
        raise BundleError(f"{path} has unsupported bundle version {version!r} (this avatar reads "
                          f"v{BUNDLE_VERSION}); re-export it")
    listed, metadata = manifest.get("arrays"), manifest.get("metadata", {})
    if not isinstance(listed, dict) or not isinstance(metadata, dict):
        raise BundleError(f"{path} has a malformed manifest ('arrays' and 'metadata' must be objects); re-export it")
    entries = []
    for name, entry in listed.items():
        try:
            member, dtype, shape, sha = entry["path"], entry["dtype"], entry["shape"], entry["sha256"]
        except (TypeError, KeyError):
            raise BundleError(f"{path} has a malformed manifest entry for array {name!r}; re-export it") from None
        if not _valid_name(name) or member != _array_path(name):
            raise BundleError(f"{path} lists array {name!r} at {member!r}, which is not a valid bundle path "
                              "(tampered or damaged); re-export it")
        entries.append((name, member, dtype, shape, sha))

    # Checked before any array is parsed. Directory entries (from re-zipping by hand) carry no data;
    # any other unlisted or repeated member means someone changed the zip.
    names = [n for n in zf.namelist() if not n.endswith("/")]
    extra = sorted(set(names) - {MANIFEST_NAME} - {member for _, member, *_ in entries})
    if extra or len(names) != len(set(names)):
        what = f"files not in its manifest {extra[:3]}" if extra else "repeated members"
        raise BundleError(f"{path} has been tampered with: it holds {what}; use the original bundle or re-export it")

    arrays: dict[str, np.ndarray] = {}
    for name, member, dtype, shape, sha in entries:
        data = _read_member(path, zf, member)
        if hashlib.sha256(data).hexdigest() != sha:
            raise BundleError(f"{path} has been modified or damaged: array {name!r} fails its checksum; "
                              "re-copy or re-export it")
        try:
            array = np.lib.format.read_array(io.BytesIO(data), allow_pickle=False)
        except (ValueError, EOFError) as exc:
            raise BundleError(f"{path} is damaged: array {name!r} is not a readable .npy ({_brief(exc)}); "
                              "re-export it") from None
        if str(array.dtype) != dtype or list(array.shape) != shape:
            raise BundleError(f"{path} is inconsistent: array {name!r} is {array.dtype} {list(array.shape)} but the "
                              f"manifest says {dtype} {shape} (tampered or damaged); re-export it")
        arrays[name] = array
    return Bundle(arrays=arrays, metadata=metadata, version=version)
