"""Face tracking: a video, photo or photo folder in, a `Track` out."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from avatar import NUM_LANDMARKS, NUM_WEIGHTS, Camera, InputError, Track
from avatar.rotation import matrix_to_rotvec
from capture.model_files import resolve_face_model
from capture.landmarker import MEDIAPIPE_VERTICAL_FOV_DEG, FaceLandmarker
from capture.media import MediaSource
from capture.smoothing import TrackSmoothing, fill_gaps, smooth_track

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrackingStats:
    """How a tracking run went: counts and wall time per frame (decode + detect)."""

    frames: int
    found_fraction: float
    ms_per_frame: float
    max_faces_seen: int
    several_faces_fraction: float  # of the frames with a face, those with more than one


def track_media(source: MediaSource, *, model_path: str | Path | None = None,
                smoothing: TrackSmoothing | None = None, max_gap_s: float = 0.25,
                progress: bool = True) -> tuple[Track, TrackingStats]:
    """Track the face through every frame of `source`.

    Frames without a face are flagged (`found` False); gaps up to `max_gap_s`
    between found frames are interpolated; `smoothing`, if given, runs a
    One-Euro filter afterwards.

    Raises:
        InputError: no face in any frame (or in the photo).
        ModelFileError: the face model cannot be found.
    """
    model_path = resolve_face_model(model_path)
    rows: list[tuple[float, object]] = []
    size = None
    start = time.perf_counter()
    with FaceLandmarker(model_path, video=source.kind == "video") as landmarker, \
            tqdm(total=source.num_frames, unit="frame", desc=f"tracking {source.path.name}",
                 disable=not progress, leave=False) as bar:
        for frame in source.frames():
            size = frame.image.shape[1], frame.image.shape[0]
            rows.append((frame.time_s, landmarker.detect(frame.image, frame.time_s)))
            bar.update()
    elapsed = time.perf_counter() - start
    detections = [d for _, d in rows if d is not None]
    what = "the photo" if source.kind == "photo" else f"any of the {len(rows)} frames"
    if not detections:
        raise InputError(f"no face found in {what} of {source.path}: use a well-lit recording "
                         f"with the face visible and turned towards the camera")
    width, height = size
    track = _assemble(rows, Camera.from_vertical_fov(width, height, MEDIAPIPE_VERTICAL_FOV_DEG), str(source.path))
    track = fill_gaps(track, max_gap_s)
    if smoothing is not None:
        track = smooth_track(track, smoothing)
    stats = TrackingStats(len(track), track.found_fraction, 1000 * elapsed / len(rows),
                          max(d.num_faces for d in detections),
                          sum(d.num_faces > 1 for d in detections) / len(detections))
    return track, stats


def track_image(image: np.ndarray, *, source: str = "image", model_path: str | Path | None = None) -> Track:
    """Track the face in one in-memory RGB image ([H, W, 3] uint8): a one-frame Track.

    Raises:
        InputError: no face in the image.
    """
    with FaceLandmarker(resolve_face_model(model_path), video=False) as landmarker:
        detection = landmarker.detect(image)
    if detection is None:
        raise InputError(f"no face found in {source}: use a well-lit photo with the face visible")
    height, width = image.shape[:2]
    return _assemble([(0.0, detection)], Camera.from_vertical_fov(width, height, MEDIAPIPE_VERTICAL_FOV_DEG), source)


def _assemble(rows: list, camera: Camera, source: str) -> Track:
    t = len(rows)
    landmarks = np.full((t, NUM_LANDMARKS, 3), np.nan, dtype=np.float32)
    weights = np.full((t, NUM_WEIGHTS), np.nan, dtype=np.float32)
    pose = np.full((t, 4, 4), np.nan)
    found = np.zeros(t, dtype=bool)
    for i, (_, det) in enumerate(rows):
        if det is None:
            continue
        found[i] = True
        landmarks[i] = det.landmarks_norm * np.float32([camera.width_px, camera.height_px, camera.width_px])
        weights[i] = det.weights
        pose[i] = det.head_to_camera
    rotation = np.full((t, 3), np.nan, dtype=np.float32)
    rotation[found] = matrix_to_rotvec(pose[found, :3, :3])
    return Track(
        time_s=np.array([r[0] for r in rows], dtype=np.float64), found=found, valid=found.copy(),
        landmarks_px=landmarks, weights=weights, head_rotation=rotation,
        head_translation_cm=pose[:, :3, 3].astype(np.float32), camera=camera, source=source,
    )

