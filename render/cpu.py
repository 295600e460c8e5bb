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

from avatar import Camera
from render.gaussians import DILATION_PX2, MAX_ALPHA, MIN_ALPHA, MIN_TRANSMITTANCE, NEAR_CM, Gaussians
from render.renderer import Background, Renderer

TILE_PX = 16
_TILE_PIXELS = TILE_PX * TILE_PX
_RADIX_BITS = 11
# Per-Gaussian float32 parameters the raster stage reads, one row each.
_U, _V, _A, _B, _C, _OPACITY, _SUPPORT, _R, _G, _BLUE = range(10)
_NUM_PARAMS = 10
# Fast math without `nnan`/`ninf`: culling tests must still see NaN and inf for what they are.
_FAST = {"nsz", "arcp", "contract", "afn", "reassoc"}


@njit(cache=True, parallel=True)
def _project(view: np.ndarray, fx: float, fy: float, cx: float, cy: float, width: int, height: int,
             means: np.ndarray, rotations: np.ndarray, scales: np.ndarray, opacities: np.ndarray,
             colors: np.ndarray, params: np.ndarray, boxes: np.ndarray, depths: np.ndarray) -> None:
    """EWA projection and pixel boxes (steps 1-3 of `render.gaussians`), in float64 internally.

    Args:
        view: [4, 4] world-to-camera; means: [N, 3]; rotations: [N, 3, 3]; scales: [N, 3];
            opacities: [N]; colors: [N, 3] (float32).
        params: [N, _NUM_PARAMS] out: mean (u, v) px, conic (a, b, c), opacity, support
            2 ln(o / MIN_ALPHA) (the largest Mahalanobis q with alpha >= MIN_ALPHA), RGB.
        boxes: [N, 4] out: inclusive pixel box x0, x1, y0, y1 of the support ellipse; x0 > x1
            marks a culled Gaussian (behind the near plane, too faint, or off screen).
        depths: [N] out: distance in front of the camera, cm.
    """
    for i in prange(len(means)):
        boxes[i, 0], boxes[i, 1] = 1, 0
        m0, m1, m2 = np.float64(means[i, 0]), np.float64(means[i, 1]), np.float64(means[i, 2])
        px = view[0, 0] * m0 + view[0, 1] * m1 + view[0, 2] * m2 + view[0, 3]
        py = view[1, 0] * m0 + view[1, 1] * m1 + view[1, 2] * m2 + view[1, 3]
        depth = -(view[2, 0] * m0 + view[2, 1] * m1 + view[2, 2] * m2 + view[2, 3])
        depths[i] = depth
        opacity = np.float64(opacities[i])
        if not (depth > NEAR_CM and opacity >= MIN_ALPHA):
            continue
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
        # Pixel centres x + 0.5 inside [u - half_w, u + half_w]; floats clamp first so no inf reaches an int.
        x0 = max(math.ceil(u - half_w - 0.5), 0.0)
        x1 = min(math.floor(u + half_w - 0.5), width - 1.0)
        y0 = max(math.ceil(v - half_h - 0.5), 0.0)
        y1 = min(math.floor(v + half_h - 0.5), height - 1.0)
        if not (x0 <= x1 and y0 <= y1 and det > 0.0):
            continue
        boxes[i, 0], boxes[i, 1], boxes[i, 2], boxes[i, 3] = int(x0), int(x1), int(y0), int(y1)
        params[i, _U], params[i, _V] = u, v
        params[i, _A], params[i, _B], params[i, _C] = s11 / det, -s01 / det, s00 / det
        params[i, _OPACITY], params[i, _SUPPORT] = opacity, support
        params[i, _R], params[i, _G], params[i, _BLUE] = colors[i, 0], colors[i, 1], colors[i, 2]


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


@njit(cache=True)
def _count_tiles(boxes: np.ndarray, order: np.ndarray, m: int, tiles_x: int, starts: np.ndarray) -> int:
    """Per-tile list offsets: `starts` [num_tiles + 1] out (exclusive prefix sums); returns the total."""
    starts[:] = 0
    for j in range(m):
        g = order[j]
        for ty in range(boxes[g, 2] // TILE_PX, boxes[g, 3] // TILE_PX + 1):
            for tx in range(boxes[g, 0] // TILE_PX, boxes[g, 1] // TILE_PX + 1):
                starts[ty * tiles_x + tx + 1] += 1
    for t in range(1, len(starts)):
        starts[t] += starts[t - 1]
    return starts[-1]


@njit(cache=True)
def _fill_tiles(boxes: np.ndarray, order: np.ndarray, m: int, tiles_x: int, starts: np.ndarray,
                cursors: np.ndarray, tile_list: np.ndarray) -> None:
    """Bin the depth-sorted Gaussians: `tile_list[starts[t]:starts[t + 1]]` are tile t's, front first."""
    cursors[:] = starts[:-1]
    for j in range(m):
        g = order[j]
        for ty in range(boxes[g, 2] // TILE_PX, boxes[g, 3] // TILE_PX + 1):
            for tx in range(boxes[g, 0] // TILE_PX, boxes[g, 1] // TILE_PX + 1):
                t = ty * tiles_x + tx
                tile_list[cursors[t]] = g
                cursors[t] += 1


@njit(cache=True, fastmath=_FAST, inline="always")
def _raster_tile(tile: int, params: np.ndarray, boxes: np.ndarray, starts: np.ndarray, tile_list: np.ndarray,
                 tiles_x: int, rgb: np.ndarray, final_t: np.ndarray, ends: np.ndarray,
                 t_buf: np.ndarray, c_buf: np.ndarray, end_buf: np.ndarray) -> None:
    """Composite one tile front to back (step 4 of `render.gaussians`).

    Gaussian by Gaussian, each visits only the pixels of its support ellipse: per row, the
    span solving a dx^2 + 2b dx dy + c dy^2 <= support. A finished pixel keeps -T in
    `t_buf`; the tile stops when all are finished.

    Args:
        rgb: [H, W, 3] out, colour before the background; final_t: [H, W] out, final T;
        ends: [H, W] out, one past the `tile_list` position of the pixel's last contributor.
        t_buf: [TILE_PIXELS]; c_buf: [TILE_PIXELS, 3]; end_buf: [TILE_PIXELS]: scratch.
    """
    height, width = final_t.shape
    ox, oy = (tile % tiles_x) * TILE_PX, (tile // tiles_x) * TILE_PX
    last_x, last_y = min(ox + TILE_PX, width) - 1, min(oy + TILE_PX, height) - 1
    t_buf[:] = 1.0
    c_buf[:] = 0.0
    end_buf[:] = starts[tile]
    alive = (last_x - ox + 1) * (last_y - oy + 1)
    for k in range(starts[tile], starts[tile + 1]):
        g = tile_list[k]
        u, v = params[g, _U], params[g, _V]
        a, b, c = params[g, _A], params[g, _B], params[g, _C]
        opacity, support = params[g, _OPACITY], params[g, _SUPPORT]
        red, green, blue = params[g, _R], params[g, _G], params[g, _BLUE]
        box_x0, box_x1 = max(boxes[g, 0], ox), min(boxes[g, 1], last_x)
        for y in range(max(boxes[g, 2], oy), min(boxes[g, 3], last_y) + 1):
            dy = np.float32(y + 0.5) - v
            disc = (b * b - a * c) * dy * dy + a * support
            if disc < 0.0:
                continue
            # Widened by a hair: rounding must not drop a pixel; the alpha test below is exact.
            centre, half = u - b * dy / a, math.sqrt(disc) / a + np.float32(1e-3)
            x0 = max(box_x0, int(math.ceil(centre - half - 0.5)))
            x1 = min(box_x1, int(math.floor(centre + half - 0.5)))
            row = (y - oy) * TILE_PX - ox
            for x in range(x0, x1 + 1):
                t = t_buf[row + x]
                if t <= 0.0:
                    continue
                dx = np.float32(x + 0.5) - u
                power = np.float32(-0.5) * (a * dx * dx + np.float32(2.0) * b * dx * dy + c * dy * dy)
                alpha = min(np.float32(MAX_ALPHA), opacity * math.exp(power))
                if alpha < MIN_ALPHA:
                    continue
                t_next = t * (np.float32(1.0) - alpha)
                if t_next < MIN_TRANSMITTANCE:
                    t_buf[row + x] = -t
                    alive -= 1
                    continue
                weight = alpha * t
                c_buf[row + x, 0] += weight * red
                c_buf[row + x, 1] += weight * green
                c_buf[row + x, 2] += weight * blue
                t_buf[row + x] = t_next
                end_buf[row + x] = k + 1
        if alive == 0:
            break
    for y in range(oy, last_y + 1):
        for x in range(ox, last_x + 1):
            p = (y - oy) * TILE_PX + x - ox
            rgb[y, x, 0], rgb[y, x, 1], rgb[y, x, 2] = c_buf[p, 0], c_buf[p, 1], c_buf[p, 2]
            final_t[y, x] = abs(t_buf[p])
            ends[y, x] = end_buf[p]


@njit(cache=True, parallel=True, fastmath=_FAST)
def _raster(params: np.ndarray, boxes: np.ndarray, starts: np.ndarray, tile_list: np.ndarray,
            tile_order: np.ndarray, tiles_x: int, workers: int, rgb: np.ndarray, final_t: np.ndarray,
            ends: np.ndarray) -> None:
    """Composite every tile; see `_raster_tile` for the arguments.

    Tiles go round robin, heaviest first (`tile_order`), to the workers: prange splits its
    range evenly and up front, and tile costs differ by orders of magnitude.
    """
    for w in prange(workers):
        t_buf = np.empty(_TILE_PIXELS, dtype=np.float32)
        c_buf = np.empty((_TILE_PIXELS, 3), dtype=np.float32)
        end_buf = np.empty(_TILE_PIXELS, dtype=np.int32)
        for i in range(w, len(tile_order), workers):
            _raster_tile(tile_order[i], params, boxes, starts, tile_list, tiles_x, rgb, final_t, ends,
                         t_buf, c_buf, end_buf)


@njit(cache=True, parallel=True)
def _compose(rgb: np.ndarray, final_t: np.ndarray, background: np.ndarray, out: np.ndarray) -> None:
    """out [H, W, 4] = (rgb [H, W, 3] + T background [3], 1 - T), with T = final_t [H, W]."""
    for y in prange(final_t.shape[0]):
        for x in range(final_t.shape[1]):
            t = final_t[y, x]
            for ch in range(3):
                out[y, x, ch] = rgb[y, x, ch] + t * background[ch]
            out[y, x, 3] = np.float32(1.0) - t


@dataclass
class RasterState:
    """What a frame's raster leaves behind, for a backward pass to retrace it.

    Attributes:
        params: [N, 10] float32 per-Gaussian mean (u, v), conic (a, b, c), opacity, support, RGB.
        boxes: [N, 4] int32 inclusive pixel box x0, x1, y0, y1; x0 > x1 where culled.
        tile_starts: [num_tiles + 1] int64, tile t's Gaussians are tile_list[starts[t]:starts[t + 1]].
        tile_list: [>= tile_starts[-1]] int32 Gaussian indices, front to back within a tile.
        final_t: [H, W] float32 final transmittance per pixel.
        ends: [H, W] int32, one past the tile_list position of each pixel's last contributor.
    """

    params: np.ndarray
    boxes: np.ndarray
    tile_starts: np.ndarray
    tile_list: np.ndarray
    final_t: np.ndarray
    ends: np.ndarray


def _grown(buffer: np.ndarray | None, shape: tuple[int, ...], dtype: type) -> np.ndarray:
    """`buffer` if it holds at least shape[0] rows of `shape[1:]`, else a new one with headroom."""
    if buffer is not None and len(buffer) >= shape[0] and buffer.shape[1:] == shape[1:]:
        return buffer
    return np.empty((max(shape[0] + shape[0] // 4, 1), *shape[1:]), dtype=dtype)


class CpuRenderer(Renderer):
    """Real-time tile rasterizer on the CPU (numba, all cores); float32 throughout the raster.

    Buffers persist across frames and grow as needed, so steady-state frames allocate only
    the returned image. `state` describes the last frame (see `RasterState`).
    """

    name = "cpu"

    def __init__(self) -> None:
        super().__init__()
        self._buffers: dict[str, np.ndarray] = {}
        self.state: RasterState | None = None

    def _buffer(self, key: str, shape: tuple[int, ...], dtype: type) -> np.ndarray:
        """A persistent buffer with at least shape[0] rows (image buffers: exactly `shape`)."""
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

        params = self._buffer("params", (n, _NUM_PARAMS), np.float32)
        boxes = self._buffer("boxes", (n, 4), np.int32)
        depths = self._buffer("depths", (n,), np.float64)
        _project(np.ascontiguousarray(camera.world_to_camera, dtype=np.float64), camera.fx_px, camera.fy_px,
                 camera.cx_px, camera.cy_px, width, height, gaussians.means, gaussians.rotations, gaussians.scales,
                 gaussians.opacities, gaussians.colors, params, boxes, depths)
        lap("project")

        order = self._buffer("order", (n,), np.int32)
        m = _depth_order(boxes[:n], depths[:n].view(np.uint64), order, self._buffer("order_scratch", (n,), np.int32),
                         self._buffer("keys", (n,), np.uint64), self._buffer("keys_scratch", (n,), np.uint64))
        starts = self._buffer("image_starts", (tiles_x * tiles_y + 1,), np.int64)
        total = _count_tiles(boxes, order, m, tiles_x, starts)
        tile_list = self._buffer("tile_list", (total,), np.int32)
        _fill_tiles(boxes, order, m, tiles_x, starts, self._buffer("image_cursors", (tiles_x * tiles_y,), np.int64),
                    tile_list)
        tile_order = np.argsort(-np.diff(starts)).astype(np.int32)
        lap("sort")

        rgb = self._buffer("image_rgb", (height, width, 3), np.float32)
        final_t = self._buffer("image_t", (height, width), np.float32)
        ends = self._buffer("image_ends", (height, width), np.int32)
        _raster(params, boxes, starts, tile_list, tile_order, tiles_x, numba.get_num_threads(), rgb, final_t, ends)
        lap("raster")

        image = np.empty((height, width, 4), dtype=np.float32)
        _compose(rgb, final_t, np.asarray(background, dtype=np.float32), image)
        lap("readback")
        self.state = RasterState(params[:n], boxes[:n], starts, tile_list[:total], final_t, ends)
        self.last_timings_ms = timings
        return image
