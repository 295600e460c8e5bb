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
from capture.frames import FrameWindow
from capture.landmarker import MEDIAPIPE_VERTICAL_FOV_DEG, Detection, FaceLandmarker, face_width
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


# MediaPipe's face detector looks at the whole frame at 128 px: a face under about a seventh of the
# frame's longer side (a person at a desk in a 16:9 video) is found in few frames or none. Then the
# face is looked for in zoomed tiles of a few frames, and the video tracked again in a square
# around it, ZOOM_FACE_SIDES face widths a side.
ZOOM_BELOW_FOUND = 0.9       # found share under which a small or missing face is looked for zoomed
ZOOM_FACE_SHARE = 0.25       # face width, as a share of the frame's longer side, counted as small
ZOOM_PROBE_FRAMES = 8
ZOOM_FACE_SIDES = 4.0
# Tiles of half, then a quarter of the frame's shorter side: the detector finds a face down to
# about an eighth of what it sees (the tests' 89-px face in a 720-px tile, not in a 1080-px one),
# so quarter tiles find it in 4K (a person across a meeting room).
ZOOM_TILE_FRACTIONS = (2, 4)
ZOOM_MIN_TILE_PX = 64
# Whose face is tracked where a frame shows several: first the largest, or the leftmost or
# rightmost; then, frame after frame, the one nearest to where that person's face was last seen.
FACE_CHOICES = ("largest", "left", "right")
# Where other faces have been seen, a face is the followed person's only if its centre is within
# this many of their face widths of where theirs was last seen, and this many more for every second
# since: a head moves less than its width from one frame to the next, and one out of view for a
# while may come back anywhere.
FOLLOW_REACH_WIDTHS = 1.0
FOLLOW_REACH_WIDTHS_PER_S = 2.0
FOLLOW_MAX_FACES = 4     # faces MediaPipe looks for in a frame, so that the followed one is among them


def track_media(source: MediaSource, *, model_path: str | Path | None = None,
                smoothing: TrackSmoothing | None = None, max_gap_s: float = 0.25,
                progress: bool = True, face: str = "largest") -> tuple[Track, TrackingStats]:
    """Track the face through every frame of `source`.

    Where a frame shows several faces, one person is followed: `face` (`FACE_CHOICES`) picks
    them where they are first seen, and after that the face nearest to theirs in the frame before
    is theirs, so a second person coming closer or passing by is not taken for them.

    Frames without a face are flagged (`found` False); gaps up to `max_gap_s`
    between found frames are interpolated; `smoothing`, if given, runs a
    One-Euro filter afterwards. A face too small for the detector in the
    whole frame is tracked in a square around it (`ZOOM_*`); landmarks and the
    camera are still the whole frame's.

    Raises:
        InputError: no face in any frame (or in the photo).
        ModelFileError: the face model cannot be found.
    """
    model_path = resolve_face_model(model_path)
    start = time.perf_counter()
    if face not in FACE_CHOICES:
        raise ValueError(f"face must be one of {FACE_CHOICES}, not {face!r}")
    rows, (width, height) = _detect_all(source, model_path, None, progress, face)
    camera = Camera.from_vertical_fov(width, height, MEDIAPIPE_VERTICAL_FOV_DEG)
    if _too_small(rows, width, height):
        square = _locate_face(source, model_path, width, height, face)
        if square is not None:
            zoomed, _ = _detect_all(source, model_path, square, progress, face)
            if sum(d is not None for _, d in zoomed) > sum(d is not None for _, d in rows):
                log.info("%s: the face is small in the frame; tracked in the square %s", source.path.name, square)
                rows, camera = zoomed, _square_camera(square, width, height)
    elapsed = time.perf_counter() - start
    detections = [d for _, d in rows if d is not None]
    what = "the photo" if source.kind == "photo" else f"any of the {len(rows)} frames"
    if not detections:
        raise InputError(f"no face found in {what} of {source.path}: use a well-lit recording "
                         f"with the face visible and turned towards the camera")
    track = _assemble(rows, camera, str(source.path))
    track = fill_gaps(track, max_gap_s)
    if smoothing is not None:
        track = smooth_track(track, smoothing)
    stats = TrackingStats(len(track), track.found_fraction, 1000 * elapsed / len(rows),
                          max(d.num_faces for d in detections),
                          sum(d.num_faces > 1 for d in detections) / len(detections))
    return track, stats


def _detect_all(source: MediaSource, model_path: Path, square: FrameWindow | None, progress: bool, face: str
                ) -> tuple[list[tuple[float, Detection | None]], tuple[int, int]]:
    """Every frame's (time, detection of the followed face), and the frame size (W, H). With
    `square`, MediaPipe sees only that square, and the landmarks are turned back into fractions
    of the whole frame (`_in_frame`)."""
    rows: list[tuple[float, Detection | None]] = []
    size = (0, 0)
    last: tuple[float, Detection] | None = None
    crowded = False  # whether any frame so far has shown more than one face
    with FaceLandmarker(model_path, video=source.kind == "video", max_faces=FOLLOW_MAX_FACES) as landmarker, \
            tqdm(total=source.num_frames, unit="frame", desc=f"tracking {source.path.name}",
                 disable=not progress, leave=False) as bar:
        for frame in source.frames():
            size = frame.image.shape[1], frame.image.shape[0]
            if square is None:
                faces = landmarker.detect_all(frame.image, frame.time_s)
            else:
                faces = [_in_frame(found, square, size)
                         for found in landmarker.detect_all(square.crop(frame.image), frame.time_s)]
            crowded = crowded or len(faces) > 1
            chosen = _followed(faces, last, frame.time_s, face, size, crowded)
            # Photos in a folder are not a sequence: each is looked at afresh.
            last = (frame.time_s, chosen) if chosen is not None and source.kind == "video" else last
            rows.append((frame.time_s, chosen))
            bar.update()
    return rows, size


def _followed(faces: list[Detection], last: tuple[float, Detection] | None, time_s: float, face: str,
              size: tuple[int, int], crowded: bool) -> Detection | None:
    """The followed person's face among a frame's `faces` at `time_s`: the one whose centre is
    nearest (in pixels of a W x H frame) to theirs when last seen (`last`: time, detection), and,
    in a video that has shown more than one face (`crowded`), only if within reach
    (`FOLLOW_REACH_*`: a lone face may have jumped with a cut); before they are first seen, the
    one `face` picks."""
    if not faces:
        return None
    if last is None:
        return _picked(faces, face, [(f.landmarks_norm[:, 0].mean() * size[0], face_width(f)) for f in faces])
    seen_s, seen = last
    scale = np.array(size, np.float64)
    target = seen.landmarks_norm[:, :2].mean(0) * scale
    distances = [float(np.linalg.norm(f.landmarks_norm[:, :2].mean(0) * scale - target)) for f in faces]
    reach = face_width(seen) * size[0] * (FOLLOW_REACH_WIDTHS + FOLLOW_REACH_WIDTHS_PER_S * (time_s - seen_s))
    nearest = int(np.argmin(distances))
    return faces[nearest] if distances[nearest] <= reach or not crowded else None


def _picked(faces: list, face: str, places: list[tuple[float, float]]):
    """The one of `faces` that `face` picks, by their (centre x, width) `places` in one frame's pixels."""
    if face == "largest":
        return faces[int(np.argmax([width for _, width in places]))]
    centres = [x for x, _ in places]
    return faces[int(np.argmin(centres) if face == "left" else np.argmax(centres))]


def _too_small(rows: list[tuple[float, Detection | None]], width: int, height: int) -> bool:
    """Whether the face was missed in many frames and, where found, is small in the frame."""
    found = [d for _, d in rows if d is not None]
    if len(found) >= ZOOM_BELOW_FOUND * len(rows):
        return False
    spans = [(d.landmarks_norm[:, 0].max() - d.landmarks_norm[:, 0].min()) * width for d in found]
    return not found or float(np.median(spans)) < ZOOM_FACE_SHARE * max(width, height)


def _locate_face(source: MediaSource, model_path: Path, width: int, height: int, face: str) -> FrameWindow | None:
    """A square around the face, found in overlapping tiles (`ZOOM_TILE_FRACTIONS`, larger first)
    of a few evenly spaced frames, decoded once: in the first frame and tile size that show any,
    the one `face` picks."""
    levels = [_tiles(width, height, min(width, height) // k) for k in ZOOM_TILE_FRACTIONS
              if min(width, height) // k >= ZOOM_MIN_TILE_PX]
    if not levels:
        return None
    probes = set(np.linspace(0, max(source.num_frames - 1, 0), ZOOM_PROBE_FRAMES).round().astype(int).tolist())
    with FaceLandmarker(model_path, video=False) as landmarker:
        for frame in source.frames(only=probes):
            for tiles in levels:
                found = [(tile, d) for tile in tiles for d in landmarker.detect_all(tile.crop(frame.image))]
                if found:
                    places = [(tile.x0_px + d.landmarks_norm[:, 0].mean() * tile.width_px,
                               face_width(d) * tile.width_px) for tile, d in found]
                    return _around_face(*_picked(found, face, places), width, height)
    return None


def _tiles(width: int, height: int, side: int) -> list[FrameWindow]:
    """Square tiles `side` px wide covering a W x H frame, each overlapping its neighbours by half."""
    xs = np.unique(np.linspace(0, width - side, max(2, round(2 * width / side) - 1)).round().astype(int))
    ys = np.unique(np.linspace(0, height - side, max(2, round(2 * height / side) - 1)).round().astype(int))
    return [FrameWindow(int(x0), int(y0), side, side) for y0 in ys for x0 in xs]


def _around_face(tile: FrameWindow, found: Detection, width: int, height: int) -> FrameWindow:
    """The square `ZOOM_FACE_SIDES` face widths a side around a face found in `tile`, inside the frame."""
    uv = found.landmarks_norm[:, :2] * tile.width_px + [tile.x0_px, tile.y0_px]
    centre, span = (uv.min(0) + uv.max(0)) / 2, float(np.ptp(uv[:, 0]))
    side = int(min(max(ZOOM_FACE_SIDES * span, 64), width, height))
    corner = np.clip(np.round(centre - side / 2), 0, [width - side, height - side]).astype(int)
    return FrameWindow(int(corner[0]), int(corner[1]), side, side)


def _in_frame(found: Detection, square: FrameWindow, size: tuple[int, int]) -> Detection:
    """A detection in `square`, its landmarks as fractions of the whole frame (W, H), as `_assemble`
    takes them: x and y moved and rescaled, z (in units of the image's width) rescaled too, so that
    in pixels it is what MediaPipe measured in the square."""
    width, height = size
    side = square.width_px
    landmarks = found.landmarks_norm.copy()
    landmarks[:, 0] = (landmarks[:, 0] * side + square.x0_px) / width
    landmarks[:, 1] = (landmarks[:, 1] * side + square.y0_px) / height
    landmarks[:, 2] *= side / width
    return Detection(landmarks, found.weights, found.head_to_camera, found.num_faces)


def _square_camera(square: FrameWindow, width: int, height: int) -> Camera:
    """The whole frame's camera for poses MediaPipe measured in `square`: its focal length is the
    square's at MediaPipe's field of view, and its principal point the square's centre."""
    inner = Camera.from_vertical_fov(square.width_px, square.height_px, MEDIAPIPE_VERTICAL_FOV_DEG)
    return Camera(width, height, inner.fx_px, inner.fy_px, square.x0_px + inner.cx_px, square.y0_px + inner.cy_px)


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

