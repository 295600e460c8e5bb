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
the mean (u, v) and the conic (a, b, c). The chain on to 3D means and covariances is the
projection's, left to torch (`render.differentiable`).
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

from render.cpu import (_A, _B, _BLOCK_PX, _BLOCKS_X, _BLUE, _C, _END_AT, _FAST, _G, _LANES, _OPACITY, _R, _SUPPORT,
                        _T_AT, _TILE_PIXELS, _U, _V, TILE_PX, RasterState, _claim, _exp_nonpositive)
from render.gaussians import MAX_ALPHA, MIN_ALPHA

# Gradient columns per Gaussian: mean (u, v) px, conic (a, b, c), opacity, RGB.
GRAD_U, GRAD_V, GRAD_A, GRAD_B, GRAD_C, GRAD_OPACITY, GRAD_R, GRAD_G, GRAD_BLUE = range(9)
NUM_GRADS = 9


@njit(cache=True, fastmath=_FAST)
def _backward_tile(tile: int, params: np.ndarray, boxes: np.ndarray, starts: np.ndarray, tile_list: np.ndarray,
                   tile_pixels: np.ndarray, tile_ends: np.ndarray, tiles_x: int, width: int, height: int,
                   grad_image: np.ndarray, background: np.ndarray, grads: np.ndarray) -> None:
    """Add one tile's pixels' gradients into `grads` [N, NUM_GRADS] (float64: many small terms)."""
    ox, oy = (tile % tiles_x) * TILE_PX, (tile // tiles_x) * TILE_PX
    last_x, last_y = min(ox + TILE_PX, width) - 1, min(oy + TILE_PX, height) - 1
    first = starts[tile]
    for p in range(_TILE_PIXELS):
        block, lane = p // _LANES, p % _LANES
        bx, by = block % _BLOCKS_X, block // _BLOCKS_X
        x = ox + bx * _BLOCK_PX + lane % _BLOCK_PX
        y = oy + by * _BLOCK_PX + lane // _BLOCK_PX
        if x > last_x or y > last_y:
            continue
        t_final = np.float64(tile_pixels[tile, _T_AT + p])
        end = tile_ends[tile, p]
        g_r, g_g, g_b = grad_image[y, x, 0], grad_image[y, x, 1], grad_image[y, x, 2]
        # What the pixel's T after everything is worth: background colour, and alpha = 1 - T.
        g_t_final = g_r * background[0] + g_g * background[1] + g_b * background[2] - grad_image[y, x, 3]
        t = t_final
        s_r = s_g = s_b = 0.0
        # The forward's own arithmetic (block corner, then lane offset), so alpha matches it bit for bit.
        corner_x, corner_y = np.float32(ox + bx * _BLOCK_PX + 0.5), np.float32(oy + by * _BLOCK_PX + 0.5)
        lane_x, lane_y = np.float32(lane % _BLOCK_PX), np.float32(lane // _BLOCK_PX)
        for k in range(end - 1, first - 1, -1):
            g = tile_list[k]
            # The forward visits a Gaussian only in the 4x4 blocks its box overlaps.
            if not ((max(boxes[g, 0], ox) - ox) // _BLOCK_PX <= bx <= (min(boxes[g, 1], last_x) - ox) // _BLOCK_PX
                    and (max(boxes[g, 2], oy) - oy) // _BLOCK_PX <= by <= (min(boxes[g, 3], last_y) - oy) // _BLOCK_PX):
                continue
            dx, dy = lane_x + (corner_x - params[g, _U]), lane_y + (corner_y - params[g, _V])
            a, b, c = params[g, _A], params[g, _B], params[g, _C]
            power = dx * (np.float32(-0.5) * a * dx - b * dy) + np.float32(-0.5) * c * dy * dy
            if power < np.float32(-0.5) * params[g, _SUPPORT] - np.float32(1.0):
                continue  # outside the support (the forward clamps there, to alpha < MIN_ALPHA)
            gauss = _exp_nonpositive(min(power, np.float32(0.0)))
            raw = params[g, _OPACITY] * gauss
            alpha = min(np.float32(MAX_ALPHA), raw)
            if alpha < np.float32(MIN_ALPHA):
                continue
            one_minus = 1.0 - np.float64(alpha)
            t = t / one_minus   # T_i, transmittance in front of this Gaussian
            red, green, blue = params[g, _R], params[g, _G], params[g, _BLUE]
            weight = np.float64(alpha) * t
            grads[g, GRAD_R] += weight * g_r
            grads[g, GRAD_G] += weight * g_g
            grads[g, GRAD_BLUE] += weight * g_b
            g_alpha = t * ((red - s_r) * g_r + (green - s_g) * g_g + (blue - s_b) * g_b) \
                - g_t_final * t_final / one_minus
            s_r = alpha * red + one_minus * s_r
            s_g = alpha * green + one_minus * s_g
            s_b = alpha * blue + one_minus * s_b
            if raw >= np.float32(MAX_ALPHA):
                continue
            grads[g, GRAD_OPACITY] += g_alpha * gauss
            g_power = g_alpha * alpha
            grads[g, GRAD_U] += g_power * (a * dx + b * dy)
            grads[g, GRAD_V] += g_power * (b * dx + c * dy)
            grads[g, GRAD_A] += g_power * (-0.5 * dx * dx)
            grads[g, GRAD_B] += g_power * (-dx * dy)
            grads[g, GRAD_C] += g_power * (-0.5 * dy * dy)


@njit(cache=True, parallel=True)
def _backward(params: np.ndarray, boxes: np.ndarray, starts: np.ndarray, tile_list: np.ndarray,
              tile_pixels: np.ndarray, tile_ends: np.ndarray, tiles_x: int, width: int, height: int,
              grad_image: np.ndarray, background: np.ndarray, grads: np.ndarray, workers: int,
              counter: np.ndarray) -> None:
    """Every tile's gradients; worker w accumulates into grads[w] (no two threads share a row)."""
    num_tiles = len(starts) - 1
    for w in prange(workers):
        tile = _claim(counter)
        while tile < num_tiles:
            _backward_tile(tile, params, boxes, starts, tile_list, tile_pixels, tile_ends, tiles_x, width, height,
                           grad_image, background, grads[w])
            tile = _claim(counter)


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
    _backward(state.params, state.boxes, state.tile_starts, state.tile_list, state.tile_pixels,
              state.tile_pixels.view(np.int32)[:, _END_AT:], tiles_x, state.width, state.height,
              np.ascontiguousarray(grad_image, dtype=np.float32), np.asarray(background, dtype=np.float32), grads,
              workers, np.zeros(1, dtype=np.int64))
    return grads.sum(axis=0)
