"""Person segmentation and the head masks it vetoes, on the built-in sample photo."""

from __future__ import annotations

import numpy as np
import pytest

from avatar import ModelFileError


@pytest.fixture(scope="module")
def photo(face_model_path, person_segmenter_path):
    from avatar.sample import sample_photo
    from capture import track_image

    image = sample_photo()
    return image, track_image(image).landmarks_px[0]


def test_the_person_is_found_and_the_wall_and_flag_are_not(photo):
    from capture.segmentation import person_probabilities

    image, landmarks = photo
    person = person_probabilities(np.stack([image, image[:, ::-1]]))
    assert person.shape == (2, *image.shape[:2]) and person.dtype == np.float32
    assert 0.0 <= person.min() and person.max() <= 1.0
    nose = tuple(np.round(landmarks[1, [1, 0]]).astype(int))
    assert person[0][nose] > 0.95
    assert person[0, :40, :40].mean() < 0.05 and person[0, :40, -40:].mean() < 0.05   # flag, wall
    a, b = person[0] >= 0.5, person[1][:, ::-1] >= 0.5                               # mirrored, about the same
    assert (a & b).sum() / (a | b).sum() > 0.9


def test_a_block_of_hair_colour_beside_the_hair_stays_out_of_the_head_mask(photo):
    """GrabCut alone takes it in (its colour is the hair's); the person segmentation vetoes it."""
    from capture.masks import head_mask
    from capture.segmentation import person_probabilities

    image, landmarks = photo
    image = image.copy()
    forehead = np.round(landmarks[10, :2]).astype(int)
    x0, y0 = int(landmarks[:, 0].max()) + 5, forehead[1] - 45
    block = (slice(y0, y0 + 50), slice(x0, x0 + 60))
    image[block] = image[forehead[1] - 25, forehead[0]]
    person = person_probabilities(image[None])[0]
    without, with_person = head_mask(image, landmarks), head_mask(image, landmarks, person)
    assert without[block].mean() > 0.5
    assert with_person[block].mean() < 0.15  # the segmentation's own edge (256 px) bleeds in a little
    assert with_person.sum() > 0.8 * (without.sum() - without[block].sum())
    # A segmentation that misses the person altogether still leaves the face inside its oval.
    nobody = head_mask(image, landmarks, np.zeros_like(person))
    nose = tuple(np.round(landmarks[1, [1, 0]]).astype(int))
    assert nobody[nose] and 0 < nobody.sum() < with_person.sum()


def test_what_the_segmentation_is_sure_of_inside_the_head_stays_in_the_mask(photo):
    """A patch of the wall's colour on the hair: GrabCut alone drops it; a segmentation sure it
    is the person keeps it."""
    from capture.masks import head_mask
    from capture.segmentation import person_probabilities

    image, landmarks = photo
    image = image.copy()
    forehead = np.round(landmarks[10, :2]).astype(int)
    patch = (slice(forehead[1] - 30, forehead[1] - 12), slice(forehead[0] - 25, forehead[0] + 25))
    image[patch] = image[20, 256]  # the wall behind her, above the head
    person = person_probabilities(image[None])[0]
    person[patch] = 1.0
    assert head_mask(image, landmarks)[patch].mean() < 0.5
    assert head_mask(image, landmarks, person)[patch].all()


def test_a_missing_segmentation_model_is_one_clear_error(tmp_path, monkeypatch):
    from capture.model_files import PERSON_SEGMENTER
    from capture.segmentation import PersonSegmenter

    monkeypatch.setenv("AVATAR_CACHE", str(tmp_path))
    monkeypatch.delenv(PERSON_SEGMENTER.env, raising=False)
    with pytest.raises(ModelFileError, match="person segmentation model not found .*avatar setup"):
        PersonSegmenter()
    broken = tmp_path / "broken.tflite"
    broken.write_bytes(b"\0" * 100)
    with pytest.raises(ModelFileError, match="checksum"):
        PersonSegmenter(broken)
