"""`Track`: what face tracking found in each frame of a video or photo set.

Stored as `.npz` (no pickle; metadata as a JSON byte string), written atomically.
"""

from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from avatar.arkit import ARKIT_NAMES, NUM_WEIGHTS
from avatar.camera import Camera
from avatar.errors import InputError
from avatar.face_state import FaceState
from avatar.files import atomic_output

NUM_LANDMARKS = 478
NUM_MESH_VERTICES = 468  # landmarks 0..467 are the face mesh's vertices, 468..477 the irises
TRACK_FORMAT = "avatar-track"
TRACK_VERSION = 1
_ARRAY_FIELDS = ("time_s", "found", "valid", "landmarks_px", "weights", "head_rotation", "head_translation_cm")


@dataclass
class Track:
    """Per-frame tracking results; T frames. Conventions as in `avatar.camera`.

    Attributes:
        time_s: [T] float64 frame times in seconds from the start.
        found: [T] bool, a face was detected in the frame.
        valid: [T] bool, the frame has data: found, or inside a short gap that
            was interpolated. Arrays hold NaN where `valid` is False.
        landmarks_px: [T, 478, 3] float32 MediaPipe landmarks: u, v in pixels
            (see `avatar.camera`), and a relative depth in the same pixel scale
            (smaller is nearer the camera).
        weights: [T, 52] float32 ARKit weights in `ARKIT_NAMES` order.
        head_rotation: [T, 3] float32 axis-angle (radians), head space -> camera space.
        head_translation_cm: [T, 3] float32, head origin in camera space (cm).
        camera: the intrinsics the pose was estimated with; the camera is the
            world origin (identity pose).
        source: the input's path as given.
        smoothing: parameters and measured lag of the temporal filter applied,
            or None when the raw detections are kept.
    """

    time_s: np.ndarray
    found: np.ndarray
    valid: np.ndarray
    landmarks_px: np.ndarray
    weights: np.ndarray
    head_rotation: np.ndarray
    head_translation_cm: np.ndarray
    camera: Camera
    source: str = ""
    smoothing: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        t = len(self.time_s)
        expected = {
            "time_s": (t,), "found": (t,), "valid": (t,), "landmarks_px": (t, NUM_LANDMARKS, 3),
            "weights": (t, NUM_WEIGHTS), "head_rotation": (t, 3), "head_translation_cm": (t, 3),
        }
        for name, shape in expected.items():
            if np.shape(getattr(self, name)) != shape:
                raise ValueError(f"Track.{name} must have shape {shape}, got {np.shape(getattr(self, name))}")

    def __len__(self) -> int:
        return len(self.time_s)

    @property
    def found_fraction(self) -> float:
        return float(np.mean(self.found)) if len(self) else 0.0

    def face_state(self, i: int) -> FaceState:
        """Frame `i` as a FaceState (world = the tracking camera's space)."""
        return FaceState(float(self.time_s[i]), self.weights[i], self.head_rotation[i], self.head_translation_cm[i])

    def save(self, path: str | os.PathLike) -> Path:
        """Write the track as `.npz` atomically; returns the path."""
        meta = {
            "format": TRACK_FORMAT, "version": TRACK_VERSION, "arkit_names": list(ARKIT_NAMES),
            "camera": self.camera.to_dict(), "source": self.source, "smoothing": self.smoothing,
        }
        arrays = {name: getattr(self, name) for name in _ARRAY_FIELDS}
        arrays["meta_json"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
        with atomic_output(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez_compressed(f, **arrays)
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Track":
        """Read a track written by `save`; InputError for a missing or unreadable file."""
        path = Path(path)
        if not path.is_file():
            raise InputError(f"track file {path} does not exist")
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(bytes(data["meta_json"]).decode())
                arrays = {name: data[name] for name in _ARRAY_FIELDS}
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, json.JSONDecodeError) as exc:
            raise InputError(f"{path} is not a readable track file ({exc}): run `avatar track` again") from None
        if meta.get("format") != TRACK_FORMAT or meta.get("version") != TRACK_VERSION:
            raise InputError(f"{path} is not a version-{TRACK_VERSION} track file: run `avatar track` again")
        if list(meta["arkit_names"]) != list(ARKIT_NAMES):
            raise InputError(f"{path} uses another blendshape order: run `avatar track` again")
        return cls(**arrays, camera=Camera.from_dict(meta["camera"]), source=meta["source"],
                   smoothing=meta["smoothing"])
