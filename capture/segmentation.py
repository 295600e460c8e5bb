"""MediaPipe's selfie segmentation, wrapped: one RGB frame in, a person probability map out.

The model (`PERSON_SEGMENTER`, 250 kB, Apache-2.0) separates a person, hair and clothes
included, from the background at 256x256. It knows nothing of where the head ends, but it
knows a flag or a poster behind the hair is not the person, which colour alone (GrabCut)
cannot tell when the two share colours; `capture.masks.head_mask` takes it as a veto.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from capture.mediapipe_task import MediaPipeTask
from capture.model_files import PERSON_SEGMENTER, resolve_model

import mediapipe as mp
from mediapipe.tasks.python import BaseOptions, vision


class PersonSegmenter(MediaPipeTask):
    """Person-vs-background probabilities of RGB frames; a context manager."""

    def __init__(self, model_path: str | os.PathLike | None = None) -> None:
        path = resolve_model(PERSON_SEGMENTER, model_path)
        options = vision.ImageSegmenterOptions(base_options=BaseOptions(model_asset_path=str(path)),
                                               output_confidence_masks=True, output_category_mask=False)
        super().__init__(lambda: vision.ImageSegmenter.create_from_options(options), PERSON_SEGMENTER.what, path)

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """[H, W] float32 in [0, 1]: how likely each pixel of `image` ([H, W, 3] uint8 RGB) is the person."""
        mp_image = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(image))
        with self._quiet_first_call():
            result = self._task.segment(mp_image)
        return np.clip(result.confidence_masks[0].numpy_view().reshape(image.shape[:2]), 0.0, 1.0).astype(np.float32)


def person_probabilities(images: np.ndarray, model_path: str | Path | None = None) -> np.ndarray:
    """[T, H, W] float32 person probabilities of `images` [T, H, W, 3] uint8 RGB."""
    with PersonSegmenter(model_path) as segmenter:
        return np.stack([segmenter(image) for image in images]) if len(images) else \
            np.zeros(images.shape[:3], np.float32)
