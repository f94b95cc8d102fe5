"""Random smooth fields, rotations and trilinear sampling for the digital phantom (private).

All coordinates are millimetres in ``(z, y, x)`` order. Everything draws from an explicit
``numpy.random.Generator`` so that a seed reproduces a subject exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage

__all__ = ["Grid", "SmoothField", "random_rotation", "rotation_zyx", "sample_grid"]


@dataclass(frozen=True)
class Grid:
    """A regular voxel grid in millimetres.

    Attributes
    ----------
    data : Tensor, shape ``(C, Z, Y, X)``, float32
        Channels sampled on the grid, stored minus ``outside`` so that sampling with zero
        padding returns ``outside`` far from the grid (see :meth:`make`).
    origin : tuple of float
        ``(z, y, x)`` mm coordinate of voxel ``[0, 0, 0]``.
    spacing : float
        Isotropic voxel size, mm.
    outside : tuple of float
        Value of each channel outside the grid.
    """

    data: torch.Tensor
    origin: tuple[float, float, float]
    spacing: float
    outside: tuple[float, ...]

    @classmethod
    def make(
        cls,
        values: np.ndarray | torch.Tensor,
        origin: tuple[float, float, float],
        spacing: float,
        outside: float | tuple[float, ...] = 0.0,
    ) -> Grid:
        """Build a grid from channel values ``(C, Z, Y, X)`` and per-channel outside values."""
        v = torch.as_tensor(values, dtype=torch.float32)
        c = v.shape[0]
        out = tuple(float(o) for o in (outside if isinstance(outside, tuple) else (outside,) * c))
        if len(out) != c:
            raise ValueError(f"Grid: {len(out)} outside values for {c} channels")
        off = torch.tensor(out, dtype=torch.float32).reshape(c, 1, 1, 1)
        data = (v - off).contiguous() if any(out) else v.contiguous()
        return cls(data, tuple(float(o) for o in origin), float(spacing), out)


def sample_grid(grid: Grid, points: torch.Tensor) -> torch.Tensor:
    """Trilinearly sample all channels of ``grid`` at physical points.

    Parameters
    ----------
    grid : Grid
    points : Tensor, shape ``(..., 3)``
        ``(z, y, x)`` mm coordinates.

    Returns
    -------
    Tensor, shape ``(C, ...)``, float32
        Interpolated values; ``grid.outside`` away from the grid.
    """
    data = grid.data
    c, nz, ny, nx = data.shape
    lead = points.shape[:-1]
    p = points.reshape(-1, 3).to(torch.float32)
    # voxel index -> normalised [-1, 1] coordinate (align_corners=True), reordered to (x, y, z)
    sizes = torch.tensor([nx, ny, nz], dtype=torch.float32)
    org = torch.tensor(grid.origin[::-1], dtype=torch.float32)
    scale = 2.0 / (grid.spacing * (sizes - 1.0))
    g = torch.addcmul(-1.0 - org * scale, p.flip(-1), scale).reshape(1, 1, 1, -1, 3)
    res = torch.nn.functional.grid_sample(
        data.unsqueeze(0), g, mode="bilinear", padding_mode="zeros", align_corners=True
    ).reshape(c, -1)
    if any(grid.outside):
        res = res + torch.tensor(grid.outside, dtype=torch.float32).reshape(c, 1)
    return res.reshape(c, *lead)


class SmoothField:
    """A smooth random scalar/vector field with unit standard deviation per component.

    White noise on a coarse physical grid (step ``corr_mm / 3``) covering ``extent`` is
    Gaussian-smoothed and normalised; values at arbitrary points are interpolated trilinearly.
    The field depends only on the generator state and the physical extent, not on the sampling
    resolution, so one seed gives the same anatomy at every image size.

    Parameters
    ----------
    rng : numpy.random.Generator
    lo, hi : sequence of 3 float
        ``(z, y, x)`` mm corners of the region where the field is needed.
    corr_mm : float
        Correlation length (Gaussian σ of the smoothing), mm.
    n_comp : int
        Number of independent components (3 for a displacement field).
    """

    def __init__(
        self,
        rng: np.random.Generator,
        lo: tuple[float, float, float],
        hi: tuple[float, float, float],
        corr_mm: float,
        n_comp: int = 1,
    ) -> None:
        step = corr_mm / 3.0
        lo_a = np.asarray(lo, dtype=np.float64) - 2.0 * corr_mm
        hi_a = np.asarray(hi, dtype=np.float64) + 2.0 * corr_mm
        shape = tuple(int(np.ceil((h - l) / step)) + 1 for l, h in zip(lo_a, hi_a, strict=True))
        noise = rng.standard_normal((n_comp, *shape))
        comps = []
        for k in range(n_comp):
            f = ndimage.gaussian_filter(noise[k], sigma=3.0, mode="reflect")
            f = (f - f.mean()) / max(float(f.std()), 1e-12)
            comps.append(f)
        data = torch.from_numpy(np.stack(comps).astype(np.float32))
        self.grid = Grid.make(data, tuple(float(v) for v in lo_a), float(step))

    def __call__(self, points: torch.Tensor) -> torch.Tensor:
        """Field values at ``points`` ``(..., 3)`` mm; returns ``(n_comp, ...)``."""
        return sample_grid(self.grid, points)


def rotation_zyx(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Rotation matrix acting on ``(z, y, x)`` vectors.

    Parameters
    ----------
    yaw : float
        Rotation about the z axis (in the axial plane), radians.
    pitch : float
        Rotation about the x axis (nodding), radians.
    roll : float
        Rotation about the y axis (tilting to a shoulder), radians.

    Returns
    -------
    ndarray, shape ``(3, 3)``
    """
    cy, sy = np.cos(yaw), np.sin(yaw)
    cp, sp = np.cos(pitch), np.sin(pitch)
    cr, sr = np.cos(roll), np.sin(roll)
    # matrices in (z, y, x) component order
    rz = np.array([[1, 0, 0], [0, cy, -sy], [0, sy, cy]])
    rx = np.array([[cp, -sp, 0], [sp, cp, 0], [0, 0, 1]])
    ry = np.array([[cr, 0, -sr], [0, 1, 0], [sr, 0, cr]])
    return rz @ rx @ ry


def random_rotation(rng: np.random.Generator, max_deg: tuple[float, float, float]):
    """Uniform random small rotation; returns ``(matrix (3, 3), (yaw, pitch, roll) in degrees)``."""
    angles = [float(rng.uniform(-m, m)) for m in max_deg]
    return rotation_zyx(*np.deg2rad(angles)), tuple(angles)
