"""Which expressions a capture's training frames show (`capture.coverage`)."""

from __future__ import annotations

import numpy as np

from avatar import index_of
from capture.coverage import expression_peaks, missing_expressions


def talking_weights(frames: int = 120) -> np.ndarray:
    """[T, 52]: a jaw opening and closing on every syllable, and two blinks of three frames."""
    weights = np.zeros((frames, 52), np.float32)
    weights[:, index_of("jawOpen")] = 0.15 * (1 + np.sin(np.arange(frames) / 3))
    for start in (30, 90):
        weights[start:start + 3, [index_of("eyeBlinkLeft"), index_of("eyeBlinkRight")]] = 0.7
    return weights


def test_a_talking_blinking_person_shows_every_expression():
    weights = talking_weights()
    peaks = expression_peaks(weights)
    assert peaks["an open mouth"] > 0.25 and peaks["a blink"] == 0.7
    assert missing_expressions(weights, "talk.mp4") == []


def test_missing_expressions_say_what_to_record():
    weights = talking_weights()
    weights[:, index_of("jawOpen")] *= 0.2
    weights[:, index_of("eyeBlinkLeft")] = weights[:, index_of("eyeBlinkRight")] = 0
    lines = missing_expressions(weights, "quiet.mp4")
    assert len(lines) == 2
    assert lines[0].startswith("the training frames of quiet.mp4 never show an open mouth (jawOpen peaks at 0.06")
    assert "talk, with open vowels" in lines[0] and "blink naturally" in lines[1]


def test_one_frame_is_not_a_blink_and_lost_frames_are_skipped():
    weights = talking_weights()
    weights[:, [index_of("eyeBlinkLeft"), index_of("eyeBlinkRight")]] = 0
    weights[50, [index_of("eyeBlinkLeft"), index_of("eyeBlinkRight")]] = 0.9   # a tracking glitch
    weights[60:70] = np.nan
    assert expression_peaks(weights)["a blink"] == 0.0
    assert [line.split(" (")[0] for line in missing_expressions(weights, "x.mp4")] == [
        "the training frames of x.mp4 never show a blink"]
