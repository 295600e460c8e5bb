"""From speech audio to a FaceState stream: the audio model, then the mixer (mannerisms, emotion)."""

from __future__ import annotations

import numpy as np

from avatar.face_state import FaceState

# Idle frames after the last word, so the face settles instead of freezing mid-phrase.
TAIL_S = 0.6


def speech_states(audio: np.ndarray, sample_rate: int, fps: float, *, model=None, profile=None,
                  emotion: str | None = None, intensity: float = 0.7, seed: int = 0) -> list[FaceState]:
    """FaceStates at `fps` for a whole utterance: lip-sync, blinks, gaze, head motion, optional emotion.

    Args:
        audio: [S] mono samples in [-1, 1] at `sample_rate` (any rate).
        model: an `animation.Audio2Face`; None loads the shipped weights.
        profile: `animation.MannerismProfile` (e.g. learned from a capture); None for defaults.
    Returns:
        One FaceState per frame: frame i at i / fps while speaking (the audio's clock), then
        TAIL_S of idle frames.
    """
    from animation import FaceMixer, load_default_model, predict_with_energy

    model = model if model is not None else load_default_model()
    _, weights, energy = predict_with_energy(model, audio, sample_rate, fps=fps)
    mixer = FaceMixer(fps, profile, seed=seed)
    if emotion:
        mixer.set_emotion(emotion, intensity)
    mixer.push_speech(weights, energy)
    mixer.end_speech()
    count = len(weights) + round(TAIL_S * fps)
    states = []
    for i in range(count):
        state, _ = mixer.next_frame()
        state.time_s = i / fps  # one clock for the video: the audio's, continued through the tail
        states.append(state)
    return states
