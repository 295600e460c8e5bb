"""Shared fixtures: the face model, the real recordings in ../shared/data."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def face_model_path() -> Path:
    """The verified MediaPipe model; skips when set-up has not fetched it."""
    from avatar.errors import ModelFileError
    from capture.model_files import resolve_face_model

    try:
        return resolve_face_model()
    except ModelFileError as exc:
        pytest.skip(f"face model unavailable ({exc})")


@pytest.fixture(scope="session")
def person_segmenter_path() -> Path:
    """The verified selfie segmentation model; skips when set-up has not fetched it."""
    from avatar.errors import ModelFileError
    from capture.model_files import PERSON_SEGMENTER, resolve_model

    try:
        return resolve_model(PERSON_SEGMENTER)
    except ModelFileError as exc:
        pytest.skip(f"person segmentation model unavailable ({exc})")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data, the real recordings; skips when absent (a fresh clone elsewhere)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA} is absent: real-recording tests need the shared data set")
    return SHARED_DATA


@pytest.fixture(scope="session")
def avatar_path(face_model_path, tmp_path_factory) -> Path:
    """A small .avatar: 3000 Gaussians placed on the built-in sample photo."""
    from avatar.sample import sample_avatar

    return sample_avatar(3000)[0].save(tmp_path_factory.mktemp("avatar") / "astronaut.avatar")
