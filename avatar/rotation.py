"""Rotations as axis-angle vectors (radians), the form used in FaceState and the API.

Thin, vectorised wrappers over scipy so that every package converts the same way.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation, Slerp


def rotvec_to_matrix(rotvec: np.ndarray) -> np.ndarray:
    """[..., 3] axis-angle (radians) -> [..., 3, 3] rotation matrices."""
    rotvec = np.asarray(rotvec, dtype=np.float64)
    flat = Rotation.from_rotvec(rotvec.reshape(-1, 3)).as_matrix()
    return flat.reshape(*rotvec.shape[:-1], 3, 3)


def matrix_to_rotvec(matrix: np.ndarray) -> np.ndarray:
    """[..., 3, 3] rotation matrices -> [..., 3] axis-angle (radians), angle in [0, pi]."""
    matrix = np.asarray(matrix, dtype=np.float64)
    flat = Rotation.from_matrix(matrix.reshape(-1, 3, 3)).as_rotvec()
    return flat.reshape(*matrix.shape[:-2], 3)


def interpolate_rotvecs(times_s: np.ndarray, rotvecs: np.ndarray, query_s: np.ndarray) -> np.ndarray:
    """Spherical-linear interpolation of rotations.

    Args:
        times_s: [K] increasing key times.
        rotvecs: [K, 3] key rotations (axis-angle).
        query_s: [Q] times within [times_s[0], times_s[-1]].
    Returns:
        [Q, 3] interpolated axis-angle rotations.
    """
    if len(times_s) == 1:
        return np.repeat(np.asarray(rotvecs, dtype=np.float64).reshape(1, 3), len(query_s), axis=0)
    return Slerp(times_s, Rotation.from_rotvec(rotvecs))(query_s).as_rotvec()
