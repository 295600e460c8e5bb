"""Phones → ARKit mouth weights: the viseme table and its coarticulation over time.

The training targets of the audio→face model: each phone (ARPAbet, as festival and
flite emit) has a few ARKit weights at MediaPipe's scale, and `phone_targets` blends
them over time with Cohen–Massaro dominance functions, then pins bilabial closures.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Mapping, Sequence

import numpy as np

from avatar.arkit import ARKIT_NAMES, NUM_WEIGHTS, index_of

# A phone: (start_s, end_s, ARPAbet symbol).
Phone = tuple[float, float, str]

# phone: (lip dominance, jaw dominance, targets). Dominance is how strongly a phone
# holds its target against its neighbours (Cohen & Massaro 1993): lip-critical
# phones (p b m f v w, rounded vowels) hold the lips, tongue consonants (t d k hh)
# barely do, so they take the lip shape of the vowels around them. A name with no
# Left/Right suffix stands for both sides. Magnitudes are MediaPipe's blendshape
# scores in conversational speech, as tracked on the development videos: jawOpen's
# 95th percentile there is 0.05-0.29, mouthFunnel and mouthStretch rarely pass 0.1.
# mouthClose, which MediaPipe seldom reports, is ours: high only for closed lips.
_VISEMES: dict[str, tuple[float, float, dict[str, float]]] = {
    # silence relaxes to the neutral face, but weakly, so short pauses don't snap shut
    "pau": (0.5, 0.5, {}),
    # vowels
    "aa": (1.0, 1.0, {"jawOpen": 0.29, "mouthLowerDown": 0.20, "mouthUpperUp": 0.05}),
    "ae": (1.0, 1.0, {"jawOpen": 0.25, "mouthLowerDown": 0.22, "mouthUpperUp": 0.10,
                      "mouthStretch": 0.10, "mouthSmile": 0.10}),
    "ah": (1.0, 1.0, {"jawOpen": 0.21, "mouthLowerDown": 0.15, "mouthUpperUp": 0.05}),
    "ao": (1.0, 1.0, {"jawOpen": 0.25, "mouthFunnel": 0.09, "mouthPucker": 0.15,
                      "mouthLowerDown": 0.10}),
    "ax": (0.5, 0.5, {"jawOpen": 0.13, "mouthLowerDown": 0.08}),
    "eh": (1.0, 1.0, {"jawOpen": 0.18, "mouthLowerDown": 0.15, "mouthUpperUp": 0.05,
                      "mouthStretch": 0.07, "mouthSmile": 0.05}),
    "er": (1.0, 1.0, {"jawOpen": 0.10, "mouthFunnel": 0.07, "mouthPucker": 0.20,
                      "mouthUpperUp": 0.08}),
    "ih": (1.0, 1.0, {"jawOpen": 0.12, "mouthStretch": 0.10, "mouthSmile": 0.10,
                      "mouthLowerDown": 0.08}),
    "iy": (1.0, 1.0, {"jawOpen": 0.07, "mouthStretch": 0.15, "mouthSmile": 0.25,
                      "mouthUpperUp": 0.08}),
    "uh": (1.0, 1.0, {"jawOpen": 0.12, "mouthFunnel": 0.09, "mouthPucker": 0.30}),
    "uw": (1.5, 1.0, {"jawOpen": 0.08, "mouthFunnel": 0.10, "mouthPucker": 0.55}),
    # bilabials: lips closed and pressed, jaw nearly closed (pinned at their centre below)
    "p": (2.0, 1.5, {"jawOpen": 0.03, "mouthClose": 0.65, "mouthPress": 0.35,
                     "mouthRollLower": 0.10, "mouthRollUpper": 0.08}),
    "b": (2.0, 1.5, {"jawOpen": 0.03, "mouthClose": 0.65, "mouthPress": 0.25,
                     "mouthRollLower": 0.10, "mouthRollUpper": 0.08}),
    "m": (2.0, 1.5, {"jawOpen": 0.03, "mouthClose": 0.60, "mouthPress": 0.20,
                     "mouthRollLower": 0.08, "mouthRollUpper": 0.05}),
    # labiodentals: lower lip tucked under the upper teeth
    "f": (2.0, 1.0, {"jawOpen": 0.05, "mouthRollLower": 0.40, "mouthUpperUp": 0.15,
                     "mouthClose": 0.10}),
    "v": (2.0, 1.0, {"jawOpen": 0.05, "mouthRollLower": 0.35, "mouthUpperUp": 0.12,
                     "mouthClose": 0.10}),
    # dentals: tongue tip between the teeth
    "th": (0.6, 1.0, {"jawOpen": 0.08, "tongueOut": 0.25, "mouthLowerDown": 0.05}),
    "dh": (0.6, 1.0, {"jawOpen": 0.08, "tongueOut": 0.20, "mouthLowerDown": 0.05}),
    # sibilants: teeth nearly together; s z spread, postalveolars protruded
    "s": (0.8, 2.0, {"jawOpen": 0.03, "mouthStretch": 0.09, "mouthSmile": 0.08,
                     "mouthUpperUp": 0.05}),
    "z": (0.8, 2.0, {"jawOpen": 0.03, "mouthStretch": 0.07, "mouthSmile": 0.06,
                     "mouthUpperUp": 0.05}),
    "sh": (2.0, 1.5, {"jawOpen": 0.05, "mouthFunnel": 0.10, "mouthPucker": 0.25,
                      "mouthUpperUp": 0.08}),
    "zh": (2.0, 1.5, {"jawOpen": 0.05, "mouthFunnel": 0.09, "mouthPucker": 0.22,
                      "mouthUpperUp": 0.08}),
    "ch": (2.0, 1.5, {"jawOpen": 0.05, "mouthFunnel": 0.10, "mouthPucker": 0.25,
                      "mouthUpperUp": 0.08}),
    "jh": (2.0, 1.5, {"jawOpen": 0.05, "mouthFunnel": 0.09, "mouthPucker": 0.22,
                      "mouthUpperUp": 0.08}),
    # tongue consonants: the lips belong to the neighbouring vowels
    "t": (0.3, 0.8, {"jawOpen": 0.08}),
    "d": (0.3, 0.8, {"jawOpen": 0.08}),
    "n": (0.3, 0.8, {"jawOpen": 0.08}),
    "l": (0.3, 0.6, {"jawOpen": 0.12}),
    "k": (0.3, 0.6, {"jawOpen": 0.10}),
    "g": (0.3, 0.6, {"jawOpen": 0.10}),
    "ng": (0.3, 0.6, {"jawOpen": 0.10}),
    "hh": (0.1, 0.2, {"jawOpen": 0.13}),
    # approximants
    "r": (1.5, 0.7, {"jawOpen": 0.08, "mouthFunnel": 0.07, "mouthPucker": 0.25}),
    "w": (3.0, 1.0, {"jawOpen": 0.05, "mouthFunnel": 0.09, "mouthPucker": 0.60}),
    "y": (1.0, 1.0, {"jawOpen": 0.05, "mouthStretch": 0.10, "mouthSmile": 0.15}),
}

# Diphthongs glide between two targets: the first phone holds the first part.
DIPHTHONGS: dict[str, tuple[str, str]] = {
    "aw": ("aa", "uh"), "ay": ("aa", "ih"), "ey": ("eh", "iy"), "ow": ("ao", "uw"), "oy": ("ao", "iy"),
}
_DIPHTHONG_SPLIT = 0.55

# Symbols other phone sets or voices emit, mapped to the nearest phone above.
PHONE_ALIASES: dict[str, str] = {
    "sil": "pau", "sp": "pau", "ssil": "pau", "h#": "pau", "#": "pau", "_": "pau",
    "axr": "er", "ix": "ih", "ux": "uw", "ax-h": "ax",
    "el": "l", "em": "m", "en": "n", "eng": "ng", "nx": "n", "dx": "d",
    "hv": "hh", "wh": "w", "q": "hh",
}

BILABIALS = frozenset({"p", "b", "m"})
# Channels a bilabial closure overrides: what opens the lips. Pucker, smile and stretch
# stay free, so the m of "moon" is already rounded.
_CLOSURE_CHANNELS = tuple(index_of(n) for n in (
    "jawOpen", "mouthClose", "mouthPressLeft", "mouthPressRight", "mouthFunnel",
    "mouthLowerDownLeft", "mouthLowerDownRight", "mouthUpperUpLeft", "mouthUpperUpRight",
    "mouthRollLower", "mouthRollUpper", "tongueOut"))
# The jaw group (jawOpen, tongueOut) blends with jaw dominance; everything else with lip dominance.
_JAW_CHANNELS = np.array([name in ("jawOpen", "tongueOut") for name in ARKIT_NAMES])

# Dominance falls as exp(-τ/λ), τ = distance (s) from the central half of the phone.
# Anticipation (before the phone) lasts longer than carry-over: lips round and close
# ahead of the sound (Cohen & Massaro 1993; Löfqvist 1990).
_PLATEAU = 0.25               # plateau half-width as a fraction of the phone's duration
_LAMBDA_LIPS_S = (0.040, 0.030)  # (anticipation, carry-over)
_LAMBDA_JAW_S = (0.035, 0.030)
_REST_DOMINANCE = 1e-3        # a neutral floor where no phone is near, and no 0/0
# The face leads the sound: on real talking videos the tracked jaw runs 60-120 ms
# ahead of where acoustic phone timings put it (articulators move before the sound
# they shape comes out). The blended mouth shapes are shown this much early; the
# bilabial closures stay on the acoustic timing, as the closure is part of the phone.
VISUAL_LEAD_S = 0.04
# Bilabial closure: lips shut over the central 70% of the phone, with raised-cosine
# ramps long enough that a frame at 60 fps moves a weight by < 0.5.
_CLOSURE_HALF = 0.35
_CLOSURE_RAMP_S = 0.045


def _expand(named: Mapping[str, float]) -> np.ndarray:
    """[52] float32 weights from names, `mouthSmile` meaning both `mouthSmileLeft` and `...Right`."""
    weights = np.zeros(NUM_WEIGHTS, dtype=np.float32)
    for name, value in named.items():
        sides = [name] if name in ARKIT_NAMES else [name + "Left", name + "Right"]
        for side in sides:
            weights[index_of(side)] = value  # KeyError: a typo in the table
    return weights


VISEME_WEIGHTS: dict[str, np.ndarray] = {p: _expand(t) for p, (_, _, t) in _VISEMES.items()}
DOMINANCE: dict[str, tuple[float, float]] = {p: (lips, jaw) for p, (lips, jaw, _) in _VISEMES.items()}
PHONES: frozenset[str] = frozenset(_VISEMES) | frozenset(DIPHTHONGS)


def canonical_phone(symbol: str) -> str | None:
    """The phone of this table for `symbol`, or None if unknown.

    Lower-cases, drops ARPAbet stress digits (`AA1` → `aa`) and applies `PHONE_ALIASES`.
    """
    phone = re.sub(r"[012]$", "", symbol.strip().lower())
    phone = PHONE_ALIASES.get(phone, phone)
    return phone if phone in PHONES else None


def _monophthongs(phones: Sequence[Phone]) -> list[Phone]:
    """Canonical phones, with diphthongs split in two and unknown symbols as `pau` (warned once)."""
    out: list[Phone] = []
    unknown: set[str] = set()
    for start, end, symbol in phones:
        phone = canonical_phone(symbol)
        if phone is None:
            unknown.add(symbol)
            phone = "pau"
        if phone in DIPHTHONGS:
            first, second = DIPHTHONGS[phone]
            middle = start + _DIPHTHONG_SPLIT * (end - start)
            out += [(start, middle, first), (middle, end, second)]
        else:
            out.append((start, end, phone))
    if unknown:
        warnings.warn(f"unknown phones {sorted(unknown)} are treated as neutral", stacklevel=3)
    return out


def _blend(times: np.ndarray, phones: Sequence[Phone]) -> np.ndarray:
    """Cohen–Massaro blend of the phones' targets.

    Per channel k:  F_k(t) = Σ_i D_i(t) T_ik / (ε + Σ_i D_i(t)),
    D_i(t) = α_i exp(-τ_i(t) / λ),  τ_i(t) = max(0, |t − c_i| − h_i),
    with c_i the phone's centre, h_i its plateau half-width, α_i its lip or jaw
    dominance and λ the anticipation or carry-over constant.

    Args:
        times: [T] frame times in s.
        phones: N canonical monophthong phones.
    Returns:
        [T, 52] float32 weights.
    """
    start = np.array([p[0] for p in phones])
    end = np.maximum(np.array([p[1] for p in phones]), start + 1e-3)
    centre, half = (start + end) / 2, _PLATEAU * (end - start)
    targets = np.stack([VISEME_WEIGHTS[p[2]] for p in phones]).astype(np.float64)  # [N, 52]
    alpha = np.array([DOMINANCE[p[2]] for p in phones])  # [N, 2] (lips, jaw)

    offset = times[:, None] - centre[None, :]  # [T, N]
    tau = np.maximum(np.abs(offset) - half[None, :], 0.0)
    before = offset < 0
    blended = []
    for group, (ahead_s, behind_s) in enumerate((_LAMBDA_LIPS_S, _LAMBDA_JAW_S)):
        dominance = alpha[None, :, group] * np.exp(-tau / np.where(before, ahead_s, behind_s))
        blended.append(dominance @ targets / (_REST_DOMINANCE + dominance.sum(axis=1, keepdims=True)))
    return np.where(_JAW_CHANNELS[None, :], blended[1], blended[0]).astype(np.float32)


def _closure_window(times: np.ndarray, start: float, end: float) -> np.ndarray:
    """[T] weight in [0, 1] of a bilabial's closure: 1 over its central part, raised-cosine ramps outside."""
    centre, half = (start + end) / 2, _CLOSURE_HALF * (end - start)
    outside = np.clip((np.abs(times - centre) - half) / _CLOSURE_RAMP_S, 0.0, 1.0)
    return (0.5 + 0.5 * np.cos(math.pi * outside)).astype(np.float32)


def phone_targets(phones: Sequence[Phone], fps: float, duration_s: float,
                  lead_s: float = VISUAL_LEAD_S) -> np.ndarray:
    """ARKit weights over time for a timed phone sequence.

    Cohen–Massaro coarticulation (`_blend`), shown `lead_s` ahead of the sound, then
    the bilabial rule: whatever the neighbours, p/b/m reach their closure (mouthClose
    high, lips pressed, jaw nearly shut) at their centre, F ← (1 − w) F + w T over the
    closure channels, since a weighted average alone never quite reaches a target.

    Args:
        phones: N (start_s, end_s, phone) in time order; symbols as `canonical_phone`
            takes them; unknown symbols are neutral, with a warning.
        fps: frames per second; frame i is at time i / fps.
        duration_s: length of the audio in s.
        lead_s: how far the mouth shapes run ahead of the phones (s).
    Returns:
        [T, 52] float32 weights in `ARKIT_NAMES` order, T = ceil(duration_s · fps), in [0, 1].
    """
    num_frames = math.ceil(duration_s * fps - 1e-9)  # float error: 0.1 s at 30 fps is 3 frames, not 4
    times = np.arange(num_frames) / fps
    segments = _monophthongs(phones)
    if not segments or num_frames == 0:
        return np.zeros((num_frames, NUM_WEIGHTS), dtype=np.float32)
    weights = _blend(times + lead_s, segments)
    closure = list(_CLOSURE_CHANNELS)
    for start, end, phone in segments:
        if phone in BILABIALS:
            w = _closure_window(times, start, end)[:, None]
            weights[:, closure] = (1 - w) * weights[:, closure] + w * VISEME_WEIGHTS[phone][closure]
    return np.clip(weights, 0.0, 1.0)
