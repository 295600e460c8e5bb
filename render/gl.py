"""The `gl` backend: Gaussians splatted as instanced quads with the GLSL in `shaders/`, headless through EGL.

The CPU sorts back to front each frame; the GPU (or Mesa's llvmpipe) projects,
rasterizes and blends premultiplied colour "over" into a float framebuffer.
"""

from __future__ import annotations

import time
from pathlib import Path

import moderngl
import numpy as np

from avatar import AvatarError, Camera
from render.gaussians import DILATION_PX2, MAX_ALPHA, MIN_ALPHA, NEAR_CM, Gaussians
from render.renderer import Background, Renderer

SHADER_DIR = Path(__file__).resolve().parents[1] / "shaders"
_SOFTWARE_RENDERERS = ("llvmpipe", "softpipe", "swrast")
# Per instance: mean (3), covariance upper triangle (6), opacity (1), colour (3); float32.
_INSTANCE_FLOATS = 13
_INSTANCE_LAYOUT = ("3f 3f 3f 1f 3f/i", "a_mean", "a_cov_x", "a_cov_yz", "a_opacity", "a_color")
_QUAD_CORNERS = np.array([[-1, -1], [1, -1], [-1, 1], [1, 1]], dtype=np.float32)  # a triangle strip


def _create_context() -> moderngl.Context:
    """A standalone OpenGL 3.3+ context through EGL, or an `AvatarError` that says what to install."""
    try:
        return moderngl.create_context(standalone=True, backend="egl", require=330)
    except Exception as exc:  # glcontext reports a missing library or driver with assorted exception types
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise AvatarError(f"the gl renderer cannot start an OpenGL 3.3 context through EGL ({reason}): "
                          "install the Debian packages libegl1 libegl-mesa0 libgl1-mesa-dri, "
                          "or use the cpu renderer") from exc


def pack_instances(gaussians: Gaussians) -> np.ndarray:
    """[N, 13] float32 rows (mean xyz, covariance xx xy xz yy yz zz, opacity, rgb), in the shader's layout."""
    return np.concatenate([gaussians.means, gaussians.covariances_packed(), gaussians.opacities[:, None],
                           gaussians.colors], axis=1, dtype=np.float32)


def back_to_front(camera: Camera, means: np.ndarray) -> np.ndarray:
    """[N] indices from far to near: the reverse of the reference's front-to-back order.

    The reference sorts depths stably (ties: lower index first in front), so
    reversing that order keeps ties consistent. Depths are float64, as there.

    Args:
        means: [N, 3] world centres, cm.
    """
    view = camera.world_to_camera
    depth = -(means @ view[2, :3] + view[2, 3])
    return np.argsort(depth, kind="stable")[::-1]


class GlRenderer(Renderer):
    """OpenGL splatting through moderngl on a standalone EGL context.

    `last_timings_ms` stages: `sort` (depths, argsort), `upload` (packing the
    covariances, gathering rows in draw order, the buffer write), `draw`
    (clear, draw, ctx.finish), `readback` (into numpy).

    Attributes:
        device: the GL_RENDERER string, e.g. "llvmpipe (LLVM 15.0.6, 256 bits)".
        is_software: True when that is a CPU rasterizer (llvmpipe, softpipe, swrast).
    """

    name = "gl"

    def __init__(self) -> None:
        super().__init__()
        self._ctx: moderngl.Context | None = _create_context()
        self.device: str = self._ctx.info["GL_RENDERER"]
        self.is_software: bool = any(s in self.device.lower() for s in _SOFTWARE_RENDERERS)
        self._program = self._ctx.program(vertex_shader=(SHADER_DIR / "gaussian.vert").read_text(),
                                          fragment_shader=(SHADER_DIR / "gaussian.frag").read_text())
        for uniform, value in (("u_near_cm", NEAR_CM), ("u_dilation_px2", DILATION_PX2),
                               ("u_min_alpha", MIN_ALPHA), ("u_max_alpha", MAX_ALPHA)):
            self._program[uniform].value = value
        self._quad = self._ctx.buffer(_QUAD_CORNERS.tobytes())
        # Resized with `orphan`, which keeps the buffer object, so the vertex array stays valid.
        self._instances = self._ctx.buffer(reserve=4 * _INSTANCE_FLOATS)
        self._vao = self._ctx.vertex_array(self._program, [(self._quad, "2f", "a_corner"),
                                                           (self._instances, *_INSTANCE_LAYOUT)])
        self._framebuffer: moderngl.Framebuffer | None = None
        # Premultiplied "over", drawn back to front; the same factors for colour and alpha.
        self._ctx.enable(moderngl.BLEND)
        self._ctx.blend_func = moderngl.ONE, moderngl.ONE_MINUS_SRC_ALPHA

    def render(self, camera: Camera, gaussians: Gaussians, background: Background = (0.0, 0.0, 0.0)) -> np.ndarray:
        """[H, W, 4] float32: RGB composited over `background`, and alpha."""
        return self.render_many([camera], gaussians, background)[0]

    def render_many(self, cameras: list[Camera], gaussians: Gaussians,
                    background: Background = (0.0, 0.0, 0.0)) -> list[np.ndarray]:
        """One [H, W, 4] float32 image per camera (e.g. two stereo eyes) of the same Gaussians.

        The instance rows are packed once and re-sorted per camera;
        `last_timings_ms` sums the stages over all cameras.
        """
        start = time.perf_counter()
        packed = pack_instances(gaussians)
        timings = {"sort": 0.0, "upload": 1000 * (time.perf_counter() - start), "draw": 0.0, "readback": 0.0}
        images = [self._render_packed(camera, gaussians.means, packed, background, timings) for camera in cameras]
        self.last_timings_ms = timings
        return images

    def _render_packed(self, camera: Camera, means: np.ndarray, packed: np.ndarray, background: Background,
                       timings: dict[str, float]) -> np.ndarray:
        """Sort, upload, draw and read back one camera's image, adding each stage's milliseconds to `timings`.

        Args:
            means: [N, 3] world centres, cm; packed: [N, 13] rows from `pack_instances`.
        """
        clock = time.perf_counter()

        def lap(stage: str) -> None:
            nonlocal clock
            now = time.perf_counter()
            timings[stage] += 1000 * (now - clock)
            clock = now

        order = back_to_front(camera, means)
        lap("sort")
        if len(order):
            self._upload(packed[order])
            self._set_camera(camera)
        lap("upload")
        framebuffer = self._framebuffer_for(camera.width_px, camera.height_px)
        framebuffer.use()
        # Blending "over" onto (background, alpha 0) leaves C + T * background and 1 - T: the
        # compositing is done once the last Gaussian lands, with no pass over the pixels on the CPU.
        framebuffer.clear(*background, 0.0)
        if len(order):
            self._vao.render(moderngl.TRIANGLE_STRIP, instances=len(order))
        self._ctx.finish()
        lap("draw")
        # Rows come back bottom-up, and the vertex shader put image row 0 at the bottom: no flip.
        rgba = np.empty((camera.height_px, camera.width_px, 4), dtype=np.float32)
        framebuffer.read_into(rgba, components=4, dtype="f4")
        lap("readback")
        return rgba

    def _upload(self, rows: np.ndarray) -> None:
        """Replace the instance buffer's contents with `rows` [N, 13] float32."""
        data = np.ascontiguousarray(rows)
        # Each frame ends with ctx.finish(), so no draw still reads the storage: an equal size is
        # overwritten in place, and only a new size asks for fresh storage.
        if self._instances.size != data.nbytes:
            self._instances.orphan(data.nbytes)
        self._instances.write(data)

    def _set_camera(self, camera: Camera) -> None:
        program = self._program
        # GLSL reads matrices column by column: the transpose's rows are the columns.
        program["u_view"].write(camera.world_to_camera.T.astype(np.float32).tobytes())
        program["u_focal_px"].value = (camera.fx_px, camera.fy_px)
        program["u_principal_px"].value = (camera.cx_px, camera.cy_px)
        program["u_size_px"].value = (camera.width_px, camera.height_px)

    def _framebuffer_for(self, width_px: int, height_px: int) -> moderngl.Framebuffer:
        """An RGBA32F framebuffer of this size, kept until a frame asks for another size."""
        if self._framebuffer is None or self._framebuffer.size != (width_px, height_px):
            if self._framebuffer is not None:
                self._framebuffer.color_attachments[0].release()
                self._framebuffer.release()
            color = self._ctx.renderbuffer((width_px, height_px), components=4, dtype="f4")
            self._framebuffer = self._ctx.framebuffer(color_attachments=[color])
        return self._framebuffer

    def close(self) -> None:
        """Release the GL context and everything made in it; safe to call twice."""
        if self._ctx is not None:
            self._ctx.release()
            self._ctx = None
