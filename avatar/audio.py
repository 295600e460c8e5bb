"""Reading audio files of any common format and sample rate (decoded with PyAV)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from avatar.errors import InputError


def read_audio(path: str | os.PathLike, sample_rate: int | None = None) -> tuple[np.ndarray, int]:
    """Decode the first audio stream of `path` to mono float32.

    A video's soundtrack is put on its frames' clock, which starts at the first frame: audio that
    starts later (a screen or browser recording's often does) is preceded by silence, audio that
    starts earlier is cut, so that sample i plays with the frame at i / rate s.

    Args:
        sample_rate: resample to this rate (Hz); None keeps the file's own.
    Returns:
        samples [S] float32 in [-1, 1], and their sample rate in Hz.
    Raises:
        InputError: missing, unreadable or damaged file, or one without audio.
    """
    import av

    path = Path(path)
    if not path.is_file():
        raise InputError(f"audio file {path} does not exist")
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise InputError(f"{path} has no audio stream")
            stream = container.streams.audio[0]
            rate = sample_rate or stream.rate
            resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
            chunks, first_s = [], None
            for frame in container.decode(stream):
                first_s = frame.time if first_s is None else first_s
                chunks += [out.to_ndarray().reshape(-1) for out in resampler.resample(frame)]
            chunks += [out.to_ndarray().reshape(-1) for out in resampler.resample(None)]
            video = container.streams.video[0] if container.streams.video else None
            lead_s = (first_s or 0.0) - float(video.start_time * video.time_base) \
                if video is not None and video.start_time is not None else 0.0
    except av.error.FFmpegError as exc:
        raise InputError(f"{path} is not a readable audio file ({exc.strerror or exc})") from None
    samples = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    shift = round(lead_s * rate)
    if len(samples) and shift:
        samples = np.concatenate([np.zeros(shift, np.float32), samples]) if shift > 0 else samples[-shift:]
    if not len(samples):
        raise InputError(f"{path} holds no audio samples" + (" while its video plays" if shift < 0 else ""))
    return samples.astype(np.float32), int(rate)
