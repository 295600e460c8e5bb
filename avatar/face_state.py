"""`FaceState`: everything that animates the head at one instant."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from avatar.arkit import NUM_WEIGHTS
from avatar.rotation import rotvec_to_matrix


def _zeros(n: int) -> np.ndarray:
    return np.zeros(n, dtype=np.float32)


@dataclass
class FaceState:
    """The face at time `time_s`: expression, head pose and gaze.

    Coordinates follow `avatar.camera` (right-handed, y up, cm). The head pose
    maps head space (the canonical face: origin inside the head, the face
    looking along +z) to world space: `x_world = R(head_rotation) @ x_head +
    head_translation_cm`. A face looking straight at a default camera has
    `head_rotation = 0`.

    Attributes:
        time_s: time in seconds (for speech: the utterance's audio time).
        weights: [52] ARKit weights in `ARKIT_NAMES` order, nominally in [0, 1].
        head_rotation: [3] axis-angle, radians.
        head_translation_cm: [3] head origin in world space, cm.
        gaze_rad: [2] extra eye rotation (yaw to the subject's left, pitch up),
            radians, added on top of the eyeLook* weights; 0 for tracked faces,
            whose gaze is already in those weights.
    """

    time_s: float = 0.0
    weights: np.ndarray = field(default_factory=lambda: _zeros(NUM_WEIGHTS))
    head_rotation: np.ndarray = field(default_factory=lambda: _zeros(3))
    head_translation_cm: np.ndarray = field(default_factory=lambda: _zeros(3))
    gaze_rad: np.ndarray = field(default_factory=lambda: _zeros(2))

    def __post_init__(self) -> None:
        self.weights = np.asarray(self.weights, dtype=np.float32)
        self.head_rotation = np.asarray(self.head_rotation, dtype=np.float32)
        self.head_translation_cm = np.asarray(self.head_translation_cm, dtype=np.float32)
        self.gaze_rad = np.asarray(self.gaze_rad, dtype=np.float32)
        for name, shape in (("weights", (NUM_WEIGHTS,)), ("head_rotation", (3,)),
                            ("head_translation_cm", (3,)), ("gaze_rad", (2,))):
            if getattr(self, name).shape != shape:
                raise ValueError(f"FaceState.{name} must have shape {shape}, got {getattr(self, name).shape}")

    def head_to_world(self) -> np.ndarray:
        """[4, 4] rigid transform from head space to world space (cm)."""
        m = np.eye(4)
        m[:3, :3] = rotvec_to_matrix(self.head_rotation)
        m[:3, 3] = self.head_translation_cm
        return m
