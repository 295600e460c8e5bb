"""`Avatar`: a person's animatable head as stored in an `.avatar` bundle."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from avatar.arkit import NUM_WEIGHTS
from avatar.bundle import Bundle, read_bundle, write_bundle
from avatar.camera import Camera
from avatar.errors import BundleError
from avatar.track import NUM_MESH_VERTICES
from render import GaussianHead, orbit_camera

AVATAR_KIND = "gaussian-head"
FRAMING_FOV_DEG = 25.0


SPEECH_PREFIX = "speech/"
FACE_FIT_DELTAS = "capture/face_fit_deltas_cm"


@dataclass
class Avatar:
    """A named GaussianHead plus free-form metadata (source, how it was made).

    `speech` holds the weights of a speech model tuned to this person (`animation.tuning`),
    by parameter name, or is empty: then the shipped model speaks for it.

    `face_fit_deltas_cm` ([52, 468, 3] or None) are the ARKit offsets of the face mesh that a
    capture fitted to the video's landmarks, before the photometric fit corrected the head's own:
    the mesh another video's frames are posed with (`capture.retrack`), as the capture posed its
    frames. None for an avatar not made by a capture, or made before they were kept.
    """

    head: GaussianHead
    name: str
    metadata: dict[str, Any] = field(default_factory=dict)
    speech: dict[str, np.ndarray] = field(default_factory=dict)
    face_fit_deltas_cm: np.ndarray | None = None

    def save(self, path: str | os.PathLike) -> Path:
        """Write the `.avatar` bundle atomically."""
        meta = {**self.metadata, "kind": AVATAR_KIND, "name": self.name, "gaussians": len(self.head)}
        arrays = {**self.head.to_bundle_arrays(), **{SPEECH_PREFIX + k: v for k, v in self.speech.items()}}
        if self.face_fit_deltas_cm is not None:
            arrays[FACE_FIT_DELTAS] = np.asarray(self.face_fit_deltas_cm, np.float32)
        return write_bundle(path, Bundle(arrays=arrays, metadata=meta))

    def speech_model(self):
        """The person's tuned `animation.Audio2Face`, or None when the avatar has none."""
        if not self.speech:
            return None
        from animation import load_default_model
        from animation.tuning import model_from_arrays

        try:
            return model_from_arrays(self.speech, load_default_model())
        except ValueError as exc:
            raise BundleError(f"avatar {self.name}: {exc}") from None

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Avatar":
        """Read an `.avatar` bundle; BundleError / InputError with one clear line when it is unusable."""
        bundle = read_bundle(path)
        if bundle.metadata.get("kind") != AVATAR_KIND:
            raise BundleError(f"{path} is an .avatar bundle but holds no Gaussian head "
                              f"(kind {bundle.metadata.get('kind')!r})")
        metadata = {k: v for k, v in bundle.metadata.items() if k not in ("kind", "name")}
        speech = {k[len(SPEECH_PREFIX):]: v for k, v in bundle.arrays.items() if k.startswith(SPEECH_PREFIX)}
        deltas = bundle.arrays.get(FACE_FIT_DELTAS)
        if deltas is not None and deltas.shape != (NUM_WEIGHTS, NUM_MESH_VERTICES, 3):
            raise BundleError(f"{path}: {FACE_FIT_DELTAS} has shape {deltas.shape}, not "
                              f"{(NUM_WEIGHTS, NUM_MESH_VERTICES, 3)}")
        return cls(GaussianHead.from_bundle(bundle), str(bundle.metadata.get("name", Path(path).stem)), metadata,
                   speech, deltas)

    def framing(self) -> tuple[np.ndarray, float]:
        """Centre (cm, head space) and radius (cm) of a sphere around the neutral head's Gaussians."""
        from avatar.face_state import FaceState

        means = self.head.evaluate(FaceState()).means
        lo, hi = means.min(axis=0), means.max(axis=0)
        centre = (lo + hi) / 2
        return centre, float(np.linalg.norm(hi - lo) / 2)

    def front_camera(self, width_px: int, height_px: int, yaw_rad: float = 0.0, pitch_rad: float = 0.0) -> Camera:
        """A camera that frames the whole head, looking at its face from `yaw_rad`, `pitch_rad`."""
        return self.turntable_cameras(1, width_px, height_px, start_yaw_rad=yaw_rad, pitch_rad=pitch_rad)[0]

    def turntable_cameras(self, count: int, width_px: int, height_px: int, *, start_yaw_rad: float = 0.0,
                          pitch_rad: float = 0.0) -> list[Camera]:
        """`count` framing cameras, evenly spaced once round the head from `start_yaw_rad`.

        The head is framed once (one evaluation of the neutral head), not per camera.
        """
        centre, radius = self.framing()
        # The narrower of the two fields of view must hold the sphere.
        half_fov = math.atan(math.tan(math.radians(FRAMING_FOV_DEG) / 2) * min(1.0, width_px / height_px))
        distance = 1.1 * radius / math.sin(half_fov)
        return [orbit_camera(centre, distance, start_yaw_rad + 2 * math.pi * i / count, pitch_rad,
                             width_px, height_px, FRAMING_FOV_DEG) for i in range(count)]
