"""Person-specific tuning: the speech model fine-tuned on a capture's own audio and tracked weights.

The shipped model learned mouth shapes from synthetic voices and a hand-set viseme table; a
capture shows how this person's face, as the tracker sees it, moves with their voice. Tuning
runs a few hundred small Adam steps on random crops of the clip's training frames (the loss
of the training script: squared error on the weights, heavier on the mouth, plus their
frame-to-frame change), and reports jawOpen correlation on the held-out frames before and after.
"""

from __future__ import annotations

import copy
import time

import numpy as np
import torch

from animation.features import FRAME_RATE, log_mel, resample, resample_curves, to_feature_rate
from animation.metrics import correlation
from animation.model import Audio2Face, predict
from avatar.arkit import ARKIT_NAMES, index_of

STEPS = 100
CROP_S = 3.0
BATCH = 8
# Gentle: on a 16-s clip, 300 steps at 3e-4 over-fit (held-out jawOpen correlation 0.24 -> 0.12).
LEARNING_RATE = 1e-4
MOUTH_WEIGHT = 3.0
VELOCITY_WEIGHT = 5.0
MIN_TRAIN_S = 5.0
_MOUTH = torch.tensor([name.startswith(("jaw", "mouth")) for name in ARKIT_NAMES])
_JAW = index_of("jawOpen")


def fine_tune(model: Audio2Face, audio: np.ndarray, sample_rate: int, weights: np.ndarray, times_s: np.ndarray,
              train: np.ndarray, *, score: np.ndarray | None = None, steps: int = STEPS,
              seed: int = 0) -> tuple[Audio2Face, dict]:
    """A tuned copy of `model`, and what tuning did.

    Args:
        audio: [S] mono samples of the whole clip at `sample_rate`.
        weights: [T, 52] tracked weights (NaN rows: no face).
        times_s: [T] their frame times (s, increasing; a variable frame rate's are uneven).
        train: [T] bool, frames to learn from.
        score: [T] bool, frames to report jawOpen correlation on, before and after
            (default: the valid frames outside `train`); NaN when under 2 s.
    Raises:
        ValueError: under MIN_TRAIN_S of training frames with a face.
    """
    valid = np.isfinite(weights).all(1)
    usable = train & valid
    durations_s = _frame_durations(np.asarray(times_s, np.float64))
    if durations_s[usable].sum() < MIN_TRAIN_S:
        raise ValueError(f"only {durations_s[usable].sum():.1f} s of training frames with a face: tuning needs "
                         f"{MIN_TRAIN_S:g} s")
    began = time.perf_counter()
    look_ahead = model.look_ahead_frames
    clip = resample(np.asarray(audio, np.float32), sample_rate)
    features, _ = log_mel(np.concatenate([clip, np.zeros(look_ahead * model.feature_config.hop, np.float32)]),
                          model.feature_config)
    count = len(features) - look_ahead
    filled = np.where(valid[:, None], weights, 0.0)
    targets = to_feature_rate(filled, times_s, count)
    mask = to_feature_rate(usable[:, None].astype(np.float32), times_s, count)[:, 0] > 0.999
    crop = int(CROP_S * FRAME_RATE)
    starts = np.flatnonzero(np.convolve(mask, np.ones(crop), "valid") >= 0.8 * crop)
    if not len(starts):
        raise ValueError(f"no {CROP_S:g} s stretch of training frames with a face to tune on")
    channel = torch.where(_MOUTH, MOUTH_WEIGHT, 1.0)
    channel = channel / channel.mean()
    features_t, targets_t, mask_t = torch.from_numpy(features), torch.from_numpy(targets), torch.from_numpy(mask)

    scored = valid & (~train if score is None else score)

    fps = 1.0 / float(np.median(durations_s))
    predictions_end_s = len(audio) / sample_rate

    def jaw_corr(m: Audio2Face) -> float:
        if durations_s[scored].sum() < 2.0:
            return float("nan")
        predicted_s, predicted = predict(m, audio, sample_rate, fps)
        keep = scored & (times_s < predictions_end_s)
        jaw = resample_curves(predicted[:, [_JAW]], predicted_s, times_s[keep])[:, 0]
        return correlation(jaw, weights[keep, _JAW])

    before = jaw_corr(model)
    tuned = copy.deepcopy(model).train()
    optimiser = torch.optim.Adam(tuned.parameters(), lr=LEARNING_RATE)
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    for _ in range(steps):
        picks = rng.choice(starts, size=BATCH)
        x = torch.stack([features_t[s:s + crop + look_ahead] for s in picks])
        y = torch.stack([targets_t[s:s + crop] for s in picks])
        m = torch.stack([mask_t[s:s + crop] for s in picks]).float()[..., None]
        predicted, _ = tuned(x)
        predicted = predicted[:, look_ahead:]
        error = ((predicted - y).square() * m).sum((0, 1)) / m.sum().clamp(min=1)
        velocity = ((predicted.diff(dim=1) - y.diff(dim=1)).square() * m[:, 1:]).sum((0, 1)) / m.sum().clamp(min=1)
        loss = ((error + VELOCITY_WEIGHT * velocity) * channel).mean()
        optimiser.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(tuned.parameters(), 1.0)
        optimiser.step()
    tuned.eval()
    info = {"steps": steps, "seconds": round(time.perf_counter() - began, 1),
            "train_s": round(float(durations_s[usable].sum()), 1),
            "scored_s": round(float(durations_s[scored].sum()), 1),
            "jaw_corr_before": round(before, 4), "jaw_corr_after": round(jaw_corr(tuned), 4)}
    tuned.training_info = {**model.training_info, "tuned": info}
    return tuned, info


def _frame_durations(times_s: np.ndarray) -> np.ndarray:
    """[T] seconds from each frame to the next (the last lasts the median; none: a single frame)."""
    if len(times_s) < 2:
        return np.zeros(len(times_s))
    gaps = np.diff(times_s)
    return np.append(gaps, np.median(gaps))


def model_arrays(model: Audio2Face) -> dict[str, np.ndarray]:
    """The model's weights as float32 arrays by parameter name (for an `.avatar` bundle)."""
    return {name: t.detach().float().numpy().copy() for name, t in model.state_dict().items()}


def model_from_arrays(arrays: dict[str, np.ndarray], like: Audio2Face) -> Audio2Face:
    """A model shaped like `like` with `arrays` as its weights (ValueError if they do not fit)."""
    model = copy.deepcopy(like)
    try:
        model.load_state_dict({name: torch.from_numpy(np.asarray(a)) for name, a in arrays.items()})
    except RuntimeError as exc:
        raise ValueError(f"the stored speech model does not fit the network ({exc})") from None
    return model.eval()


