"""MediaPipe Face Landmarker, wrapped: one RGB frame in, one `Detection` out."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avatar.arkit import weights_from_named
from capture.mediapipe_task import MediaPipeTask
from capture.model_files import FACE_MODEL

import mediapipe as mp
from mediapipe.tasks.python import BaseOptions, vision

# The perspective camera MediaPipe's face-geometry pipeline assumes when it
# turns landmarks into a metric head pose (its default environment).
MEDIAPIPE_VERTICAL_FOV_DEG = 63.0


@dataclass(frozen=True)
class Detection:
    """One face found in one frame.

    Attributes:
        landmarks_norm: [478, 3] float32: x, y as fractions of the image width
            and height (origin top-left), z relative depth in units of the width.
        weights: [52] float32 ARKit weights in `ARKIT_NAMES` order.
        head_to_camera: [4, 4] float64 pose of the canonical face (cm) in the
            camera space of `avatar.camera` (camera looks down -z).
        num_faces: faces seen in the frame (the largest is the one reported).
    """

    landmarks_norm: np.ndarray
    weights: np.ndarray
    head_to_camera: np.ndarray
    num_faces: int


class FaceLandmarker(MediaPipeTask):
    """MediaPipe's face landmarker in video mode (tracks between frames) or image mode; a context manager."""

    def __init__(self, model_path: str | Path, *, video: bool, max_faces: int = 2,
                 min_confidence: float = 0.5) -> None:
        options = vision.FaceLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=str(model_path)),
            running_mode=vision.RunningMode.VIDEO if video else vision.RunningMode.IMAGE,
            num_faces=max_faces,
            min_face_detection_confidence=min_confidence,
            min_face_presence_confidence=min_confidence,
            min_tracking_confidence=min_confidence,
            output_face_blendshapes=True,
            output_facial_transformation_matrixes=True,
        )
        super().__init__(lambda: vision.FaceLandmarker.create_from_options(options), FACE_MODEL.what, model_path)
        self._video = video
        self._last_ms = -1

    def detect(self, image: np.ndarray, time_s: float = 0.0) -> Detection | None:
        """Find the largest face in `image` ([H, W, 3] uint8 RGB); None if there is none.

        In video mode `time_s` must increase from call to call.
        """
        faces = self.detect_all(image, time_s)
        return max(faces, key=face_width) if faces else None

    def detect_all(self, image: np.ndarray, time_s: float = 0.0) -> list[Detection]:
        """Every face found in `image` (up to `max_faces`), each a `Detection` as `detect` returns."""
        mp_image = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(image))
        with self._quiet_first_call():
            if self._video:
                # MediaPipe needs strictly increasing integer milliseconds.
                time_ms = max(int(round(time_s * 1000)), self._last_ms + 1)
                self._last_ms = time_ms
                result = self._task.detect_for_video(mp_image, time_ms)
            else:
                result = self._task.detect(mp_image)
        count = len(result.face_landmarks)
        return [Detection(np.array([(p.x, p.y, p.z) for p in face], dtype=np.float32),
                          weights_from_named((c.category_name, c.score) for c in shapes),
                          np.asarray(matrix, dtype=np.float64), count)
                for face, shapes, matrix in zip(result.face_landmarks, result.face_blendshapes,
                                                result.facial_transformation_matrixes)]


def face_width(detection: Detection) -> float:
    """The face's width as a fraction of the image's (its landmarks' span in x)."""
    return float(np.ptp(detection.landmarks_norm[:, 0]))
