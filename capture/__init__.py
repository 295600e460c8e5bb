"""Capture: from a video or photos of a person to what the avatar is fitted on, and the fit.

Decoding (`open_media`), face tracking (`track_media`, `FaceLandmarker`), the
canonical face mesh and its landmark groups, temporal smoothing, and previews.
Decoding and tracking (PyAV, MediaPipe) and the capture pipeline (`capture`,
`CaptureOptions`; the face fit, head masks, scaffold, Gaussian fitting, self-reenactment
scores and the nerfstudio export; torch) are loaded on first use, so that tracking alone
does not import torch and fitting alone (`capture.head_fit`, on a GPU machine, say) needs
neither PyAV nor MediaPipe.
"""

from capture.expression_basis import generic_expression_basis
from capture.face_mesh import LANDMARK_GROUPS, CanonicalFaceMesh, load_canonical_mesh, mesh_edges
from capture.model_files import (FACE_MODEL, MODELS, PERSON_SEGMENTER, ModelFile, cache_dir, fetch_model,
                                 resolve_face_model, resolve_model)
from capture.jitter import jitter_px, stillest_window
from capture.photo_head import head_from_photo, person_mesh
from capture.smoothing import OneEuroParams, TrackSmoothing, fill_gaps, one_euro, smooth_track

__all__ = [
    "generic_expression_basis", "head_from_photo", "person_mesh",
    "LANDMARK_GROUPS", "CanonicalFaceMesh", "load_canonical_mesh", "mesh_edges",
    "FACE_MODEL", "MODELS", "PERSON_SEGMENTER", "ModelFile", "cache_dir", "fetch_model", "resolve_face_model",
    "resolve_model",
    "jitter_px", "stillest_window",
    "MEDIAPIPE_VERTICAL_FOV_DEG", "Detection", "FaceLandmarker",
    "Frame", "MediaSource", "open_media",
    "draw_mesh", "face_closeup", "write_preview",
    "OneEuroParams", "TrackSmoothing", "fill_gaps", "one_euro", "smooth_track",
    "TrackingStats", "track_image", "track_media",
    "CaptureOptions", "capture", "prepare", "FaceFit", "fit_face", "head_mask", "build_scaffold", "HeadModel",
    "fit_head", "evaluate_reenactment", "write_dataset",
]

_LAZY = {
    "MEDIAPIPE_VERTICAL_FOV_DEG": "capture.landmarker", "Detection": "capture.landmarker",
    "FaceLandmarker": "capture.landmarker", "Frame": "capture.media", "MediaSource": "capture.media",
    "open_media": "capture.media", "draw_mesh": "capture.preview", "face_closeup": "capture.preview",
    "write_preview": "capture.preview", "TrackingStats": "capture.tracking", "track_image": "capture.tracking",
    "track_media": "capture.tracking",
    "CaptureOptions": "capture.pipeline", "capture": "capture.pipeline", "prepare": "capture.pipeline",
    "FaceFit": "capture.face_fit", "fit_face": "capture.face_fit", "head_mask": "capture.masks",
    "build_scaffold": "capture.scaffold", "HeadModel": "capture.head_fit", "fit_head": "capture.head_fit",
    "evaluate_reenactment": "capture.reenactment", "write_dataset": "capture.dataset",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'capture' has no attribute {name!r}")
