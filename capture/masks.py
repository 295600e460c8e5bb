"""Per-frame head masks: GrabCut (OpenCV) seeded by the tracked face mesh, cut below the jaw.

Seeds, from the landmarks: the face inside its oval is certain foreground; an ellipse around
the face, reaching up over the hair and out to the ears, is probable foreground; the frame's
border is certain background, the rest probable background. Where a person segmentation is
given (`capture.segmentation`), whatever it calls clearly not the person is certain
background too, what it calls more likely background than person is dropped from the answer,
and what it is sure is the person, inside the head's ellipse, is certain foreground. GrabCut
models colours only: it takes a flag or a poster behind the hair into the head when their
colours are the hair's or the skin's, and leaves dark hair out on a dark background, and not
the same way in every frame. After GrabCut, everything below
the jaw line (extended past the jaw's corners along the line between them) is dropped: the
avatar is the head, and the neck and shoulders move with the body, not with the head pose.
The cut beside the jaw turns with the head: cut level in the image, it moved up or down the
head as the head rolled (10 px, 60 px out from a corner, for 10 degrees), and a held-out frame
rolled further than the training frames showed hair there that the avatar had been fitted to
leave clear. The largest connected region is kept.
"""

from __future__ import annotations

import cv2
import numpy as np

from capture.face_mesh import LANDMARK_GROUPS

# The head around the face, in face-oval widths and heights.
HEAD_WIDTH = 1.35
HEAD_TOP = 0.625       # above the oval's top, in oval heights
CHIN_MARGIN = 0.125    # below the chin (the jaw cut removes it again)
GRABCUT_ITERATIONS = 3
NOT_PERSON = 0.1       # person probability below which a pixel is certain background for GrabCut
PERSON = 0.5           # and below which it is dropped from GrabCut's answer
SURE_PERSON = 0.9      # above which, inside the head's ellipse, it is certain foreground
_JAW = slice(9, 28)     # face_oval entries from the right jaw corner round the chin to the left one


def head_mask(image: np.ndarray, landmarks_px: np.ndarray, person: np.ndarray | None = None) -> np.ndarray:
    """[H, W] bool head mask of `image` ([H, W, 3] uint8 RGB) from its [478, 2+] landmarks (pixels).

    `person`: [H, W] person probabilities of the same image (`capture.segmentation`), or None.
    """
    h, w = image.shape[:2]
    oval = landmarks_px[LANDMARK_GROUPS["face_oval"], :2].astype(np.float32)
    seeds = np.full((h, w), cv2.GC_PR_BGD, np.uint8)
    centre, axes = head_ellipse(oval)
    cv2.ellipse(seeds, tuple(centre.astype(int).tolist()), tuple(axes.astype(int).tolist()), 0, 0, 360,
                cv2.GC_PR_FGD, -1)
    if person is not None:
        seeds[person < NOT_PERSON] = cv2.GC_BGD
        seeds[(seeds == cv2.GC_PR_FGD) & (person > SURE_PERSON)] = cv2.GC_FGD
    inner = (oval - oval.mean(0)) * 0.9 + oval.mean(0)
    cv2.fillPoly(seeds, [np.round(inner).astype(np.int32)], cv2.GC_FGD)
    border = max(2, min(h, w) // 64)
    seeds[:border], seeds[-border:], seeds[:, :border], seeds[:, -border:] = (cv2.GC_BGD,) * 4
    below = _below_jaw(oval, h, w)
    seeds[below] = cv2.GC_BGD
    background, foreground = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.grabCut(cv2.cvtColor(image, cv2.COLOR_RGB2BGR), seeds, None, background, foreground, GRABCUT_ITERATIONS,
                cv2.GC_INIT_WITH_MASK)
    mask = ((seeds == cv2.GC_FGD) | (seeds == cv2.GC_PR_FGD)) & ~below
    if person is not None:
        mask &= (person >= PERSON) | (seeds == cv2.GC_FGD)  # the face inside its oval stays, whatever it says
    return _largest_region(mask)


def head_ellipse(oval_px: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The head around a face oval ([K, 2], y down): the ellipse's centre [2] and semi-axes [2],
    HEAD_WIDTH ovals wide, from HEAD_TOP above the oval to CHIN_MARGIN below it."""
    (x0, y0), (x1, y1) = oval_px.min(0), oval_px.max(0)
    top, bottom = y0 - HEAD_TOP * (y1 - y0), y1 + CHIN_MARGIN * (y1 - y0)
    return np.array([(x0 + x1) / 2, (top + bottom) / 2]), np.array([HEAD_WIDTH * (x1 - x0) / 2, (bottom - top) / 2])


def _below_jaw(oval: np.ndarray, h: int, w: int) -> np.ndarray:
    """[H, W] True below the jaw line, which runs out from the jaw's corners along the line
    between them (the head's left-right axis in the image)."""
    jaw = oval[_JAW]
    across = jaw[-1] - jaw[0]
    if across[0] < 0:
        across = -across
    across /= max(float(np.linalg.norm(across)), 1e-6)
    down = np.array([-across[1], across[0]])  # image y points down
    u, v = jaw @ across, jaw @ down
    order = np.argsort(u)
    ys, xs = np.mgrid[0:h, 0:w] + 0.5
    pixels_u, pixels_v = xs * across[0] + ys * across[1], xs * down[0] + ys * down[1]
    return pixels_v > np.interp(pixels_u, u[order], v[order], left=v[order[0]], right=v[order[-1]])


def _largest_region(mask: np.ndarray) -> np.ndarray:
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=4)
    if count <= 1:
        return mask
    return labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))


def head_box(mask: np.ndarray, margin_px: int = 8) -> tuple[slice, slice]:
    """Row and column slices of the mask's bounding box, grown by `margin_px`."""
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    if not len(rows):
        return slice(None), slice(None)
    h, w = mask.shape
    return (slice(max(0, rows[0] - margin_px), min(h, rows[-1] + 1 + margin_px)),
            slice(max(0, cols[0] - margin_px), min(w, cols[-1] + 1 + margin_px)))
