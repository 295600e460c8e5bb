"""The capture report next to the avatar: held-out frames (truth | render | error | baseline),
the training frames' head masks, the loss and PSNR curves, and the metrics as JSON."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from avatar import atomic_output
from capture.head_fit import FitLog
from capture.reenactment import SHEET_ROWS, Reenactment


def write_sheet(path: Path, reenactment: Reenactment) -> None:
    """Example held-out rows stacked: truth | render | error x4 | nearest-neighbour baseline, each
    labelled with its frame and scores (evenly spaced frames first, then the worst-scoring ones)."""
    rows = []
    first_worst = min(SHEET_ROWS, reenactment.frames)
    for n, (example, k) in enumerate(zip(reenactment.examples, reenactment.example_rows)):
        row, score = example.copy(), reenactment.per_frame[k]
        w = row.shape[1] // 4
        labels = ((f"worst: frame {score['frame']}" if n >= first_worst else f"frame {score['frame']}"),
                  f"render {score['psnr']:.1f} dB", "error x4", f"baseline {score['baseline_psnr']:.1f} dB")
        for column, label in enumerate(labels):
            for colour, thickness in (((255, 255, 255), 3), ((0, 0, 0), 1)):
                cv2.putText(row, label, (column * w + 8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.7, colour, thickness,
                            cv2.LINE_AA)
        rows.append(row)
    _, png = cv2.imencode(".png", cv2.cvtColor(np.concatenate(rows, axis=0), cv2.COLOR_RGB2BGR))
    with atomic_output(path) as tmp:
        tmp.write_bytes(png.tobytes())


MASK_SHEET_COLUMNS = 3


def write_mask_sheet(path: Path, images: np.ndarray, masks: np.ndarray, frames: np.ndarray) -> None:
    """Training frames with their head masks: outside dimmed, the outline in green, each labelled
    with its source frame; `MASK_SHEET_COLUMNS` to a row.

    images: [K, H, W, 3] uint8 RGB; masks: [K, H, W] bool; frames: [K] source frame indices.
    """
    tiles = []
    for image, mask, frame in zip(images, masks, frames):
        tile = np.where(mask[..., None], image, image // 3)
        contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(tile, contours, -1, (0, 255, 0), max(1, image.shape[1] // 256), cv2.LINE_AA)
        for colour, thickness in (((255, 255, 255), 3), ((0, 0, 0), 1)):
            cv2.putText(tile, f"frame {frame}", (8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.7, colour, thickness, cv2.LINE_AA)
        tiles.append(tile)
    tiles += [np.zeros_like(tiles[0])] * (-len(tiles) % MASK_SHEET_COLUMNS)
    rows = [np.concatenate(tiles[k:k + MASK_SHEET_COLUMNS], axis=1) for k in range(0, len(tiles), MASK_SHEET_COLUMNS)]
    _, png = cv2.imencode(".png", cv2.cvtColor(np.concatenate(rows, axis=0), cv2.COLOR_RGB2BGR))
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
