"""Which expressions a capture's training frames show.

An expression the training frames never show is guessed by the avatar: the face mesh's
blendshapes still move its Gaussians, but nothing taught them how it looks (the inside of an
open mouth, closed eyelids). On the test videos, `liveportrait_d3` never opens its mouth in
the frames it is fitted on (jawOpen peaks at 0.075) and opens it to 0.55 in its held-out
frames, where face Gaussians that sat hidden between the closed lips come into view as a brown
smear. So a capture says which expressions it lacks, and what to record to get them; and where
the frames never open the mouth, the fit guesses a dark one (`capture.fitting.mouth_shade`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from avatar import index_of

PEAK_FRAMES = 2   # the peak is what at least this many frames reach: one frame may be a tracking glitch


@dataclass(frozen=True)
class Expression:
    """An expression, how the tracked weights show it, and what to record to show it."""

    name: str                    # as told to the user: "the training frames never show {name}"
    weights: tuple[str, ...]     # ARKit names, averaged (left and right)
    shown_at: float              # shown when the average's peak reaches this (MediaPipe's scale)
    advice: str                  # what to record


# Thresholds on MediaPipe's scale, from the eight test videos' training frames: jawOpen peaks at
# 0.14-0.87 where the person talks (0.075 in d3, who does not); blinks at 0.40-0.78 where the person
# blinks (0.20 in vrt_face2's four seconds, without one).
OPEN_MOUTH = Expression("an open mouth", ("jawOpen",), 0.12, "talk, with open vowels ('ah')")
EXPRESSIONS = (
    OPEN_MOUTH,
    Expression("a blink", ("eyeBlinkLeft", "eyeBlinkRight"), 0.35, "blink naturally"),
)


def expression_peaks(weights: np.ndarray) -> dict[str, float]:
    """{expression name: its peak (reached in PEAK_FRAMES frames)} over [T, 52] tracked weights (NaN rows skipped)."""
    rows = weights[~np.isnan(weights).any(axis=1)]
    peaks = {}
    for expression in EXPRESSIONS:
        values = rows[:, [index_of(name) for name in expression.weights]].mean(axis=1)
        peaks[expression.name] = round(float(np.sort(values)[-PEAK_FRAMES]), 3) if len(values) >= PEAK_FRAMES else 0.0
    return peaks


def never_shown(weights: np.ndarray) -> list[Expression]:
    """The `EXPRESSIONS` whose peak over [T, 52] tracked weights stays under where they show."""
    peaks = expression_peaks(weights)
    return [e for e in EXPRESSIONS if peaks[e.name] < e.shown_at]


def missing_expressions(weights: np.ndarray, source: str) -> list[str]:
    """One line per expression that the [T, 52] weights never show: what the avatar will guess, and what to record."""
    peaks = expression_peaks(weights)
    return [f"the training frames of {source} never show {e.name} ({'/'.join(e.weights)} peaks at "
            f"{peaks[e.name]:.2f}, under {e.shown_at:g}): the avatar's will be a guess; to capture it, {e.advice} "
            "in the video" for e in never_shown(weights)]
