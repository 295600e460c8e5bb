"""ARKit weights over time as CSV: `time_s` then the 52 names, one row per frame.

Columns are matched by name, in any order; a file may carry a subset of the
52 (the rest are 0). `avatar track --weights-csv` writes it, `avatar render
--weights` reads it.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np

from avatar.arkit import ARKIT_NAMES, NUM_WEIGHTS, index_of
from avatar.errors import InputError
from avatar.files import atomic_output


def write_weights_csv(path: str | os.PathLike, time_s: np.ndarray, weights: np.ndarray) -> Path:
    """Write [T] times and [T, 52] weights (NaN rows, frames without data, are written as empty cells)."""
    with atomic_output(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["time_s", *ARKIT_NAMES])
        for t, row in zip(time_s, weights):
            writer.writerow([f"{t:.6f}", *("" if np.isnan(w) else f"{w:.5f}" for w in row)])
    return Path(path)


def read_weights_csv(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read a weights CSV.

    Returns:
        time_s [T] increasing, weights [T, 52] in `ARKIT_NAMES` order (empty cells
        are held from the previous row, 0 at the start).
    Raises:
        InputError: missing file, no `time_s` column, unknown names, non-numbers,
            times that do not increase, or no rows.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"weights file {path} does not exist")
    try:
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"{path} is not a readable CSV file ({exc})") from None
    header = [name.strip() for name in rows[0]] if rows else []
    if "time_s" not in header:
        raise InputError(f"{path} needs a header row with a time_s column and ARKit blendshape names")
    unknown = [n for n in header if n != "time_s" and n not in ARKIT_NAMES]
    if unknown:
        raise InputError(f"{path} has columns that are not ARKit blendshape names: {', '.join(unknown[:5])}")
    if len(rows) < 2:
        raise InputError(f"{path} has a header but no rows")
    time_column = header.index("time_s")
    targets = [(index_of(name), i) for i, name in enumerate(header) if name != "time_s"]  # (weight, column)
    time_s = np.empty(len(rows) - 1)
    weights = np.zeros((len(rows) - 1, NUM_WEIGHTS), dtype=np.float32)
    for r, row in enumerate(rows[1:]):
        try:
            time_s[r] = float(row[time_column])
            for k, i in targets:
                cell = row[i].strip() if i < len(row) else ""
                weights[r, k] = float(cell) if cell else (weights[r - 1, k] if r else 0.0)
        except (ValueError, IndexError):
            raise InputError(f"{path} line {r + 2} is not a row of numbers") from None
    if np.any(np.diff(time_s) <= 0):
        raise InputError(f"{path}: time_s must increase from row to row")
    return time_s, weights
