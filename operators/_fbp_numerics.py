"""FBP numerics (private): angular weights, ramp filtering, and the back-projection matrix.

The public :class:`operators.FBP` is a thin operator over these pieces (numerics → autograd →
public operator, as in torchkbnufft). FBP is the linear map

    FBP = B · diag(w_view) · Filter · diag(pre)

with ``pre`` the cosine (fan) and Parker (short scan) pre-weights ``(V, D)``, ``Filter`` the
zero-padded ramp convolution along the detector (applied by FFT; its kernel is symmetric, so it is
its own transpose), ``w_view`` the angular quadrature weights and ``B`` the distance-weighted
back-projection, a fixed sparse matrix ``(N², V·D)`` built once per geometry and cached on disk and
in memory (:mod:`._matrix_cache`). A batch is filtered and back-projected with the batch in the
columns: one FFT pair and one sparse × dense product, on any device.

Two exact structural savings:

- the filtered projections live on the detector extended by ``ext`` bins on each side
  (:func:`detector_extension`), so pixels outside the scanned field of view read the true ramp
  tails rather than zeros beyond the detector edge;
- when the views come in groups rotated by 90° (:func:`rotation_fold`; full fan rotations with
  ``V`` divisible by 4, half parallel rotations with even ``V``), only the first group's matrix
  is stored: the ``m`` groups become ``m`` times as many columns of one product whose results
  are rotated back (``torch.rot90``) and summed. The matrix is ``m`` times smaller and is read
  once for all of them (measured on 1 busy CPU thread, 384² msl-paper, 64 views: 3.6 ms per
  slice at batch 4, 6.8 ms for one slice).

The geometry is read from its canonical vectors (:meth:`geometries.CTGeometry.to_vec`) only.

Back-projection kernels (``B`` for view ``v``, pixel centre ``x``; all carry the fan-beam distance
weight ``1/U² = (R / L)²``, ``L`` the distance from the source along the central ray):

``"linear"``
    pixel-driven: the filtered projection read at the detector position of the ray through ``x``
    by linear interpolation (two bins per view and pixel);
``"footprint"``
    the transpose of ASTRA's ``line`` projector normalised per pixel and view, i.e. the average of
    the filtered projection over the pixel's footprint on the detector, weighted by the lengths of
    the rays in the pixel;
``"hybrid"``
    the mean of the two kernels (the default; see :class:`operators.FBP` for why).
"""

from __future__ import annotations

import math
import os
import warnings
from typing import Any

import numpy as np
import torch

from geometries import CTGeometry

from . import _astra, _matrix_cache
from ._filters import padded_length, ramp_response
from ._sparse import SparseMatrixPair, spmm

__all__ = [
    "BACKPROJECTORS",
    "FBPPlan",
    "backprojection_matrix",
    "detector_extension",
    "fbp_adjoint",
    "fbp_apply",
    "parker_weights",
]

#: Back-projection kernels, see the module docstring.
BACKPROJECTORS = ("hybrid", "linear", "footprint")
#: bump when the matrices change: cached files are then simply not found
_MATRIX_VERSION = 2
# view-pixel pairs per chunk while building the linear kernel (bounds the build's memory)
_BUILD_CHUNK = 1 << 21


def parker_weights(beta: np.ndarray, gamma: np.ndarray, span: float) -> np.ndarray:
    """Parker short-scan weights in ASTRA's fan-beam convention.

    Parameters
    ----------
    beta : numpy.ndarray
        View angles in radians measured from the start of the scan interval, ``0 ≤ β ≤ span``.
    gamma : numpy.ndarray
        Fan angle of the ray, ``atan(u / (R + R_d))``, positive along the detector axis
        ``(cos θ, sin θ)``; broadcasts against ``beta``.
    span : float
        Length of the scan interval in radians, at least ``π + 2 max|γ|``.

    Returns
    -------
    numpy.ndarray
        Weights in [0, 1]. In ASTRA's convention the ray ``(β, γ)`` coincides with
        ``(β + π - 2γ, -γ)``, and the two weights of every such pair sum to 1.
    """
    delta = (span - math.pi) / 2.0
    b, g = np.broadcast_arrays(np.asarray(beta, float), np.asarray(gamma, float))
    w = np.ones(b.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        lo = b < 2 * (delta + g)
        w = np.where(lo, np.sin(math.pi / 4 * b / (delta + g)) ** 2, w)
        hi = b > math.pi + 2 * g
        w = np.where(hi, np.sin(math.pi / 4 * (span - b) / (delta - g)) ** 2, w)
    return np.clip(np.nan_to_num(w, nan=0.0), 0.0, 1.0)


def _cell_widths(a: np.ndarray, period: float | None, pad: float) -> np.ndarray:
    """Quadrature weight of each angle: the width of its cell between mid-points.

    ``a`` must be sorted. On a circle (``period``) the cells wrap; on an interval the outer
    cells extend ``pad`` beyond the first and last angle.
    """
    if a.size == 1:
        return np.array([period if period is not None else 2 * pad])
    gaps = np.diff(a)
    if period is not None:
        wrap = a[0] + period - a[-1]
        prev = np.concatenate([[wrap], gaps])
        nxt = np.concatenate([gaps, [wrap]])
        return (prev + nxt) / 2.0
    prev = np.concatenate([[2 * pad], gaps])
    nxt = np.concatenate([gaps, [2 * pad]])
    return (prev + nxt) / 2.0


def _coverage(angles: np.ndarray, period: float) -> tuple[bool, float, float, float]:
    """Whether views cover the full circle; plus the covered interval's start, span and step.

    The scan is "full" when no gap between neighbouring directions (on the circle of ``period``)
    exceeds three median steps or four mean steps (a random subset of a full scan stays "full").
    Otherwise the covered interval is the complement of the largest gap; ``span`` includes half
    a step beyond each end view.
    """
    a = np.sort(np.mod(angles, period))
    uniq = a[np.concatenate([[True], np.diff(a) > 1e-9])]
    if uniq.size < 2:
        return False, float(uniq[0]), 0.0, 0.0
    gaps = np.diff(np.concatenate([uniq, [uniq[0] + period]]))
    step = float(np.median(gaps))
    k = int(np.argmax(gaps))
    largest = float(gaps[k])
    full = largest <= max(3.0 * step, 4.0 * period / uniq.size) + 1e-9
    start = float(uniq[(k + 1) % uniq.size])
    covered = period - largest
    # typical step inside the covered interval (without the largest gap)
    inner = np.delete(gaps, k)
    step_in = float(np.median(inner)) if inner.size else 0.0
    return full, start, covered + step_in, step_in


def _scan_scalars(vec: np.ndarray, fan: bool) -> tuple[float, float, float]:
    """``(R, SDD, Δu)`` of a circular scan from its first view (``R = SDD = inf`` if parallel)."""
    du = float(np.hypot(*vec[0, 4:6]))
    if not fan:
        return math.inf, math.inf, du
    r = float(np.hypot(*vec[0, 0:2]))
    return r, r + float(np.hypot(*vec[0, 2:4])), du


def detector_extension(geometry: CTGeometry) -> int:
    """Bins to add on each side of the detector so that every pixel's ray meets it, ``≥ 0``.

    Rays through pixels outside the scanned field of view miss the detector in some views. There
    the measured data are zero (the object is assumed inside the field of view), but the
    ramp-filtered projection is not: it has the ramp's ``-1/t²`` tails. FBP therefore filters onto
    a virtually extended detector and back-projects from it, instead of reading zeros beyond the
    edge (which leaves strong errors in the image corners of wide fans). The extremes of the
    detector position over the image square are at its corners (a projective map on a convex
    set), plus one bin for the interpolation.
    """
    d = geometry.det_count
    vec = geometry.to_vec()
    h = geometry.image_size * geometry.pixel_size / 2.0
    corners = np.array([[-h, -h], [-h, h], [h, -h], [h, h]])
    k = _bin_index(vec, corners[:, 0], corners[:, 1], d, geometry.beam == "fan")
    over = max(-float(k.min()), float(k.max()) - (d - 1), 0.0)
    return 0 if over == 0.0 else int(math.ceil(over)) + 1


def _bin_index(vec: np.ndarray, xs: np.ndarray, ys: np.ndarray, d: int, fan: bool) -> np.ndarray:
    """Fractional detector bin ``(V, P)`` hit by the ray through the points ``(xs, ys)``."""
    sx, sy, cx, cy, ux, uy = (vec[:, i : i + 1] for i in range(6))
    if fan:  # the ray s + λ (x - s) meets the detector c + t u at t
        ax, ay = xs[None, :] - sx, ys[None, :] - sy
        num = (sx - cx) * ay - (sy - cy) * ax
    else:  # the ray x + λ r (r = (sx, sy)) meets the detector at t
        ax, ay = sx, sy
        num = (xs[None, :] - cx) * ay - (ys[None, :] - cy) * ax
    return num / (ux * ay - uy * ax) + (d - 1) / 2.0


class FBPPlan:
    """Geometry- and filter-dependent weights of an FBP (small arrays; no matrices).

    Parameters
    ----------
    geometry : CTGeometry
        Parallel or fan beam (``geometry.beam``).
    filt : str
        Normalised filter name (:func:`._filters.check_filter`).
    fscale : float
        Frequency scaling in (0, 1].
    short_scan : bool or None
        Parker weights: forced on/off, or detected from the coverage (``None``).
    antialias : bool
        Ramp times ``sinc(ν sqrt(p² - Δs²))`` when ``Δs < p`` (the ``"linear"`` kernel only).
    backprojector : str
        One of :data:`BACKPROJECTORS`.
    """

    def __init__(
        self,
        geometry: CTGeometry,
        filt: str,
        fscale: float,
        short_scan: bool | None,
        antialias: bool,
        backprojector: str,
    ) -> None:
        if geometry.beam not in ("parallel", "fan"):
            raise ValueError(f"FBP supports parallel and fan beams, got {type(geometry).__name__}")
        self.geometry = geometry
        self.backprojector = backprojector
        fan = geometry.beam == "fan"
        v, d = geometry.sino_shape
        angles = geometry.angles_array
        vec = geometry.to_vec()
        r, sdd, du = _scan_scalars(vec, fan)
        u = (np.arange(d) - (d - 1) / 2.0) * du  # mm on the detector
        if fan:
            ds = du * r / sdd  # bin spacing on the detector rescaled to the isocentre
            s = u * r / sdd
            pre = np.broadcast_to(r / np.sqrt(r * r + s * s), (v, d)).copy()
            w, parker = self._fan_weights(angles, u, sdd, short_scan, d * du)
            if parker is not None:
                pre *= parker
            self.short_scan = parker is not None
        else:
            if short_scan:
                raise ValueError("short_scan (Parker weights) applies to fan beams only")
            ds = du
            pre = np.ones((v, d))
            w = self._parallel_weights(angles)
            self.short_scan = False
        p = geometry.pixel_size
        use_aa = antialias and backprojector == "linear"
        self.footprint = math.sqrt(max(0.0, p * p - ds * ds)) if use_aa else 0.0
        self.ext = detector_extension(geometry)
        self.fold = rotation_fold(geometry)
        # the filtered projections are kept on the detector extended by `ext` bins on each side;
        # P >= 2 (D + ext) - 1 keeps the circular convolution linear on all of them
        self.response = ramp_response(d + self.ext, ds, filt, fscale, self.footprint)
        self.n_pad = padded_length(d + self.ext)
        self.pre = pre
        self.view_weights = w
        self._tensors: dict[tuple[torch.device, torch.dtype], dict[str, torch.Tensor]] = {}

    @staticmethod
    def _fan_weights(
        angles: np.ndarray, u: np.ndarray, sdd: float, short_scan: bool | None, width: float
    ) -> tuple[np.ndarray, np.ndarray | None]:
        v = angles.size
        period = 2 * math.pi
        full, start, span, step = _coverage(angles, period)
        need = math.pi + 2 * math.atan(width / 2.0 / sdd)
        if short_scan is None:
            use_parker = not full
            if use_parker and span < need - 1e-9:
                warnings.warn(
                    f"FBP: the views cover {math.degrees(span):.1f}°, less than the "
                    f"{math.degrees(need):.1f}° (180° + fan angle) of a short scan: "
                    "limited-angle data, reconstructing without Parker weights",
                    stacklevel=5,
                )
                use_parker = False
        else:
            use_parker = bool(short_scan)
        w = np.empty(v)
        if use_parker:
            if span < need - 1e-9:
                raise ValueError(
                    f"short_scan=True needs views spanning at least 180° + fan angle = "
                    f"{math.degrees(need):.2f}°, these span {math.degrees(span):.2f}°"
                )
            beta = np.mod(angles - start, period) + step / 2.0
            order = np.argsort(beta)
            w[order] = _cell_widths(beta[order], None, step / 2.0)
            gamma = np.arctan(u / sdd)
            return w, parker_weights(beta[:, None], gamma[None, :], span)
        if full:
            a = np.mod(angles, period)
            order = np.argsort(a)
            w[order] = _cell_widths(a[order], period, 0.0) / 2.0
        else:
            beta = np.mod(angles - start, period) + step / 2.0
            order = np.argsort(beta)
            w[order] = _cell_widths(beta[order], None, step / 2.0) / 2.0
        return w, None

    @staticmethod
    def _parallel_weights(angles: np.ndarray) -> np.ndarray:
        period = math.pi
        full, start, span, step = _coverage(angles, period)
        if not full:
            warnings.warn(
                f"FBP: parallel views cover {math.degrees(span):.1f}° of the 180° needed: "
                "limited-angle data",
                stacklevel=5,
            )
        w = np.empty(angles.size)
        if full:
            a = np.mod(angles, period)
            order = np.argsort(a)
            w[order] = _cell_widths(a[order], period, 0.0)
        else:
            beta = np.mod(angles - start, period) + step / 2.0
            order = np.argsort(beta)
            w[order] = _cell_widths(beta[order], None, step / 2.0)
        return w

    def tensors(self, device: torch.device, dtype: torch.dtype) -> dict[str, torch.Tensor]:
        """``pre (V, D)``, ``spec (V, P//2+1)`` (ramp × view weight) etc. on device, in dtype."""
        # no lock (keeps the plan picklable): a race at worst builds the same tensors twice
        key = (device, dtype)
        t = self._tensors.get(key)
        if t is None:
            arrays = {
                "response": self.response,
                "pre": self.pre,
                "view_weights": self.view_weights,
                "spec": self.view_weights[:, None] * self.response[None, :],
            }
            t = {k: torch.as_tensor(a, dtype=dtype).to(device) for k, a in arrays.items()}
            t = self._tensors.setdefault(key, t)
        return t


# ---------------------------------------------------------------------- back-projection matrix
def _pixel_centres(n: int, p: float) -> tuple[np.ndarray, np.ndarray]:
    """``x`` and ``y`` (mm) of the pixel centres in row-major order (ASTRA: row 0 at the top)."""
    c = (np.arange(n) + 0.5) * p - n * p / 2.0
    return np.tile(c, n), np.repeat(-c, n)


def _distance_weights(vec: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """``(R / L)²`` for every view and pixel, ``(V, N²)``; ``L`` along the central ray."""
    s = vec[:, 0:2]
    r2 = np.sum(s * s, axis=1)[:, None]
    dist = r2 - s[:, 0:1] * xs[None, :] - s[:, 1:2] * ys[None, :]  # (x - s)·(-s)
    return (r2 / dist) ** 2


def _linear_kernel(geometry: CTGeometry, e: int) -> Any:
    """Pixel-driven linear-interpolation kernel with distance weights, scipy CSR ``(N², V D)``.

    Built row by row in order (pixel, view, bin), so the CSR arrays come out sorted without a
    sort: ``O(nnz)`` time and memory.
    """
    import scipy.sparse as sp

    vec = geometry.to_vec()
    fan = geometry.beam == "fan"
    v, d = geometry.sino_shape
    de = d + 2 * e  # columns index the detector extended by e bins on each side
    n2 = geometry.image_size**2
    xs, ys = _pixel_centres(geometry.image_size, geometry.pixel_size)
    cols = np.empty((n2, v, 2), dtype=np.int64)
    vals = np.empty((n2, v, 2), dtype=np.float32)
    step = max(1, _BUILD_CHUNK // n2)
    for v0 in range(0, v, step):
        vv = vec[v0 : v0 + step]
        sl = slice(v0, v0 + vv.shape[0])
        k = _bin_index(vv, xs, ys, d, fan) + e  # fractional bin of the extended detector
        wgt = _distance_weights(vv, xs, ys) if fan else 1.0
        k0 = np.floor(k)
        f = k - k0
        base = (np.arange(v0, v0 + vv.shape[0])[:, None] * de).astype(np.float64)
        cols[:, sl, 0] = (base + k0).T
        vals[:, sl, 0] = (wgt * (1.0 - f)).T
        vals[:, sl, 1] = (wgt * f).T
        # bins outside the (extended) detector read zeros: mark them with a zero weight
        vals[:, sl, 0][((k0 < 0) | (k0 >= de)).T] = 0.0
        vals[:, sl, 1][((k0 + 1 < 0) | (k0 + 1 >= de)).T] = 0.0
    cols[:, :, 1] = cols[:, :, 0] + 1
    keep = vals != 0.0
    indptr = np.zeros(n2 + 1, dtype=np.int64)
    np.cumsum(keep.reshape(n2, -1).sum(axis=1), out=indptr[1:])
    return sp.csr_matrix((vals[keep], cols[keep], indptr), shape=(n2, v * de))


def _footprint_kernel(geometry: CTGeometry, e: int, cache_dir: str | os.PathLike | None) -> Any:
    """Transpose of ASTRA's ``line`` projector, normalised per pixel and view, times ``(R/L)²``."""
    import dataclasses

    from .ray import RayTransform

    if e:  # ASTRA's projector for the detector extended by e bins on each side
        geometry = dataclasses.replace(
            geometry, det_count=geometry.det_count + 2 * e, angles=geometry.angles, n_views=None
        )
    a = RayTransform(geometry, projector="line", cache_dir=cache_dir).system_matrix()
    at = a.T.tocsr()  # (N², V D), sorted by the counting sort of tocsc
    v, d = geometry.sino_shape
    n2 = geometry.image_size**2
    # slot of each entry: (pixel, view), in increasing order along the sorted CSR arrays
    slot = np.repeat(np.arange(0, n2 * v, v, dtype=np.int64), np.diff(at.indptr))
    slot += at.indices // d
    sums = np.bincount(slot, weights=at.data, minlength=n2 * v)
    # a pixel that no ray of a view crosses (or only with zero weights) gets nothing from it
    scale = np.divide(1.0, sums, out=np.zeros_like(sums), where=sums > 0)
    if geometry.beam == "fan":
        xs, ys = _pixel_centres(geometry.image_size, geometry.pixel_size)
        scale *= _distance_weights(geometry.to_vec(), xs, ys).T.reshape(-1)
    at.data = (at.data * scale[slot]).astype(np.float32)
    return at


def rotation_fold(geometry: CTGeometry) -> int:
    """``m`` in {4, 2, 1}: view ``v + r V/m`` is view ``v`` rotated by ``r · 90°`` (``r < m``).

    A square pixel grid centred on the isocentre maps onto itself under a 90° rotation, so the
    back-projection of such views is that of the first ``V/m`` views, rotated: the matrix is
    built and stored for ``V/m`` views only and applied once to ``m`` times as many columns
    (full fan-beam rotations with ``V`` divisible by 4, half parallel rotations with even ``V``).
    """
    a = geometry.angles_array
    for m in (4, 2):
        if a.size % m or a.size < m:
            continue
        g = a.size // m
        diff = a.reshape(m, g) - a[None, :g] - (np.arange(m) * (math.pi / 2))[:, None]
        if np.allclose(np.angle(np.exp(1j * diff)), 0.0, atol=1e-9):
            return m
    return 1


def _build(geometry: CTGeometry, kind: str, fold: int, cache_dir: str | os.PathLike | None) -> Any:
    e = detector_extension(geometry)
    if fold > 1:
        geometry = geometry.subset(np.arange(geometry.n_views // fold))  # type: ignore[operator]
    if kind == "linear":
        mat = _linear_kernel(geometry, e)
    elif kind == "footprint":
        mat = _footprint_kernel(geometry, e, cache_dir)
    else:
        lin, foot = _linear_kernel(geometry, e), _footprint_kernel(geometry, e, cache_dir)
        mat = (lin * 0.5 + foot * 0.5).tocsr()
    mat.sum_duplicates()
    mat.sort_indices()
    mat.data = mat.data.astype(np.float32)
    if mat.nnz < 2**31 - 1 and max(mat.shape) < 2**31 - 1:
        mat.indices = mat.indices.astype(np.int32, copy=False)
        mat.indptr = mat.indptr.astype(np.int32, copy=False)
    return mat


def backprojection_matrix(
    geometry: CTGeometry,
    kind: str,
    cache_dir: str | os.PathLike | None = None,
    fold: int | None = None,
) -> SparseMatrixPair:
    """The back-projection of ``geometry`` with kernel ``kind``, cached.

    Shape ``(N², (V/fold) (D + 2 ext))``: the views of one rotation group (see
    :func:`rotation_fold`, the default ``fold``) on the extended detector
    (:func:`detector_extension`). Cached on disk (keyed by the geometry fingerprint, the kernel,
    the fold and, for kernels built from ASTRA's projector, the ASTRA version) and in memory,
    like the ray transform's system matrix.
    """
    fold = rotation_fold(geometry) if fold is None else int(fold)
    extra = "" if kind == "linear" else f"|astra-{_astra.astra_version()}"
    key = f"fbp-bp|v{_MATRIX_VERSION}|{geometry.fingerprint()}|{kind}|fold{fold}{extra}"
    path = _matrix_cache.cache_path(key, cache_dir, prefix="fbp")

    def make() -> SparseMatrixPair:
        mat, source = _matrix_cache.load_or_build(
            key,
            lambda: _build(geometry, kind, fold, cache_dir),
            cache_dir=cache_dir,
            prefix="fbp",
        )
        return SparseMatrixPair(mat, source)

    return _matrix_cache.memory_cached(f"{path}|{key}", make)


# ---------------------------------------------------------------------- application
def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return dtype if dtype in (torch.float32, torch.float64) else torch.float32


def _filter_columns(q: torch.Tensor, plan: FBPPlan, t: dict[str, torch.Tensor]) -> torch.Tensor:
    """Ramp-filter ``q (V, D, B)`` (zero padded) times the view weights, onto ``D + 2 ext`` bins."""
    d, e, n = q.shape[1], plan.ext, plan.n_pad
    out = torch.fft.irfft(torch.fft.rfft(q, n=n, dim=1) * t["spec"][:, :, None], n=n, dim=1)
    if e == 0:
        return out[:, :d, :]
    return torch.cat([out[:, n - e :, :], out[:, : d + e, :]], dim=1)


def _filter_columns_t(q: torch.Tensor, plan: FBPPlan, t: dict[str, torch.Tensor]) -> torch.Tensor:
    """Transpose of :func:`_filter_columns`: ``(V, D + 2 ext, B)`` → ``(V, D, B)``."""
    e, n = plan.ext, plan.n_pad
    d = q.shape[1] - 2 * e
    if e:  # scatter back onto the circular grid (the two pieces do not overlap: n > d + 2e)
        gap = q.new_zeros(q.shape[0], n - d - 2 * e, q.shape[2])
        q = torch.cat([q[:, e:, :], gap, q[:, :e, :]], dim=1)
    out = torch.fft.irfft(torch.fft.rfft(q, n=n, dim=1) * t["spec"][:, :, None], n=n, dim=1)
    return out[:, :d, :]


def fbp_apply(y: torch.Tensor, plan: FBPPlan, mat: SparseMatrixPair) -> torch.Tensor:
    """FBP of sinograms ``(*batch, V, D)`` → images ``(*batch, N, N)``.

    The batch goes into the columns: a batch-innermost input (what :class:`RayTransform` returns)
    is used without a copy; the output is batch-innermost as well.
    """
    v, d = plan.geometry.sino_shape
    n = plan.geometry.image_size
    batch = y.shape[:-2]
    cdt = _compute_dtype(y.dtype)
    cols = y.reshape(-1, v * d).T.to(cdt)  # (V D, B), a view when batch-innermost
    b = cols.shape[1]
    if b == 0:
        return y.new_zeros((*batch, n, n))
    t = plan.tensors(y.device, cdt)
    q = _filter_columns(cols.reshape(v, d, b) * t["pre"][:, :, None], plan, t)
    m = plan.fold
    # rotation group r of the views becomes columns r B .. r B + B - 1 of one product
    q = q.reshape(m, -1, b).permute(1, 0, 2).reshape(-1, m * b)
    out = spmm(mat.one(y.device, cdt, False), q).view(n, n, m, b)
    img = out[:, :, 0, :]
    for r in range(1, m):
        img = img + torch.rot90(out[:, :, r, :], r, dims=(0, 1))
    return img.permute(2, 0, 1).reshape(*batch, n, n).to(y.dtype)


def fbp_adjoint(x: torch.Tensor, plan: FBPPlan, mat: SparseMatrixPair) -> torch.Tensor:
    """Exact transpose of :func:`fbp_apply`: images ``(*batch, N, N)`` → ``(*batch, V, D)``."""
    v, d = plan.geometry.sino_shape
    n = plan.geometry.image_size
    batch = x.shape[:-2]
    cdt = _compute_dtype(x.dtype)
    img = x.reshape(-1, n, n).permute(1, 2, 0).to(cdt)  # (N, N, B)
    b = img.shape[2]
    if b == 0:
        return x.new_zeros((*batch, v, d))
    t = plan.tensors(x.device, cdt)
    m = plan.fold
    cols = torch.stack([torch.rot90(img, -r, dims=(0, 1)) for r in range(m)], dim=2)
    q = spmm(mat.one(x.device, cdt, True), cols.reshape(n * n, m * b))
    q = q.view(-1, m, b).permute(1, 0, 2).reshape(v, d + 2 * plan.ext, b)
    q = _filter_columns_t(q, plan, t) * t["pre"][:, :, None]
    return q.reshape(v * d, b).T.reshape(*batch, v, d).to(x.dtype)
