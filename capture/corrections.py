"""Per-frame corrections to the tracked head pose and ARKit weights, each frame with its own Adam.

Landmark tracking puts the head within a pixel or so and MediaPipe's weights are a regression
from the image; both are off by enough to blur a head fitted to hundreds of frames and to
misplace a held-out frame by a dB or more. GaussianAvatars refines FLAME's per-frame pose and
expression photometrically; these are the rows such a refinement moves.

A fitting step renders one frame, so only that frame's row has a gradient. torch's Adam would
keep moving every other row on its momentum; here each row has its own moments and step count
and moves only when its frame is rendered.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from avatar import NUM_WEIGHTS

BETAS = (0.9, 0.999)
EPS = 1e-8
PARTS = ("rotation", "translation", "weights")


@dataclass(frozen=True)
class CorrectionRates:
    """Adam step sizes per update (radians, cm, weight units) and L2 pulls back to the tracked values.

    A zero rate leaves that part at the tracked value.
    """

    rotation_rad: float = 1e-3
    translation_cm: float = 1e-2
    weights: float = 0.0
    weights_prior: float = 1e-3


@dataclass
class FrameCorrections:
    """Additive corrections for T frames: rotation [T, 3] (axis-angle, rad, composed as R(r + dr)),
    translation [T, 3] (cm) and weights [T, 52] (kept so that tracked + correction is in [0, 1])."""

    rotation: torch.Tensor
    translation: torch.Tensor
    weights: torch.Tensor
    rates: CorrectionRates

    def __post_init__(self) -> None:
        self._first = {name: torch.zeros_like(getattr(self, name)) for name in PARTS}
        self._second = {name: torch.zeros_like(value) for name, value in self._first.items()}
        self._count = torch.zeros(len(self.rotation), dtype=torch.int64)

    @classmethod
    def zeros(cls, frames: int, rates: CorrectionRates = CorrectionRates()) -> "FrameCorrections":
        return cls(torch.zeros(frames, 3), torch.zeros(frames, 3), torch.zeros(frames, NUM_WEIGHTS), rates)

    def __len__(self) -> int:
        return len(self.rotation)

    def _rates(self) -> tuple[float, float, float]:
        return self.rates.rotation_rad, self.rates.translation_cm, self.rates.weights

    def rows(self, frame: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Leaf copies of one frame's (rotation, translation, weights) corrections, tracking gradients
        where their rate is non-zero; pass them, with their gradients filled, to `step`."""
        return tuple(getattr(self, name)[frame].clone().requires_grad_(rate > 0)
                     for name, rate in zip(PARTS, self._rates()))

    def step(self, frame: int, rows: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
             tracked_weights: torch.Tensor) -> None:
        """One Adam update of `frame`'s row from the gradients on `rows` (a row without one stays)."""
        self._count[frame] += 1
        t = int(self._count[frame])
        b1, b2 = BETAS
        for name, row, rate in zip(PARTS, rows, self._rates()):
            if row.grad is None or rate == 0:
                continue
            grad = row.grad.detach()
            value = getattr(self, name)
            if name == "weights":
                grad = grad + 2 * self.rates.weights_prior * value[frame]
            first, second = self._first[name][frame], self._second[name][frame]
            first.mul_(b1).add_(grad, alpha=1 - b1)
            second.mul_(b2).addcmul_(grad, grad, value=1 - b2)
            update = rate * (first / (1 - b1**t)) / ((second / (1 - b2**t)).sqrt() + EPS)
            value[frame] -= update
            if name == "weights":
                value[frame] = torch.minimum(torch.maximum(value[frame], -tracked_weights), 1 - tracked_weights)

    def carry(self, source: int, frame: int) -> None:
        """Start `frame` from `source`'s corrections (neighbouring video frames move alike)."""
        for name in PARTS:
            getattr(self, name)[frame] = getattr(self, name)[source]

    def applied(self, weights: np.ndarray, rotations: np.ndarray, translations_cm: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The tracked [T, 52], [T, 3], [T, 3] arrays with the corrections added (float32)."""
        return ((weights + self.weights.numpy()).clip(0, 1).astype(np.float32),
                (rotations + self.rotation.numpy()).astype(np.float32),
                (translations_cm + self.translation.numpy()).astype(np.float32))

    def state(self) -> dict:
        """What a checkpoint keeps (corrections, moments, counts)."""
        return {"rotation": self.rotation, "translation": self.translation, "weights": self.weights,
                "first": self._first, "second": self._second, "count": self._count, "rates": self.rates}

    @classmethod
    def from_state(cls, state: dict) -> "FrameCorrections":
        corrections = cls(state["rotation"], state["translation"], state["weights"], state["rates"])
        corrections._first, corrections._second, corrections._count = state["first"], state["second"], state["count"]
        return corrections
