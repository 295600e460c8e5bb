"""Capture: from a video or photos of a person to what the avatar is fitted on.

Decoding (`open_media`), face tracking (`track_media`, `FaceLandmarker`), the
canonical face mesh and its landmark groups, temporal smoothing, and previews.
"""

from capture.expression_basis import generic_expression_basis
from capture.face_mesh import LANDMARK_GROUPS, CanonicalFaceMesh, load_canonical_mesh, mesh_edges
from capture.face_model import FACE_MODEL_SHA256, cache_dir, fetch_face_model, resolve_face_model
from capture.jitter import jitter_px, stillest_window
from capture.landmarker import MEDIAPIPE_VERTICAL_FOV_DEG, Detection, FaceLandmarker
from capture.media import Frame, MediaSource, open_media
from capture.photo_head import head_from_photo, person_mesh
from capture.preview import draw_mesh, face_closeup, write_preview
from capture.smoothing import OneEuroParams, TrackSmoothing, fill_gaps, one_euro, smooth_track
from capture.tracking import TrackingStats, track_image, track_media

__all__ = [
    "generic_expression_basis", "head_from_photo", "person_mesh",
    "LANDMARK_GROUPS", "CanonicalFaceMesh", "load_canonical_mesh", "mesh_edges",
    "FACE_MODEL_SHA256", "cache_dir", "fetch_face_model", "resolve_face_model",
    "jitter_px", "stillest_window",
    "MEDIAPIPE_VERTICAL_FOV_DEG", "Detection", "FaceLandmarker",
    "Frame", "MediaSource", "open_media",
    "draw_mesh", "face_closeup", "write_preview",
    "OneEuroParams", "TrackSmoothing", "fill_gaps", "one_euro", "smooth_track",
    "TrackingStats", "track_image", "track_media",
]
