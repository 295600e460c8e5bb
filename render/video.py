"""Streaming MP4/H.264 output with PyAV, in constant memory, written atomically."""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path
from types import TracebackType

import av
import numpy as np

from avatar.files import atomic_output


class VideoWriter:
    """Write RGB frames one by one to an MP4 (H.264, yuv420p), with an optional AAC audio track.

    The file appears at `path` only when the writer closes without an error;
    until then frames go to a temporary file beside it. Odd frame sizes are
    padded by one pixel, since yuv420p needs even ones. Audio, if given, is
    muxed as the video advances (frame i starts at i / fps seconds, as does
    the audio sample at i / fps * sample_rate), so memory stays constant
    however long the video.

    Example:
        with VideoWriter("out.mp4", fps=30) as video:
            for image in images:          # [H, W, 3] uint8 RGB
                video.write(image)
    """

    def __init__(self, path: str | os.PathLike, fps: float, *, crf: int = 20, preset: str = "veryfast",
                 audio: np.ndarray | None = None, sample_rate: int = 16000) -> None:
        """
        Args:
            audio: [S] or [S, C] float samples in [-1, 1], or None for a silent video.
            sample_rate: of `audio`, Hz.
        """
        self.path = Path(path)
        self.fps = Fraction(fps).limit_denominator(1001)
        self.crf, self.preset = crf, preset
        self.frames_written = 0
        self._output = atomic_output(self.path)
        self._container = av.open(str(self._output.tmp), mode="w", format="mp4")
        self._stream = None
        self._audio = None
        if audio is not None:
            samples = np.asarray(audio, dtype=np.float32)
            self._audio = np.ascontiguousarray((samples[:, None] if samples.ndim == 1 else samples).T)  # [C, S]
            self._audio_stream = self._container.add_stream("aac", rate=sample_rate)
            self._audio_stream.layout = "mono" if len(self._audio) == 1 else "stereo"
            self._audio_pos = 0

    def __enter__(self) -> "VideoWriter":
        return self

    def write(self, image: np.ndarray) -> None:
        """Append one frame: [H, W, 3] uint8 RGB, the same size every time."""
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"expected an [H, W, 3] uint8 RGB image, got {image.shape} {image.dtype}")
        h, w = image.shape[:2]
        if self._stream is None:
            self._stream = self._container.add_stream("libx264", rate=self.fps)
            self._stream.width, self._stream.height = w + w % 2, h + h % 2
            self._stream.pix_fmt = "yuv420p"
            self._stream.options = {"crf": str(self.crf), "preset": self.preset}
        if (w + w % 2, h + h % 2) != (self._stream.width, self._stream.height):
            raise ValueError(f"frame size {w}x{h} differs from the first frame's")
        if w % 2 or h % 2:
            image = np.pad(image, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        frame.pts = self.frames_written
        self._container.mux(self._stream.encode(frame))
        self.frames_written += 1
        self._mux_audio_until(float(self.frames_written / self.fps))

    def _mux_audio_until(self, time_s: float) -> None:
        """Encode audio up to `time_s`, keeping it interleaved with the video."""
        if self._audio is None:
            return
        rate = self._audio_stream.rate
        end = self._audio.shape[1] if time_s == float("inf") else min(self._audio.shape[1], round(time_s * rate))
        while self._audio_pos < end:
            chunk = self._audio[:, self._audio_pos:min(end, self._audio_pos + 1024)]
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk), format="fltp",
                                               layout=self._audio_stream.layout.name)
            frame.sample_rate, frame.pts = rate, self._audio_pos
            self._container.mux(self._audio_stream.encode(frame))
            self._audio_pos += chunk.shape[1]

    def close(self) -> None:
        """Flush the encoder and move the finished file into place."""
        if self._container is None:
            return
        if self._stream is None:
            self.abort()
            raise ValueError("no frames were written")
        self._container.mux(self._stream.encode(None))
        if self._audio is not None:
            self._mux_audio_until(float("inf"))
            self._container.mux(self._audio_stream.encode(None))
        self._container.close()
        self._container = None
        self._output.commit()

    def abort(self) -> None:
        """Stop without producing an output file."""
        if self._container is None:
            return
        self._container.close()
        self._container = None
        self._output.discard()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
