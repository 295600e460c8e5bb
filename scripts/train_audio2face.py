"""Train the speech→face model (`animation.Audio2Face`) on a folder of synthetic utterances.

    python scripts/train_audio2face.py --data data/speech --out assets/audio2face.safetensors --minutes 25 --seed 0

The folder holds one .npz per utterance (scripts/make_speech_dataset.py): `audio` [S] at
16 kHz and its timed phones. The targets, [T, 52] weights at the utterance's `fps`, are
derived from the phones when loading (`animation.visemes.phone_targets`), so a change to
the viseme table or the visual lead takes effect without synthesising again. Each step
takes random 2-4 s crops, degrades them (`animation.augment`: rooms, phone lines, noise,
level), and in the feature domain warps the mel axis (other vocal-tract lengths) and tilts
the spectrum (other microphones), so a model trained on a few synthetic voices meets real
ones. The loss is a squared error on the weights, heavier on the mouth, plus one on their
frame-to-frame change (`loss_fn`).

5 % of the utterances are held out; their loss and jawOpen correlation (at the data's
fps, through `predict`, the streaming code path) are printed and stored in the model
file's metadata with the seed, the data summary and the step count. The run stops at
--minutes: it times its first steps, then fixes the total step count, so the learning-rate
schedule and the result depend only on the seed and that count (--steps N reproduces a run).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from animation.features import FRAME_RATE, SAMPLE_RATE, FeatureConfig, log_mel, num_frames, to_feature_rate
from animation.metrics import correlation
from animation.model import Audio2Face, ModelConfig, model_size_bytes, predict, save_weights
from animation.visemes import phone_targets
from avatar.arkit import ARKIT_NAMES, index_of
from avatar.errors import AvatarError, InputError
from avatar.files import check_writable

MOUTH_PREFIXES = ("jawOpen", "mouthClose", "mouthFunnel", "mouthPucker", "mouthSmile", "mouthStretch",
                  "mouthRoll", "mouthPress", "mouthLowerDown", "mouthUpperUp")
JAW = index_of("jawOpen")
# Steps timed (after a few warm ones) to fit the step count into the budget; within the LR warm-up.
CALIBRATION_STEPS = 20


@dataclass(frozen=True)
class TrainSettings:
    """Everything that decides a run besides the data; stored in the model file."""

    seed: int = 0
    minutes: float = 25.0
    steps: int | None = None          # None: as many as fit in `minutes`
    batch: int = 16
    crop_s: tuple[float, float] = (2.0, 4.0)
    learning_rate: float = 2e-3
    warmup_steps: int = 200           # at least CALIBRATION_STEPS
    mouth_weight: float = 3.0
    velocity_weight: float = 5.0
    held_out: float = 0.05
    evaluations: int = 5              # validation passes, evenly spaced, the last at the end (plus one at the start)
    mel_warp: tuple[float, float] = (0.85, 1.15)  # frequency scale of the simulated vocal tract
    tilt_db: float = 6.0              # largest spectral tilt or bump added, dB
    threads: int = 2
    augment: bool = True


@dataclass
class Utterance:
    """One training example: audio [S] at 16 kHz and targets [N, 52] at 100 Hz (frame k at k / 100 s)."""

    name: str
    audio: np.ndarray
    targets: np.ndarray
    weights: np.ndarray   # the targets [T, 52] at `fps`, for validation at the data's own clock
    fps: float
    voice: str


def load_dataset(folder: Path, features: FeatureConfig) -> list[Utterance]:
    """Every .npz of `folder` (sorted by name), with its targets resampled to the feature frames' 100 Hz clock."""
    paths = sorted(folder.glob("*.npz"))
    if not paths:
        raise InputError(f"no .npz utterances in {folder}: make them with scripts/make_speech_dataset.py")
    utterances = []
    for path in paths:
        with np.load(path) as data:
            audio = data["audio"].astype(np.float32)
            fps = float(data["fps"])
            phones = [tuple(p) for p in json.loads(bytes(data["phones_json"]).decode())]
            voice = json.loads(bytes(data["voice"]).decode()) if "voice" in data else {}
        weights = phone_targets(phones, fps, len(audio) / SAMPLE_RATE)
        targets = to_feature_rate(weights, np.arange(len(weights)) / fps, num_frames(len(audio), features))
        utterances.append(Utterance(path.stem, audio, targets, weights, fps,
                                    f"{voice.get('engine', '?')}:{voice.get('voice', '?')}"))
    return utterances


def split(utterances: list[Utterance], fraction: float,
          rng: np.random.Generator) -> tuple[list[Utterance], list[Utterance]]:
    """(training, held out): a random `fraction` of the utterances (at least one) held out."""
    order = rng.permutation(len(utterances))
    count = max(1, round(fraction * len(utterances))) if len(utterances) > 1 else 0
    held = set(order[:count].tolist())
    return ([u for i, u in enumerate(utterances) if i not in held],
            [u for i, u in enumerate(utterances) if i in held])


def channel_weights(mouth_weight: float) -> torch.Tensor:
    """[52] loss weight per channel: `mouth_weight` on the mouth and jaw, 1 elsewhere; mean 1."""
    w = torch.tensor([mouth_weight if name.startswith(MOUTH_PREFIXES) else 1.0 for name in ARKIT_NAMES])
    return w / w.mean()


def loss_fn(predicted: torch.Tensor, target: torch.Tensor, weights: torch.Tensor,
            velocity_weight: float) -> torch.Tensor:
    """Σ_c w_c (mean (y - t)² + λ · mean (Δy - Δt)²) / 52 over [B, N, 52] frames; Δ is the 100 Hz step.

    Squared, not absolute: under uncertain timing an L1 fit goes to the median, which for
    brief events such as a lip closure is "never"; the mean keeps them.
    """
    position = ((predicted - target).square().mean(dim=(0, 1)) * weights).mean()
    velocity = ((predicted.diff(dim=1) - target.diff(dim=1)).square().mean(dim=(0, 1)) * weights).mean()
    return position + velocity_weight * velocity


def make_batch(utterances: list[Utterance], settings: TrainSettings, look_ahead: int, features: FeatureConfig,
               augment, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Random crops, degraded: features [B, N, n_mels] and their targets [B, N - L, 52] (output j is frame j - L)."""
    frames = int(rng.uniform(*settings.crop_s) * FRAME_RATE)
    batch_features, batch_targets = [], []
    for index in rng.integers(len(utterances), size=settings.batch):
        u = utterances[index]
        start = int(rng.integers(max(1, len(u.targets) - frames + 1)))
        audio = _padded(u.audio[start * features.hop:(start + frames) * features.hop], frames * features.hop)
        targets = _padded(u.targets[start:start + frames], frames, edge=True)
        if augment is not None:
            audio = augment(audio, rng)
        mel, _ = log_mel(audio, features)
        batch_features.append(_warp_and_tilt(mel, settings, features, rng))
        batch_targets.append(targets[:frames - look_ahead])
    return torch.from_numpy(np.stack(batch_features)), torch.from_numpy(np.stack(batch_targets))


def _padded(x: np.ndarray, length: int, edge: bool = False) -> np.ndarray:
    """`x` cut or padded along axis 0 to `length`: with zeros (silence) or its last row (`edge`)."""
    pad = [(0, length - len(x))] + [(0, 0)] * (x.ndim - 1)
    return np.pad(x, pad, mode="edge" if edge and len(x) else "constant")


def _warp_and_tilt(mel: np.ndarray, settings: TrainSettings, features: FeatureConfig,
                   rng: np.random.Generator) -> np.ndarray:
    """[N, n_mels] features of a voice with every frequency scaled by α, through a random smooth EQ.

    Band m (centre f_m) takes the value that band position mel(f_m / α) had; the EQ adds
    a + b · x + c · x² dB over the bands (x in -1..1), at most `tilt_db`.
    """
    n = features.n_mels
    mel_lo, mel_hi = (2595 * np.log10(1 + f / 700) for f in (features.fmin_hz, features.fmax_hz))
    centres_mel = mel_lo + (mel_hi - mel_lo) * np.arange(1, n + 1) / (n + 1)
    centres_hz = 700 * (10 ** (centres_mel / 2595) - 1)
    alpha = rng.uniform(*settings.mel_warp)
    source = (2595 * np.log10(1 + centres_hz / alpha / 700) - mel_lo) / (mel_hi - mel_lo) * (n + 1) - 1
    source = np.clip(source, 0, n - 1)
    lower = np.floor(source).astype(int)
    upper = np.minimum(lower + 1, n - 1)
    frac = (source - lower).astype(np.float32)
    warped = mel[:, lower] * (1 - frac) + mel[:, upper] * frac
    x = np.linspace(-1, 1, n)
    eq_db = np.clip(rng.uniform(-1, 1, size=3) @ np.stack([np.ones(n), x, x * x - 0.5]), -1, 1) * settings.tilt_db
    return (warped + eq_db / features.scale_db).astype(np.float32)


def evaluate(model: Audio2Face, utterances: list[Utterance], weights: torch.Tensor,
             velocity_weight: float) -> dict:
    """Held-out loss at 100 Hz (clean audio) and jawOpen correlation at the data's fps through `predict`."""
    look_ahead = model.look_ahead_frames
    losses, predicted_jaw, target_jaw = [], [], []
    with torch.no_grad():
        for u in utterances:
            # L frames of silence after the end, as `flush` gives, so every target frame has an output.
            silence = np.zeros(look_ahead * model.feature_config.hop, np.float32)
            mel, _ = log_mel(np.concatenate([u.audio, silence]), model.feature_config)
            out, _ = model(torch.from_numpy(mel)[None])
            n = len(u.targets)
            losses.append(float(loss_fn(out[:, look_ahead:look_ahead + n], torch.from_numpy(u.targets)[None],
                                        weights, velocity_weight)))
            _, predicted = predict(model, u.audio, SAMPLE_RATE, u.fps)
            count = min(len(predicted), len(u.weights))
            predicted_jaw.append(predicted[:count, JAW])
            target_jaw.append(u.weights[:count, JAW])
    return {"loss": float(np.mean(losses)),
            "jaw_corr": correlation(np.concatenate(predicted_jaw), np.concatenate(target_jaw))}


def learning_rate(step: int, total: int, settings: TrainSettings) -> float:
    """Linear warm-up over `warmup_steps`, then cosine decay to 5 % at `total`."""
    if step < settings.warmup_steps:
        return settings.learning_rate * (step + 1) / settings.warmup_steps
    progress = min(1.0, (step - settings.warmup_steps) / max(1, total - settings.warmup_steps))
    return settings.learning_rate * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))


def data_summary(folder: Path, training: list[Utterance], held_out: list[Utterance]) -> dict:
    """What the model was trained on, for the model file's metadata."""
    everything = training + held_out
    return {"folder": folder.name, "utterances": len(everything), "held_out": len(held_out),
            "hours": round(sum(len(u.audio) for u in everything) / SAMPLE_RATE / 3600, 3),
            "voices": dict(sorted(Counter(u.voice for u in everything).items())),
            "recipe": "scripts/make_speech_dataset.py (synthetic speech: festival/flite, viseme targets)"}


def train(data: Path, out: Path, settings: TrainSettings, log=print) -> dict:
    """Train, validate, write `out`; returns the summary stored in its metadata."""
    check_writable(out)  # before the long part
    began = time.perf_counter()
    torch.set_num_threads(settings.threads)
    torch.manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    model = Audio2Face(ModelConfig(), FeatureConfig())
    utterances = load_dataset(data, model.feature_config)
    training, held_out = split(utterances, settings.held_out, rng)
    augment = _augmentation() if settings.augment else None
    optimiser = torch.optim.AdamW(model.parameters(), lr=settings.learning_rate, weight_decay=1e-4)
    weights = channel_weights(settings.mouth_weight)
    look_ahead = model.look_ahead_frames
    data_info = data_summary(data, training, held_out)
    log(f"{data_info['utterances']} utterances ({data_info['hours']} h, {len(held_out)} held out), "
        f"voices {data_info['voices']}; model {sum(p.numel() for p in model.parameters())} parameters, "
        f"{model_size_bytes(model) / 1e6:.2f} MB; augmentation {'on' if augment else 'off'}")

    def validate(step: int, train_loss: float | None) -> dict:
        row = {"step": step, "train_loss": train_loss,
               **(evaluate(model, held_out, weights, settings.velocity_weight) if held_out else {})}
        log(_progress(row, began))
        return row

    eval_began = time.perf_counter()
    history = [validate(0, None)]
    eval_s = time.perf_counter() - eval_began
    total = settings.steps
    step, recent = 0, []
    while total is None or step < total:
        if step == CALIBRATION_STEPS // 4:
            timed_from = time.perf_counter()
        if total is None and step == CALIBRATION_STEPS:
            # Fixed before the warm-up ends, so the schedule, and with it the run, depends on the count only.
            per_step = (time.perf_counter() - timed_from) / (CALIBRATION_STEPS - CALIBRATION_STEPS // 4)
            spare = settings.minutes * 60 - (time.perf_counter() - began) - settings.evaluations * eval_s - 10
            total = step + max(1, int(spare / per_step))
            log(f"{per_step:.3f} s per step: {total} steps fit in {settings.minutes:g} min")
        for group in optimiser.param_groups:
            group["lr"] = learning_rate(step, total or settings.warmup_steps, settings)
        features, targets = make_batch(training, settings, look_ahead, model.feature_config, augment, rng)
        predicted, _ = model(features)
        loss = loss_fn(predicted[:, look_ahead:], targets, weights, settings.velocity_weight)
        optimiser.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimiser.step()
        recent.append(loss.item())
        step += 1
        if total is not None and step < total and step in {total * k // settings.evaluations
                                                           for k in range(1, settings.evaluations)}:
            history.append(validate(step, float(np.mean(recent))))
            recent = []
        if settings.steps is None and time.perf_counter() - began > settings.minutes * 60:
            log(f"time budget reached at step {step} of {total}")
            break
    history.append(validate(step, float(np.mean(recent)) if recent else None))
    summary = {"seed": settings.seed, "steps": step, "minutes": round((time.perf_counter() - began) / 60, 2),
               "settings": asdict(settings), "data": data_info, "validation": history[-1], "history": history,
               "augment": "animation.augment" if augment else "none", "torch": torch.__version__}
    model.training_info = summary
    save_weights(model, out)
    log(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB)")
    return summary


def _augmentation():
    """`animation.augment.augment` when that module is present (the training recipe's degradations)."""
    try:
        from animation.augment import augment
    except ImportError:
        return None
    return augment


def _progress(row: dict, began: float) -> str:
    scores = f"  held-out loss {row['loss']:.4f}  jawOpen corr {row['jaw_corr']:.3f}" if "loss" in row else ""
    train = f"  train loss {row['train_loss']:.4f}" if row["train_loss"] is not None else ""
    return f"[{(time.perf_counter() - began) / 60:5.1f} min] step {row['step']:6d}{train}{scores}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="folder of .npz utterances")
    parser.add_argument("--out", type=Path, default=Path("assets/audio2face.safetensors"), help="model file to write")
    parser.add_argument("--minutes", type=float, default=25.0, help="time budget, including validation")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, help="fixed step count instead of the time budget (reproduces a run)")
    parser.add_argument("--no-augment", action="store_true", help="train on the clean audio")
    args = parser.parse_args(argv)
    try:
        train(args.data, args.out, TrainSettings(seed=args.seed, minutes=args.minutes, steps=args.steps,
                                                 augment=not args.no_augment))
    except AvatarError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
