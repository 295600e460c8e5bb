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
    from capture.face_model import resolve_face_model

    try:
        return resolve_face_model()
    except ModelFileError as exc:
        pytest.skip(f"face model unavailable ({exc})")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data, the real recordings; skips when absent (a fresh clone elsewhere)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA} is absent: real-recording tests need the shared data set")
    return SHARED_DATA


@pytest.fixture(scope="session")
def avatar_path(face_model_path, tmp_path_factory) -> Path:
    """A small .avatar: 3000 Gaussians placed on scikit-image's astronaut photo."""
    import cv2
    from skimage import data

    from avatar.model import Avatar
    from capture import generic_expression_basis, head_from_photo, load_canonical_mesh, open_media, track_media

    folder = tmp_path_factory.mktemp("avatar")
    image = data.astronaut()
    cv2.imwrite(str(folder / "photo.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    track, _ = track_media(open_media(folder / "photo.png"), progress=False)
    mesh = load_canonical_mesh(face_model_path)
    head = head_from_photo(image, track, mesh, expression_basis=generic_expression_basis(mesh), num_gaussians=3000)
    return Avatar(head, "astronaut").save(folder / "astronaut.avatar")
