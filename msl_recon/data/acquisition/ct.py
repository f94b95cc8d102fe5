"""CT acquisition without the inverse crime: fine-grid projection, detector binning, dose noise.

Physics
-------
The ground truth lives on the reconstruction grid (``N × N`` pixels of size ``p``); the phantom
renders the object on a grid ``factor`` times finer (``factor·N`` pixels of size ``p / factor``,
same physical field of view) and the ground truth is its ``factor × factor`` block average.
:func:`simulate_ct_sinogram` projects the *fine* image with :class:`operators.RayTransform` on
:func:`fine_geometry` (same source/detector distances and views, ``factor``× more detector bins of
``1/factor`` the width, so the same physical detector), converts every sub-bin line integral to a
transmission ``exp(−μ·p)``, and averages the transmissions of the ``factor`` sub-bins that make
one physical bin (a detector bin integrates photons over its aperture). So the stored sinogram is
*not* ``A(gt)``: it differs by the discretisation of the object and of the detector and by the
exponential edge-gradient effect, as real data does.

Units follow :mod:`msl_recon.data.simulate`: images in [0, 1] units with one unit =
:data:`~msl_recon.data.simulate.MU_PER_UNIT` = 0.06 mm⁻¹, sinograms in mm·unit, so
``∫μ dl = MU_PER_UNIT · p`` and FBP of the stored sinogram gives the unit image.

Noise
-----
With ``I0`` incident photons per (physical) detector bin and view, the detected signal is

    I = Poisson(I0 · T) + Normal(0, σ_e²),      T = mean over sub-bins of exp(−MU_PER_UNIT · p),

the Poisson part being the quantum noise and ``σ_e`` (photons) the electronic noise. Counts below
``min_count`` (default 1 photon; LoDoPaB-CT uses 0.1) are set to ``min_count`` before the log, so
a fully absorbed bin reads ``ln(I0 / min_count)`` instead of infinity. The stored post-log value
is ``−ln(I / I0) / MU_PER_UNIT``; for large counts its variance is ``1 / (I0 T)`` in ``∫μ dl``
units (``1 / (I0 T MU_PER_UNIT²)`` in mm·unit). Named dose levels: :data:`DOSE_LEVELS`.
"""

from __future__ import annotations

import dataclasses
import math
from collections import OrderedDict
from typing import Any

import torch

from ...errors import InputError
from ..intensity import MU_CLIP

__all__ = [
    "DOSE_LEVELS",
    "MU_PER_UNIT",
    "CTDose",
    "bin_detector",
    "block_average",
    "dose_level",
    "fine_geometry",
    "poisson_log_noise",
    "simulate_ct_sinogram",
]


MU_PER_UNIT = MU_CLIP / 10.0
"""Attenuation in mm⁻¹ of one [0, 1] image unit (0.6 cm⁻¹ / 10), as in ``data.simulate``."""


@dataclasses.dataclass(frozen=True)
class CTDose:
    """Photon statistics of one CT acquisition.

    Parameters
    ----------
    i0 : float
        Incident photons per detector bin per view (blank scan), > 0.
    sigma_e : float
        Standard deviation of the additive electronic noise, photons, ≥ 0.
    min_count : float
        Floor applied to the detected counts before the log, photons, > 0.
    name : str
        Label for reports.
    """

    i0: float
    sigma_e: float = 0.0
    min_count: float = 1.0
    name: str = "custom"

    def __post_init__(self) -> None:
        if not (math.isfinite(self.i0) and self.i0 > 0):
            raise InputError(f"CTDose: i0 must be a positive photon count, got {self.i0!r}")
        if not (math.isfinite(self.sigma_e) and self.sigma_e >= 0):
            raise InputError(f"CTDose: sigma_e must be >= 0, got {self.sigma_e!r}")
        if not (math.isfinite(self.min_count) and self.min_count > 0):
            raise InputError(f"CTDose: min_count must be > 0, got {self.min_count!r}")

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (HDF5 attributes)."""
        return dataclasses.asdict(self)


#: Named dose levels. ``routine``: a routine head scan, about 1e5 photons per bin (at the bin
#: behind ~20 cm of water only ~2e3 arrive), with 5 photons of electronic noise. ``low``: the
#: LoDoPaB-CT photon count (4096 per bin, Leuschner et al., Sci. Data 8:109, 2021), same
#: electronic noise.
DOSE_LEVELS: dict[str, CTDose] = {
    "routine": CTDose(i0=1.0e5, sigma_e=5.0, name="routine"),
    "low": CTDose(i0=4096.0, sigma_e=5.0, name="low"),
}


def dose_level(dose: str | CTDose | None) -> CTDose | None:
    """Resolve a dose given by name (:data:`DOSE_LEVELS`), as :class:`CTDose`, or None."""
    if dose is None or isinstance(dose, CTDose):
        return dose
    if isinstance(dose, str) and dose in DOSE_LEVELS:
        return DOSE_LEVELS[dose]
    raise InputError(f"unknown CT dose {dose!r}; named levels: {sorted(DOSE_LEVELS)}")


def fine_geometry(geometry: Any, factor: int = 2) -> Any:
    """The same scan on a ``factor``× finer image grid and detector.

    Parameters
    ----------
    geometry : geometries.CTGeometry
        Reconstruction geometry (``N`` pixels of ``pixel_size`` mm, ``D`` bins of
        ``det_spacing`` mm).
    factor : int
        Refinement, ≥ 1.

    Returns
    -------
    geometries.CTGeometry
        ``factor·N`` pixels of ``pixel_size / factor`` mm and ``factor·D`` bins of
        ``det_spacing / factor`` mm: the same physical field of view, detector and views.
    """
    if not (isinstance(factor, int) and factor >= 1):
        raise InputError(f"factor must be an integer >= 1, got {factor!r}")
    return dataclasses.replace(
        geometry,
        image_size=geometry.image_size * factor,
        pixel_size=geometry.pixel_size / factor,
        det_count=geometry.det_count * factor,
        det_spacing=geometry.det_spacing / factor,
        angles=geometry.angles,
        n_views=None,
    )


def block_average(x: torch.Tensor, factor: int = 2) -> torch.Tensor:
    """Mean over ``factor × factor`` pixel blocks: ``(..., fH, fW) -> (..., H, W)``.

    Works on real or complex tensors; this is how the ground truth is made from the fine image.
    """
    h, w = x.shape[-2], x.shape[-1]
    if h % factor or w % factor:
        raise InputError(f"block_average: shape {(h, w)} is not divisible by {factor}")
    y = x.reshape(*x.shape[:-2], h // factor, factor, w // factor, factor)
    return y.mean(dim=(-3, -1))


def bin_detector(sino: torch.Tensor, factor: int = 2) -> torch.Tensor:
    """Average groups of ``factor`` adjacent detector bins: ``(..., V, fD) -> (..., V, D)``."""
    d = sino.shape[-1]
    if d % factor:
        raise InputError(f"bin_detector: {d} bins are not divisible by {factor}")
    return sino.reshape(*sino.shape[:-1], d // factor, factor).mean(-1)


def poisson_log_noise(
    transmission: torch.Tensor, dose: CTDose, generator: torch.Generator
) -> torch.Tensor:
    """Noisy post-log line integrals ``−ln(I / I0)`` (dimensionless ``∫μ dl``).

    Parameters
    ----------
    transmission : Tensor, any shape
        Expected transmission ``T = E[I] / I0`` in (0, 1].
    dose : CTDose
    generator : torch.Generator
        CPU generator; all noise is drawn on the CPU in float64 (reproducible on any device).

    Returns
    -------
    Tensor, float64, CPU, same shape
        ``−ln(max(Poisson(I0 T) + σ_e·N(0, 1), min_count) / I0)``.
    """
    lam = dose.i0 * transmission.detach().to("cpu", torch.float64).clamp(0.0, 1.0)
    counts = torch.poisson(lam, generator=generator)
    if dose.sigma_e > 0:
        counts = counts + dose.sigma_e * torch.randn(
            counts.shape, generator=generator, dtype=counts.dtype
        )
    return -torch.log(counts.clamp_min(dose.min_count) / dose.i0)


_RAY_CACHE: OrderedDict[tuple[str, str], Any] = OrderedDict()


def _ray(geometry: Any, backend: str) -> Any:
    from operators import RayTransform

    key = (geometry.fingerprint(), backend)
    if key not in _RAY_CACHE:
        _RAY_CACHE[key] = RayTransform(geometry, backend=backend)
        while len(_RAY_CACHE) > 4:
            _RAY_CACHE.popitem(last=False)
    _RAY_CACHE.move_to_end(key)
    return _RAY_CACHE[key]


@torch.no_grad()
def simulate_ct_sinogram(
    fine_image: torch.Tensor,
    geometry: Any,
    dose: str | CTDose | None = "routine",
    generator: torch.Generator | None = None,
    device: str | torch.device = "cpu",
    *,
    factor: int = 2,
    backend: str = "astra",
) -> torch.Tensor:
    """Sinogram of the reconstruction geometry from an image ``factor``× finer, with dose noise.

    Parameters
    ----------
    fine_image : Tensor or ndarray, ``(B, factor·N, factor·N)``
        Attenuation image in [0, 1] units (:data:`MU_PER_UNIT` mm⁻¹ per unit) on the fine grid
        covering the same field of view as ``geometry``.
    geometry : geometries.CTGeometry
        Reconstruction geometry (``N``, ``V`` views, ``D`` bins).
    dose : str, CTDose or None
        Named level (``"routine"``, ``"low"``), explicit :class:`CTDose`, or None for noise-free.
    generator : torch.Generator, optional
        CPU generator of the noise (required when ``dose`` is not None).
    device : str or torch.device
        Where the projection runs.
    factor : int
        Grid refinement (1 reproduces the same-grid, inverse-crime simulation).
    backend : str
        ``RayTransform`` backend.

    Returns
    -------
    Tensor, ``(B, V, D)`` float32 on ``device``
        Post-log sinogram in mm·unit (the units of ``RayTransform(geometry)`` of a unit image).
    """
    x = torch.as_tensor(fine_image)
    n = geometry.image_size * factor
    if x.ndim != 3 or tuple(x.shape[-2:]) != (n, n):
        raise InputError(
            f"fine_image must have shape (B, {n}, {n}) for N={geometry.image_size} and "
            f"factor={factor}, got {tuple(x.shape)}"
        )
    dose = dose_level(dose)
    if dose is not None and generator is None:
        raise InputError("simulate_ct_sinogram: a noisy dose needs a torch.Generator")
    dev = torch.device(device)
    ray = _ray(fine_geometry(geometry, factor), backend)
    p_fine = ray(x.to(dev, torch.float32))  # (B, V, factor·D), mm·unit
    trans = bin_detector(torch.exp(-MU_PER_UNIT * p_fine.clamp_min(0.0)), factor)
    if dose is None:
        sino = -torch.log(trans.clamp_min(1e-30)) / MU_PER_UNIT
        return sino.float()
    assert generator is not None
    log_data = poisson_log_noise(trans, dose, generator)
    return (log_data / MU_PER_UNIT).to(dev, torch.float32)
