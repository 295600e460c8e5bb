"""A capture as a nerfstudio dataset: frames, head masks and cameras in `transforms.json`.

The head is the scene: each frame's camera is given in head space (the inverse of the tracked
head pose), so a static-scene tool sees the head from as many views as it turned, in cm. The
matrices are camera-to-world in OpenGL axes (camera looking down -z, y up), nerfstudio's own
convention and `avatar.camera`'s. Each frame also carries its 52 ARKit weights
(`arkit_weights`, ARKIT_NAMES order) and time; `train_filenames` / `val_filenames` hold the split.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from avatar import ARKIT_NAMES, Camera, OutputError, Track
from avatar.rotation import rotvec_to_matrix


def head_space_cameras(rotations: np.ndarray, translations_cm: np.ndarray) -> np.ndarray:
    """[T, 4, 4] camera-to-head transforms from head poses (head -> camera) [T, 3] axis-angle, [T, 3] cm."""
    out = np.tile(np.eye(4), (len(rotations), 1, 1))
    for i, (r, t) in enumerate(zip(rotations, translations_cm)):
        m = rotvec_to_matrix(r)
        out[i, :3, :3] = m.T
        out[i, :3, 3] = -m.T @ t
    return out


def write_dataset(folder: Path, images: np.ndarray, masks: np.ndarray, indices: np.ndarray, track: Track,
                  camera: Camera, rotations: np.ndarray, translations_cm: np.ndarray, weights: np.ndarray,
                  holdout: set[int], progress: bool = False) -> Path:
    """Write `folder/{images,masks}/frame_NNNNN.png` and `folder/transforms.json`; returns the JSON's path.

    Args:
        images: [K, H, W, 3] uint8 RGB of the frames `indices`; masks: [K, H, W] bool.
        camera: intrinsics at the images' size; rotations, translations_cm: [K] head poses.
        weights: [K, 52] ARKit weights (a capture's: fitted to the landmarks, `FaceFit.weights`).
        holdout: frame indices that go to `val_filenames`.
    The folder is written next to its final place and moved there whole, so a failure leaves nothing.
    """
    folder = Path(folder)
    if folder.exists():
        raise OutputError(f"{folder} already exists: choose a new folder for the dataset")
    staging = folder.with_name(f".{folder.name}.partial-{os.getpid()}")
    try:
        (staging / "images").mkdir(parents=True)
        (staging / "masks").mkdir()
        poses = head_space_cameras(rotations, translations_cm)
        frames, train, val = [], [], []
        for k in tqdm(range(len(indices)), unit="frame", desc="writing", disable=not progress, leave=False):
            name = f"frame_{int(indices[k]):05d}.png"
            cv2.imwrite(str(staging / "images" / name), cv2.cvtColor(images[k], cv2.COLOR_RGB2BGR))
            cv2.imwrite(str(staging / "masks" / name), masks[k].astype(np.uint8) * 255)
            frames.append({"file_path": f"images/{name}", "mask_path": f"masks/{name}",
                           "transform_matrix": poses[k].round(6).tolist(),
                           "time_s": round(float(track.time_s[indices[k]]), 4),
                           "arkit_weights": np.round(weights[k], 5).tolist()})
            (val if int(indices[k]) in holdout else train).append(f"images/{name}")
        transforms = {
            "camera_model": "OPENCV", "w": camera.width_px, "h": camera.height_px,
            "fl_x": camera.fx_px, "fl_y": camera.fy_px, "cx": camera.cx_px, "cy": camera.cy_px,
            "k1": 0.0, "k2": 0.0, "p1": 0.0, "p2": 0.0, "units": "cm", "arkit_names": list(ARKIT_NAMES),
            "frames": frames, "train_filenames": train, "val_filenames": val,
        }
        (staging / "transforms.json").write_text(json.dumps(transforms, indent=1))
        staging.rename(folder)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise OutputError(f"cannot write the dataset to {folder} ({exc.strerror or exc})") from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return folder / "transforms.json"
