"""The capture report next to the avatar: held-out frames (truth | render | error | baseline),
the loss and PSNR curves, and the metrics as JSON."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from avatar import atomic_output
from capture.head_fit import FitLog
from capture.reenactment import Reenactment


def write_sheet(path: Path, reenactment: Reenactment) -> None:
    """Example held-out rows stacked: truth | render | error x4 | nearest-neighbour baseline."""
    sheet = np.concatenate(reenactment.examples, axis=0)
    w = reenactment.examples[0].shape[1] // 4
    for k, label in enumerate(("truth", "render", "error x4", "baseline")):
        cv2.putText(sheet, label, (k * w + 8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (255, 255, 255), 3, cv2.LINE_AA)
        cv2.putText(sheet, label, (k * w + 8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (0, 0, 0), 1, cv2.LINE_AA)
    _, png = cv2.imencode(".png", cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    with atomic_output(path) as tmp:
        tmp.write_bytes(png.tobytes())


def write_curves(path: Path, log: FitLog, reenactment: Reenactment | None) -> None:
    """Loss and training PSNR per step (smoothed over 50), the held-out PSNR as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def smooth(values: list[float]) -> np.ndarray:
        v = np.asarray(values)
        k = min(50, len(v))
        return np.convolve(v, np.ones(k) / k, mode="valid") if k else v

    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    left.plot(smooth(log.loss))
    left.set(xlabel="step", ylabel="loss (L1 + D-SSIM + regularisers)", yscale="log", title="loss")
    right.plot(smooth(log.psnr), label="training frame (fit size)")
    if reenactment is not None:
        right.axhline(reenactment.psnr, color="C1", label=f"held out, 512 px: {reenactment.psnr:.2f} dB")
        right.axhline(reenactment.baseline_psnr, color="C2", ls="--",
                      label=f"nearest-neighbour baseline: {reenactment.baseline_psnr:.2f} dB")
    right.set(xlabel="step", ylabel="PSNR inside the head mask (dB)", title="PSNR")
    right.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    with atomic_output(path) as tmp:
        figure.savefig(tmp, format="png", dpi=100)
    plt.close(figure)


def write_metrics(path: Path, metrics: dict) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(metrics, indent=2) + "\n")
