"""Pixel-driven weighted back-projection with linear detector interpolation, and its transpose.

Pure torch, batched, on any device. For each view ``v`` and pixel centre ``x`` the filtered
projection ``q_v`` is read by linear interpolation at the detector position of the ray through
``x`` and multiplied by a distance weight (``1/U²`` for a fan beam, 1 for a parallel beam)::

    b(x) = Σ_v  w(v, x) · q_v(t_v(x))

Outside the detector the data are taken as zero (the interpolation ramps to zero over one bin
beyond the edge bin centres). :func:`backproject_t` is the exact Euclidean transpose of
:func:`backproject`, built from the very same indices and weights, so the pair passes a float64
dot test to rounding error.

Coordinates follow ASTRA (see :mod:`operators.phantoms`): pixel ``[row, col]`` is at
``x = -N p/2 + (col + ½) p``, ``y = N p/2 - (row + ½) p``; the detector coordinate of a parallel
ray through ``(x, y)`` at angle θ is ``x cos θ + y sin θ``; for a fan beam with the source at
``R (sin θ, -cos θ)`` it is ``R (x cos θ + y sin θ) / (R - x sin θ + y cos θ)`` on the detector
rescaled to the isocentre.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["BackprojectionGrid", "backproject", "backproject_t"]

# elements of one (batch × views × pixels) work array; bounds the memory of a call (~32 MB f64)
_CHUNK_ELEMENTS = 1 << 22
# interpolation tables (int32 index + 2 weights per view and pixel) are cached up to this many
# view-pixel pairs (384² × 64 views: 9.4 M, about 113 MB in float32); two geometries are kept
_TABLE_MAX_ELEMENTS = 10_000_000


@dataclass(frozen=True)
class BackprojectionGrid:
    """Geometry of a back-projection (all lengths in mm).

    Attributes
    ----------
    image_size : int
        N; the image is ``(N, N)``.
    pixel_size : float
        Pixel side p.
    det_count : int
        D detector samples.
    det_spacing : float
        Spacing Δs of the detector samples in the coordinate that is back-projected (for a fan
        beam: the detector rescaled to the isocentre).
    source_origin : float or None
        R for a fan beam, ``None`` for a parallel beam.
    """

    image_size: int
    pixel_size: float
    det_count: int
    det_spacing: float
    source_origin: float | None


def _chunks(n_views: int, batch: int, n_pix: int) -> Iterator[slice]:
    step = max(1, _CHUNK_ELEMENTS // max(1, batch * n_pix))
    for start in range(0, n_views, step):
        yield slice(start, min(n_views, start + step))


def _interp(
    grid: BackprojectionGrid, cos_t: torch.Tensor, sin_t: torch.Tensor, start: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Flat gather indices into ``(V, D + 3)`` zero-padded data, and the two weights.

    ``cos_t, sin_t`` hold the views ``start, start + 1, ...``. Returns ``idx0 (Vc·N²,)`` (int32,
    indices into the flattened data of *all* views) and ``a0, a1 (Vc, N²)``:
    ``b = a0 q[idx0] + a1 q[idx0 + 1]``.
    The data carry one zero sample on the left and two on the right, so positions beyond the
    detector are clamped onto zeros instead of being masked.
    """
    n, p, d = grid.image_size, grid.pixel_size, grid.det_count
    dev, dt = cos_t.device, cos_t.dtype
    c = (torch.arange(n, device=dev, dtype=dt) + 0.5) * p - n * p / 2.0
    xs = c[None, None, :]  # x by column
    ys = -c[None, :, None]  # y by row (row 0 at the top)
    ct = cos_t[:, None, None]
    st = sin_t[:, None, None]
    off = (d - 1) / 2.0 + 1.0  # +1: the zero sample padded on the left
    if grid.source_origin is not None:
        r = grid.source_origin
        w = (r + ys * ct) - xs * st  # distance L from the source along the central ray
        w = torch.reciprocal_(w).mul_(r)  # R / L = 1 / U
        t = (xs * (ct / grid.det_spacing) + ys * (st / grid.det_spacing)).mul_(w)
        w.square_()
    else:
        w = None
        t = xs * (ct / grid.det_spacing) + ys * (st / grid.det_spacing)
    t = t.add_(off).clamp_(0.0, d + 1.0).reshape(t.shape[0], -1)
    i0 = torch.floor(t)
    a1 = t.sub_(i0)  # fractional part (in place)
    if w is not None:
        a1.mul_(w.reshape(a1.shape))
        a0 = w.reshape(a1.shape) - a1
    else:
        a0 = 1.0 - a1
    idx = i0.to(torch.int32)
    idx += (torch.arange(t.shape[0], device=dev, dtype=torch.int32)[:, None] + start) * (d + 3)
    return idx.reshape(-1), a0, a1


@functools.lru_cache(maxsize=2)
def _tables(
    grid: BackprojectionGrid, angles: tuple[float, ...], device: torch.device, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    a = np.asarray(angles, dtype=np.float64)
    c = torch.as_tensor(np.cos(a), dtype=dtype).to(device)
    s = torch.as_tensor(np.sin(a), dtype=dtype).to(device)
    return _interp(grid, c, s, 0)


def _chunk_interp(
    grid: BackprojectionGrid,
    cos_t: torch.Tensor,
    sin_t: torch.Tensor,
    sl: slice,
    angles: tuple[float, ...] | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Interpolation of the views ``sl``: from the table cache when allowed, else computed."""
    nn = grid.image_size**2
    if angles is not None and len(angles) * nn <= _TABLE_MAX_ELEMENTS:
        idx, a0, a1 = _tables(grid, angles, cos_t.device, cos_t.dtype)
        return idx[sl.start * nn : sl.stop * nn], a0[sl], a1[sl]
    return _interp(grid, cos_t[sl], sin_t[sl], sl.start)


def backproject(
    q: torch.Tensor,
    grid: BackprojectionGrid,
    cos_t: torch.Tensor,
    sin_t: torch.Tensor,
    angles: tuple[float, ...] | None = None,
) -> torch.Tensor:
    """Weighted back-projection ``(B, V, D) -> (B, N, N)`` (sum over views, no angular weight).

    Parameters
    ----------
    q : torch.Tensor
        ``(B, V, D)`` filtered projections (real).
    grid : BackprojectionGrid
    cos_t, sin_t : torch.Tensor
        ``(V,)`` cosines and sines of the view angles, same dtype/device as ``q``.
    angles : tuple of float, optional
        The view angles (radians) whose cosines and sines these are. When given, the
        interpolation tables are cached (for up to ``_TABLE_MAX_ELEMENTS`` view-pixel pairs).
    """
    b, v, _ = q.shape
    n = grid.image_size
    qp0 = torch.nn.functional.pad(q, (1, 2)).reshape(b, -1)
    qp1 = torch.nn.functional.pad(q, (0, 3)).reshape(b, -1)  # qp1[k] = qp0[k + 1]
    out = q.new_zeros(b, n * n)
    for sl in _chunks(v, b, n * n):
        idx0, a0, a1 = _chunk_interp(grid, cos_t, sin_t, sl, angles)
        vc = a0.shape[0]
        v0 = qp0.index_select(1, idx0).view(b, vc, -1)
        v1 = qp1.index_select(1, idx0).view(b, vc, -1)
        out += v0.mul_(a0).addcmul_(v1, a1).sum(dim=1)
    return out.view(b, n, n)


def backproject_t(
    img: torch.Tensor,
    grid: BackprojectionGrid,
    cos_t: torch.Tensor,
    sin_t: torch.Tensor,
    angles: tuple[float, ...] | None = None,
) -> torch.Tensor:
    """Exact transpose of :func:`backproject`: ``(B, N, N) -> (B, V, D)``."""
    b = img.shape[0]
    n, d = grid.image_size, grid.det_count
    v = cos_t.shape[0]
    g = img.reshape(b, 1, n * n)
    acc0 = img.new_zeros(b, v * (d + 3))  # transpose of the reads from qp0
    acc1 = img.new_zeros(b, v * (d + 3))  # ... and from qp1 (shifted by one sample)
    for sl in _chunks(v, b, n * n):
        idx0, a0, a1 = _chunk_interp(grid, cos_t, sin_t, sl, angles)
        idx0 = idx0.long()  # index_add_ is many times slower with int32 indices
        acc0.index_add_(1, idx0, (g * a0).reshape(b, -1))
        acc1.index_add_(1, idx0, (g * a1).reshape(b, -1))
    out = acc0.view(b, v, d + 3)
    out[..., 1:] += acc1.view(b, v, d + 3)[..., :-1]
    return out[..., 1 : d + 1]
