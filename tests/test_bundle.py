"""The `.avatar` bundle: round trips, and a clear one-line error for every way a file can be bad."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from avatar.bundle import BUNDLE_VERSION, Bundle, read_bundle, write_bundle
from avatar.errors import BundleError, InputError


def _sample() -> Bundle:
    rng = np.random.default_rng(0)
    arrays = {
        "head/means": rng.normal(size=(100, 3)).astype(np.float32),
        "head/rot.q": rng.normal(size=(100, 4)),
        "weights": rng.random(52, dtype=np.float32).astype(np.float16),
        "faces": rng.integers(0, 100, size=(7, 3), dtype=np.int32),
        "ids-u64": np.arange(5, dtype=np.uint64),
        "mask": np.array([[True, False], [False, True]]),
        "scalar": np.array(3.5),
        "empty": np.zeros((0, 3), dtype=np.float32),
        "labels": np.array(["jawOpen", "eyeBlinkLeft"]),
        "a/b/c_d": np.asfortranarray(np.arange(12, dtype=np.int8).reshape(3, 4)),
    }
    metadata = {"name": "test subject", "fps": 30, "scale_cm": 1.5, "tags": ["a", "b"], "none": None,
                "nested": {"ok": True, "list": [1, 2.5, "x"]}}
    return Bundle(arrays=arrays, metadata=metadata)


@pytest.fixture
def bundle_path(tmp_path: Path) -> Path:
    return write_bundle(tmp_path / "subject.avatar", _sample())


def _rewrite(src: Path, dst: Path, change: dict[str, bytes | None] | None = None,
             add: dict[str, bytes] | None = None) -> Path:
    """Copy a bundle's zip member by member, replacing (bytes) or dropping (None) some members."""
    change = change or {}
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for name in zin.namelist():
            data = change.get(name, zin.read(name))
            if data is not None:
                zout.writestr(name, data)
        for name, data in (add or {}).items():
            zout.writestr(name, data)
    return dst


def _manifest(path: Path) -> dict:
    with zipfile.ZipFile(path) as zf:
        return json.loads(zf.read("manifest.json"))


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def _bundle_error(path: Path, *fragments: str) -> str:
    with pytest.raises(BundleError) as info:
        read_bundle(path)
    message = str(info.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message
    return message


def test_round_trip(bundle_path: Path) -> None:
    original = _sample()
    loaded = read_bundle(bundle_path)
    assert loaded.version == BUNDLE_VERSION
    assert loaded.metadata == original.metadata
    assert loaded.arrays.keys() == original.arrays.keys()
    for name, array in original.arrays.items():
        assert loaded.arrays[name].dtype == array.dtype, name
        assert loaded.arrays[name].shape == array.shape, name
        np.testing.assert_array_equal(loaded.arrays[name], array)


def test_manifest_layout(bundle_path: Path) -> None:
    manifest = _manifest(bundle_path)
    assert manifest["format"] == "avatar" and manifest["version"] == 1
    assert manifest["created_utc"].endswith("+00:00")
    entry = manifest["arrays"]["head/means"]
    assert entry["path"] == "arrays/head/means.npy"
    assert entry["dtype"] == "float32" and entry["shape"] == [100, 3] and len(entry["sha256"]) == 64
    with zipfile.ZipFile(bundle_path) as zf:
        assert sorted(zf.namelist()) == sorted(["manifest.json"] + [e["path"] for e in manifest["arrays"].values()])


def test_empty_bundle_round_trips(tmp_path: Path) -> None:
    loaded = read_bundle(write_bundle(tmp_path / "empty.avatar", Bundle(arrays={}, metadata={})))
    assert loaded.arrays == {} and loaded.metadata == {}


def test_missing_path_is_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        read_bundle(tmp_path / "nope.avatar")


def test_not_a_zip(tmp_path: Path) -> None:
    path = tmp_path / "text.avatar"
    path.write_text("hello, not a zip\n")
    _bundle_error(path, "not an .avatar bundle, or is truncated")


def test_zero_length_file(tmp_path: Path) -> None:
    path = tmp_path / "zero.avatar"
    path.write_bytes(b"")
    _bundle_error(path, "truncated")


def test_truncated_to_half(bundle_path: Path) -> None:
    data = bundle_path.read_bytes()
    bundle_path.write_bytes(data[: len(data) // 2])
    _bundle_error(bundle_path, "truncated", "re-copy")


def test_missing_manifest(bundle_path: Path, tmp_path: Path) -> None:
    path = _rewrite(bundle_path, tmp_path / "x.avatar", change={"manifest.json": None})
    _bundle_error(path, "no manifest.json")


def test_manifest_not_json(bundle_path: Path, tmp_path: Path) -> None:
    path = _rewrite(bundle_path, tmp_path / "x.avatar", change={"manifest.json": b"{not json"})
    _bundle_error(path, "not valid JSON")


def test_wrong_format(bundle_path: Path, tmp_path: Path) -> None:
    manifest = _manifest(bundle_path) | {"format": "something-else"}
    path = _rewrite(bundle_path, tmp_path / "x.avatar", change={"manifest.json": json.dumps(manifest).encode()})
    _bundle_error(path, "not an .avatar bundle", "something-else")


def test_newer_version(bundle_path: Path, tmp_path: Path) -> None:
    manifest = _manifest(bundle_path) | {"version": 2}
    path = _rewrite(bundle_path, tmp_path / "x.avatar", change={"manifest.json": json.dumps(manifest).encode()})
    _bundle_error(path, "written by a newer version of avatar (v2); upgrade avatar to read it")


@pytest.mark.parametrize("version", [0, "1", None, True, 1.0])
def test_unsupported_version(bundle_path: Path, tmp_path: Path, version: object) -> None:
    manifest = _manifest(bundle_path) | {"version": version}
    path = _rewrite(bundle_path, tmp_path / "x.avatar", change={"manifest.json": json.dumps(manifest).encode()})
    _bundle_error(path, "unsupported bundle version")


def test_listed_array_absent(bundle_path: Path, tmp_path: Path) -> None:
    path = _rewrite(bundle_path, tmp_path / "x.avatar", change={"arrays/faces.npy": None})
    _bundle_error(path, "arrays/faces.npy is missing")


def test_array_bytes_modified(bundle_path: Path, tmp_path: Path) -> None:
    tampered = _sample().arrays["head/means"] + 1
    path = _rewrite(bundle_path, tmp_path / "x.avatar", change={"arrays/head/means.npy": _npy(tampered)})
    _bundle_error(path, "has been modified or damaged: array 'head/means' fails its checksum")


def test_manifest_sha_changed(bundle_path: Path, tmp_path: Path) -> None:
    manifest = _manifest(bundle_path)
    manifest["arrays"]["faces"]["sha256"] = "0" * 64
    path = _rewrite(bundle_path, tmp_path / "x.avatar", change={"manifest.json": json.dumps(manifest).encode()})
    _bundle_error(path, "array 'faces' fails its checksum")


def test_dtype_and_shape_differ_from_manifest(bundle_path: Path, tmp_path: Path) -> None:
    # The checksum matches the member, so only the dtype/shape check can catch it.
    manifest = _manifest(bundle_path)
    manifest["arrays"]["faces"]["dtype"] = "float64"
    path = _rewrite(bundle_path, tmp_path / "x.avatar", change={"manifest.json": json.dumps(manifest).encode()})
    _bundle_error(path, "inconsistent", "'faces' is int32 [7, 3]", "manifest says float64 [7, 3]")
    manifest["arrays"]["faces"].update(dtype="int32", shape=[3, 7])
    path = _rewrite(bundle_path, tmp_path / "y.avatar", change={"manifest.json": json.dumps(manifest).encode()})
    _bundle_error(path, "inconsistent", "[3, 7]")


def test_crc_error_in_member(tmp_path: Path) -> None:
    # Arrays are stored uncompressed, so their raw bytes are in the file: flip one and the zip CRC fails.
    marker = np.full(64, 7.25, dtype=np.float64)
    path = write_bundle(tmp_path / "crc.avatar", Bundle(arrays={"marker": marker}, metadata={}))
    data = bytearray(path.read_bytes())
    at = data.index(marker.tobytes())
    data[at + 10] ^= 0xFF
    path.write_bytes(bytes(data))
    _bundle_error(path, "is damaged: arrays/marker.npy cannot be read")


def test_extra_unlisted_file(bundle_path: Path, tmp_path: Path) -> None:
    path = _rewrite(bundle_path, tmp_path / "x.avatar", add={"arrays/evil.npy": _npy(np.zeros(3))})
    _bundle_error(path, "tampered", "arrays/evil.npy")


def test_path_outside_arrays_in_manifest(bundle_path: Path, tmp_path: Path) -> None:
    manifest = _manifest(bundle_path)
    manifest["arrays"]["faces"]["path"] = "../faces.npy"
    path = _rewrite(bundle_path, tmp_path / "x.avatar", change={"manifest.json": json.dumps(manifest).encode()})
    _bundle_error(path, "not a valid bundle path")


def test_object_dtype_rejected_and_nothing_written(tmp_path: Path) -> None:
    path = tmp_path / "obj.avatar"
    bundle = Bundle(arrays={"ok": np.zeros(3), "bad": np.array([{"a": 1}, None], dtype=object)}, metadata={})
    with pytest.raises(BundleError, match="object dtype"):
        write_bundle(path, bundle)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("metadata", [{"x": float("nan")}, {"x": np.float32(1)}, {"t": (1, 2)}, {1: "a"},
                                      {"x": object()}])
def test_non_json_metadata_rejected(tmp_path: Path, metadata: dict) -> None:
    with pytest.raises(BundleError, match="metadata is not plain JSON"):
        write_bundle(tmp_path / "m.avatar", Bundle(arrays={}, metadata=metadata))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["", "/abs", "a/../b", "..", "a/", "a//b", ".hidden", "a b", "a\\b", "x/.y",
                                  "é", "a..b"])
def test_invalid_array_names_rejected(tmp_path: Path, name: str) -> None:
    with pytest.raises(BundleError, match="invalid array name"):
        write_bundle(tmp_path / "n.avatar", Bundle(arrays={name: np.zeros(1)}, metadata={}))
    assert list(tmp_path.iterdir()) == []


def test_failure_mid_write_leaves_old_bundle_untouched(bundle_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = bundle_path.read_bytes()
    real_save, calls = np.save, []

    def failing_save(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("simulated crash while writing the second array")
        return real_save(*args, **kwargs)

    monkeypatch.setattr(np, "save", failing_save)
    with pytest.raises(RuntimeError, match="simulated crash"):
        write_bundle(bundle_path, Bundle(arrays={"a": np.zeros(3), "b": np.ones(3)}, metadata={}))
    assert [p.name for p in bundle_path.parent.iterdir()] == [bundle_path.name]
    assert bundle_path.read_bytes() == before

    fresh = bundle_path.parent / "fresh.avatar"
    calls.clear()
    with pytest.raises(RuntimeError):
        write_bundle(fresh, Bundle(arrays={"a": np.zeros(3), "b": np.ones(3)}, metadata={}))
    assert not fresh.exists()
    assert [p.name for p in bundle_path.parent.iterdir()] == [bundle_path.name]
