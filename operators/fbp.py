"""Filtered back-projection for parallel beams and flat-detector fan beams, as a linear operator.

Pure torch (CPU or CUDA), batched over leading axes, differentiable, in the units of the sinogram:
for line integrals in mm of an image ``x``, ``FBP(g)(RayTransform(g)(x)) ≈ x``.

Fan beam (flat detector), the exact formula (Kak & Slaney, ch. 3.4.2) with

1. cosine pre-weighting ``R / sqrt(R² + s²)`` on the detector rescaled to the isocentre
   (``s = u R / (R + R_d)``),
2. the discrete spatial-domain ramp on that coordinate (zero padded, see :mod:`._filters`),
3. ``1/U²`` distance-weighted back-projection with linear interpolation on the detector,
4. angular weights from the actual view spacing (any irregular angle set), times ½ for a full
   rotation, or times Parker's weights for a short scan (Parker 1982, generalised to any scan
   range ``≥ π + 2 δ`` by Wesarg et al. 2002) applied to the data before filtering.

Parallel beam: the same without the cosine and distance weights; views are weighted by their
spacing on the half circle (angles modulo π), so ``[0, π)`` and ``[0, 2π)`` scans both work.

The adjoint :meth:`FBP.H` is the exact Euclidean transpose of the discrete operator (what
autograd needs), not a continuous-domain adjoint.
"""

from __future__ import annotations

import functools
import math
import warnings

import numpy as np
import torch

from geometries import CTGeometry, FanBeam2D, ParallelBeam2D

from ._backprojection import BackprojectionGrid, backproject, backproject_t
from ._filters import check_filter, padded_length, ramp_response
from .base import LinearOperator
from .registry import register_example

__all__ = ["FBP", "parker_weights"]


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


class _Plan:
    """Geometry- and filter-dependent precomputation, shared between FBP instances."""

    def __init__(
        self,
        geometry: CTGeometry,
        filt: str,
        fscale: float,
        short_scan: bool | None,
        antialias: bool,
    ):
        self.geometry = geometry
        v, d = geometry.sino_shape
        angles = geometry.angles_array
        u = (np.arange(d) - (d - 1) / 2.0) * geometry.det_spacing  # mm on the detector
        if isinstance(geometry, FanBeam2D):
            r, sdd = geometry.source_origin, geometry.source_detector
            ds = geometry.det_spacing * r / sdd
            s = u * r / sdd
            pre = np.broadcast_to(r / np.sqrt(r * r + s * s), (v, d)).copy()
            period = 2 * math.pi
            full, start, span, step = _coverage(angles, period)
            delta = geometry.fan_half_angle
            need = math.pi + 2 * delta
            if short_scan is None:
                use_parker = not full
                if use_parker and span < need - 1e-9:
                    warnings.warn(
                        f"FBP: the views cover {math.degrees(span):.1f}°, less than the "
                        f"{math.degrees(need):.1f}° (180° + fan angle) of a short scan: "
                        "limited-angle data, reconstructing without Parker weights",
                        stacklevel=4,
                    )
                    use_parker = False
            else:
                use_parker = bool(short_scan)
            if use_parker:
                if span < need - 1e-9:
                    raise ValueError(
                        f"short_scan=True needs views spanning at least 180° + fan angle = "
                        f"{math.degrees(need):.2f}°, these span {math.degrees(span):.2f}°"
                    )
                beta = np.mod(angles - start, period) + step / 2.0
                order = np.argsort(beta)
                w = np.empty(v)
                w[order] = _cell_widths(beta[order], None, step / 2.0)
                gamma = np.arctan(u / sdd)
                pre *= parker_weights(beta[:, None], gamma[None, :], span)
            else:
                a = np.mod(angles, period)
                order = np.argsort(a)
                w = np.empty(v)
                if full:
                    w[order] = _cell_widths(a[order], period, 0.0) / 2.0
                else:
                    beta = np.mod(angles - start, period) + step / 2.0
                    order = np.argsort(beta)
                    w[order] = _cell_widths(beta[order], None, step / 2.0) / 2.0
            self.short_scan = use_parker
            grid = BackprojectionGrid(geometry.image_size, geometry.pixel_size, d, ds, r)
        elif isinstance(geometry, ParallelBeam2D):
            if short_scan:
                raise ValueError("short_scan (Parker weights) applies to fan beams only")
            ds = geometry.det_spacing
            pre = np.ones((v, d))
            period = math.pi
            full, start, span, step = _coverage(angles, period)
            if not full:
                warnings.warn(
                    f"FBP: parallel views cover {math.degrees(span):.1f}° of the 180° needed: "
                    "limited-angle data",
                    stacklevel=4,
                )
            a = np.mod(angles, period)
            order = np.argsort(a)
            w = np.empty(v)
            if full:
                w[order] = _cell_widths(a[order], period, 0.0)
            else:
                beta = np.mod(angles - start, period) + step / 2.0
                order = np.argsort(beta)
                w[order] = _cell_widths(beta[order], None, step / 2.0)
            self.short_scan = False
            grid = BackprojectionGrid(geometry.image_size, geometry.pixel_size, d, ds, None)
        else:
            raise ValueError(
                "FBP supports ParallelBeam2D and FanBeam2D geometries, got "
                f"{type(geometry).__name__}"
            )
        self.grid = grid
        p = geometry.pixel_size
        self.footprint = math.sqrt(max(0.0, p * p - ds * ds)) if antialias else 0.0
        self.response = ramp_response(d, ds, filt, fscale, self.footprint)
        self.n_pad = padded_length(d)
        self.pre = pre
        self.view_weights = w
        self.cos = np.cos(angles)
        self.sin = np.sin(angles)
        self._tensors: dict[tuple[torch.device, torch.dtype], dict[str, torch.Tensor]] = {}

    def tensors(self, device: torch.device, dtype: torch.dtype) -> dict[str, torch.Tensor]:
        # no lock (keeps the plan picklable): a race at worst builds the same tensors twice
        key = (device, dtype)
        t = self._tensors.get(key)
        if t is None:
            t = {
                name: torch.as_tensor(getattr(self, name), dtype=dtype).to(device)
                for name in ("response", "pre", "view_weights", "cos", "sin")
            }
            t = self._tensors.setdefault(key, t)
        return t


@functools.lru_cache(maxsize=32)
def _plan(
    geometry: CTGeometry, filt: str, fscale: float, short_scan: bool | None, antialias: bool
) -> _Plan:
    return _Plan(geometry, filt, fscale, short_scan, antialias)


class FBP(LinearOperator):
    """Filtered back-projection: sinogram ``(..., V, D)`` → image ``(..., N, N)``.

    Parameters
    ----------
    geometry : ParallelBeam2D or FanBeam2D
        The scan (ASTRA conventions, mm). Any angle set: full rotations, short scans, sparse or
        irregular subsets.
    filter : {"ram-lak", "shepp-logan", "cosine", "hann"}
        Apodisation of the ramp filter.
    frequency_scaling : float
        Fraction of the Nyquist band kept, in (0, 1] (as in ODL and scikit-image).
    short_scan : bool or None
        Fan beam only. ``None`` detects a short scan from the views' angular coverage (Parker
        weights when the views do not cover the full circle); ``True`` forces Parker weights
        (the views must span at least ``π + 2 δ``, ``δ`` the fan half-angle); ``False`` uses
        full-rotation weights.
    antialias : bool
        When the detector samples finer than the pixel grid (spacing ``Δs`` at the isocentre
        smaller than the pixel size ``p``), average the filtered projections over the part of the
        pixel footprint that the linear interpolation does not already cover: the ramp is
        multiplied by ``sinc(ν sqrt(p² - Δs²))``. This keeps the pixel-driven back-projection from
        aliasing detail finer than a pixel (measured: RMSE 0.026 → 0.016 on a 128² Shepp–Logan
        with Δs = 0.6 p). No effect when ``Δs ≥ p``.

    Notes
    -----
    The output is in the units of the sinogram divided by mm: line integrals in mm of an
    attenuation image give back that image. Inputs keep dtype and device; the operator is linear
    and its ``.H`` is the exact Euclidean transpose. Construction is cheap when repeated: the
    geometry-dependent weights and filter are cached (per device and dtype once used).

    Examples
    --------
    >>> import torch, geometries as geo
    >>> g = geo.FanBeam2D(image_size=32, det_count=64, det_spacing=1.0, n_views=40,
    ...                   source_origin=60.0, origin_detector=30.0)
    >>> FBP(g)(torch.zeros(2, 40, 64)).shape
    torch.Size([2, 32, 32])
    """

    def __init__(
        self,
        geometry: CTGeometry,
        *,
        filter: str = "ram-lak",
        frequency_scaling: float = 1.0,
        short_scan: bool | None = None,
        antialias: bool = True,
    ) -> None:
        if not isinstance(geometry, (ParallelBeam2D, FanBeam2D)):
            raise ValueError(
                "FBP: geometry must be a geometries.ParallelBeam2D or FanBeam2D, got "
                f"{type(geometry).__name__}"
            )
        filt = check_filter(filter, frequency_scaling)
        if short_scan is not None and not isinstance(short_scan, (bool, np.bool_)):
            raise ValueError(f"short_scan must be True, False or None, got {short_scan!r}")
        self.geometry = geometry
        self.filter = filt
        self.frequency_scaling = float(frequency_scaling)
        self.antialias = bool(antialias)
        self._plan = _plan(
            geometry,
            filt,
            self.frequency_scaling,
            None if short_scan is None else bool(short_scan),
            self.antialias,
        )
        self.short_scan: bool = self._plan.short_scan
        super().__init__(geometry.sino_shape, geometry.image_shape, name="FBP")

    # ---------------------------------------------------------------- pieces
    def _filter(self, p: torch.Tensor, t: dict[str, torch.Tensor]) -> torch.Tensor:
        d = p.shape[-1]
        spec = torch.fft.rfft(p, n=self._plan.n_pad, dim=-1) * t["response"]
        return torch.fft.irfft(spec, n=self._plan.n_pad, dim=-1)[..., :d]

    def _apply(self, y: torch.Tensor) -> torch.Tensor:
        batch = y.shape[:-2]
        v, d = self.domain_shape
        t = self._plan.tensors(y.device, y.dtype)
        p = y.reshape(-1, v, d) * t["pre"]
        q = self._filter(p, t) * t["view_weights"][:, None]
        img = backproject(q, self._plan.grid, t["cos"], t["sin"], self.geometry.angles)
        return img.reshape(*batch, *self.range_shape)

    def _adjoint(self, x: torch.Tensor) -> torch.Tensor:
        batch = x.shape[:-2]
        n = self.range_shape[0]
        t = self._plan.tensors(x.device, x.dtype)
        q = backproject_t(
            x.reshape(-1, n, n), self._plan.grid, t["cos"], t["sin"], self.geometry.angles
        )
        p = self._filter(q * t["view_weights"][:, None], t) * t["pre"]
        return p.reshape(*batch, *self.domain_shape)

    def __repr__(self) -> str:
        kind = type(self.geometry).__name__
        extra = ", short_scan" if self.short_scan else ""
        return (
            f"FBP({kind}, filter={self.filter!r}, frequency_scaling={self.frequency_scaling:g}"
            f"{extra}: {self.domain_shape} -> {self.range_shape})"
        )


@register_example("fbp-parallel")
def _example_parallel(device: torch.device) -> LinearOperator:
    g = ParallelBeam2D(image_size=8, pixel_size=1.0, det_count=12, n_views=6)
    return FBP(g, filter="hann")


@register_example("fbp-fan")
def _example_fan(device: torch.device) -> LinearOperator:
    g = FanBeam2D(
        image_size=8, pixel_size=1.0, det_count=16, det_spacing=1.0, n_views=7,
        source_origin=20.0, origin_detector=10.0,
    )  # fmt: skip
    return FBP(g)
