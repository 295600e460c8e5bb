"""Decoding inputs and encoding video: round trips and every kind of bad file."""

from __future__ import annotations

import av
import cv2
import numpy as np
import pytest

from avatar import InputError
from capture import open_media
from render import VideoWriter


def write_video(path, frames: int = 12, size=(64, 48), fps: float = 25.0) -> np.ndarray:
    """Write a test video of moving colour bars; returns the frames [N, H, W, 3]."""
    w, h = size
    images = np.zeros((frames, h, w, 3), dtype=np.uint8)
    for i in range(frames):
        images[i, :, :, 0] = (np.arange(w) * 4 + i * 10) % 256
        images[i, :, :, 1] = 128
        images[i, : h // 2, :, 2] = 200
    with VideoWriter(path, fps=fps, crf=10) as video:
        for image in images:
            video.write(image)
    return images


def write_h264(path, images, fps: int = 25, options: dict | None = None, sample_aspect_ratio=None) -> None:
    """Encode [H, W, 3] uint8 RGB `images` with PyAV's x264, frame i at i / fps: `options` are the
    encoder's, and `sample_aspect_ratio` (a Fraction) its pixels' shape."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.height, stream.width = images[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        stream.codec_context.options = options or {}
        if sample_aspect_ratio is not None:
            stream.codec_context.sample_aspect_ratio = sample_aspect_ratio
        for i, image in enumerate(images):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def test_video_round_trip_keeps_count_size_times_and_content(tmp_path):
    images = write_video(tmp_path / "clip.mp4", frames=12, fps=25.0)
    source = open_media(tmp_path / "clip.mp4")
    assert (source.kind, source.width_px, source.height_px, source.fps, source.num_frames) == ("video", 64, 48, 25.0, 12)
    frames = list(source.frames())
    assert [f.index for f in frames] == list(range(12))
    assert np.allclose([f.time_s for f in frames], np.arange(12) / 25.0)
    error = np.abs(np.stack([f.image for f in frames]).astype(int) - images).mean()
    assert error < 6, error
    picked = list(source.frames(only={3, 7}))
    assert [f.index for f in picked] == [3, 7] and [f.time_s for f in picked] == [frames[3].time_s, frames[7].time_s]
    assert all(np.array_equal(f.image, frames[f.index].image) for f in picked)


@pytest.mark.parametrize("interlaced", [False, True], ids=["progressive", "interlaced"])
def test_frames_far_in_are_read_from_the_keyframe_before_them(tmp_path, monkeypatch, interlaced):
    """A frame near the start, then the held-out frames of a long video: decoding jumps to the
    keyframe before them instead of going through every frame between, and gives what decoding
    every frame gives (H.264 with B-frames, a keyframe every 30 frames)."""
    import capture.media as media

    images = np.zeros((300, 48, 64, 3), np.uint8)
    for i, image in enumerate(images):
        image[:, :, 0] = (np.arange(64) * 3 + 7 * i) % 256
        image[i % 48, :, 1] = 255
    write_h264(tmp_path / "long.mp4", images, fps=30, options={
        "crf": "20", "x264-params": "keyint=30:min-keyint=30:bframes=3" + (":interlaced=1:tff=1" if interlaced else "")})
    source = open_media(tmp_path / "long.mp4")
    wanted = {5, 170, 171, 240, 299}
    everything = {f.index: f for f in source.frames()}
    decoded = []
    progressive = media._progressive

    def counted(container, stream):
        for frame in progressive(container, stream):
            decoded.append(frame.pts)
            yield frame

    monkeypatch.setattr(media, "_progressive", counted)
    picked = list(source.frames(only=wanted | {400}))  # 400 is past the end
    assert [f.index for f in picked] == sorted(wanted)
    for f in picked:
        assert f.time_s == everything[f.index].time_s and np.array_equal(f.image, everything[f.index].image)
    assert len(decoded) <= 6 + 3 + 300 - 150  # frames 0-5 (and B-frames' delay), then from the keyframe at 150


def test_a_phone_video_stored_sideways_is_read_upright_at_its_upright_size(tmp_path):
    """Phones store a portrait video as landscape frames with a display matrix that turns them."""
    upright = np.zeros((48, 32, 3), np.uint8)
    upright[:8, :16] = 255  # a white block at the top left of the picture as shown
    path = tmp_path / "phone.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 48, 32, "yuv420p"
        stream.set_display_rotation(-90)  # shown turned 90 degrees clockwise
        stored = np.ascontiguousarray(np.rot90(upright, k=1))
        for _ in range(3):
            for packet in stream.encode(av.VideoFrame.from_ndarray(stored, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    source = open_media(path)
    assert (source.width_px, source.height_px, source.num_frames) == (32, 48, 3)
    frame = next(source.frames()).image
    assert frame.shape == (48, 32, 3)
    assert np.abs(frame.astype(int) - upright).mean() < 8
    assert [f.image.shape for f in source.frames(only={2})] == [(48, 32, 3)]  # the first frame skipped


def test_a_photo_is_turned_by_its_exif_orientation(tmp_path):
    image_module = pytest.importorskip("PIL.Image")
    stored = np.zeros((32, 48, 3), np.uint8)
    stored[:8, :16] = 255
    photo = image_module.fromarray(stored)
    exif = photo.getexif()
    exif[0x0112] = 6  # Orientation: shown turned 90 degrees clockwise
    photo.save(tmp_path / "phone.jpg", exif=exif, quality=95)
    source = open_media(tmp_path / "phone.jpg")
    image = next(source.frames()).image
    assert (source.width_px, source.height_px, image.shape) == (32, 48, (48, 32, 3))
    assert image[:8, -8:].mean() > 200 and image[:8, :8].mean() < 50


def write_offset_talk(path, video_start_s: float, audio_start_s: float, burst_s: float = 1.0) -> None:
    """2 s of 25-fps frames from `video_start_s` (a whole frame, 0.04 s) and audio from `audio_start_s`,
    silent but for a 0.1-s tone centred on `burst_s` of the same clock."""
    from fractions import Fraction

    rate = 16000
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=25)
        video.width, video.height, video.pix_fmt = 32, 32, "yuv420p"
        audio = container.add_stream("aac", rate=rate)
        for i in range(50):
            frame = av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")
            frame.pts, frame.time_base = round((video_start_s + i / 25) * 1000), Fraction(1, 1000)
            for packet in video.encode(frame):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
        t = audio_start_s + np.arange(2 * rate) / rate
        tone = np.where(np.abs(t - burst_s) < 0.05, 0.5 * np.sin(2 * np.pi * 440 * t), 0).astype(np.float32)
        for k in range(0, len(tone), 1024):
            frame = av.AudioFrame.from_ndarray(tone[None, k:k + 1024], format="flt", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = rate, round(audio_start_s * rate) + k, Fraction(1, rate)
            for packet in audio.encode(frame):
                container.mux(packet)
        for packet in audio.encode():
            container.mux(packet)


@pytest.mark.parametrize("video_start_s, audio_start_s", [(0.0, 0.5), (0.4, 0.0), (0.0, 0.0)])
def test_a_videos_sound_is_read_on_its_frames_clock(tmp_path, video_start_s, audio_start_s):
    from avatar.audio import read_audio

    write_offset_talk(tmp_path / "talk.mp4", video_start_s, audio_start_s)
    samples, rate = read_audio(tmp_path / "talk.mp4", sample_rate=16000)
    loudness = np.abs(samples)
    burst_s = np.average(np.arange(len(samples)), weights=loudness) / rate
    assert burst_s == pytest.approx(1.0 - video_start_s, abs=0.01)  # where the first frame is 0


def test_a_browser_recording_is_counted_and_timed_by_its_packets(tmp_path):
    """A browser's MediaRecorder writes WebM as a stream (no duration, no frame count), its frames
    stamped in milliseconds at an uneven rate: the container's stated rate is its clock's, 1000."""
    import io
    from fractions import Fraction

    class Stream(io.RawIOBase):  # a pipe: the muxer cannot go back to write the duration
        def __init__(self, file):
            self.file = file

        def writable(self):
            return True

        def write(self, data):
            return self.file.write(data)

    stamps_ms = np.cumsum(np.r_[0, np.random.default_rng(2).integers(28, 40, 16)])  # about 30 fps
    with open(tmp_path / "recorded.webm", "wb") as file, av.open(Stream(file), "w", format="webm") as container:
        stream = container.add_stream("libvpx-vp9", rate=1000)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        for i, stamp in enumerate(stamps_ms):
            frame = av.VideoFrame.from_ndarray(np.full((32, 32, 3), 10 * i, np.uint8), format="rgb24")
            frame.pts, frame.time_base = int(stamp), Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    with av.open(str(tmp_path / "recorded.webm")) as container:
        video = container.streams.video[0]
        assert not video.frames and not container.duration and video.average_rate == 1000
    source = open_media(tmp_path / "recorded.webm")
    assert source.num_frames == 17 == len(list(source.frames()))
    assert source.fps == pytest.approx(16 / (stamps_ms[-1] / 1000), abs=1e-3)


def test_a_heic_photo_is_read_and_a_damaged_one_refused(tmp_path):
    pillow_heif = pytest.importorskip("pillow_heif")
    from avatar.sample import sample_photo

    photo = sample_photo()
    pillow_heif.from_bytes(mode="RGB", size=photo.shape[1::-1], data=photo.tobytes()).save(tmp_path / "face.heic",
                                                                                            quality=90)
    source = open_media(tmp_path / "face.heic")
    image = next(source.frames()).image
    assert (source.kind, source.width_px, source.height_px, image.shape) == ("photo", 512, 512, photo.shape)
    assert np.abs(image.astype(int) - photo).mean() < 6
    (tmp_path / "broken.heic").write_bytes(b"not a photo")
    with pytest.raises(InputError, match="not a readable image"):
        open_media(tmp_path / "broken.heic")


def test_a_video_that_changes_resolution_comes_out_at_its_first_size(tmp_path):
    """A recorded video call drops its resolution when the bandwidth does: packets of a second,
    smaller encoder in the same stream."""
    from fractions import Fraction

    with av.open(str(tmp_path / "call.webm"), "w") as container:
        stream = container.add_stream("libvpx", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        smaller = av.CodecContext.create("libvpx", "w")
        smaller.width, smaller.height, smaller.pix_fmt = 32, 24, "yuv420p"
        smaller.time_base, smaller.framerate = Fraction(1, 25), Fraction(25)
        for i in range(6):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 60, np.uint8), format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
        for i in range(6, 12):
            frame = av.VideoFrame.from_ndarray(np.full((24, 32, 3), 200, np.uint8), format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, 25)
            for packet in [*smaller.encode(frame), *(smaller.encode(None) if i == 11 else [])]:
                packet.stream, packet.time_base = stream, Fraction(1, 25)
                container.mux(packet)
    source = open_media(tmp_path / "call.webm")
    images = [frame.image for frame in source.frames()]
    assert (source.width_px, source.height_px, len(images)) == (64, 48, 12)
    assert {image.shape for image in images} == {(48, 64, 3)}
    assert abs(images[0].mean() - 60) < 8 and abs(images[-1].mean() - 200) < 8


def test_an_anamorphic_video_is_read_stretched_as_it_is_shown(tmp_path):
    """HDV and DV store wide pictures squeezed into fewer, non-square pixels: here a 64x48 picture
    with a disc in it, stored as 32x48 pixels twice as wide as they are high."""
    from fractions import Fraction

    shown = np.zeros((48, 64, 3), np.uint8)
    cv2.circle(shown, (32, 24), 16, (220, 220, 220), -1)
    stored = cv2.resize(shown, (32, 48), interpolation=cv2.INTER_AREA)
    write_h264(tmp_path / "hdv.mp4", [stored] * 4, sample_aspect_ratio=Fraction(2, 1))
    source = open_media(tmp_path / "hdv.mp4")
    images = [frame.image for frame in source.frames()]
    assert (source.width_px, source.height_px) == (64, 48) and {i.shape for i in images} == {(48, 64, 3)}
    disc = images[0][..., 0] > 110
    assert abs(np.ptp(np.flatnonzero(disc.any(0))) - np.ptp(np.flatnonzero(disc.any(1)))) <= 2  # round
    assert [f.image.shape for f in source.frames(only={3})] == [(48, 64, 3)]
    assert np.abs(images[0].astype(int) - shown).mean() < 8


def test_an_interlaced_video_is_read_deinterlaced(tmp_path):
    """Broadcast video weaves two fields, half a frame apart, into each frame: a bar moving 6 px a
    field shows a comb on its edges unless the fields are taken apart."""
    def scene(field: int) -> np.ndarray:
        image = np.full((64, 192, 3), 40, np.uint8)
        image[:, 10 + 6 * field:22 + 6 * field] = 220
        return image

    woven = [scene(2 * i) for i in range(12)]
    for i, image in enumerate(woven):
        image[1::2] = scene(2 * i + 1)[1::2]
    write_h264(tmp_path / "broadcast.mp4", woven, options={"x264-params": "interlaced=1:tff=1", "crf": "8"})
    with av.open(str(tmp_path / "broadcast.mp4")) as container:
        assert next(container.decode(video=0)).interlaced_frame

    def comb(image: np.ndarray) -> float:
        rows = image[..., 0].astype(float)
        return float(np.abs(rows[1:-1] - (rows[:-2] + rows[2:]) / 2).mean())

    frames = list(open_media(tmp_path / "broadcast.mp4").frames())
    assert len(frames) == 12 and np.allclose([f.time_s for f in frames], np.arange(12) / 25)
    assert max(comb(f.image) for f in frames) < 1.0
    # Each frame is its first field's picture: the bar where that field shows it.
    for i, f in enumerate(frames):
        bar = np.flatnonzero(f.image[32, :, 0] > 130)
        assert abs(bar.mean() - (15.5 + 12 * i)) <= 1.5, (i, bar)


def test_video_writer_pads_odd_sizes_and_leaves_nothing_on_failure(tmp_path):
    write_video(tmp_path / "odd.mp4", frames=3, size=(33, 21))
    assert (open_media(tmp_path / "odd.mp4").width_px, open_media(tmp_path / "odd.mp4").height_px) == (34, 22)
    with pytest.raises(ValueError, match="differs"):
        with VideoWriter(tmp_path / "broken.mp4", fps=10) as video:
            video.write(np.zeros((20, 20, 3), np.uint8))
            video.write(np.zeros((30, 30, 3), np.uint8))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["odd.mp4"]


def test_photo_and_folder_sources(tmp_path):
    image = np.random.default_rng(0).integers(0, 255, (40, 30, 3), dtype=np.uint8)
    for name in ("b.png", "a.png"):
        cv2.imwrite(str(tmp_path / name), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    (tmp_path / "notes.txt").write_text("ignored")
    photo = open_media(tmp_path / "a.png")
    assert (photo.kind, photo.num_frames, photo.width_px, photo.height_px) == ("photo", 1, 30, 40)
    assert np.array_equal(next(photo.frames()).image, image)
    folder = open_media(tmp_path)
    assert folder.kind == "folder" and [p.name for p in folder.photos] == ["a.png", "b.png"]
    cv2.imwrite(str(tmp_path / "c.png"), np.zeros((10, 10, 3), np.uint8))
    with pytest.raises(InputError, match="differ in size"):
        open_media(tmp_path)


def _truncated_faststart(tmp_path):
    """An mp4 with its index at the front, cut in half: it decodes cleanly up to the cut."""
    write_video(tmp_path / "full.mp4", frames=60)
    with av.open(str(tmp_path / "full.mp4")) as src, \
            av.open(str(tmp_path / "fast.mp4"), "w", options={"movflags": "faststart"}) as dst:
        out = dst.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(src.streams.video[0]):
            if packet.dts is not None:
                packet.stream = out
                dst.mux(packet)
    data = (tmp_path / "fast.mp4").read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])
    return tmp_path / "cut.mp4"


def _audio_only(tmp_path):
    path = tmp_path / "speech.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=16000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 16000), np.float32), format="fltp", layout="mono")
        frame.sample_rate = 16000
        for packet in list(stream.encode(frame)) + list(stream.encode(None)):
            container.mux(packet)
    return path


@pytest.mark.parametrize("make, message", [
    (lambda d: d / "missing.mp4", "does not exist"),
    (lambda d: (d / "notes.mp4").write_text("not a video") and d / "notes.mp4", "not a readable video"),
    (lambda d: (d / "photo.jpg").write_bytes(b"\xff\xd8garbage") and d / "photo.jpg", "not a readable image"),
    (lambda d: (d / "doc.pdf").write_text("x") and d / "doc.pdf", "unknown type"),
    (_audio_only, "no video stream"),
    (lambda d: (d / "empty").mkdir() or d / "empty", "has no photos"),
])
def test_bad_inputs_are_refused_when_opened(tmp_path, make, message):
    with pytest.raises(InputError, match=message):
        open_media(make(tmp_path))


def test_truncated_videos_are_refused(tmp_path):
    cut = _truncated_faststart(tmp_path)
    with pytest.raises(InputError, match="truncated"):
        list(open_media(cut).frames())
    data = (tmp_path / "full.mp4").read_bytes()
    (tmp_path / "tail_cut.mp4").write_bytes(data[: len(data) // 2])  # index at the end: gone
    with pytest.raises(InputError, match="not a readable video|truncated"):
        list(open_media(tmp_path / "tail_cut.mp4").frames())
