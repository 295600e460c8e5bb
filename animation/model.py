"""Speech → 52 ARKit weights: a small causal network over log-mel frames, streamed chunk by chunk.

Pipeline (every stage carries its state between chunks, so chunking never changes the result):

    audio at any rate ─StreamingResampler─▶ 16 kHz ─StreamingFeatures─▶ log-mel frames, 100 /s
      ─Audio2Face─▶ weights at 100 /s, L frames late ─output clock─▶ weights at `fps`, frame i at i / fps

`Audio2Face` is causal over its input frames and its output j is the face at
frame j - L: it sees L frames (10 ms each) after the frame it animates. The
total look-ahead (audio needed after a face frame's time) is the sum of the
resampler's half filter, the STFT's half window, L frames, and the output
clock's linear interpolation, which needs the next 100 Hz frame
(`StreamingAudio2Face.look_ahead_s`).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from animation.features import (FRAME_RATE, MIN_INPUT_RATE, FeatureConfig, StreamingFeatures, StreamingResampler,
                                log_mel)
from avatar.arkit import NUM_WEIGHTS
from avatar.errors import ModelFileError
from avatar.files import atomic_output

MODEL_FORMAT = "avatar-audio2face"
MODEL_VERSION = 1
DEFAULT_MODEL_PATH = Path(__file__).resolve().parents[1] / "assets" / "audio2face.safetensors"
# Silence frames run through a fresh network to give its starting state (longer than the conv stack's reach).
WARMUP_FRAMES = 32


@dataclass(frozen=True)
class ModelConfig:
    """Layer sizes of `Audio2Face`; stored in the model file."""

    channels: int = 128
    kernel: int = 3
    dilations: tuple[int, ...] = (1, 2, 4)
    gru_hidden: int = 192
    head_hidden: int = 128
    look_ahead_frames: int = 5

    @classmethod
    def from_dict(cls, values: dict) -> "ModelConfig":
        return cls(**{**values, "dilations": tuple(values["dilations"])})


class StreamState(NamedTuple):
    """What `Audio2Face` carries between chunks: each conv's last inputs [B, (k-1)·d, C], the GRU's [1, B, H]."""

    conv: tuple[torch.Tensor, ...]
    gru: torch.Tensor


class Audio2Face(nn.Module):
    """Causal dilated 1-D convs, then a GRU, then a per-frame MLP with a sigmoid.

        x₀ = silu(conv₀(mel)),  xᵢ = xᵢ₋₁ + silu(convᵢ(xᵢ₋₁))     (causal: frame j sees frames ≤ j)
        g  = GRU(x)
        z  = sigmoid(W₂ silu(W₁ [g, x] + b₁) + b₂)               [52] per frame

    The convs reach 1 + Σ (k-1)·d frames back; the GRU carries longer context. SiLU rather
    than GELU: on the few frames of a streaming step, torch's exact GELU costs 7x more.
    """

    def __init__(self, config: ModelConfig = ModelConfig(), features: FeatureConfig = FeatureConfig()) -> None:
        super().__init__()
        self.config = config
        self.feature_config = features
        self.training_info: dict = {}
        widths = [features.n_mels] + [config.channels] * len(config.dilations)
        self.convs = nn.ModuleList(CausalConv(c_in, config.channels, config.kernel, d)
                                   for c_in, d in zip(widths[:-1], config.dilations))
        self.gru = nn.GRU(config.channels, config.gru_hidden, batch_first=True)
        self.head = nn.Sequential(nn.Linear(config.gru_hidden + config.channels, config.head_hidden), nn.SiLU(),
                                  nn.Linear(config.head_hidden, NUM_WEIGHTS))
        # Start every weight near 0.05 (sigmoid(-3)), where most of them stay, not at 0.5.
        nn.init.constant_(self.head[-1].bias, -3.0)

    @property
    def look_ahead_frames(self) -> int:
        return self.config.look_ahead_frames

    def forward(self, features: torch.Tensor, state: StreamState | None = None) -> tuple[torch.Tensor, StreamState]:
        """Run over a chunk of frames.

        Args:
            features: [B, N, n_mels] log-mel frames (`animation.features`).
            state: from the previous chunk; None starts after silence (`initial_state`).
        Returns:
            weights [B, N, 52] in 0..1, where output j is the face at input frame j - L; the new state.
        """
        if state is None:
            state = self.initial_state(features.shape[0])
        x = features
        histories = []
        for i, (conv, history) in enumerate(zip(self.convs, state.conv)):
            y, new_history = conv(x, history)
            histories.append(new_history)
            x = F.silu(y) if i == 0 else x + F.silu(y)
        g, h = self.gru(x, state.gru)
        return torch.sigmoid(self.head(torch.cat([g, x], dim=2))), StreamState(tuple(histories), h)

    def initial_state(self, batch: int) -> StreamState:
        """The state after WARMUP_FRAMES of digital silence, as if every utterance were preceded by it."""
        silence, _ = log_mel(np.zeros(WARMUP_FRAMES * self.feature_config.hop), self.feature_config)
        empty = self._zero_state(1)
        _, state = self.forward(torch.from_numpy(silence)[None].to(self.gru.weight_hh_l0.dtype), empty)
        return StreamState(tuple(c.expand(batch, -1, -1) for c in state.conv), state.gru.expand(-1, batch, -1).contiguous())

    def _zero_state(self, batch: int) -> StreamState:
        weight = self.gru.weight_hh_l0
        conv = tuple(weight.new_zeros(batch, c.history, c.in_channels) for c in self.convs)
        return StreamState(conv, weight.new_zeros(1, batch, self.config.gru_hidden))


class CausalConv(nn.Module):
    """Dilated causal 1-D convolution on channels-last frames, with its input history carried between chunks.

        y[t] = W [x[t - (k-1)·d], …, x[t - d], x[t]] + b

    Written as one matrix product over the stacked taps: on a few frames (streaming) this is
    several times faster on a CPU than `conv1d`, and it is the same code for training.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel: int, dilation: int) -> None:
        super().__init__()
        self.in_channels, self.kernel, self.dilation = in_channels, kernel, dilation
        self.history = (kernel - 1) * dilation
        self.linear = nn.Linear(kernel * in_channels, out_channels)

    def forward(self, x: torch.Tensor, history: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x [B, N, C_in], history [B, (k-1)·d, C_in] (the frames before x) -> y [B, N, C_out], new history."""
        padded = torch.cat([history, x], dim=1)
        n = x.shape[1]
        taps = torch.cat([padded[:, j * self.dilation:j * self.dilation + n] for j in range(self.kernel)], dim=2)
        return self.linear(taps), padded[:, padded.shape[1] - self.history:]


class _OutputClock:
    """Resamples 100 Hz frames to `fps` by linear interpolation: output i at time i / fps.

    With u = 100 · i / fps, output i = (1 - w) · frame[⌊u⌋] + w · frame[⌊u⌋ + 1], w = u - ⌊u⌋;
    exact rational arithmetic, so no drift over long streams.
    """

    def __init__(self, fps: Fraction, channels: int) -> None:
        self._num, self._den = FRAME_RATE * fps.denominator, fps.numerator  # u = i · num / den
        self._channels = channels
        self.reset()

    @property
    def max_wait_frames(self) -> float:
        """Largest ⌈u⌉ - u: how far past its own time an output waits for the next 100 Hz frame (in frames)."""
        g = math.gcd(self._num, self._den)
        return 1.0 - g / self._den

    def reset(self) -> None:
        self._frames = np.zeros((0, self._channels), dtype=np.float32)  # 100 Hz frames from index _start on
        self._start = 0
        self.emitted = 0

    def push(self, frames: np.ndarray) -> np.ndarray:
        """Add [m, C] frames at 100 Hz; returns the [k, C] outputs now computable."""
        self._frames = np.concatenate([self._frames, frames])
        available = self._start + len(self._frames)
        # Output i needs frame ⌈u⌉ < available, i.e. i · num ≤ (available - 1) · den.
        ready = (available - 1) * self._den // self._num + 1 if available else 0
        i = np.arange(self.emitted, max(ready, self.emitted))
        lower, rem = np.divmod(i * self._num, self._den)
        w = (rem / self._den).astype(np.float32)[:, None]
        upper = np.minimum(lower + 1, available - 1)  # only read when w > 0, where it is < available
        out = (1 - w) * self._frames[lower - self._start] + w * self._frames[upper - self._start]
        self.emitted += len(i)
        drop = min(self.emitted * self._num // self._den - self._start, len(self._frames))
        self._frames, self._start = self._frames[drop:], self._start + drop
        return out


class StreamingAudio2Face:
    """Speech in chunks of any size and sample rate → 52 weights (and loudness) at `fps`, frame i at i / fps.

    Feeding an utterance in chunks gives the same frames as feeding it at once
    (`predict`). An utterance of S samples at rate R gives T = ⌈S · fps / R⌉
    frames in all (those with i / fps < S / R), the last ones from `flush`.
    """

    def __init__(self, model: Audio2Face, fps: float = 30) -> None:
        self.model = model
        self._fps = Fraction(fps).limit_denominator(1001)
        if self._fps <= 0:
            raise ValueError(f"fps must be positive, not {fps}")
        self._features = StreamingFeatures(model.feature_config)
        self._clock = _OutputClock(self._fps, NUM_WEIGHTS + 1)  # the weights and the energy
        self._initial_state = None
        self.reset()

    @property
    def fps(self) -> float:
        return float(self._fps)

    @property
    def frames_emitted(self) -> int:
        """Output frames returned since the utterance started."""
        return self._clock.emitted

    @property
    def look_ahead_s(self) -> float:
        """Most audio time a frame needs after its own time, for any input rate ≥ 8 kHz."""
        return (StreamingResampler(MIN_INPUT_RATE).look_ahead_s + self.model.feature_config.look_ahead_s
                + (self.model.look_ahead_frames + self._clock.max_wait_frames) / FRAME_RATE)

    def reset(self) -> None:
        """Drop everything pending and start a new utterance."""
        self._resampler: StreamingResampler | None = None
        self._received = 0
        self._features.reset()
        self._clock.reset()
        if self._initial_state is None:
            with torch.inference_mode():
                self._initial_state = self.model.initial_state(1)
        self._state = self._initial_state
        self._model_frames = 0                    # feature frames through the network
        self._energy = np.zeros(0, np.float32)    # energies of frames not yet out of the network

    def push(self, samples: np.ndarray, sample_rate: int) -> np.ndarray:
        """Add [n] mono samples at `sample_rate` Hz; returns the [k, 52] weight frames now complete."""
        return self.push_with_energy(samples, sample_rate)[0]

    def flush(self) -> np.ndarray:
        """End of the utterance: the [k, 52] frames left, with silence after it; then `reset`."""
        return self.flush_with_energy()[0]

    def push_with_energy(self, samples: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
        """`push`, also returning each frame's loudness [k] in 0..1 (1 = the recent peak level, 0 = 40 dB below)."""
        samples = np.asarray(samples, dtype=np.float32)
        if samples.ndim != 1:
            raise ValueError(f"samples must be mono, shape [n], not {samples.shape}")
        if self._resampler is None:
            self._resampler = StreamingResampler(sample_rate)
        elif sample_rate != self._resampler.rate_in:
            raise ValueError(f"sample rate changed from {self._resampler.rate_in} to {sample_rate} Hz "
                             "within an utterance: call flush() or reset() first")
        self._received += len(samples)
        return self._run(*self._features.push(self._resampler.push(samples)))

    def flush_with_energy(self) -> tuple[np.ndarray, np.ndarray]:
        """`flush`, also returning the loudness [k] in 0..1."""
        if self._resampler is None:
            self.reset()
            return np.zeros((0, NUM_WEIGHTS), np.float32), np.zeros(0, np.float32)
        rate = self._resampler.rate_in
        total = -(-self._received * self._fps.numerator // (self._fps.denominator * rate))
        # Enough silence for the last frame's look-ahead; the stages' own flushes pad the rest.
        silence = np.zeros(math.ceil((self.look_ahead_s + 2 / FRAME_RATE) * rate))
        audio = np.concatenate([self._resampler.push(silence), self._resampler.flush()])
        tail = [self._run(*self._features.push(audio)), self._run(*self._features.flush())]
        weights, energy = (np.concatenate(parts) for parts in zip(*tail))
        keep = total - (self.frames_emitted - len(weights))
        self.reset()
        return weights[:keep], energy[:keep]

    def _run(self, features: np.ndarray, energy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Feature frames [n, n_mels] and energies [n] through the network and output clock -> [k, 52], [k]."""
        self._energy = np.concatenate([self._energy, energy])
        if len(features):
            with torch.inference_mode():
                out, self._state = self.model(torch.from_numpy(features)[None], self._state)
            out = out[0].numpy()
        else:
            out = np.zeros((0, NUM_WEIGHTS), np.float32)
        # Network output j is frame j - L: the first L outputs of an utterance are before its start.
        skip = max(0, self.model.look_ahead_frames - self._model_frames)
        self._model_frames += len(out)
        out = out[skip:]
        frames = np.concatenate([out, self._energy[:len(out), None]], axis=1)
        self._energy = self._energy[len(out):]
        result = self._clock.push(frames)
        return result[:, :NUM_WEIGHTS], result[:, NUM_WEIGHTS]


def predict(model: Audio2Face, audio: np.ndarray, sample_rate: int, fps: float = 30) -> tuple[np.ndarray, np.ndarray]:
    """A whole utterance through the streaming code path.

    Args:
        audio: [S] mono samples at `sample_rate` Hz.
    Returns:
        time_s [T] = i / fps, and weights [T, 52] in 0..1, T = ⌈S · fps / sample_rate⌉.
    """
    time_s, weights, _ = predict_with_energy(model, audio, sample_rate, fps)
    return time_s, weights


def predict_with_energy(model: Audio2Face, audio: np.ndarray, sample_rate: int,
                        fps: float = 30) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`predict`, also returning the loudness [T] in 0..1."""
    stream = StreamingAudio2Face(model, fps)
    head = stream.push_with_energy(audio, sample_rate)
    tail = stream.flush_with_energy()
    weights, energy = np.concatenate([head[0], tail[0]]), np.concatenate([head[1], tail[1]])
    return np.arange(len(weights)) / stream.fps, weights, energy


def save_weights(model: Audio2Face, path: str | os.PathLike, training_info: dict | None = None) -> Path:
    """Write the model as safetensors (float32), its configs and `training_info` as JSON metadata; atomic.

    The folder must exist (OutputError otherwise).
    """
    from safetensors.torch import save_file

    path = Path(path)
    metadata = {"format": MODEL_FORMAT, "version": str(MODEL_VERSION),
                "model_config": json.dumps(asdict(model.config)),
                "feature_config": json.dumps(model.feature_config.to_dict()),
                "training": json.dumps(training_info if training_info is not None else model.training_info)}
    tensors = {name: t.detach().float().contiguous() for name, t in model.state_dict().items()}
    with atomic_output(path) as temporary:
        save_file(tensors, str(temporary), metadata=metadata)
    return path


def load_model(path: str | os.PathLike) -> Audio2Face:
    """Read a `save_weights` file; ModelFileError with one clear line when it is missing or unusable."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file, safe_open

    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"audio-to-face model {path} does not exist: train one with "
                             "scripts/train_audio2face.py or restore it from the repository")
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise ModelFileError(f"{path} is not a readable safetensors file ({exc})") from None
    if metadata.get("format") != MODEL_FORMAT or metadata.get("version") != str(MODEL_VERSION):
        raise ModelFileError(f"{path} is not an audio-to-face model of version {MODEL_VERSION} "
                             f"(format {metadata.get('format')!r}, version {metadata.get('version')!r})")
    try:
        model = Audio2Face(ModelConfig.from_dict(json.loads(metadata["model_config"])),
                           FeatureConfig(**json.loads(metadata["feature_config"])))
        model.load_state_dict(tensors)
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise ModelFileError(f"{path} does not match the audio-to-face network ({exc})") from None
    model.training_info = json.loads(metadata.get("training", "{}"))
    return model.eval()


def load_default_model() -> Audio2Face:
    """The shipped model, assets/audio2face.safetensors."""
    return load_model(DEFAULT_MODEL_PATH)


def model_size_bytes(model: Audio2Face) -> int:
    """Bytes of the float32 weights (the file adds a small header)."""
    return sum(t.numel() * 4 for t in model.state_dict().values())
