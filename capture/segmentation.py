"""MediaPipe's selfie segmentation, wrapped: one RGB frame in, a person probability map out.

The model (`PERSON_SEGMENTER`, 250 kB, Apache-2.0) separates a person, hair and clothes
included, from the background at 256x256. It knows nothing of where the head ends, but it
knows a flag or a poster behind the hair is not the person, which colour alone (GrabCut)
cannot tell when the two share colours; `capture.masks.head_mask` takes it as a veto.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import numpy as np

from avatar.errors import ModelFileError
from capture.landmarker import native_stderr_silenced
from capture.model_files import PERSON_SEGMENTER, resolve_model

import mediapipe as mp
from mediapipe.tasks.python import BaseOptions, vision


class PersonSegmenter:
    """Person-vs-background probabilities of RGB frames; a context manager, closed deterministically."""

    def __init__(self, model_path: str | os.PathLike | None = None) -> None:
        path = resolve_model(PERSON_SEGMENTER, model_path)
        options = vision.ImageSegmenterOptions(base_options=BaseOptions(model_asset_path=str(path)),
                                               output_confidence_masks=True, output_category_mask=False)
        try:
            with native_stderr_silenced():
                self._segmenter = vision.ImageSegmenter.create_from_options(options)
        except (RuntimeError, ValueError) as exc:
            raise ModelFileError(f"MediaPipe could not load the person segmentation model {path} ({exc})") from None
        self._warmed_up = False

    def __enter__(self) -> "PersonSegmenter":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        if self._segmenter is not None:
            self._segmenter.close()
            self._segmenter = None

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """[H, W] float32 in [0, 1]: how likely each pixel of `image` ([H, W, 3] uint8 RGB) is the person."""
        mp_image = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(image))
        with native_stderr_silenced() if not self._warmed_up else contextlib.nullcontext():
            result = self._segmenter.segment(mp_image)
        self._warmed_up = True
        return np.clip(result.confidence_masks[0].numpy_view().reshape(image.shape[:2]), 0.0, 1.0).astype(np.float32)


def person_probabilities(images: np.ndarray, model_path: str | Path | None = None) -> np.ndarray:
    """[T, H, W] float32 person probabilities of `images` [T, H, W, 3] uint8 RGB."""
    with PersonSegmenter(model_path) as segmenter:
        return np.stack([segmenter(image) for image in images]) if len(images) else \
            np.zeros(images.shape[:3], np.float32)
