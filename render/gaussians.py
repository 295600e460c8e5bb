"""`Gaussians`: a set of 3D Gaussians in world space, ready to rasterize.

The splatting equations every backend implements (the reference in
`render/reference.py` is their readable statement):

1. View: p = R_view m + t_view (camera space, camera looks down -z); depth d = -p_z.
   Gaussians with d < near_cm are dropped.
2. EWA projection: with J = [[fx/d, 0, fx p_x/d^2], [0, -fy/d, -fy p_y/d^2]],
   Sigma_2d = J R_view Sigma R_view^T J^T + DILATION_PX2 * I,
   mean_2d = (cx + fx p_x / d, cy - fy p_y / d)   (pixels; v grows downwards).
3. Footprint: alpha(u) = min(MAX_ALPHA, o * exp(-1/2 (u - mean_2d)^T Sigma_2d^-1 (u - mean_2d))),
   evaluated at pixel centres (i + 0.5, j + 0.5); alpha < MIN_ALPHA counts as 0, so
   a Gaussian's support is the ellipse where o * exp(-q/2) >= MIN_ALPHA, whose
   bounding radius is sqrt(2 ln(o / MIN_ALPHA) * lambda_max(Sigma_2d)).
4. Compositing front to back in increasing depth (ties: lower index first):
   C = sum_i c_i alpha_i T_i, T_i = prod_{j<i} (1 - alpha_j); a pixel stops before
   the Gaussian that would bring T below MIN_TRANSMITTANCE. Output RGB = C + T * background,
   alpha = 1 - T.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DILATION_PX2 = 0.3
MIN_ALPHA = 1.0 / 255.0
MAX_ALPHA = 0.99
MIN_TRANSMITTANCE = 1e-4
NEAR_CM = 1.0


@dataclass
class Gaussians:
    """N Gaussians in world space (cm), as every renderer backend takes them.

    Attributes:
        means: [N, 3] float32 centres.
        rotations: [N, 3, 3] float32; column k is the direction of local axis k.
        scales: [N, 3] float32 standard deviations along the local axes, cm.
        opacities: [N] float32 in [0, 1].
        colors: [N, 3] float32 linear RGB in [0, 1].
    """

    means: np.ndarray
    rotations: np.ndarray
    scales: np.ndarray
    opacities: np.ndarray
    colors: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.means)
        for name, shape in (("means", (n, 3)), ("rotations", (n, 3, 3)), ("scales", (n, 3)),
                            ("opacities", (n,)), ("colors", (n, 3))):
            value = np.asarray(getattr(self, name), dtype=np.float32)
            if value.shape != shape:
                raise ValueError(f"Gaussians.{name} must have shape {shape}, got {value.shape}")
            setattr(self, name, value)

    def __len__(self) -> int:
        return len(self.means)

    def covariances(self) -> np.ndarray:
        """[N, 3, 3] world covariances Sigma = R S S^T R^T (cm^2)."""
        m = self.rotations * self.scales[:, None, :]
        return m @ np.swapaxes(m, 1, 2)

    def covariances_packed(self) -> np.ndarray:
        """[N, 6] upper triangle (xx, xy, xz, yy, yz, zz) of `covariances`."""
        c = self.covariances()
        return np.stack([c[:, 0, 0], c[:, 0, 1], c[:, 0, 2], c[:, 1, 1], c[:, 1, 2], c[:, 2, 2]], axis=1)
