"""Pictures of what tracking found: the face mesh drawn over each frame."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from avatar import Track, atomic_output
from capture.face_mesh import LANDMARK_GROUPS, load_canonical_mesh, mesh_edges
from capture.media import PHOTO_SUFFIXES, MediaSource
from render import VideoWriter

# RGB colours of the landmark groups; the tessellation is drawn faintly beneath.
_GROUP_COLOURS = {
    "lips_outer": (235, 60, 60), "lips_inner": (255, 140, 140),
    "left_eye": (60, 220, 90), "right_eye": (60, 220, 90),
    "left_iris": (60, 200, 255), "right_iris": (60, 200, 255),
    "left_brow": (250, 210, 60), "right_brow": (250, 210, 60),
    "face_oval": (245, 245, 245),
}
_MESH_FOUND = (120, 255, 160)
_MESH_FILLED = (255, 170, 40)  # interpolated frames, so a viewer sees what was guessed
_SUBPIXEL_BITS = 4


def draw_mesh(image: np.ndarray, landmarks_px: np.ndarray, edges: np.ndarray, *, interpolated: bool = False) -> np.ndarray:
    """Draw the tracked mesh over a copy of `image`.

    Args:
        image: [H, W, 3] uint8 RGB.
        landmarks_px: [478, 2+] landmark pixel coordinates (NaN: nothing drawn).
        edges: [E, 2] landmark index pairs of the tessellation.
    Returns:
        [H, W, 3] uint8 RGB with the mesh blended in.
    """
    out = image.copy()
    if not np.all(np.isfinite(landmarks_px[:, :2])):
        _label(out, "no face")
        return out
    scale = 1 << _SUBPIXEL_BITS
    pts = np.round(landmarks_px[:, :2] * scale).astype(np.int32)
    thickness = max(1, round(min(image.shape[:2]) / 700))
    mesh = out.copy()
    cv2.polylines(mesh, list(pts[edges]), False, _MESH_FILLED if interpolated else _MESH_FOUND,
                  thickness, cv2.LINE_AA, _SUBPIXEL_BITS)
    # A small face packs its ~1300 edges densely: fade them so the face stays visible.
    face_px = float(np.ptp(landmarks_px[:, 0]))
    opacity = float(np.clip(face_px / 600, 0.12, 0.45))
    out = cv2.addWeighted(mesh, opacity, out, 1 - opacity, 0)
    for name, colour in _GROUP_COLOURS.items():
        cv2.polylines(out, [pts[LANDMARK_GROUPS[name]]], True, colour, thickness, cv2.LINE_AA, _SUBPIXEL_BITS)
    if interpolated:
        _label(out, "interpolated")
    return out


def face_closeup(image: np.ndarray, landmarks_px: np.ndarray, edges: np.ndarray, size_px: int = 512) -> np.ndarray:
    """Side by side, the face as filmed and with its mesh, cropped and scaled to `size_px`.

    Args:
        image: [H, W, 3] uint8 RGB with one tracked face.
        landmarks_px: [478, 2+] its landmarks (finite).
    Returns:
        [size_px, 2 * size_px, 3] uint8 RGB.
    """
    lo, hi = landmarks_px[:, :2].min(axis=0), landmarks_px[:, :2].max(axis=0)
    centre, half = (lo + hi) / 2, 0.65 * float(np.max(hi - lo))
    zoom = size_px / (2 * half)
    affine = np.float32([[zoom, 0, size_px / 2 - zoom * centre[0]], [0, zoom, size_px / 2 - zoom * centre[1]]])
    crop = cv2.warpAffine(image, affine, (size_px, size_px), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
    zoomed = landmarks_px[:, :2] * zoom + affine[:, 2]
    return np.hstack([crop, draw_mesh(crop, zoomed, edges)])


def _label(image: np.ndarray, text: str) -> None:
    scale = max(0.5, image.shape[0] / 900)
    cv2.putText(image, text, (10, int(30 * scale)), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 80, 80),
                max(1, round(2 * scale)), cv2.LINE_AA)


def write_preview(source: MediaSource, track: Track, path: str | os.PathLike, *, progress: bool = True) -> Path:
    """Write `source` with `track` drawn over it: a video, or a still for a single photo.

    An image suffix (.png, .jpg, ...) writes the first frame as a picture;
    anything else writes an MP4 at the source's frame rate.
    """
    path = Path(path)
    edges = mesh_edges(load_canonical_mesh().triangles)
    frames = zip(source.frames(), track.landmarks_px, track.found)
    if path.suffix.lower() in PHOTO_SUFFIXES:
        frame, landmarks, found = next(frames)
        picture = draw_mesh(frame.image, landmarks, edges, interpolated=not found)
        with atomic_output(path) as tmp:
            if not cv2.imwrite(str(tmp), cv2.cvtColor(picture, cv2.COLOR_RGB2BGR)):
                raise OSError(f"OpenCV could not write {path}")
        return path
    with VideoWriter(path, fps=source.fps) as video:
        for frame, landmarks, found in tqdm(frames, total=len(track), unit="frame", desc="preview",
                                            disable=not progress, leave=False):
            video.write(draw_mesh(frame.image, landmarks, edges, interpolated=not found))
    return path
