"""Photorealistic talking 3D heads: the shared vocabulary.

This module stays light (numpy and scipy only): the 52 ARKit names,
`FaceState`, `Camera`, `Track`, the `.avatar` bundle, and the user-facing
errors. The command line (`avatar.cli`) builds on every package and is
imported only when run.
"""

from avatar.arkit import ARKIT_NAMES, NUM_WEIGHTS, index_of, weights_from_named
from avatar.bundle import BUNDLE_VERSION, Bundle, read_bundle, write_bundle
from avatar.camera import Camera
from avatar.errors import AvatarError, BundleError, InputError, ModelFileError, OutputError
from avatar.face_state import FaceState
from avatar.files import atomic_output, check_writable
from avatar.track import NUM_LANDMARKS, Track

__all__ = [
    "ARKIT_NAMES", "NUM_WEIGHTS", "NUM_LANDMARKS", "index_of", "weights_from_named",
    "Bundle", "BUNDLE_VERSION", "read_bundle", "write_bundle",
    "Camera", "FaceState", "Track",
    "AvatarError", "BundleError", "InputError", "ModelFileError", "OutputError",
    "atomic_output", "check_writable",
]

__version__ = "0.1.0"
