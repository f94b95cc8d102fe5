"""Raw sensor data from images: CT sinograms and MRI k-space, with optional noise, batched.

Physical scaling of the CT noise
--------------------------------
CT images are stored in [0, 1] by the MSL mapping (docs/architecture.md, Conventions): ``u = μ /
0.6`` with μ in cm⁻¹ (water 0.192 cm⁻¹). So one unit of image intensity is ``0.06`` mm⁻¹
(:data:`MU_PER_UNIT`), and a stored sinogram value ``p = (A u)`` (mm × unit) is the dimensionless
line integral ``∫μ dl = MU_PER_UNIT · p``. With ``I0`` incident photons per detector bin the
detected counts are

    I = Poisson(I0 · exp(−MU_PER_UNIT · p)) + Normal(0, σ_e²),

clipped below at 1 photon (avoids log of ≤ 0), and the stored noisy sinogram is
``−ln(I / I0) / MU_PER_UNIT`` — again in the units of the clean sinogram, so FBP of it gives the
unit image. A water cylinder of 200 mm has ``∫μ dl ≈ 3.8`` (attenuation ×45): I0 = 1e5 is a
normal dose, 1e4 a low dose.

MRI noise
---------
Complex white Gaussian noise is added to the sampled k-space entries. With the orthonormal FFT
the per-pixel noise of the zero-filled image equals the per-sample k-space noise, so
``snr_db = 20 log10(rms(image) / σ)`` with σ the standard deviation of the complex noise (σ/√2 per
real and imaginary part).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

__all__ = [
    "MU_PER_UNIT",
    "CTNoise",
    "MRNoise",
    "SimulationSpec",
    "Simulator",
    "add_complex_noise",
    "add_poisson_noise",
    "slice_mask_seed",
]

MU_PER_UNIT = 0.6 / 10.0
"""Attenuation in mm⁻¹ of one unit of [0, 1] CT image intensity (0.6 cm⁻¹ / 10)."""


@dataclass(frozen=True)
class CTNoise:
    """Poisson (+ electronic) noise of the CT detector.

    Parameters
    ----------
    i0 : float or None
        Incident photons per detector bin per view (None: noise-free).
    sigma_e : float
        Standard deviation of the additive electronic noise, in photon counts.
    """

    i0: float | None = None
    sigma_e: float = 0.0

    def __post_init__(self) -> None:
        if self.i0 is not None and not (math.isfinite(self.i0) and self.i0 > 0):
            raise ValueError(f"CT i0 must be a positive photon count, got {self.i0!r}")
        if not (math.isfinite(self.sigma_e) and self.sigma_e >= 0):
            raise ValueError(f"electronic noise sigma_e must be ≥ 0, got {self.sigma_e!r}")


@dataclass(frozen=True)
class MRNoise:
    """Complex Gaussian k-space noise at a target SNR in dB (None: noise-free)."""

    snr_db: float | None = None

    def __post_init__(self) -> None:
        if self.snr_db is not None and not math.isfinite(self.snr_db):
            raise ValueError(f"MR snr_db must be finite, got {self.snr_db!r}")


@dataclass(frozen=True)
class SimulationSpec:
    """What to simulate for each modality.

    Parameters
    ----------
    geometry : geometries.CTGeometry
        CT scan (``image_size`` must equal the image side N).
    sampling : dict
        ``{m: CartesianMask | RadialTrajectory}`` for each MR modality (``"t1"``, ``"t2"``).
    mask_seed_mode : {'fixed', 'per-slice'}
        ``'fixed'``: every slice uses the sampling's own seed (as the MSL authors);
        ``'per-slice'``: each slice draws its own mask (see :func:`slice_mask_seed`).
    ct_noise, mr_noise : CTNoise, MRNoise
    n_coils : int
        1 for single-coil; more uses ``operators.SENSE`` with ``birdcage_maps``.
    options : mapping
        Settings of other plug-ins, by modality name (e.g. ``{"pet": {"counts": 3e6}}``); each
        plug-in reads its own entry (:mod:`msl_recon.modalities`).
    preset : msl_recon.data.acquisition.presets.AcquisitionPreset, optional
        The acquisition preset (``paper`` when None): phantom realism, the 2× simulation grid,
        complex multi-coil MRI with estimated coil maps, dose (see ``docs/acquisition.md``).
    fov_mm : float, optional
        Physical field of view of the images, mm (the phantom is drawn at this size; None: the
        phantom's default 220 mm).
    """

    geometry: Any
    sampling: Mapping[str, Any] = field(default_factory=dict)
    mask_seed_mode: str = "fixed"
    ct_noise: CTNoise = field(default_factory=CTNoise)
    mr_noise: MRNoise = field(default_factory=MRNoise)
    n_coils: int = 1
    options: Mapping[str, Any] = field(default_factory=dict)
    preset: Any = None
    fov_mm: float | None = None

    def __post_init__(self) -> None:
        if self.mask_seed_mode not in ("fixed", "per-slice"):
            raise ValueError(
                f"mask_seed_mode must be 'fixed' or 'per-slice', got {self.mask_seed_mode!r}"
            )
        if self.n_coils < 1:
            raise ValueError(f"n_coils must be ≥ 1, got {self.n_coils}")
        if self.preset is None:
            from .acquisition.presets import PAPER

            object.__setattr__(self, "preset", PAPER)

    def noise_dict(self) -> dict[str, Any]:
        """JSON-able description of the noise (for the HDF5 ``noise`` attribute)."""
        return {
            "ct": {
                **asdict(self.ct_noise),
                "model": "poisson+gaussian, post-log",
                "mu_per_unit_per_mm": MU_PER_UNIT,
            },
            "mr": {**asdict(self.mr_noise), "model": "complex gaussian on sampled k-space"},
            "n_coils": self.n_coils,
            "options": {k: dict(v) for k, v in self.options.items()},
            "preset": self.preset.name,
        }


def slice_mask_seed(base_seed: int, subject_index: int, slice_index: int) -> int:
    """Deterministic per-slice mask seed (independent of sharding and batching)."""
    state = np.random.SeedSequence([int(base_seed), int(subject_index), int(slice_index)])
    return int(state.generate_state(1, dtype=np.uint32)[0])


def add_poisson_noise(
    sino: torch.Tensor, noise: CTNoise, generator: torch.Generator
) -> torch.Tensor:
    """Noisy post-log sinogram in the units of ``sino`` (see the module notes).

    Parameters
    ----------
    sino : Tensor, ``(..., V, D)``
        Clean line integrals of the unit image, mm.
    noise : CTNoise
    generator : torch.Generator
        CPU generator; the noise is drawn on the CPU (reproducible on any device).
    """
    if noise.i0 is None:
        return sino
    p = sino.detach().to("cpu", torch.float64)
    expected = noise.i0 * torch.exp(-MU_PER_UNIT * p.clamp_min(0))
    counts = torch.poisson(expected, generator=generator)
    if noise.sigma_e > 0:
        counts = counts + noise.sigma_e * torch.randn(
            counts.shape, generator=generator, dtype=counts.dtype
        )
    counts = counts.clamp_min(1.0)
    out = -torch.log(counts / noise.i0) / MU_PER_UNIT
    return out.to(sino.device, sino.dtype)


def add_complex_noise(
    kspace: torch.Tensor,
    images: torch.Tensor,
    snr_db: float | None,
    generator: torch.Generator,
    support: torch.Tensor | None = None,
) -> torch.Tensor:
    """Add complex Gaussian noise of std ``rms(image) / 10^(snr_db/20)`` to sampled entries.

    Parameters
    ----------
    kspace : Tensor, complex ``(B, ..., K)``
    images : Tensor, ``(B, H, W)``; the per-slice RMS sets σ.
    support : bool Tensor broadcastable to ``kspace``, optional
        Where samples exist (Cartesian mask); off-support entries stay exactly zero.
    """
    if snr_db is None:
        return kspace
    b = images.shape[0]
    rms = images.detach().reshape(b, -1).double().pow(2).mean(1).sqrt().cpu()
    sigma = (rms / 10 ** (snr_db / 20)).reshape(b, *([1] * (kspace.ndim - 1)))
    re = torch.randn(kspace.shape, generator=generator, dtype=torch.float64)
    im = torch.randn(kspace.shape, generator=generator, dtype=torch.float64)
    n = torch.complex(re, im) * (sigma / math.sqrt(2))
    n = n.to(kspace.device, kspace.dtype)
    if support is not None:
        n = n * support.to(kspace.device)
    return kspace + n


class Simulator:
    """Batched simulation of the sensor data of every modality, for slices of one subject.

    Each modality's plug-in (:mod:`msl_recon.modalities`) builds its own acquisition simulator
    once (operators, cached system matrices, coil maps) and applies it to whole batches of
    slices; this class only dispatches to them in the registry's order.

    Parameters
    ----------
    spec : SimulationSpec
    device : str or torch.device
    ct_backend : str
        ``RayTransform`` backend of ray-transform modalities (``'astra'`` system matrix, or
        ``'astra-direct'``).
    """

    def __init__(
        self, spec: SimulationSpec, device: str | torch.device = "cpu", *, ct_backend: str = "astra"
    ) -> None:
        self.spec = spec
        self.device = torch.device(device)
        self.ct_backend = ct_backend
        self._sims: dict[str, Any] = {}

    def modality_simulator(self, m: str) -> Any:
        """The plug-in simulator of modality ``m`` (built on first use)."""
        from .. import modalities

        if m not in self._sims:
            spec = modalities.get(m)
            self._sims[m] = spec.simulator(self.spec, self.device, ct_backend=self.ct_backend)
        return self._sims[m]

    def masks(
        self, m: str, subject_index: int, slice_indices: Sequence[int]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Cartesian masks ``(B, H, W)`` bool and their seeds ``(B,)`` for an MRI modality."""
        return self.modality_simulator(m)._masks(subject_index, slice_indices)

    def static(self) -> dict[str, np.ndarray]:
        """Arrays to write once per file (coil maps …) of the modalities simulated so far."""
        out: dict[str, np.ndarray] = {}
        for sim in self._sims.values():
            out.update(sim.static())
        return out

    # ------------------------------------------------------------------ simulate
    @torch.no_grad()
    def simulate(
        self,
        images: Mapping[str, np.ndarray],
        *,
        subject_index: int,
        slice_indices: Sequence[int],
        generator: torch.Generator,
        context: Mapping[str, np.ndarray] | None = None,
    ) -> dict[str, np.ndarray]:
        """Simulate one batch of slices.

        Parameters
        ----------
        images : dict
            ``{m: (B, N, N) float32 in [0, 1]}`` for each modality.
        subject_index : int
            Global index of the subject (per-slice mask seeds).
        slice_indices : sequence of int
            Axial index of each slice, length B.
        generator : torch.Generator
            CPU generator of all the noise of this batch.
        context : dict, optional
            Ground truth ``{m: (B, N, N)}`` of modalities that are not stored but that a
            simulator needs (:attr:`msl_recon.modalities.Modality.needs`, e.g. CT for PET).

        Returns
        -------
        dict
            HDF5 dataset name → array: ``images/<m>`` and each modality's raw data (e.g.
            ``ct/sinogram``, ``mr/<m>/kspace``, ``mr/<m>/mask``, ``mr/<m>/mask_seed``).
        """
        from .. import modalities

        out: dict[str, np.ndarray] = {}
        tensors: dict[str, torch.Tensor] = {}
        for m, img in (context or {}).items():  # also "<m>@fine": the 2× grid of a modality
            if m not in images:
                tensors[m] = torch.from_numpy(np.ascontiguousarray(img, np.float32)).to(self.device)
        for m, img in images.items():
            img = np.ascontiguousarray(img, dtype=np.float32)
            out[f"images/{m}"] = img
            tensors[m] = torch.from_numpy(img).to(self.device)
        for m in modalities.in_order(list(images)):
            missing = [n for n in modalities.get(m).needs if n not in tensors]
            if missing:
                raise ValueError(f"simulating {m} needs the ground truth of {missing}")
            out.update(
                self.modality_simulator(m).simulate(
                    tensors[m],
                    subject_index=subject_index,
                    slice_indices=slice_indices,
                    generator=generator,
                    context=tensors,
                )
            )
        return out
