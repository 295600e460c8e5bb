"""The 52 ARKit blendshape names: the project's one expression interface.

`ARKIT_NAMES` is the order used everywhere in this project (arrays of 52
weights, bundles, CSV files, the API): Apple's 52 names sorted alphabetically,
which is also MediaPipe's order without its leading `_neutral`. Other tools
(Live Link Face, Audio2Face-3D, LAM) each use their own order, so always map
by name with `weights_from_named` / `index_of`, never by position.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

ARKIT_NAMES: tuple[str, ...] = (
    "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight",
    "cheekPuff", "cheekSquintLeft", "cheekSquintRight",
    "eyeBlinkLeft", "eyeBlinkRight",
    "eyeLookDownLeft", "eyeLookDownRight", "eyeLookInLeft", "eyeLookInRight",
    "eyeLookOutLeft", "eyeLookOutRight", "eyeLookUpLeft", "eyeLookUpRight",
    "eyeSquintLeft", "eyeSquintRight", "eyeWideLeft", "eyeWideRight",
    "jawForward", "jawLeft", "jawOpen", "jawRight",
    "mouthClose", "mouthDimpleLeft", "mouthDimpleRight", "mouthFrownLeft", "mouthFrownRight",
    "mouthFunnel", "mouthLeft", "mouthLowerDownLeft", "mouthLowerDownRight",
    "mouthPressLeft", "mouthPressRight", "mouthPucker", "mouthRight",
    "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper",
    "mouthSmileLeft", "mouthSmileRight", "mouthStretchLeft", "mouthStretchRight",
    "mouthUpperUpLeft", "mouthUpperUpRight",
    "noseSneerLeft", "noseSneerRight",
    "tongueOut",
)
NUM_WEIGHTS = len(ARKIT_NAMES)
_INDEX = {name: i for i, name in enumerate(ARKIT_NAMES)}


def index_of(name: str) -> int:
    """Position of blendshape `name` in `ARKIT_NAMES` (KeyError if unknown)."""
    return _INDEX[name]


def weights_from_named(named: Mapping[str, float] | Iterable[tuple[str, float]]) -> np.ndarray:
    """Map named weights from any source into the project's order.

    Names outside the 52 (such as MediaPipe's `_neutral`) are dropped; names
    the source lacks (MediaPipe has no `tongueOut`) are 0.

    Returns:
        [52] float32 weights in `ARKIT_NAMES` order.
    """
    items = named.items() if isinstance(named, Mapping) else named
    weights = np.zeros(NUM_WEIGHTS, dtype=np.float32)
    for name, value in items:
        i = _INDEX.get(name)
        if i is not None:
            weights[i] = value
    return weights
