"""The `cpu` backend's backward pass: gradients of a rendered image with respect to each
Gaussian's screen-space parameters, retracing the forward's tiles (numba).

For one pixel, with Gaussians i = 1..n front to back, alpha_i = min(MAX_ALPHA, o_i exp(s_i)),
s_i = -(a dx^2 + 2 b dx dy + c dy^2) / 2 (dx = x - u_i, dy = y - v_i), T_1 = 1,
T_{i+1} = T_i (1 - alpha_i), the output is C = sum_i c_i alpha_i T_i + T_{n+1} bg and
A = 1 - T_{n+1}. Walking back from T_{n+1} (kept by the forward) with
S_i = sum_{j>i} c_j alpha_j T_j / T_{i+1} (the colour behind i, as seen just behind it):

    dC/dc_i = alpha_i T_i
    dC/dalpha_i = T_i (c_i - S_i) - T_{n+1} bg / (1 - alpha_i),   dA/dalpha_i = T_{n+1} / (1 - alpha_i)
    S_{i-1} = alpha_i c_i + (1 - alpha_i) S_i

then through alpha to o and s (zero where alpha is clamped at MAX_ALPHA), and through s to
the mean (u, v) and the conic (a, b, c). `projection_backward` carries those on through the
EWA projection to each Gaussian's 3D mean, rotation and scale.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

from avatar import Camera
from render.cpu import (_A, _B, _BLOCK_PX, _BLOCKS, _BLOCKS_X, _BLUE, _C, _END_AT, _FAST, _G, _LANES, _OPACITY, _R, _SUPPORT,
                        _T_AT, _TILE_PIXELS, _U, _V, TILE_PX, RasterState, _claim, _exp_nonpositive, _lane_offsets)
from render.gaussians import DILATION_PX2, MAX_ALPHA, MIN_ALPHA, NEAR_CM

# Gradient columns per Gaussian: mean (u, v) px, conic (a, b, c), opacity, RGB.
GRAD_U, GRAD_V, GRAD_A, GRAD_B, GRAD_C, GRAD_OPACITY, GRAD_R, GRAD_G, GRAD_BLUE = range(9)
NUM_GRADS = 9
# Where each per-pixel backward quantity starts in a tile's scratch buffer.
_S_R, _S_G, _S_B, _G_R, _G_G, _G_B, _G_FINAL = (np.uint64(i * _TILE_PIXELS) for i in range(1, 8))


# error_model="numpy": a float division by zero gives inf instead of raising, so the lane
# loop's divisions (by 1 - alpha > 0) carry no exception branch that would stop it vectorizing.
@njit(cache=True, fastmath=_FAST, error_model="numpy")
def _backward_tile(tile: int, params: np.ndarray, boxes: np.ndarray, starts: np.ndarray, tile_list: np.ndarray,
                   tile_pixels: np.ndarray, tile_ends: np.ndarray, tiles_x: int, width: int, height: int,
                   grad_image: np.ndarray, background: np.ndarray, grads: np.ndarray, state: np.ndarray,
                   ends: np.ndarray, lane_dx: np.ndarray, lane_dy: np.ndarray, block_end: np.ndarray) -> None:
    """Add one tile's gradients into `grads` [N, NUM_GRADS].

    Walks the tile's list back to front in the forward's layout: a Gaussian visits the 4x4 blocks
    its box overlaps (skipping blocks whose pixels all ended before it) and evaluates the 16 lanes
    branch-free, so the lane loop vectorizes as the forward's does.

    Args:
        state: [8 * 256] float32 scratch per pixel, in one buffer (one base pointer, as in the forward):
            T, colour behind (3), dL/dRGB (3), dL/dT_final x T_final, at the `_T`.. `_G_FINAL` offsets.
        ends: [256] int32 scratch; lane_dx, lane_dy: [16] lane offsets; block_end: [16] int64 scratch.
    """
    ox, oy = (tile % tiles_x) * TILE_PX, (tile // tiles_x) * TILE_PX
    last_x, last_y = min(ox + TILE_PX, width) - 1, min(oy + TILE_PX, height) - 1
    first = starts[tile]
    latest = first
    for block in range(_BLOCKS):
        block_end[block] = first
        for lane in range(_LANES):
            p = np.uint64(block * _LANES + lane)
            x = ox + (block % _BLOCKS_X) * _BLOCK_PX + lane % _BLOCK_PX
            y = oy + (block // _BLOCKS_X) * _BLOCK_PX + lane // _BLOCK_PX
            state[p + _S_R] = state[p + _S_G] = state[p + _S_B] = np.float32(0.0)
            if x > last_x or y > last_y:
                ends[p] = first   # padding: never active
                state[p] = np.float32(1.0)
                state[p + _G_R] = state[p + _G_G] = state[p + _G_B] = state[p + _G_FINAL] = np.float32(0.0)
                continue
            ends[p] = tile_ends[tile, p]
            t_final = tile_pixels[tile, _T_AT + p]
            state[p] = t_final
            red, green, blue = grad_image[y, x, 0], grad_image[y, x, 1], grad_image[y, x, 2]
            state[p + _G_R], state[p + _G_G], state[p + _G_B] = red, green, blue
            # What the pixel's final T is worth: the background shows through it, and alpha = 1 - T.
            state[p + _G_FINAL] = t_final * (red * background[0] + green * background[1] + blue * background[2]
                                             - grad_image[y, x, 3])
            block_end[block] = max(block_end[block], ends[p])
        latest = max(latest, block_end[block])
    for k in range(latest - 1, first - 1, -1):
        g = tile_list[k]
        u, v = params[g, _U], params[g, _V]
        a, b, c = params[g, _A], params[g, _B], params[g, _C]
        half_a, half_c = np.float32(-0.5) * a, np.float32(-0.5) * c
        opacity = params[g, _OPACITY]
        lowest = np.float32(-0.5) * params[g, _SUPPORT] - np.float32(1.0)
        red, green, blue = params[g, _R], params[g, _G], params[g, _BLUE]
        acc_u = acc_v = acc_a = acc_b = acc_c = acc_o = acc_r = acc_g = acc_bl = np.float32(0.0)
        k32 = np.int32(k)
        for by in range((max(boxes[g, 2], oy) - oy) // _BLOCK_PX, (min(boxes[g, 3], last_y) - oy) // _BLOCK_PX + 1):
            for bx in range((max(boxes[g, 0], ox) - ox) // _BLOCK_PX, (min(boxes[g, 1], last_x) - ox) // _BLOCK_PX + 1):
                block = by * _BLOCKS_X + bx
                if k >= block_end[block]:
                    continue
                dx0 = np.float32(ox + bx * _BLOCK_PX + 0.5) - u
                dy0 = np.float32(oy + by * _BLOCK_PX + 0.5) - v
                base = np.uint64(block * _LANES)
                for lane in range(np.uint64(_LANES)):
                    p = base + lane
                    dx, dy = lane_dx[lane] + dx0, lane_dy[lane] + dy0
                    power = max(dx * (half_a * dx - b * dy) + half_c * dy * dy, lowest)
                    gauss = _exp_nonpositive(power)
                    raw = opacity * gauss
                    alpha = min(np.float32(MAX_ALPHA), raw)
                    valid = (k32 < ends[p]) & (alpha >= np.float32(MIN_ALPHA))
                    one_minus = np.float32(1.0) - alpha
                    t_here = state[p] / one_minus if valid else state[p]   # T in front of this Gaussian
                    weight = alpha * t_here if valid else np.float32(0.0)
                    acc_r += weight * state[p + _G_R]
                    acc_g += weight * state[p + _G_G]
                    acc_bl += weight * state[p + _G_B]
                    g_alpha = t_here * ((red - state[p + _S_R]) * state[p + _G_R] + (green - state[p + _S_G]) * state[p + _G_G]
                                        + (blue - state[p + _S_B]) * state[p + _G_B]) - state[p + _G_FINAL] / one_minus
                    state[p + _S_R] = alpha * red + one_minus * state[p + _S_R] if valid else state[p + _S_R]
                    state[p + _S_G] = alpha * green + one_minus * state[p + _S_G] if valid else state[p + _S_G]
                    state[p + _S_B] = alpha * blue + one_minus * state[p + _S_B] if valid else state[p + _S_B]
                    state[p] = t_here
                    unclamped = valid & (raw < np.float32(MAX_ALPHA))
                    g_power = g_alpha * alpha if unclamped else np.float32(0.0)
                    acc_o += g_alpha * gauss if unclamped else np.float32(0.0)
                    acc_u += g_power * (a * dx + b * dy)
                    acc_v += g_power * (b * dx + c * dy)
                    acc_a += g_power * dx * dx
                    acc_b += g_power * dx * dy
                    acc_c += g_power * dy * dy
        grads[g, GRAD_U] += acc_u
        grads[g, GRAD_V] += acc_v
        grads[g, GRAD_A] -= 0.5 * acc_a
        grads[g, GRAD_B] -= acc_b
        grads[g, GRAD_C] -= 0.5 * acc_c
        grads[g, GRAD_OPACITY] += acc_o
        grads[g, GRAD_R] += acc_r
        grads[g, GRAD_G] += acc_g
        grads[g, GRAD_BLUE] += acc_bl


@njit(cache=True, parallel=True)
def _backward(params: np.ndarray, boxes: np.ndarray, starts: np.ndarray, tile_list: np.ndarray,
              tile_order: np.ndarray, tile_pixels: np.ndarray, tile_ends: np.ndarray, tiles_x: int, width: int,
              height: int, grad_image: np.ndarray, background: np.ndarray, grads: np.ndarray, workers: int,
              counter: np.ndarray) -> None:
    """Every tile's gradients; worker w accumulates into grads[w] (no two threads share a row).

    Tiles are claimed heaviest first (`tile_order`), as in the forward: the longest must not come last.
    """
    for w in prange(workers):
        state = np.empty(8 * _TILE_PIXELS, dtype=np.float32)
        ends = np.empty(_TILE_PIXELS, dtype=np.int32)
        lane_dx, lane_dy = _lane_offsets()
        block_end = np.empty(_BLOCKS, dtype=np.int64)
        i = _claim(counter)
        while i < len(tile_order):
            _backward_tile(tile_order[i], params, boxes, starts, tile_list, tile_pixels, tile_ends, tiles_x, width,
                           height, grad_image, background, grads[w], state, ends, lane_dx, lane_dy, block_end)
            i = _claim(counter)


def raster_backward(state: RasterState, grad_image: np.ndarray, background: tuple[float, float, float]) -> np.ndarray:
    """Gradients of sum(grad_image * image) for the frame `state` describes.

    Args:
        state: the `CpuRenderer.state` of the forward render (before any other render).
        grad_image: [H, W, 4] float32, dL/d(RGBA) of the rendered image.
        background: the forward's background RGB.
    Returns:
        [N, NUM_GRADS] float64: dL/d(u, v, a, b, c, opacity, r, g, b) per Gaussian (zero for culled ones).
    """
    n = len(state.params)
    workers = numba.get_num_threads()
    grads = np.zeros((workers, n, NUM_GRADS))
    tiles_x = -(-state.width // TILE_PX)
    tile_order = np.argsort(-np.diff(state.tile_starts)).astype(np.int32)
    _backward(state.params, state.boxes, state.tile_starts, state.tile_list, tile_order, state.tile_pixels,
              state.tile_pixels.view(np.int32)[:, _END_AT:], tiles_x, state.width, state.height,
              np.ascontiguousarray(grad_image, dtype=np.float32), np.asarray(background, dtype=np.float32), grads,
              workers, np.zeros(1, dtype=np.int64))
    return grads.sum(axis=0)


@njit(cache=True, parallel=True)
def _projection_backward(view: np.ndarray, fx: float, fy: float, means: np.ndarray, rotations: np.ndarray,
                         scales: np.ndarray, grads: np.ndarray, grad_means: np.ndarray, grad_rotations: np.ndarray,
                         grad_scales: np.ndarray) -> None:
    """The EWA projection's chain rule per Gaussian (see `projection_backward`); float64 throughout.

    With p = W m + t (view: [3, 4] = [W | t]), d = -p_z, J = [[fx/d, 0, fx p_x/d^2],
    [0, -fy/d, -fy p_y/d^2]], A = J W and e_k = A r_k s_k (r_k the k-th column of the
    rotation): cov2d = sum_k e_k e_k^T + DILATION_PX2 I, conic = (s11, -s01, s00) / det,
    (u, v) = (cx + fx p_x/d, cy - fy p_y/d).
    """
    for i in prange(len(means)):
        m0, m1, m2 = means[i, 0], means[i, 1], means[i, 2]
        px = view[0, 0] * m0 + view[0, 1] * m1 + view[0, 2] * m2 + view[0, 3]
        py = view[1, 0] * m0 + view[1, 1] * m1 + view[1, 2] * m2 + view[1, 3]
        d = -(view[2, 0] * m0 + view[2, 1] * m1 + view[2, 2] * m2 + view[2, 3])
        if not d > NEAR_CM:
            continue  # culled: the forward drew nothing, the gradients stay zero
        j00, j02, j11, j12 = fx / d, fx * px / d**2, -fy / d, -fy * py / d**2
        a = np.empty((2, 3))
        for c in range(3):
            a[0, c] = j00 * view[0, c] + j02 * view[2, c]
            a[1, c] = j11 * view[1, c] + j12 * view[2, c]
        w = np.empty((2, 3))  # w[:, k] = A r_k
        s00, s01, s11 = DILATION_PX2, 0.0, DILATION_PX2
        for k in range(3):
            for row in range(2):
                w[row, k] = a[row, 0] * rotations[i, 0, k] + a[row, 1] * rotations[i, 1, k] \
                    + a[row, 2] * rotations[i, 2, k]
            e0, e1 = w[0, k] * scales[i, k], w[1, k] * scales[i, k]
            s00 += e0 * e0
            s01 += e0 * e1
            s11 += e1 * e1
        det = s00 * s11 - s01 * s01
        ga, gb, gc = grads[i, GRAD_A], grads[i, GRAD_B], grads[i, GRAD_C]
        q = (ga * s11 - gb * s01 + gc * s00) / det**2
        g00, g11, g01 = gc / det - q * s11, ga / det - q * s00, (2.0 * q * s01 * det - gb) / det
        ga_ = np.zeros((2, 3))  # dL/dA
        for k in range(3):
            s = scales[i, k]
            e0, e1 = w[0, k] * s, w[1, k] * s
            ge0, ge1 = 2.0 * g00 * e0 + g01 * e1, 2.0 * g11 * e1 + g01 * e0
            grad_scales[i, k] = w[0, k] * ge0 + w[1, k] * ge1
            for c in range(3):
                r = rotations[i, c, k]
                ga_[0, c] += ge0 * r * s
                ga_[1, c] += ge1 * r * s
                grad_rotations[i, c, k] = s * (a[0, c] * ge0 + a[1, c] * ge1)
        # dL/dJ = dL/dA W^T, only the four entries J depends on.
        gj00 = ga_[0, 0] * view[0, 0] + ga_[0, 1] * view[0, 1] + ga_[0, 2] * view[0, 2]
        gj02 = ga_[0, 0] * view[2, 0] + ga_[0, 1] * view[2, 1] + ga_[0, 2] * view[2, 2]
        gj11 = ga_[1, 0] * view[1, 0] + ga_[1, 1] * view[1, 1] + ga_[1, 2] * view[1, 2]
        gj12 = ga_[1, 0] * view[2, 0] + ga_[1, 1] * view[2, 1] + ga_[1, 2] * view[2, 2]
        gu, gv = grads[i, GRAD_U], grads[i, GRAD_V]
        gpx = gj02 * fx / d**2 + gu * fx / d
        gpy = -gj12 * fy / d**2 - gv * fy / d
        gd = (-gj00 * fx / d**2 - 2.0 * gj02 * fx * px / d**3 + gj11 * fy / d**2 + 2.0 * gj12 * fy * py / d**3
              - gu * fx * px / d**2 + gv * fy * py / d**2)
        gpz = -gd
        for c in range(3):
            grad_means[i, c] = view[0, c] * gpx + view[1, c] * gpy + view[2, c] * gpz


def projection_backward(camera: Camera, means: np.ndarray, rotations: np.ndarray, scales: np.ndarray,
                        grads: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Carry screen-space gradients back through the EWA projection to 3D.

    Args:
        means: [N, 3] cm; rotations: [N, 3, 3] (columns = local axes); scales: [N, 3] cm.
        grads: [N, NUM_GRADS] from `raster_backward` (its u, v, a, b, c columns are used).
    Returns:
        float64 dL/d(means) [N, 3], dL/d(rotations) [N, 3, 3], dL/d(scales) [N, 3]; zero for
        Gaussians behind the near plane. Matches autograd through `render.reference.project`.
    """
    n = len(means)
    grad_means, grad_rotations, grad_scales = np.zeros((n, 3)), np.zeros((n, 3, 3)), np.zeros((n, 3))
    _projection_backward(camera.world_to_camera[:3].astype(np.float64), float(camera.fx_px), float(camera.fy_px),
                         np.ascontiguousarray(means, np.float64), np.ascontiguousarray(rotations, np.float64),
                         np.ascontiguousarray(scales, np.float64), np.ascontiguousarray(grads, np.float64),
                         grad_means, grad_rotations, grad_scales)
    return grad_means, grad_rotations, grad_scales
