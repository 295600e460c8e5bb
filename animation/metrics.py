"""Lip-sync quality measures: lip vertex error, jaw correlation, bilabial closure, and their baselines.

Lip vertex error (LVE), the field's standard: per frame, the largest distance (cm)
between predicted and tracked lip landmarks in the canonical, pose-free head
space, averaged over frames. Predicted landmarks come from predicted weights
through a linear map weights -> lip landmarks fitted (ridge) on the clip's own track.
"""

from __future__ import annotations

import numpy as np

from animation.visemes import BILABIALS
from avatar import index_of

JAW = index_of("jawOpen")
MOUTH_CLOSE = index_of("mouthClose")
PRESS = (index_of("mouthPressLeft"), index_of("mouthPressRight"))
# Lips count as meeting when mouthClose (or mean press) reaches this.
LIPS_MEET_WEIGHT = 0.35


def fit_weights_to_landmarks(weights: np.ndarray, landmarks_cm: np.ndarray, ridge: float = 1e-2) -> np.ndarray:
    """Ridge fit of landmarks ~ [weights, 1] @ M.

    Args:
        weights: [T, 52]; landmarks_cm: [T, L, 3].
    Returns:
        M: [53, L * 3].
    """
    x = np.concatenate([weights, np.ones((len(weights), 1))], axis=1).astype(np.float64)
    y = landmarks_cm.reshape(len(landmarks_cm), -1).astype(np.float64)
    penalty = ridge * np.eye(x.shape[1])
    penalty[-1, -1] = 0.0  # the mean face is not shrunk
    return np.linalg.solve(x.T @ x + penalty, x.T @ y)


def landmarks_from_weights(weights: np.ndarray, mapping: np.ndarray) -> np.ndarray:
    """[T, 52] weights through a `fit_weights_to_landmarks` map -> [T, L, 3] landmarks (cm)."""
    x = np.concatenate([weights, np.ones((len(weights), 1))], axis=1)
    return (x @ mapping).reshape(len(weights), -1, 3)


def lip_vertex_error(predicted_cm: np.ndarray, tracked_cm: np.ndarray) -> float:
    """Mean over frames of the largest per-landmark distance (cm); [T, L, 3] each."""
    return float(np.mean(np.max(np.linalg.norm(predicted_cm - tracked_cm, axis=-1), axis=1)))


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two [T] series (0 when either is constant)."""
    a, b = a - a.mean(), b - b.mean()
    denom = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / denom) if denom > 0 else 0.0


def frame_loudness_db(audio: np.ndarray, sample_rate: int, times_s: np.ndarray, window_s: float) -> np.ndarray:
    """[T] RMS level (dBFS) of the audio in a `window_s` window centred on each of `times_s` [T] (s)."""
    half = int(sample_rate * window_s / 2)
    centres = (np.asarray(times_s) * sample_rate).astype(int)
    levels = np.empty(len(centres))
    for i, c in enumerate(centres):
        window = audio[max(0, c - half):c + half]
        levels[i] = 10 * np.log10(np.mean(window.astype(np.float64) ** 2) + 1e-10) if len(window) else -100.0
    return levels


def loudness_jaw(loudness_db: np.ndarray, tracked_jaw: np.ndarray) -> np.ndarray:
    """The loudness baseline's jawOpen: an affine map of loudness, least-squares fitted to the tracked jaw.

    Fitting on the clip itself makes it the best any loudness-driven jaw can do there.
    """
    x = np.stack([loudness_db, np.ones_like(loudness_db)], axis=1)
    coef, *_ = np.linalg.lstsq(x, tracked_jaw, rcond=None)
    return np.clip(x @ coef, 0, 1)


def lips_meet(weights: np.ndarray) -> np.ndarray:
    """[T, 52] -> [T] bool: mouthClose (or the mean of the two presses) is high."""
    press = weights[:, list(PRESS)].mean(axis=1)
    return np.maximum(weights[:, MOUTH_CLOSE], press) >= LIPS_MEET_WEIGHT


def bilabial_closure(weights: np.ndarray, fps: float, phones: list[tuple[float, float, str]],
                     tolerance_s: float = 0.040) -> dict:
    """How many p/b/m phones have the lips meeting in some frame within `tolerance_s` of the phone.

    Returns:
        {"bilabials": count, "closed_fraction": hit fraction, "closed_elsewhere": fraction of the
        other speech frames with lips meeting (a model that always closes would score 1 there)}.
    """
    meet = lips_meet(weights)
    times = np.arange(len(weights)) / fps
    near_bilabial = np.zeros(len(weights), dtype=bool)
    hits = 0
    bilabials = [(s, e) for s, e, p in phones if p.lower() in BILABIALS]
    for start, end in bilabials:
        window = (times >= start - tolerance_s) & (times <= end + tolerance_s)
        near_bilabial |= window
        hits += bool(np.any(meet[window]))
    speech = np.zeros(len(weights), dtype=bool)
    for start, end, phone in phones:
        if phone.lower() not in ("sil", "pau", "<sil>", "sp"):
            speech |= (times >= start) & (times <= end)
    elsewhere = speech & ~near_bilabial
    return {"bilabials": len(bilabials), "closed_fraction": hits / len(bilabials) if bilabials else 0.0,
            "closed_elsewhere": float(meet[elsewhere].mean()) if elsewhere.any() else 0.0}
