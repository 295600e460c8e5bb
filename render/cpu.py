"""The `cpu` backend: a numba tile rasterizer of the splatting equations in `render.gaussians`.

Four stages, as in 3DGS: project each Gaussian to a conic and a pixel box; sort by depth and
bin into 16x16-pixel tiles; composite every tile's pixels front to back, tiles in parallel;
add the background. Per-tile lists, final transmittance and the end of each pixel's
contributing run are kept (`CpuRenderer.state`) for a backward pass to walk back through.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numba
import numpy as np
from numba import njit, prange
from numba.core import cgutils, types
from numba.extending import intrinsic

from avatar import Camera
from render.gaussians import DILATION_PX2, MAX_ALPHA, MIN_ALPHA, MIN_TRANSMITTANCE, NEAR_CM, Gaussians
from render.renderer import Background, Renderer

TILE_PX = 16
_BLOCK_PX = 4  # a tile is 4x4 blocks of 4x4 pixels; a block's 16 pixels are the raster's SIMD lanes
_BLOCKS_X = TILE_PX // _BLOCK_PX
_BLOCKS = _BLOCKS_X * _BLOCKS_X
_LANES = _BLOCK_PX * _BLOCK_PX
_TILE_PIXELS = TILE_PX * TILE_PX
# Where each per-pixel quantity of a tile starts in its raster state: T, R, G, B, end.
_T_AT, _RED_AT, _GREEN_AT, _BLUE_AT, _END_AT = (i * _TILE_PIXELS for i in range(5))
_TILE_STATE = 5 * _TILE_PIXELS
_RADIX_BITS = 11
_PROJECT_CHUNK = 1024  # Gaussians per claimed work item
_BIN_CHUNKS = 8  # work items of tile binning: a few per thread
# Per-Gaussian float32 parameters the raster stage reads, one row each.
_U, _V, _A, _B, _C, _OPACITY, _SUPPORT, _R, _G, _BLUE = range(10)
_NUM_PARAMS = _BLUE + 1
# Fast math without `nnan`/`ninf`: culling tests must still see NaN and inf for what they are.
_FAST = {"nsz", "arcp", "contract", "afn", "reassoc"}


@intrinsic
def _claim(typingctx, counter):
    """The next work item of a parallel loop: atomically counter[0] += 1, returning the old value.

    prange hands every thread a fixed share up front, so on cores other processes use too, a
    thread the OS does not run holds up the whole frame. Threads that claim items as they go
    (`for _ in prange(workers)`, then claim until the items run out) share the work among
    whichever are running. counter: [1] int64, zero before the loop.
    """
    if not (isinstance(counter, types.Array) and counter.dtype == types.int64 and counter.ndim == 1):
        return None

    def codegen(context, builder, signature, args):
        array = context.make_array(signature.args[0])(context, builder, args[0])
        first = cgutils.get_item_pointer(context, builder, signature.args[0], array, [context.get_constant(types.intp, 0)])
        return builder.atomic_rmw("add", first, context.get_constant(types.int64, 1), "monotonic")

    return types.int64(counter), codegen


@njit(cache=True, inline="always")
def _project_one(i: int, view: np.ndarray, fx: float, fy: float, cx: float, cy: float, width: int, height: int,
                 means: np.ndarray, rotations: np.ndarray, scales: np.ndarray, opacities: np.ndarray,
                 colors: np.ndarray, params: np.ndarray, boxes: np.ndarray, depths: np.ndarray) -> None:
    """Project Gaussian i; see `_project`. view: [3, 4] world-to-camera rows."""
    boxes[i, 0], boxes[i, 1] = 1, 0
    m0, m1, m2 = np.float64(means[i, 0]), np.float64(means[i, 1]), np.float64(means[i, 2])
    px = view[0, 0] * m0 + view[0, 1] * m1 + view[0, 2] * m2 + view[0, 3]
    py = view[1, 0] * m0 + view[1, 1] * m1 + view[1, 2] * m2 + view[1, 3]
    depth = -(view[2, 0] * m0 + view[2, 1] * m1 + view[2, 2] * m2 + view[2, 3])
    depths[i] = depth
    opacity = np.float64(opacities[i])
    if not (depth > NEAR_CM and opacity >= MIN_ALPHA):
        return
    # Rows of J R, with J the projection's Jacobian; cov2d = (J R M)(J R M)^T for M = rot * scale.
    j00, j02 = fx / depth, fx * px / depth**2
    j11, j12 = -fy / depth, -fy * py / depth**2
    s00 = s01 = s11 = 0.0
    for k in range(3):
        r0, r1, r2 = rotations[i, 0, k], rotations[i, 1, k], rotations[i, 2, k]
        e0 = (j00 * (view[0, 0] * r0 + view[0, 1] * r1 + view[0, 2] * r2)
              + j02 * (view[2, 0] * r0 + view[2, 1] * r1 + view[2, 2] * r2)) * scales[i, k]
        e1 = (j11 * (view[1, 0] * r0 + view[1, 1] * r1 + view[1, 2] * r2)
              + j12 * (view[2, 0] * r0 + view[2, 1] * r1 + view[2, 2] * r2)) * scales[i, k]
        s00 += e0 * e0
        s01 += e0 * e1
        s11 += e1 * e1
    s00 += DILATION_PX2
    s11 += DILATION_PX2
    det = s00 * s11 - s01 * s01
    u = cx + fx * px / depth
    v = cy - fy * py / depth
    support = 2.0 * math.log(opacity / MIN_ALPHA)
    half_w, half_h = math.sqrt(support * s00), math.sqrt(support * s11)
    # Pixel centres x + 0.5 inside [u - half_w, u + half_w]. Clamped as floats (np.ceil, not
    # math.ceil, which returns an int): inf and huge values never reach an int, and NaN fails the test below.
    x0 = max(np.ceil(u - half_w - 0.5), 0.0)
    x1 = min(np.floor(u + half_w - 0.5), width - 1.0)
    y0 = max(np.ceil(v - half_h - 0.5), 0.0)
    y1 = min(np.floor(v + half_h - 0.5), height - 1.0)
    if not (x0 <= x1 and y0 <= y1 and det > 0.0):
        return
    boxes[i, 0], boxes[i, 1], boxes[i, 2], boxes[i, 3] = int(x0), int(x1), int(y0), int(y1)
    params[i, _U], params[i, _V] = u, v
    params[i, _A], params[i, _B], params[i, _C] = s11 / det, -s01 / det, s00 / det
    params[i, _OPACITY], params[i, _SUPPORT] = opacity, support
    params[i, _R], params[i, _G], params[i, _BLUE] = colors[i, 0], colors[i, 1], colors[i, 2]


@njit(cache=True, parallel=True)
def _project(camera_to_world: np.ndarray, fx: float, fy: float, cx: float, cy: float, width: int, height: int,
             means: np.ndarray, rotations: np.ndarray, scales: np.ndarray, opacities: np.ndarray,
             colors: np.ndarray, params: np.ndarray, boxes: np.ndarray, depths: np.ndarray,
             workers: int, counter: np.ndarray) -> None:
    """EWA projection and pixel boxes (steps 1-3 of `render.gaussians`), in float64 internally.

    Args:
        camera_to_world: [4, 4] rigid camera pose (inverted here as `Camera.world_to_camera`
            does, without its numpy matmul: BLAS threads would then spin on the cores the
            raster needs); means: [N, 3]; rotations: [N, 3, 3]; scales: [N, 3];
            opacities: [N]; colors: [N, 3] (float32).
        params: [N, _NUM_PARAMS] out: mean (u, v) px, conic (a, b, c), opacity, support
            2 ln(o / MIN_ALPHA) (the largest Mahalanobis q with alpha >= MIN_ALPHA), RGB.
        boxes: [N, 4] out: inclusive pixel box x0, x1, y0, y1 of the support ellipse; x0 > x1
            marks a culled Gaussian (behind the near plane, too faint, or off screen).
        depths: [N] out: distance in front of the camera, cm.
        workers, counter: threads, and their `_claim` counter.
    """
    view = np.empty((3, 4))
    for row in range(3):
        for col in range(3):
            view[row, col] = camera_to_world[col, row]
        view[row, 3] = -(camera_to_world[0, row] * camera_to_world[0, 3] + camera_to_world[1, row] * camera_to_world[1, 3]
                         + camera_to_world[2, row] * camera_to_world[2, 3])
    n = len(means)
    for _ in prange(workers):
        chunk = _claim(counter)
        while chunk * _PROJECT_CHUNK < n:
            for i in range(chunk * _PROJECT_CHUNK, min((chunk + 1) * _PROJECT_CHUNK, n)):
                _project_one(i, view, fx, fy, cx, cy, width, height, means, rotations, scales, opacities, colors,
                             params, boxes, depths)
            chunk = _claim(counter)


@njit(cache=True)
def _depth_order(boxes: np.ndarray, depth_bits: np.ndarray, order: np.ndarray, scratch: np.ndarray,
                 keys: np.ndarray, scratch_keys: np.ndarray) -> int:
    """The kept Gaussians by increasing depth, ties by lower index: a stable LSD radix sort.

    Args:
        boxes: [N, 4] from `_project`; depth_bits: [N] uint64, the float64 depths' bits (kept
            depths are positive, and positive floats order as their bits do).
        order: [N] int32 out; scratch: [N] int32; keys, scratch_keys: [N] uint64 scratch.
    Returns:
        M, the number of kept Gaussians; `order[:M]` holds their indices sorted.
    """
    m = 0
    for i in range(len(boxes)):
        if boxes[i, 0] <= boxes[i, 1]:
            keys[m] = depth_bits[i]
            order[m] = i
            m += 1
    radix = 1 << _RADIX_BITS
    counts = np.empty(radix, dtype=np.int64)
    src_keys, dst_keys, src, dst = keys, scratch_keys, order, scratch
    passes = 0
    for shift in range(0, 64, _RADIX_BITS):
        counts[:] = 0
        for j in range(m):
            counts[(src_keys[j] >> shift) & (radix - 1)] += 1
        if counts.max() == m:
            continue  # every key shares this digit (depths span a narrow range): nothing would move
        total = 0
        for d in range(radix):
            counts[d], total = total, total + counts[d]
        for j in range(m):  # in input order, so equal digits keep their order: stable
            d = (src_keys[j] >> shift) & (radix - 1)
            dst_keys[counts[d]] = src_keys[j]
            dst[counts[d]] = src[j]
            counts[d] += 1
        src_keys, dst_keys, src, dst = dst_keys, src_keys, dst, src
        passes += 1
    if passes % 2 == 1:
        order[:m] = src[:m]
    return m


@njit(cache=True, parallel=True)
def _count_tiles(boxes: np.ndarray, order: np.ndarray, m: int, tiles_x: int, rects: np.ndarray,
                 counts: np.ndarray, workers: int, counter: np.ndarray) -> None:
    """Tile rectangles and tile-list lengths of the depth-sorted Gaussians, by chunks of them.

    Args:
        boxes: [N, 4] from `_project`; order: [>= M] Gaussian indices by depth.
        rects: [>= M, 4] out: tiles tx0, tx1, ty0, ty1 (half-open) of order[j], so that
            `_fill_tiles` reads them in sequence rather than gathering boxes at random again.
        counts: [C, num_tiles] out: chunk c (the c-th C-th of `order[:m]`) has counts[c, t] in tile t.
        workers, counter: threads, and their `_claim` counter.
    """
    chunks = counts.shape[0]
    for _ in prange(workers):
        c = _claim(counter)
        while c < chunks:
            counts[c, :] = 0
            for j in range(c * m // chunks, (c + 1) * m // chunks):
                g = order[j]
                rects[j, 0], rects[j, 1] = boxes[g, 0] // TILE_PX, boxes[g, 1] // TILE_PX + 1
                rects[j, 2], rects[j, 3] = boxes[g, 2] // TILE_PX, boxes[g, 3] // TILE_PX + 1
                for ty in range(rects[j, 2], rects[j, 3]):
                    for tx in range(rects[j, 0], rects[j, 1]):
                        counts[c, ty * tiles_x + tx] += 1
            c = _claim(counter)


@njit(cache=True)
def _tile_starts(counts: np.ndarray, starts: np.ndarray) -> int:
    """Offsets of the tile lists, and of each chunk's part of them.

    Args:
        counts: [C, num_tiles] from `_count_tiles`; becomes where each chunk writes first.
        starts: [num_tiles + 1] out, tile t's list is tile_list[starts[t]:starts[t + 1]].
    Returns:
        The total length.
    """
    total = 0
    for t in range(counts.shape[1]):
        starts[t] = total
        for c in range(counts.shape[0]):
            counts[c, t], total = total, total + counts[c, t]
    starts[-1] = total
    return total


@njit(cache=True, parallel=True)
def _fill_tiles(rects: np.ndarray, order: np.ndarray, m: int, tiles_x: int, cursors: np.ndarray,
                tile_list: np.ndarray, workers: int, counter: np.ndarray) -> None:
    """Bin the depth-sorted Gaussians: each tile's list is front first, as chunk c's part precedes c+1's.

    Args:
        rects: [>= M, 4] from `_count_tiles`; order: [>= M] Gaussian indices by depth.
        cursors: [C, num_tiles] from `_tile_starts` (advanced in place).
        tile_list: [total] int32 out, Gaussian indices.
        workers, counter: threads, and their `_claim` counter.
    """
    chunks = cursors.shape[0]
    for _ in prange(workers):
        c = _claim(counter)
        while c < chunks:
            for j in range(c * m // chunks, (c + 1) * m // chunks):
                for ty in range(rects[j, 2], rects[j, 3]):
                    for tx in range(rects[j, 0], rects[j, 1]):
                        t = ty * tiles_x + tx
                        tile_list[cursors[c, t]] = order[j]
                        cursors[c, t] += 1
            c = _claim(counter)


@njit(cache=True, fastmath=_FAST, inline="always")
def _exp_nonpositive(x: float) -> float:
    """exp(x) for -9 < x <= 0 as exp(x / 32)^32, a degree-6 Taylor polynomial squared five times.

    Branch-free arithmetic, so the 16-lane loop that calls it vectorizes (numba has no vector
    exp); relative error < 3e-6, from float32 rounding doubled by each squaring.
    """
    y = x * np.float32(1.0 / 32.0)
    p = np.float32(1.0) + y * (np.float32(1.0) + y * (np.float32(1.0 / 2.0) + y * (np.float32(1.0 / 6.0) + y * (
        np.float32(1.0 / 24.0) + y * (np.float32(1.0 / 120.0) + y * np.float32(1.0 / 720.0))))))
    p = p * p
    p = p * p
    p = p * p
    p = p * p
    return p * p


@njit(cache=True, fastmath=_FAST, inline="always")
def _raster_tile(tile: int, params: np.ndarray, boxes: np.ndarray, starts: np.ndarray, tile_list: np.ndarray,
                 tiles_x: int, width: int, height: int, tile_pixels: np.ndarray, scratch: np.ndarray,
                 scratch_int: np.ndarray, lane_dx: np.ndarray, lane_dy: np.ndarray, block_alive: np.ndarray) -> None:
    """Composite one tile front to back (step 4 of `render.gaussians`).

    The tile is 16 blocks of 4x4 pixels, one block = 16 SIMD lanes. Each Gaussian visits the
    blocks its box overlaps and evaluates all 16 lanes branch-free; a pixel that would drop
    below MIN_TRANSMITTANCE is finished and keeps -T. Finished blocks are skipped, and the
    tile stops when every pixel is finished.

    Args:
        tile_pixels: [num_tiles, 5 * 256] out, the tile's `scratch` at the end, T made positive.
        scratch: [5 * 256] float32, the tile's pixels in block order (`RasterState`): T, R, G, B,
            then `scratch_int` [5 * 256] int32 (the same memory) holds the ends. One buffer gives
            LLVM one base pointer, so it vectorizes without runtime alias checks.
        lane_dx, lane_dy: [16] float32 offsets of a lane's pixel from its block's first pixel.
        block_alive: [16] int64 scratch, unfinished pixels per block.
    """
    ox, oy = (tile % tiles_x) * TILE_PX, (tile // tiles_x) * TILE_PX
    last_x, last_y = min(ox + TILE_PX, width) - 1, min(oy + TILE_PX, height) - 1
    alive = 0
    for block in range(_BLOCKS):
        count = 0
        for lane in range(_LANES):
            inside = (ox + (block % _BLOCKS_X) * _BLOCK_PX + lane % _BLOCK_PX <= last_x
                      and oy + (block // _BLOCKS_X) * _BLOCK_PX + lane // _BLOCK_PX <= last_y)
            scratch[_T_AT + block * _LANES + lane] = 1.0 if inside else 0.0  # outside the image: finished
            count += inside
        block_alive[block] = count
        alive += count
    scratch[_RED_AT:_END_AT] = 0.0
    scratch_int[_END_AT:] = starts[tile]
    for k in range(starts[tile], starts[tile + 1]):
        g = tile_list[k]
        u, v = params[g, _U], params[g, _V]
        half_a, b, half_c = np.float32(-0.5) * params[g, _A], params[g, _B], np.float32(-0.5) * params[g, _C]
        opacity = params[g, _OPACITY]
        # Clamping the exponent just outside the support keeps alpha < MIN_ALPHA there, and
        # keeps _exp_nonpositive inside its domain (for opacity <= 1).
        lowest = np.float32(-0.5) * params[g, _SUPPORT] - np.float32(1.0)
        red, green, blue = params[g, _R], params[g, _G], params[g, _BLUE]
        end = np.int32(k + 1)
        for by in range((max(boxes[g, 2], oy) - oy) // _BLOCK_PX, (min(boxes[g, 3], last_y) - oy) // _BLOCK_PX + 1):
            for bx in range((max(boxes[g, 0], ox) - ox) // _BLOCK_PX, (min(boxes[g, 1], last_x) - ox) // _BLOCK_PX + 1):
                block = by * _BLOCKS_X + bx
                if block_alive[block] == 0:
                    continue
                dx0 = np.float32(ox + bx * _BLOCK_PX + 0.5) - u
                dy0 = np.float32(oy + by * _BLOCK_PX + 0.5) - v
                first = np.uint64(block * _LANES)
                finished = np.float32(0.0)  # a float sum keeps the loop 8 lanes wide (an int64 one halves it)
                # Unsigned indices: numba then emits no negative-index wraparound, which would block vectorizing.
                for lane in range(np.uint64(_LANES)):
                    p = first + lane
                    dx, dy = lane_dx[lane] + dx0, lane_dy[lane] + dy0
                    power = max(dx * (half_a * dx - b * dy) + half_c * dy * dy, lowest)
                    alpha = min(np.float32(MAX_ALPHA), opacity * _exp_nonpositive(power))
                    t = scratch[p]
                    t_next = t * (np.float32(1.0) - alpha)
                    hit = (t > np.float32(0.0)) & (alpha >= np.float32(MIN_ALPHA))
                    stop = hit & (t_next < np.float32(MIN_TRANSMITTANCE))
                    blend = hit & (t_next >= np.float32(MIN_TRANSMITTANCE))
                    scratch[p] = t_next if blend else (-t if stop else t)
                    weight = alpha * t if blend else np.float32(0.0)
                    scratch[p + np.uint64(_RED_AT)] += weight * red
                    scratch[p + np.uint64(_GREEN_AT)] += weight * green
                    scratch[p + np.uint64(_BLUE_AT)] += weight * blue
                    previous_end = scratch_int[p + np.uint64(_END_AT)]
                    scratch_int[p + np.uint64(_END_AT)] = end if blend else previous_end
                    finished += np.float32(1.0) if stop else np.float32(0.0)
                block_alive[block] -= int(finished)
                alive -= int(finished)
        if alive == 0:
            break
    # Contiguous copies: the image layout is the readback's job, so tiles write no scattered rows.
    for p in range(_TILE_PIXELS):
        tile_pixels[tile, _T_AT + p] = abs(scratch[_T_AT + p])
    tile_pixels[tile, _RED_AT:] = scratch[_RED_AT:]


@njit(cache=True)
def _lane_offsets() -> tuple[np.ndarray, np.ndarray]:
    """[16] float32 x and y offsets of each SIMD lane's pixel from its 4x4 block's first pixel."""
    lane_dx = np.empty(_LANES, dtype=np.float32)
    lane_dy = np.empty(_LANES, dtype=np.float32)
    for lane in range(_LANES):
        lane_dx[lane], lane_dy[lane] = lane % _BLOCK_PX, lane // _BLOCK_PX
    return lane_dx, lane_dy


@njit(cache=True, parallel=True, fastmath=_FAST)
def _raster(params: np.ndarray, boxes: np.ndarray, starts: np.ndarray, tile_list: np.ndarray,
            tile_order: np.ndarray, tiles_x: int, width: int, height: int, tile_pixels: np.ndarray,
            workers: int, counter: np.ndarray) -> None:
    """Composite every tile; see `_raster_tile` for the arguments.

    Threads `_claim` tiles heaviest first (`tile_order`): tile costs differ by orders of
    magnitude, and the longest must not come last.
    """
    for _ in prange(workers):
        scratch = np.empty(_TILE_STATE, dtype=np.float32)
        lane_dx, lane_dy = _lane_offsets()
        block_alive = np.empty(_BLOCKS, dtype=np.int64)
        i = _claim(counter)
        while i < len(tile_order):
            _raster_tile(tile_order[i], params, boxes, starts, tile_list, tiles_x, width, height, tile_pixels, scratch,
                         scratch.view(np.int32), lane_dx, lane_dy, block_alive)
            i = _claim(counter)


@njit(cache=True, parallel=True)
def _compose(tile_pixels: np.ndarray, tiles_x: int, background: np.ndarray, out: np.ndarray,
             workers: int, counter: np.ndarray) -> None:
    """out [H, W, 4] = (RGB + T background [3], 1 - T) from `tile_pixels` (see `RasterState`).

    Threads `_claim` a row of tiles at a time and write its image rows in sequence; a
    block's row is 4 pixels in both layouts.
    """
    height, width = out.shape[:2]
    for _ in prange(workers):
        ty = _claim(counter)
        while ty * TILE_PX < height:
            for y in range(ty * TILE_PX, min((ty + 1) * TILE_PX, height)):
                by, row_in_block = divmod(y - ty * TILE_PX, _BLOCK_PX)
                for x0 in range(0, width, _BLOCK_PX):
                    tx, column = divmod(x0, TILE_PX)
                    tile = ty * tiles_x + tx
                    p = (by * _BLOCKS_X + column // _BLOCK_PX) * _LANES + row_in_block * _BLOCK_PX
                    for i in range(min(_BLOCK_PX, width - x0)):
                        t = tile_pixels[tile, _T_AT + p + i]
                        out[y, x0 + i, 0] = tile_pixels[tile, _RED_AT + p + i] + t * background[0]
                        out[y, x0 + i, 1] = tile_pixels[tile, _GREEN_AT + p + i] + t * background[1]
                        out[y, x0 + i, 2] = tile_pixels[tile, _BLUE_AT + p + i] + t * background[2]
                        out[y, x0 + i, 3] = np.float32(1.0) - t
            ty = _claim(counter)


@dataclass
class RasterState:
    """What a frame's raster leaves behind, for a backward pass to retrace it tile by tile.

    The arrays are the renderer's buffers: valid until its next `render`. Per-pixel values are kept per tile, [num_tiles, 256], in block order: pixel (x, y) of a
    tile is lane (y % 4) * 4 + x % 4 of block (y // 4) * 4 + x // 4; pixels past the image's
    edge are padding. `to_image` lays such values out as [H, W].

    Attributes:
        params: [N, 10] float32 per-Gaussian mean (u, v), conic (a, b, c), opacity, support, RGB.
        boxes: [N, 4] int32 inclusive pixel box x0, x1, y0, y1; x0 > x1 where culled.
        tile_starts: [num_tiles + 1] int64, tile t's Gaussians are tile_list[starts[t]:starts[t + 1]].
        tile_list: [tile_starts[-1]] int32 Gaussian indices, front to back within a tile.
        tile_pixels: [num_tiles, 5 * 256] float32: final T, then R, G, B before the background,
            then the ends as int32 bits.
        width, height: the image size in pixels.
    """

    params: np.ndarray
    boxes: np.ndarray
    tile_starts: np.ndarray
    tile_list: np.ndarray
    tile_pixels: np.ndarray
    width: int
    height: int

    @property
    def final_t(self) -> np.ndarray:
        """[num_tiles, 256] float32 final transmittance."""
        return self.tile_pixels[:, _T_AT:_T_AT + _TILE_PIXELS]

    @property
    def ends(self) -> np.ndarray:
        """[num_tiles, 256] int32, one past the tile_list position of each pixel's last contributor."""
        return self.tile_pixels.view(np.int32)[:, _END_AT:]

    def to_image(self, per_tile: np.ndarray) -> np.ndarray:
        """[num_tiles, 256] per-pixel values in block order -> [H, W]."""
        tiles_x = -(-self.width // TILE_PX)
        # Axes: tile row and column, block row and column, row and column in the block.
        blocks = per_tile.reshape(-1, tiles_x, _BLOCKS_X, _BLOCKS_X, _BLOCK_PX, _BLOCK_PX)
        rows = blocks.transpose(0, 2, 4, 1, 3, 5).reshape(-1, tiles_x * TILE_PX)
        return rows[:self.height, :self.width]


def _grown(buffer: np.ndarray | None, shape: tuple[int, ...], dtype: type) -> np.ndarray:
    """`buffer` if it holds at least shape[0] rows of `shape[1:]`, else a new one with headroom."""
    if buffer is not None and len(buffer) >= shape[0] and buffer.shape[1:] == shape[1:]:
        return buffer
    return np.empty((max(shape[0] + shape[0] // 4, 1), *shape[1:]), dtype=dtype)


class CpuRenderer(Renderer):
    """Real-time tile rasterizer on the CPU (numba, all cores); float32 throughout the raster.

    Buffers persist across frames and grow as needed, so steady-state frames allocate only
    the returned image and a few tile-sized arrays. `state` describes the last frame (see
    `RasterState`). Not thread-safe: one renderer per thread.
    """

    name = "cpu"

    def __init__(self) -> None:
        super().__init__()
        self._buffers: dict[str, np.ndarray] = {}
        self.state: RasterState | None = None

    def _buffer(self, key: str, shape: tuple[int, ...], dtype: type) -> np.ndarray:
        """A persistent buffer: "image_" keys have exactly `shape` (new when the frame size
        changes), the others at least shape[0] rows (they grow with the scene)."""
        buffer = self._buffers.get(key)
        if key.startswith("image_"):
            if buffer is None or buffer.shape != shape:
                buffer = np.empty(shape, dtype=dtype)
        else:
            buffer = _grown(buffer, shape, dtype)
        self._buffers[key] = buffer
        return buffer

    def render(self, camera: Camera, gaussians: Gaussians, background: Background = (0.0, 0.0, 0.0)) -> np.ndarray:
        """[H, W, 4] float32: RGB composited over `background`, and alpha."""
        n, width, height = len(gaussians), camera.width_px, camera.height_px
        tiles_x, tiles_y = -(-width // TILE_PX), -(-height // TILE_PX)
        clock = time.perf_counter()
        timings: dict[str, float] = {}

        def lap(stage: str) -> None:
            nonlocal clock
            now = time.perf_counter()
            timings[stage], clock = 1000 * (now - clock), now

        workers = numba.get_num_threads()
        counters = np.zeros(5, dtype=np.int64)  # one `_claim` counter per parallel stage

        params = self._buffer("params", (n, _NUM_PARAMS), np.float32)
        boxes = self._buffer("boxes", (n, 4), np.int32)
        depths = self._buffer("depths", (n,), np.float64)
        _project(camera.camera_to_world, camera.fx_px, camera.fy_px, camera.cx_px, camera.cy_px, width, height,
                 gaussians.means, gaussians.rotations, gaussians.scales, gaussians.opacities, gaussians.colors,
                 params, boxes, depths, workers, counters[0:1])
        lap("project")

        order = self._buffer("order", (n,), np.int32)
        m = _depth_order(boxes[:n], depths[:n].view(np.uint64), order, self._buffer("order_scratch", (n,), np.int32),
                         self._buffer("keys", (n,), np.uint64), self._buffer("keys_scratch", (n,), np.uint64))
        rects = self._buffer("rects", (n, 4), np.int32)
        counts = self._buffer("image_counts", (_BIN_CHUNKS, tiles_x * tiles_y), np.int64)
        _count_tiles(boxes, order, m, tiles_x, rects, counts, workers, counters[1:2])
        starts = self._buffer("image_starts", (tiles_x * tiles_y + 1,), np.int64)
        total = _tile_starts(counts, starts)
        tile_list = self._buffer("tile_list", (total,), np.int32)
        _fill_tiles(rects, order, m, tiles_x, counts, tile_list, workers, counters[2:3])
        tile_order = np.argsort(-np.diff(starts)).astype(np.int32)  # longest lists first, for balance
        lap("sort")

        tile_pixels = self._buffer("image_tile_pixels", (tiles_x * tiles_y, _TILE_STATE), np.float32)
        _raster(params, boxes, starts, tile_list, tile_order, tiles_x, width, height, tile_pixels, workers,
                counters[3:4])
        lap("raster")

        image = np.empty((height, width, 4), dtype=np.float32)
        _compose(tile_pixels, tiles_x, np.asarray(background, dtype=np.float32), image, workers, counters[4:5])
        lap("readback")
        self.state = RasterState(params[:n], boxes[:n], starts, tile_list[:total], tile_pixels, width, height)
        self.last_timings_ms = timings
        return image
