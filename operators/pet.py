"""PET forward model: resolution blur and the attenuated ray transform, as linear operators.

One transaxial PET plane is modelled as ``y = a ⊙ A(B x)``:

* ``x`` — activity image ``(N, N)`` (any unit, e.g. kBq/mL);
* ``B`` — :class:`GaussianBlur`, the scanner's resolution (positron range, non-collinearity,
  crystal size and depth of interaction lumped into an isotropic Gaussian of a given FWHM in mm);
* ``A`` — :class:`operators.RayTransform`, line integrals along the lines of response (the
  parallel-beam geometry of one ring plane, e.g. :func:`geometries.pet.biograph_mct`);
* ``a = exp(-∫ μ dl)`` — attenuation factors per LOR (:func:`attenuation_factors`), shared by all
  images ``(V, D)`` or one set per sample ``(*B, V, D)``. Any other multiplicative LOR factor
  (detector efficiency, a count scale) can be folded into ``a``.

Both operators are real :class:`LinearOperator` s with exact Euclidean adjoints; ``B`` is
self-adjoint, so ``A_att.H = B A.H (a ⊙ ·)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from geometries import CTGeometry, ParallelBeam2D

from .base import LinearOperator
from .ray import RayTransform
from .registry import register_example

__all__ = ["FWHM_PER_SIGMA", "AttenuatedRayTransform", "GaussianBlur", "attenuation_factors"]

#: FWHM of a Gaussian in units of its standard deviation, ``2 sqrt(2 ln 2)``.
FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))


class GaussianBlur(LinearOperator):
    """Separable isotropic Gaussian blur of 2D images, a self-adjoint :class:`LinearOperator`.

    The kernel is the Gaussian of standard deviation ``σ = fwhm_mm / (2 sqrt(2 ln 2)) /
    pixel_size_mm`` pixels, sampled at integer offsets up to ``ceil(4 σ)`` and normalised to sum
    1, applied along rows and then columns with zero padding ("same" size), as products with
    banded Toeplitz matrices (fast on CPU and GPU for the image sizes used here). A symmetric
    kernel with zero padding is a symmetric matrix, so ``.H`` is the operator itself. Counts are
    kept except for the part of the kernel that falls outside the image near its border.

    Parameters
    ----------
    fwhm_mm : float
        Full width at half maximum in mm (0 gives the identity).
    pixel_size_mm : float
        Pixel side in mm.
    shape : (int, int)
        Image shape ``(H, W)``.

    Examples
    --------
    >>> B = GaussianBlur(4.5, 1.0, (32, 32))
    >>> x = torch.zeros(32, 32); x[16, 16] = 1.0
    >>> round(float(B(x).sum()), 6)
    1.0
    """

    def __init__(self, fwhm_mm: float, pixel_size_mm: float, shape: Sequence[int]) -> None:
        shp = tuple(int(s) for s in shape)
        if len(shp) != 2 or min(shp) < 1:
            raise ValueError(f"GaussianBlur: shape must be two positive ints (H, W), got {shape!r}")
        if not (math.isfinite(fwhm_mm) and fwhm_mm >= 0):
            raise ValueError(f"GaussianBlur: fwhm_mm must be finite and >= 0, got {fwhm_mm!r}")
        if not (math.isfinite(pixel_size_mm) and pixel_size_mm > 0):
            raise ValueError(f"GaussianBlur: pixel_size_mm must be > 0, got {pixel_size_mm!r}")
        super().__init__(shp, shp, name="GaussianBlur")
        self.fwhm_mm = float(fwhm_mm)
        self.pixel_size_mm = float(pixel_size_mm)
        self.sigma_px = self.fwhm_mm / FWHM_PER_SIGMA / self.pixel_size_mm
        radius = int(math.ceil(4.0 * self.sigma_px)) if self.sigma_px > 0 else 0
        k = np.arange(-radius, radius + 1, dtype=np.float64)
        w = np.exp(-0.5 * (k / self.sigma_px) ** 2) if self.sigma_px > 0 else np.ones(1)
        self.kernel = w / w.sum()
        self.radius = radius
        self._matrices: dict[tuple[torch.device, torch.dtype, int], torch.Tensor] = {}

    def _matrix_on(self, x: torch.Tensor, n: int) -> torch.Tensor:
        """The symmetric banded (Toeplitz) blur matrix of size ``n`` on x's device and dtype."""
        key = (x.device, x.dtype, n)
        m = self._matrices.get(key)
        if m is None:
            off = np.arange(n)[:, None] - np.arange(n)[None, :]
            inside = np.abs(off) <= self.radius
            dense = np.where(inside, self.kernel[np.clip(off + self.radius, 0, 2 * self.radius)], 0)
            m = torch.as_tensor(dense, dtype=x.dtype).to(x.device)
            self._matrices[key] = m
        return m

    def _apply(self, x: torch.Tensor) -> torch.Tensor:
        if self.radius == 0:
            return x.clone()
        h, w = self.domain_shape
        # rows then columns: K_h x K_w (both symmetric); one batched matmul each
        return self._matrix_on(x, h) @ x @ self._matrix_on(x, w)

    _adjoint = _apply  # symmetric kernel, zero padding: a symmetric matrix

    def __repr__(self) -> str:
        return (
            f"GaussianBlur(fwhm={self.fwhm_mm:g} mm, pixel={self.pixel_size_mm:g} mm, "
            f"σ={self.sigma_px:.3g} px, {self.domain_shape})"
        )


def _align_batch(f: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """View ``(*fb, V, D)`` so that its batch axes align with the *leading* axes of ``x``."""
    fb = f.ndim - 2
    xb = x.ndim - 2
    if fb < xb:
        return f.reshape(f.shape[:-2] + (1,) * (xb - fb) + f.shape[-2:])
    return f


class AttenuatedRayTransform(LinearOperator):
    """Attenuated, resolution-blurred ray transform ``y = a ⊙ A(B x)`` of one PET plane.

    Parameters
    ----------
    geometry : geometries.CTGeometry
        Scan geometry in mm (for PET a :class:`~geometries.ParallelBeam2D`, e.g.
        ``geometries.preset("pet-biograph-mct")``).
    attenuation_factors : array or tensor, shape ``(V, D)`` or ``(*B, V, D)``, optional
        Multiplicative LOR factors ``a`` (dimensionless, usually ``exp(-∫μ dl)`` from
        :func:`attenuation_factors`, possibly times a count scale). Batch axes align with the
        **leading** batch axes of the input (as the per-sample masks of
        :class:`operators.CartesianFourier`): ``(B, V, D)`` applies sample-wise to ``(B, N, N)``
        and to ``(B, C, N, N)``. ``None`` means no attenuation (``a = 1``).
    fwhm_mm : float
        FWHM of the Gaussian resolution blur :class:`GaussianBlur` in mm (0: no blur).
    projector : {"strip", "line"}
        ASTRA projector of the ray transform. ``strip`` (default) integrates over the width of
        each radial bin, the natural model of a finite crystal pitch.
    backend : {"astra", "astra-direct"}
        Backend of :class:`operators.RayTransform`.

    Notes
    -----
    Domain ``(N, N)`` real, range ``(V, D)`` real; inputs keep dtype and device. The adjoint is
    ``B A.H (a ⊙ y)``. For activity in kBq/mL and ``a`` dimensionless the output is in
    kBq/mL·mm; multiply ``a`` by a counts-per-(kBq/mL·mm) scale for expected counts.
    """

    def __init__(
        self,
        geometry: CTGeometry,
        attenuation_factors: np.ndarray | torch.Tensor | None = None,
        *,
        fwhm_mm: float = 4.5,
        projector: str = "strip",
        backend: str = "astra",
    ) -> None:
        self.ray = RayTransform(geometry, projector=projector, backend=backend)
        self.geometry = geometry
        self.blur = GaussianBlur(fwhm_mm, geometry.pixel_size, geometry.image_shape)
        super().__init__(geometry.image_shape, geometry.sino_shape, name="AttenuatedRayTransform")
        if attenuation_factors is None:
            a = None
        else:
            a = (
                attenuation_factors.detach()
                if isinstance(attenuation_factors, torch.Tensor)
                else torch.as_tensor(np.asarray(attenuation_factors))
            )
            if a.is_complex():
                raise ValueError("AttenuatedRayTransform: attenuation_factors must be real")
            if not a.is_floating_point():
                a = a.to(torch.float64)
            if a.ndim < 2 or tuple(a.shape[-2:]) != geometry.sino_shape:
                raise ValueError(
                    "AttenuatedRayTransform: attenuation_factors must have shape (..., V, D) = "
                    f"(..., {geometry.sino_shape[0]}, {geometry.sino_shape[1]}), "
                    f"got {tuple(a.shape)}"
                )
            if not bool(torch.isfinite(a).all()):
                raise ValueError("AttenuatedRayTransform: attenuation_factors must be finite")
        self._a = a
        self._a_cache: dict[tuple[torch.device, torch.dtype], torch.Tensor] = {}

    @property
    def attenuation(self) -> torch.Tensor | None:
        """The LOR factors ``a`` as given, ``(*B, V, D)``, or None."""
        return self._a

    @property
    def fwhm_mm(self) -> float:
        """FWHM of the resolution blur, mm."""
        return self.blur.fwhm_mm

    def _factors(self, y: torch.Tensor) -> torch.Tensor | None:
        if self._a is None:
            return None
        key = (y.device, y.dtype)
        a = self._a_cache.get(key)
        if a is None:
            a = self._a.to(device=y.device, dtype=y.dtype)
            self._a_cache[key] = a
        return _align_batch(a, y)

    def _apply(self, x: torch.Tensor) -> torch.Tensor:
        y = self.ray._apply(self.blur._apply(x))
        a = self._factors(y)
        return y if a is None else y * a

    def _adjoint(self, y: torch.Tensor) -> torch.Tensor:
        a = self._factors(y)
        if a is not None:
            y = y * a
        return self.blur._apply(self.ray._adjoint(y))

    def view_subset(self, indices: np.ndarray | Sequence[int]) -> AttenuatedRayTransform:
        """The same model restricted to the views at ``indices`` (for ordered subsets)."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        a = None if self._a is None else self._a[..., torch.from_numpy(idx), :]
        return AttenuatedRayTransform(
            self.geometry.subset(idx),
            a,
            fwhm_mm=self.blur.fwhm_mm,
            projector=self.ray.projector,
            backend=self.ray.backend,
        )

    def __repr__(self) -> str:
        a = "none" if self._a is None else str(tuple(self._a.shape))
        return (
            f"AttenuatedRayTransform(fwhm={self.fwhm_mm:g} mm, projector={self.ray.projector!r}, "
            f"a={a}: {self.domain_shape} -> {self.range_shape})"
        )


def attenuation_factors(
    mu_map: torch.Tensor | np.ndarray, geometry: CTGeometry, *, projector: str = "strip"
) -> torch.Tensor:
    """Attenuation factors ``exp(-∫ μ dl)`` of every LOR.

    Parameters
    ----------
    mu_map : tensor or array, shape ``(*B, N, N)``
        Linear attenuation coefficient at 511 keV in 1/mm (e.g.
        :func:`msl_recon.data.pet.hu_to_mu511` of a CT).
    geometry : geometries.CTGeometry
        The PET geometry (mm).
    projector : {"strip", "line"}
        ASTRA projector of the line integrals (use the one of the emission model).

    Returns
    -------
    torch.Tensor, shape ``(*B, V, D)``
        Factors in (0, 1]; float64 for float64 input, else float32; on the input's device.
    """
    mu = mu_map if isinstance(mu_map, torch.Tensor) else torch.as_tensor(np.asarray(mu_map))
    if not mu.is_floating_point():
        mu = mu.to(torch.float32)
    if bool((mu < 0).any()):
        raise ValueError("attenuation_factors: mu_map must be >= 0 (1/mm)")
    line = RayTransform(geometry, projector=projector)(mu.detach())
    return torch.exp(-line.clamp_min(0.0))


# ---------------------------------------------------------------------- registry examples
def _tiny_pet() -> ParallelBeam2D:
    return ParallelBeam2D(image_size=8, pixel_size=2.0, n_views=6, det_count=10, det_spacing=2.5)


def _tiny_factors(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return 0.2 + 0.8 * torch.rand(shape, generator=gen, dtype=torch.float64)


@register_example("pet-blur")
def _ex_blur(device: torch.device) -> LinearOperator:
    return GaussianBlur(4.5, 2.0, (8, 7))


@register_example("pet-attenuated")
def _ex_attenuated(device: torch.device) -> LinearOperator:
    g = _tiny_pet()
    return AttenuatedRayTransform(g, _tiny_factors(g.sino_shape, 1).to(device), fwhm_mm=4.0)


@register_example("pet-attenuated-batched")
def _ex_attenuated_batched(device: torch.device) -> LinearOperator:
    g = _tiny_pet()
    a = _tiny_factors((2, *g.sino_shape), 2).to(device)
    return AttenuatedRayTransform(g, a, fwhm_mm=3.0, projector="line")
