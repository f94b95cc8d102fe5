"""Analytic ellipse phantoms with closed-form sinograms (parallel beam and flat-detector fan beam).

Ellipses live in physical units in ASTRA's world frame: ``x`` grows with the column index and
``y`` grows *upwards*, i.e. against the row index. The pixel ``[row, col]`` of an ``N × N`` image
with pixel size ``p`` (mm) has its centre at::

    x = -N p / 2 + (col + 1/2) p,        y = +N p / 2 - (row + 1/2) p

The line integral of an ellipse along any straight line is analytic (``value × chord length``),
so :func:`ellipse_sinogram` gives exact sinograms in ASTRA's conventions, measured in the same
units as the image times mm:

- parallel beam, angle θ: the ray of detector coordinate ``s`` is the line
  ``x cos θ + y sin θ = s``;
- fan beam (flat detector), angle θ: the source is at ``R (sin θ, -cos θ)`` with ``R`` the
  source–isocentre distance, the detector centre at ``-R_d (sin θ, -cos θ)`` and the detector axis
  is ``(cos θ, sin θ)``;
- detector bin ``k`` has its centre at ``(k - (D - 1) / 2) Δu`` on the detector.

Examples
--------
>>> import geometries as geo
>>> from operators import phantoms
>>> g = geo.ParallelBeam2D(image_size=64, pixel_size=1.0, n_views=30)
>>> e = phantoms.shepp_logan(fov_mm=64.0)
>>> phantoms.ellipse_image(e, g).shape, phantoms.ellipse_sinogram(e, g).shape
((64, 64), (30, 92))
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from geometries import CTGeometry

__all__ = [
    "Ellipse",
    "ellipse_image",
    "ellipse_sinogram",
    "random_ellipses",
    "shepp_logan",
]


@dataclass(frozen=True)
class Ellipse:
    """One ellipse with a constant additive value.

    Parameters
    ----------
    value : float
        Value added inside the ellipse (attenuation in 1/mm, or any intensity unit).
    center : (float, float)
        Centre ``(x, y)`` in mm (x right, y up; see the module docstring).
    axes : (float, float)
        Semi-axes ``(a, b)`` in mm, ``a`` along the ellipse's own x axis before rotation.
    angle : float
        Counter-clockwise rotation in radians of the ellipse's x axis from the world x axis.
    """

    value: float
    center: tuple[float, float]
    axes: tuple[float, float]
    angle: float = 0.0

    def __post_init__(self) -> None:
        a, b = self.axes
        if not (a > 0 and b > 0 and math.isfinite(a) and math.isfinite(b)):
            raise ValueError(f"ellipse semi-axes must be positive and finite, got {self.axes}")
        if not all(math.isfinite(float(v)) for v in (*self.center, self.angle, self.value)):
            raise ValueError("ellipse centre, angle and value must be finite")


# Toft's modified Shepp–Logan (higher contrast): value, a, b, x0, y0, angle (deg), on [-1, 1]².
_MODIFIED_SHEPP_LOGAN = (
    (1.0, 0.69, 0.92, 0.0, 0.0, 0.0),
    (-0.8, 0.6624, 0.8740, 0.0, -0.0184, 0.0),
    (-0.2, 0.1100, 0.3100, 0.22, 0.0, -18.0),
    (-0.2, 0.1600, 0.4100, -0.22, 0.0, 18.0),
    (0.1, 0.2100, 0.2500, 0.0, 0.35, 0.0),
    (0.1, 0.0460, 0.0460, 0.0, 0.1, 0.0),
    (0.1, 0.0460, 0.0460, 0.0, -0.1, 0.0),
    (0.1, 0.0460, 0.0230, -0.08, -0.605, 0.0),
    (0.1, 0.0230, 0.0230, 0.0, -0.606, 0.0),
    (0.1, 0.0230, 0.0460, 0.06, -0.605, 0.0),
)


def shepp_logan(fov_mm: float, *, scale: float = 1.0) -> list[Ellipse]:
    """Modified Shepp–Logan phantom (Toft's contrasts) filling a square field of view.

    Parameters
    ----------
    fov_mm : float
        Side of the square field of view in mm; the phantom's unit square ``[-1, 1]²`` is mapped
        onto ``[-fov/2, fov/2]²`` (the outer ellipse spans 92 % of the height).
    scale : float
        Multiplies all values (e.g. an attenuation in 1/mm). Values lie in ``[0, scale]``.

    Returns
    -------
    list of Ellipse
        Ten ellipses; the skull is ``scale``, the brain ``0.2 scale``.
    """
    if not (fov_mm > 0 and math.isfinite(fov_mm)):
        raise ValueError(f"fov_mm must be positive, got {fov_mm!r}")
    h = fov_mm / 2.0
    return [
        Ellipse(value=v * scale, center=(x * h, y * h), axes=(a * h, b * h), angle=math.radians(t))
        for v, a, b, x, y, t in _MODIFIED_SHEPP_LOGAN
    ]


def random_ellipses(
    rng: np.random.Generator,
    fov_mm: float,
    *,
    n: int = 8,
    value_range: tuple[float, float] = (-0.3, 1.0),
    radius_fraction: float = 0.9,
) -> list[Ellipse]:
    """Random ellipses entirely inside the disk inscribed in the field of view.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of randomness (explicit, for reproducibility).
    fov_mm : float
        Side of the square field of view in mm.
    n : int
        Number of ellipses.
    value_range : (float, float)
        Range of the additive values.
    radius_fraction : float
        Every ellipse lies inside the disk of radius ``radius_fraction × fov/2`` (the one fully
        seen by every view of a scanner whose fan covers the inscribed disk).

    Returns
    -------
    list of Ellipse
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    if not 0 < radius_fraction <= 1:
        raise ValueError(f"radius_fraction must lie in (0, 1], got {radius_fraction}")
    rmax = radius_fraction * fov_mm / 2.0
    out = []
    for _ in range(n):
        a, b = rng.uniform(0.05, 0.45, size=2) * rmax
        # the ellipse fits in a disk of radius max(a, b) around its centre
        rc = rng.uniform(0.0, max(rmax - max(a, b), 0.0))
        phi = rng.uniform(0, 2 * math.pi)
        out.append(
            Ellipse(
                value=float(rng.uniform(*value_range)),
                center=(float(rc * math.cos(phi)), float(rc * math.sin(phi))),
                axes=(float(a), float(b)),
                angle=float(rng.uniform(0, math.pi)),
            )
        )
    return out


def _grid(spec: CTGeometry | tuple[int, float]) -> tuple[int, float]:
    if isinstance(spec, CTGeometry):
        return spec.image_size, spec.pixel_size
    try:
        n, p = spec
    except (TypeError, ValueError):
        raise ValueError(
            f"expected a CTGeometry or a tuple (N, pixel_size_mm), got {spec!r}"
        ) from None
    if int(n) != n or n <= 0 or not p > 0:
        raise ValueError(
            f"image size must be a positive integer and pixel size positive, got {spec}"
        )
    return int(n), float(p)


def ellipse_image(
    ellipses: Sequence[Ellipse],
    geometry: CTGeometry | tuple[int, float],
    *,
    supersample: int = 4,
) -> np.ndarray:
    """Rasterise ellipses onto the image grid of a geometry, averaging over each pixel.

    Parameters
    ----------
    ellipses : sequence of Ellipse
    geometry : CTGeometry or (int, float)
        The image grid: a CT geometry, or ``(N, pixel_size_mm)``.
    supersample : int
        Sub-samples per pixel side; each pixel is the mean of ``supersample²`` point values.

    Returns
    -------
    numpy.ndarray
        ``(N, N)`` float64 image, ``[row, col]`` in ASTRA's volume convention (row 0 at the top,
        i.e. at ``y = +N p / 2``).
    """
    n, p = _grid(geometry)
    if int(supersample) != supersample or supersample < 1:
        raise ValueError(f"supersample must be a positive integer, got {supersample!r}")
    s = int(supersample)
    offs = (np.arange(s) + 0.5) / s  # sub-sample offsets inside a pixel, in pixels
    cols = (np.arange(n)[:, None] + offs[None, :]).reshape(-1) * p - n * p / 2  # x
    rows = n * p / 2 - (np.arange(n)[:, None] + offs[None, :]).reshape(-1) * p  # y
    img = np.zeros((n * s, n * s), dtype=np.float64)
    for e in ellipses:
        c, sn = math.cos(e.angle), math.sin(e.angle)
        dx = cols[None, :] - e.center[0]
        dy = rows[:, None] - e.center[1]
        u = (c * dx + sn * dy) / e.axes[0]
        v = (-sn * dx + c * dy) / e.axes[1]
        img += e.value * (u * u + v * v <= 1.0)
    return img.reshape(n, s, n, s).mean(axis=(1, 3))


def _chords(ellipses: Sequence[Ellipse], points: np.ndarray, dirs: np.ndarray) -> np.ndarray:
    """Sum over ellipses of ``value × chord length`` of the lines ``points + t dirs``.

    ``points`` and ``dirs`` have shape ``(..., 2)``; ``dirs`` are unit vectors.
    """
    out = np.zeros(points.shape[:-1], dtype=np.float64)
    for e in ellipses:
        c, sn = math.cos(e.angle), math.sin(e.angle)
        px = points[..., 0] - e.center[0]
        py = points[..., 1] - e.center[1]
        # into the ellipse frame, then scale to the unit circle
        qx = (c * px + sn * py) / e.axes[0]
        qy = (-sn * px + c * py) / e.axes[1]
        ex = (c * dirs[..., 0] + sn * dirs[..., 1]) / e.axes[0]
        ey = (-sn * dirs[..., 0] + c * dirs[..., 1]) / e.axes[1]
        a = ex * ex + ey * ey
        b = qx * ex + qy * ey
        disc = b * b - a * (qx * qx + qy * qy - 1.0)
        out += e.value * 2.0 * np.sqrt(np.maximum(disc, 0.0)) / a
    return out


def ellipse_sinogram(
    ellipses: Sequence[Ellipse],
    geometry: CTGeometry,
    *,
    det_supersample: int = 1,
) -> np.ndarray:
    """Closed-form sinogram of ellipses in ASTRA's conventions (line integrals, value × mm).

    Parameters
    ----------
    ellipses : sequence of Ellipse
    geometry : ParallelBeam2D or FanBeam2D
        The scan. Fan beam uses a flat detector (ASTRA ``fanflat``).
    det_supersample : int
        Rays per detector bin, evenly spread over the bin and averaged (a bin-integrating
        detector). ``1`` gives the single ray through the bin centre, as ASTRA's ``line``
        projectors model it.

    Returns
    -------
    numpy.ndarray
        ``(n_views, det_count)`` float64 sinogram.
    """
    if int(det_supersample) != det_supersample or det_supersample < 1:
        raise ValueError(f"det_supersample must be a positive integer, got {det_supersample!r}")
    if not isinstance(geometry, CTGeometry):
        raise ValueError(
            "ellipse_sinogram supports ParallelBeam2D and FanBeam2D (a geometries.CTGeometry), got "
            f"{type(geometry).__name__}"
        )
    m = int(det_supersample)
    vec = geometry.to_vec()[:, None, None, :]  # (V, 1, 1, 6): source/ray, detector centre, u
    d = geometry.det_count
    k = np.arange(d)[:, None] + (np.arange(m)[None, :] + 0.5) / m - 0.5  # (D, m) bin positions
    det = vec[..., 2:4] + (k - (d - 1) / 2.0)[None, :, :, None] * vec[..., 4:6]
    if geometry.beam == "parallel":
        pts = det
        dirs = np.broadcast_to(vec[..., 0:2], pts.shape)
    else:
        src = vec[..., 0:2]
        dirs = det - src
        dirs = dirs / np.linalg.norm(dirs, axis=-1, keepdims=True)
        pts = np.broadcast_to(src, dirs.shape)
    return _chords(ellipses, pts, dirs).mean(axis=-1)
