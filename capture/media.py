"""Reading frames from a video file, a photo, or a folder of photos.

Videos are decoded with PyAV; photos with OpenCV (HEIC with pillow-heif). Frames come out as
sRGB uint8 arrays [H, W, 3], upright (a video's rotation metadata is applied), every frame of a
video at its first frame's size; HDR video is mapped to SDR (`capture.hdr`).
"""

from __future__ import annotations

import os
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np

from avatar.errors import InputError
from capture import hdr

VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".webm", ".mkv", ".m4v", ".avi"})
# HEIF/HEIC (a phone camera's default) is read with pillow-heif, the others with OpenCV.
HEIF_SUFFIXES = frozenset({".heic", ".heif"})
PHOTO_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}) | HEIF_SUFFIXES
# Photos in a folder are shown to per-frame consumers at this nominal rate.
PHOTO_SET_FPS = 1.0
# A stated frame rate above this is a container's clock, not its frames' (phones film at up to 240).
MAX_FRAME_RATE = 240.0
# AVFieldOrder -> which field is shown first: TT and BT show the top one, BB and TB the bottom one.
FIELD_PARITY = {2: "tff", 5: "tff", 3: "bff", 4: "bff"}
# A pass that wants only some frames (the held-out ones and the training frames nearest to them,
# the zoom's probes) jumps to the keyframe before one this far past the last it decoded, where
# the file allows.
SEEK_AFTER_FRAMES = 100
# Pixels this close to square are taken as square: stretching costs a resize of every frame.
SQUARE_PIXEL_TOLERANCE = 0.01


@dataclass(frozen=True)
class Frame:
    """One decoded frame: `image` is [H, W, 3] uint8 RGB; `time_s` from the start."""

    index: int
    time_s: float
    image: np.ndarray


@dataclass(frozen=True)
class MediaSource:
    """A checked input: its kind, size and (for video) frame rate and length."""

    path: Path
    kind: str  # "video", "photo" or "folder"
    width_px: int
    height_px: int
    fps: float
    num_frames: int  # exact for photos; the container's count (or an estimate) for video
    has_audio: bool = False
    photos: tuple[Path, ...] = ()

    def frames(self, only: Collection[int] | None = None) -> Iterator[Frame]:
        """Decode the frames in order, or only those with the indices `only`, stopping after the
        last of them. A video's other frames are decoded (the next ones depend on them) but not
        turned into images, which for 4K HDR is two thirds of a frame's cost; in an MP4 or MOV,
        a long stretch of them is jumped over (`SEEK_AFTER_FRAMES`). Raises InputError if the
        file breaks off."""
        only = frozenset(int(i) for i in only) if only is not None else None
        if self.kind == "video":
            yield from _video_frames(self.path, only)
        else:
            for i, photo in enumerate(self.photos):
                if only is None or i in only:
                    yield Frame(i, i / self.fps, _read_photo(photo))


def open_media(path: str | os.PathLike) -> MediaSource:
    """Check `path` and describe it, without decoding everything.

    Raises:
        InputError: missing path, unknown type, unreadable or damaged file, a
            file with no video stream, an empty folder, or photos of mixed size.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path} does not exist: give a video file, a photo, or a folder of photos")
    if path.is_dir():
        photos = tuple(sorted(p for p in path.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES))
        if not photos:
            raise InputError(f"folder {path} has no photos ({', '.join(sorted(PHOTO_SUFFIXES))})")
        sizes = {p: _read_photo(p).shape[:2] for p in photos}
        if len(set(sizes.values())) > 1:
            raise InputError(f"photos in {path} differ in size: resize them to one size, or track them one by one")
        h, w = sizes[photos[0]]
        return MediaSource(path, "folder", w, h, PHOTO_SET_FPS, len(photos), photos=photos)
    suffix = path.suffix.lower()
    if suffix in PHOTO_SUFFIXES:
        h, w = _read_photo(path).shape[:2]
        return MediaSource(path, "photo", w, h, PHOTO_SET_FPS, 1, photos=(path,))
    if suffix in VIDEO_SUFFIXES:
        return _probe_video(path)
    raise InputError(f"{path} has an unknown type {suffix!r}: use a video ({', '.join(sorted(VIDEO_SUFFIXES))}) "
                     f"or a photo ({', '.join(sorted(PHOTO_SUFFIXES))})")


def _read_photo(path: Path) -> np.ndarray:
    if path.suffix.lower() in HEIF_SUFFIXES:
        return _read_heif(path)
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise InputError(f"{path} is not a readable image (damaged, or not really a {path.suffix} file)")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _read_heif(path: Path) -> np.ndarray:
    """[H, W, 3] uint8 RGB of a HEIF/HEIC photo's primary image, turned as it is shown (libheif
    applies the file's rotation and mirroring)."""
    import pillow_heif

    try:
        image = np.asarray(pillow_heif.open_heif(str(path), convert_hdr_to_8bit=True))
    except (ValueError, RuntimeError, OSError) as exc:
        raise InputError(f"{path} is not a readable image ({exc}): damaged, or not really a {path.suffix} file") \
            from None
    return np.ascontiguousarray(image[..., :3])


def _open_container(path: Path) -> av.container.InputContainer:
    try:
        return av.open(str(path), mode="r")
    except av.error.FFmpegError as exc:
        raise InputError(f"{path} is not a readable video ({exc.strerror or exc}): "
                         f"the file is damaged, truncated or not a video") from None


def _probe_video(path: Path) -> MediaSource:
    with _open_container(path) as container:
        if not container.streams.video:
            kind = "audio-only" if container.streams.audio else "empty"
            raise InputError(f"{path} has no video stream (it is {kind}): give a video of the face")
        stream = container.streams.video[0]
        fps = float(stream.average_rate or stream.guessed_rate or 0)
        num_frames = stream.frames
        if not num_frames or not 0 < fps <= MAX_FRAME_RATE:
            # A browser's MediaRecorder WebM states no frame count, often no duration, and its
            # millisecond clock as its rate (1000 fps): its packets say how many frames and how fast.
            num_frames, fps = _packet_timing(path)
        width, height = stream.codec_context.width, stream.codec_context.height
        if width <= 0 or height <= 0:
            raise InputError(f"{path} has a video stream without a frame size: the file is damaged")
        width = round(width * _pixel_aspect(stream))
        if _display_rotation(container, stream) % 180:
            width, height = height, width
        return MediaSource(path, "video", width, height, fps, num_frames, has_audio=bool(container.streams.audio))


def _packet_timing(path: Path) -> tuple[int, float]:
    """The first video stream's frame count and mean frame rate (fps), from its packets' count and
    times, read without decoding (30 fps when they do not say)."""
    with _open_container(path) as container:
        stream = container.streams.video[0]
        times = [float(pts * stream.time_base) for pts in _packet_stamps(container, stream) or []]
    span_s = max(times) - min(times) if len(times) > 1 else 0.0
    return max(1, len(times)), round((len(times) - 1) / span_s, 3) if span_s > 0 else 30.0


def _packet_stamps(container: av.container.InputContainer, stream: av.video.stream.VideoStream
                   ) -> list[int] | None:
    """The presentation stamps (in the stream's time base), in order, of the packets of `stream`
    that hold a frame to show, read without decoding; None if the file is damaged (decoding the
    frames says where)."""
    try:
        return sorted(packet.pts for packet in container.demux(stream)
                      if packet.size and packet.pts is not None and not packet.is_discard)
    except av.error.FFmpegError:
        return None


def _pixel_aspect(stream: av.video.stream.VideoStream) -> float:
    """A stored pixel's width over its height as shown (the sample aspect ratio): 1 for square
    pixels, 4/3 for HDV's 1440x1080 shown at 1920x1080, 8/9 for NTSC DV's 720x480 shown at 640x480."""
    ratio = stream.sample_aspect_ratio or stream.codec_context.sample_aspect_ratio
    aspect = float(ratio) if ratio and ratio > 0 else 1.0
    return 1.0 if abs(aspect - 1) < SQUARE_PIXEL_TOLERANCE else aspect


def _display_rotation(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> int:
    """Degrees counter-clockwise that the file's display matrix turns its frames (a phone held
    upright stores them sideways, at -90). PyAV reads it per frame, so this decodes the first."""
    try:
        first = next(container.decode(stream), None)
    except av.error.FFmpegError:
        return 0  # decoding the frames says what is damaged
    return first.rotation if first is not None else 0


def _rgb(frame: av.VideoFrame) -> np.ndarray:
    """[H, W, 3] uint8 sRGB of a decoded frame, as stored (before its rotation)."""
    if not hdr.is_hdr(frame.color_trc):
        return frame.to_ndarray(format="rgb24")
    # Planar 16-bit is swscale's fast path out of 10-bit YUV (33 ms for 4K here, packed 55 ms).
    planar = frame.reformat(format="gbrp16le")
    green, blue, red = (np.frombuffer(plane, np.uint16).reshape(planar.height, -1)[:, :planar.width]
                        for plane in planar.planes)
    return hdr.to_sdr((red, green, blue), frame.color_trc, frame.color_primaries)


def _progressive(container: av.container.InputContainer, stream: av.video.stream.VideoStream
                 ) -> Iterator[av.VideoFrame]:
    """The stream's frames in order. From the first interlaced one on (broadcast and DV video),
    they go through FFmpeg's bwdif, a frame for each frame at its first field's time: two fields
    a frame's time apart, woven together, would comb every moving edge of the face."""
    graph = None
    for frame in container.decode(stream):
        if graph is None and not frame.interlaced_frame:
            yield frame
            continue
        if graph is None:
            graph = av.filter.Graph()
            # The stream's field order, where it states one: H.264 decoders leave the frames'
            # own flag at bottom-first unless the encoder wrote picture timing.
            parity = FIELD_PARITY.get(int(stream.codec_context.field_order or 0), "auto")
            chain = [graph.add_buffer(template=stream),
                     graph.add("bwdif", f"mode=send_frame:parity={parity}:deint=interlaced"),
                     graph.add("buffersink")]
            chain[0].link_to(chain[1])
            chain[1].link_to(chain[2])
            graph.configure()
        graph.push(frame)
        yield from _pulled(graph, stream)
    if graph is not None:
        graph.push(None)
        yield from _pulled(graph, stream)


def _pulled(graph: av.filter.Graph, stream: av.video.stream.VideoStream) -> Iterator[av.VideoFrame]:
    """The frames a filter graph has ready, stamped in `stream`'s time base again (bwdif doubles
    its clock's rate)."""
    while True:
        try:
            frame = graph.pull()
        except (av.error.BlockingIOError, av.error.EOFError):
            return
        if frame.time is not None:
            frame.pts, frame.time_base = round(frame.time / stream.time_base), stream.time_base
        yield frame


def _frame_stamps(path: Path) -> list[int] | None:
    """The first video stream's frames' presentation stamps, in order, read from its packets where
    they can index the frames: an MP4 or MOV whose packets, none discarded, are its stated frames
    (a WebM can hold packets that show no frame). Else None."""
    with _open_container(path) as container:
        if not {"mov", "mp4"} & set(container.format.name.split(",")):
            return None
        stream = container.streams.video[0]
        stamps, declared = _packet_stamps(container, stream), stream.frames
    return stamps if stamps and len(stamps) == declared and len(set(stamps)) == len(stamps) else None


def _seeked_frames(path: Path, stamps: list[int], only: frozenset[int]) -> Iterator[Frame]:
    """The frames `only`, in order, each indexed by its place in `stamps`; to reach one more than
    `SEEK_AFTER_FRAMES` past the last decoded, decoding jumps to the keyframe before it. Stops
    early, having yielded frames in order, if a frame's stamp is not there, a wanted frame does
    not come, or the file breaks off: decoding from the start does the rest."""
    index_of = {pts: i for i, pts in enumerate(stamps)}
    with _open_container(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        aspect = _pixel_aspect(stream)
        try:
            decoded = _progressive(container, stream)
            first = next(decoded)
            if first.pts != stamps[0]:
                return
            size, start, at = _shown_size(first, aspect), float(first.time), 0
            for target in sorted(only):
                if target >= len(stamps):
                    return
                if target - at > SEEK_AFTER_FRAMES:
                    container.seek(stamps[target], stream=stream, backward=True)
                    decoded = _progressive(container, stream)
                frame = first if target == 0 else None
                while frame is None:
                    frame = next(decoded)
                    at = index_of.get(frame.pts, -1)
                    if at < 0 or at > target:
                        return
                    frame = frame if at == target else None
                yield Frame(target, float(frame.time) - start, _image(frame, aspect, size))
        except (av.error.FFmpegError, StopIteration):
            return


def _shown_size(frame: av.VideoFrame, aspect: float) -> tuple[int, int]:
    """(W, H) of a decoded frame as it is shown: stretched by its pixels' `aspect`, turned."""
    width, height = round(frame.width * aspect), frame.height
    return (height, width) if frame.rotation % 180 else (width, height)


def _image(frame: av.VideoFrame, aspect: float, size: tuple[int, int]) -> np.ndarray:
    """[H, W, 3] uint8 sRGB of a decoded frame as shown, at `size` (W, H)."""
    image = _rgb(frame)
    if aspect != 1.0:
        # Faces are fitted in square pixels: an anamorphic frame is stretched as shown.
        image = cv2.resize(image, (round(image.shape[1] * aspect), image.shape[0]),
                           interpolation=cv2.INTER_AREA if aspect < 1 else cv2.INTER_LINEAR)
    if frame.rotation:
        image = np.ascontiguousarray(np.rot90(image, k=frame.rotation // 90))
    if image.shape[1::-1] != size:
        image = cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)
    return image


def _video_frames(path: Path, only: frozenset[int] | None = None) -> Iterator[Frame]:
    last = max(only, default=-1) if only is not None else None
    done = -1  # the last frame yielded after a seek
    if only and max(only) >= SEEK_AFTER_FRAMES and (stamps := _frame_stamps(path)) is not None:
        for frame in _seeked_frames(path, stamps, only):
            done = frame.index
            yield frame
        if done == max((i for i in only if i < len(stamps)), default=-1):
            return  # what is left is past the last frame
    with _open_container(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        aspect = _pixel_aspect(stream)
        index = 0
        start = size = None
        try:
            for frame in _progressive(container, stream):
                if last is not None and index > last:
                    return
                time_s = float(frame.time) if frame.time is not None else index / float(stream.average_rate or 30)
                start = time_s if start is None else start
                # A call's recording changes resolution with its bandwidth; the track's pixels,
                # the window and the camera are the first frame's size, as shown.
                size = size or _shown_size(frame, aspect)
                if (only is None or index in only) and index > done:
                    yield Frame(index, time_s - start, _image(frame, aspect, size))
                index += 1
        except av.error.FFmpegError as exc:
            raise InputError(f"{path} breaks off after frame {index} ({exc.strerror or exc}): "
                             f"the file is truncated or damaged; re-export or re-copy it") from None
        declared = stream.frames
    if index == 0:
        raise InputError(f"{path} has no decodable video frames: the file is truncated or damaged")
    # A cut-off file whose index sits at the front decodes cleanly up to the cut;
    # only the container's frame count shows that the rest is missing.
    if declared and index < declared - max(2, declared // 100):
        raise InputError(f"{path} ends after {index} of its {declared} frames: the file is truncated; "
                         f"re-export or re-copy it")
