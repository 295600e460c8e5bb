"""Animation: speech audio, mannerisms, emotions and external sources into one FaceState stream.

- `StreamingAudio2Face` / `predict`: speech (any sample rate) to 52 ARKit weights at
  30 or 60 fps, causal with a bounded look-ahead; `load_default_model` reads the
  shipped weights in `assets/`.
- `FaceMixer`: speech frames + `Mannerisms` (blinks, gaze, head motion, breathing)
  + emotions and gestures + external weights, one FaceState per frame.
- `phone_targets` and `augment`: the synthetic training-data recipe.
- `fine_tune`: the speech model tuned on a capture's own audio and tracked weights.
"""

from animation.augment import augment
from animation.expressions import EMOTIONS, GESTURES
from animation.mannerisms import MannerismProfile, Mannerisms, detect_blinks
from animation.mixer import FaceMixer
from animation.model import (Audio2Face, StreamingAudio2Face, load_default_model, load_model, predict,
                             predict_with_energy, save_weights)
from animation.tuning import fine_tune
from animation.visemes import phone_targets

__all__ = [
    "augment", "EMOTIONS", "GESTURES", "MannerismProfile", "Mannerisms", "detect_blinks", "FaceMixer",
    "Audio2Face", "StreamingAudio2Face", "load_default_model", "load_model", "predict", "predict_with_energy",
    "save_weights", "phone_targets", "fine_tune",
]
