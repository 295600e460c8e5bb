"""Self-reenactment: drive a fitted head with held-out frames' tracked weights and pose, and
score it inside their head masks against the nearest-neighbour retrieval baseline."""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
from tqdm import tqdm

from avatar import Camera, FaceState, Track
from capture.face_fit import FaceFit
from capture.frame_refinement import REFINE_STEPS, refine_frames
from capture.frames import FrameWindow, decode_frames, frame_masks
from capture.media import MediaSource
from capture.metrics import align_by_landmarks, masked_psnr, masked_ssim, nearest_training_frame, whole_frame_scores
from render import GaussianHead, VideoWriter
from render.cpu import CpuRenderer

EVAL_SIZE_PX = 512
SHEET_ROWS = 4        # evenly spaced held-out frames on the report's sheet
SHEET_WORST_ROWS = 2  # and the worst-scoring others (a bad mask or a lost track shows there)
# Scores skip this band (px, at the evaluation size) inside the mask's edge: GrabCut's boundary
# wanders by a pixel or two from frame to frame, and neither an avatar nor a retrieved frame can
# follow it there. Avatar and baseline are scored on the same pixels.
EDGE_PX = 3
# A scored pixel the render covers less than this is one the avatar has no Gaussians for.
COVERED_ALPHA = 0.5


@dataclass
class Reenactment:
    """Mean scores over the held-out frames, per-frame rows, and example rows for a picture.

    `examples` are [H, 4W, 3] uint8 rows: truth | render | error (x4) | baseline, of the
    `per_frame` rows at `example_rows`: `SHEET_ROWS` evenly spaced frames (all of them when
    fewer), then up to `SHEET_WORST_ROWS` worst-scoring others.
    `landmark_psnr` and `landmark_ssim` score the renders at the pose and weights fitted to the
    landmarks (`FaceFit`), before photometric tracking. `uncovered` is the mean share of the
    scored pixels that the (tracked) render leaves under `COVERED_ALPHA`: parts of the head the
    avatar does not draw, which cost far more than their share of the pixels. `track_steps` are
    the photometric tracking steps each frame had. `whole_frame_psnr` and `whole_frame_ssim` score
    the whole frame with the truth matted to white, as GaussianAvatars scores
    (`capture.metrics.whole_frame_scores`): only for setting ours beside theirs.
    """

    psnr: float
    ssim: float
    baseline_psnr: float
    baseline_ssim: float
    frames: int
    landmark_psnr: float = float("nan")
    landmark_ssim: float = float("nan")
    uncovered: float = float("nan")
    whole_frame_psnr: float = float("nan")
    whole_frame_ssim: float = float("nan")
    track_steps: int = 0
    per_frame: list[dict] = field(default_factory=list)
    examples: list[np.ndarray] = field(default_factory=list)
    example_rows: list[int] = field(default_factory=list)

    def summary(self) -> dict:
        return {"psnr": round(self.psnr, 3), "ssim": round(self.ssim, 4), "baseline_psnr": round(self.baseline_psnr, 3),
                "baseline_ssim": round(self.baseline_ssim, 4), "frames": self.frames}

    def details(self) -> dict:
        """`summary` and the other means (rounded as there), and the tracking steps: what the
        report's `metrics.json` and `avatar bench capture`'s JSON carry."""
        return {**self.summary(), "landmark_psnr": round(self.landmark_psnr, 3),
                "landmark_ssim": round(self.landmark_ssim, 4), "uncovered": round(self.uncovered, 5),
                "whole_frame_psnr": round(self.whole_frame_psnr, 3), "whole_frame_ssim": round(self.whole_frame_ssim, 4),
                "track_steps": self.track_steps}


def evaluate_reenactment(head: GaussianHead, source: MediaSource, track: Track, face: FaceFit,
                         holdout: np.ndarray, train: np.ndarray, size_px: int = EVAL_SIZE_PX,
                         refine_steps: int = REFINE_STEPS, window: FrameWindow | None = None,
                         progress: bool = False, video: VideoWriter | None = None) -> Reenactment:
    """Render `holdout` frames with `face`'s weights and pose, both tracked photometrically
    against `head` (`refine_frames`, `refine_steps` per frame; 0 keeps the tracked ones);
    compare inside their masks (`EDGE_PX` in from the edge), in `window` (default: the whole
    frame) resized so its longer side is `size_px`.

    The baseline takes, for each held-out frame, the `train` frame closest in weights and pose,
    warps it onto the held-out frame by the similarity that maps its landmarks onto the
    held-out ones, and is scored the same way.

    With `video`, each held-out frame is written to it as truth | render, side by side.
    """
    window = window or FrameWindow.whole(source.width_px, source.height_px)
    size = window.size(size_px)
    camera = window.camera(face.camera, size)
    rot, trans, fitted_weights = face.head_rotation, face.head_translation_cm, face.weights
    nearest = np.array([nearest_training_frame(fitted_weights[h], rot[h], trans[h], fitted_weights[train],
                                               rot[train], trans[train]) for h in holdout], dtype=int)
    retrieved = train[nearest]
    needed = np.unique(np.concatenate([holdout, retrieved]))
    images = decode_frames(source, needed, size, progress, window)
    at = {int(i): k for k, i in enumerate(needed)}
    truth = images[[at[int(h)] for h in holdout]]
    landmarks = window.landmarks(track.landmarks_px)
    masks = frame_masks(truth, landmarks[holdout], (window.width_px, window.height_px), progress)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * EDGE_PX + 1, 2 * EDGE_PX + 1))
    inner = np.stack([cv2.erode(m.astype(np.uint8), kernel) > 0 for m in masks])
    scale = np.array([size[0] / window.width_px, size[1] / window.height_px])
    weights, rotations, translations = fitted_weights[holdout], rot[holdout], trans[holdout]
    if refine_steps:
        # At the scoring size: tracking at 256 px costs half as much and scores 0.6 dB lower (mimictalk).
        weights, rotations, translations = refine_frames(head, camera, truth, masks, weights, rotations, translations,
                                                         refine_steps, progress=progress)
    renderer = CpuRenderer()

    def states(k: int) -> tuple[FaceState, FaceState]:
        """Held-out frame k as tracked photometrically, and at the landmark pose and weights."""
        h = holdout[k]
        return (FaceState(float(track.time_s[h]), weights[k], rotations[k], translations[k]),
                FaceState(float(track.time_s[h]), fitted_weights[h], rot[h], trans[h]))

    def baseline_of(k: int) -> np.ndarray:
        lm_h = landmarks[holdout[k], :468, :2] * scale
        lm_r = landmarks[retrieved[k], :468, :2] * scale
        return align_by_landmarks(images[at[int(retrieved[k])]], lm_r, lm_h).astype(np.float32) / 255

    rows = []
    for k, h in enumerate(tqdm(holdout, unit="frame", desc="re-enacting", disable=not progress, leave=False)):
        tracked, landmark = states(k)
        rgba, landmark_render = (_render(renderer, camera, head, tracked),
                                 _render(renderer, camera, head, landmark)[..., :3])
        render, real, baseline, mask = rgba[..., :3], truth[k].astype(np.float32) / 255, baseline_of(k), inner[k]
        if video is not None:
            video.write(np.concatenate([truth[k], (render * 255).round().astype(np.uint8)], axis=1))
        whole_psnr, whole_ssim = whole_frame_scores(render, real, masks[k])
        rows.append({"frame": int(h), "psnr": masked_psnr(render, real, mask), "ssim": masked_ssim(render, real, mask),
                     "uncovered": float((rgba[..., 3][mask] < COVERED_ALPHA).mean()) if mask.any() else 0.0,
                     "landmark_psnr": masked_psnr(landmark_render, real, mask),
                     "landmark_ssim": masked_ssim(landmark_render, real, mask),
                     "baseline_frame": int(retrieved[k]), "baseline_psnr": masked_psnr(baseline, real, mask),
                     "baseline_ssim": masked_ssim(baseline, real, mask),
                     "whole_frame_psnr": whole_psnr, "whole_frame_ssim": whole_ssim})
    spaced = np.linspace(0, len(holdout) - 1, min(SHEET_ROWS, len(holdout))).round().astype(int).tolist()
    worst = [k for k in np.argsort([r["psnr"] for r in rows]).tolist() if k not in spaced][:SHEET_WORST_ROWS]
    examples = []
    for k in spaced + worst:
        # Re-rendered rather than kept: a hundred 512 px renders would hold ~300 MB for six rows.
        real, render = truth[k].astype(np.float32) / 255, _render(renderer, camera, head, states(k)[0])[..., :3]
        error = np.clip(np.abs(render - real).mean(2, keepdims=True) * 4, 0, 1) * inner[k][..., None]
        examples.append((np.concatenate([real, render, np.repeat(error, 3, 2), baseline_of(k)], axis=1) * 255)
                        .round().astype(np.uint8))
    keys = ("psnr", "ssim", "baseline_psnr", "baseline_ssim", "landmark_psnr", "landmark_ssim", "uncovered",
            "whole_frame_psnr", "whole_frame_ssim")
    mean = {key: float(np.mean([r[key] for r in rows])) for key in keys}
    return Reenactment(frames=len(rows), per_frame=rows, examples=examples, example_rows=spaced + worst,
                       track_steps=refine_steps, **mean)


def playback_fps(frames: np.ndarray, fps: float) -> float:
    """The rate at which the video frames `frames` (sorted indices, maybe every k-th) play in real time."""
    span = int(frames[-1] - frames[0]) + 1 if len(frames) else 1
    return fps * len(frames) / span if len(frames) > 1 else fps


def _render(renderer: CpuRenderer, camera: Camera, head: GaussianHead, state: FaceState) -> np.ndarray:
    """[H, W, 4] float RGBA in [0, 1], the colour over white."""
    return np.clip(renderer.render(camera, head.evaluate(state), (1.0, 1.0, 1.0)), 0, 1)
