"""The built-in sample: scikit-image's public-domain astronaut photo, tracked and given a Gaussian head."""

from __future__ import annotations

import numpy as np

from avatar.model import Avatar
from avatar.track import Track

SAMPLE_SOURCE = "scikit-image astronaut (public domain)"


def sample_photo() -> np.ndarray:
    """[512, 512, 3] uint8 RGB: the astronaut, shipped inside scikit-image."""
    from skimage import data

    return data.astronaut()


def sample_avatar(num_gaussians: int = 30_000) -> tuple[Avatar, np.ndarray, Track]:
    """The sample photo tracked, and a head of `num_gaussians` placed on it (`capture.head_from_photo`).

    Returns:
        the Avatar, the photo [512, 512, 3] uint8, and its one-frame Track.
    """
    from capture import generic_expression_basis, head_from_photo, load_canonical_mesh, track_image

    image = sample_photo()
    track = track_image(image, source="astronaut.png")
    mesh = load_canonical_mesh()
    head = head_from_photo(image, track, mesh, expression_basis=generic_expression_basis(mesh),
                           num_gaussians=num_gaussians)
    return Avatar(head, "astronaut", {"source": SAMPLE_SOURCE}), image, track
