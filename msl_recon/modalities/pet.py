"""PET plug-in: 2D FDG emission sinograms of a clinical ring, attenuated, blurred, with background.

- Ground truth: ``images/pet``, activity / 40 kBq/mL clipped to [0, 1]
  (:func:`msl_recon.data.pet.pet_to_unit`; units kBq/mL), built from the phantom's tissue labels
  (:func:`msl_recon.data.pet.pet_activity`: grey:white matter ≈ 4:1, CSF ≈ 0, hot or cold
  lesions).
- Raw data (group ``pet``): ``pet/prompts`` ``(S, V, D)`` Poisson counts; ``pet/attenuation``
  ``(S, V, D)`` attenuation factors ``a = exp(−∫μ dl)`` from the CT of the same slice
  (bilinear HU → μ(511 keV), :func:`msl_recon.data.pet.hu_to_mu511`); ``pet/background``
  ``(S, V, D)`` expected scatter + randoms (what a scanner estimates from delayed coincidences
  and single-scatter simulation); ``pet/scale`` ``(S,)`` counts per kBq/mL·mm. Batch keys
  ``pet_sino``, ``pet_attn``, ``pet_bg``, ``pet_scale``.
- Acquisition: :class:`PETAcquisition` (a Biograph-mCT-like parallel-beam plane, resolution,
  counts and background fractions; root attribute ``pet``). Settings come from
  ``SimulationSpec.options["pet"]`` (``msl-recon simulate --acq pet.counts=3e5``).
- Operator: the attenuated, blurred ray transform in the model's units,
  ``x ↦ s · a ⊙ A(B · 40 x)`` (:class:`operators.AttenuatedRayTransform`); back-transform: the
  attenuation- and background-corrected FBP (:func:`msl_recon.data.pet_sim.pet_fbp`), mapped
  to [0, 1].

The simulator needs the CT ground truth for the μ map (:attr:`PETModality.needs`), so PET is
simulated from the phantom also when CT is not among the stored modalities (PET/MR); the μ map
then plays the part of an ideal MR-based attenuation correction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from ..errors import InputError
from . import register
from .base import Modality, ModalityReader, ModalitySimulator

__all__ = ["PETAcquisition", "PETModality"]


@dataclass(frozen=True)
class PETAcquisition:
    """One PET plane: geometry and the acquisition model's settings.

    Parameters
    ----------
    geometry : geometries.ParallelBeam2D
        The plane's sinogram geometry (default preset ``pet-biograph-mct``).
    fwhm_mm : float
        System resolution (Gaussian FWHM), mm.
    counts : float
        Expected true coincidences per slice.
    scatter_fraction, randoms_fraction : float
        Expected scatter and randoms as fractions of the prompts.
    """

    geometry: Any
    fwhm_mm: float = 4.5
    counts: float = 1e6
    scatter_fraction: float = 0.25
    randoms_fraction: float = 0.10

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (the geometry as its own dict)."""
        d = asdict(self)
        d["geometry"] = self.geometry.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PETAcquisition:
        """Inverse of :meth:`to_dict`."""
        import geometries as geo

        return cls(**{**d, "geometry": geo.geometry_from_dict(dict(d["geometry"]))})

    @classmethod
    def from_options(
        cls, options: Mapping[str, Any], size: int, fov_mm: float | None = None
    ) -> PETAcquisition:
        """From ``SimulationSpec.options["pet"]``: ``counts``, ``fwhm_mm``, ``views``,
        ``fov_mm`` (default: ``fov_mm``, the images' field of view, else 220 mm),
        ``scatter_fraction``, ``randoms_fraction``."""
        from geometries.pet import biograph_mct

        known = {"counts", "fwhm_mm", "views", "fov_mm", "scatter_fraction", "randoms_fraction"}
        unknown = sorted(set(options) - known)
        if unknown:
            raise InputError(f"unknown PET settings {unknown}; known: {sorted(known)}")
        try:
            views = options.get("views")
            g = biograph_mct(
                int(size),
                fov_mm=float(options.get("fov_mm", fov_mm or 220.0)),
                n_views=None if views is None else int(views),
            )
            acq = cls(
                geometry=g,
                fwhm_mm=float(options.get("fwhm_mm", 4.5)),
                counts=float(options.get("counts", 1e6)),
                scatter_fraction=float(options.get("scatter_fraction", 0.25)),
                randoms_fraction=float(options.get("randoms_fraction", 0.10)),
            )
        except (TypeError, ValueError) as exc:
            raise InputError(f"invalid PET settings {dict(options)}: {exc}") from exc
        if not acq.counts > 0 or not acq.fwhm_mm >= 0:
            raise InputError(f"PET counts must be > 0 and fwhm_mm ≥ 0, got {dict(options)}")
        return acq


class _PETSimulator(ModalitySimulator):
    def __init__(self, acq: PETAcquisition) -> None:
        self.acq = acq

    def simulate(
        self,
        images: torch.Tensor,
        *,
        subject_index: int,
        slice_indices: Sequence[int],
        generator: torch.Generator,
        context: Mapping[str, torch.Tensor],
    ) -> dict[str, np.ndarray]:
        from ..data.intensity import unit_to_hu
        from ..data.pet import hu_to_mu511, unit_to_pet
        from ..data.pet_sim import simulate_pet

        if "ct" not in context:
            raise InputError("PET simulation needs the CT ground truth of the slices (μ map)")
        mu = hu_to_mu511(unit_to_hu(context["ct"].detach().cpu().double())).clamp_min(0)
        out = simulate_pet(
            unit_to_pet(images.detach().cpu().double()),
            mu,
            self.acq.geometry,
            counts=self.acq.counts,
            generator=generator,
            fwhm_mm=self.acq.fwhm_mm,
            scatter_fraction=self.acq.scatter_fraction,
            randoms_fraction=self.acq.randoms_fraction,
        )
        return {
            "pet/prompts": out["prompts"].numpy(),
            "pet/attenuation": out["attenuation"].numpy(),
            "pet/background": out["background"].numpy(),
            "pet/scale": out["scale"].numpy().astype(np.float64),
        }


class _PETReader(ModalityReader):
    def __init__(self, acq: PETAcquisition | None) -> None:
        self.acquisition = acq

    def has_raw(self, f: Any) -> bool:
        return "pet/prompts" in f

    def read(self, f: Any, i: int) -> dict[str, torch.Tensor]:
        if "pet/prompts" not in f:
            return {}
        return {
            "pet_sino": torch.from_numpy(np.asarray(f["pet/prompts"][i], np.float32)),
            "pet_attn": torch.from_numpy(np.asarray(f["pet/attenuation"][i], np.float32)),
            "pet_bg": torch.from_numpy(np.asarray(f["pet/background"][i], np.float32)),
            "pet_scale": torch.tensor(float(f["pet/scale"][i]), dtype=torch.float64),
        }


def _pet_operator(batch: Mapping[str, Any], acq: PETAcquisition, device: Any) -> Any:
    """The batch's system operator ``x ↦ s·40·a ⊙ A(Bx)`` in the model's units, carrying what
    the corrected FBP needs besides the linear model (attenuation, background, scale)."""
    from ..data.pet import PET_REF_KBQ_ML
    from ..data.pet_sim import pet_system_operator

    attn = torch.as_tensor(batch["pet_attn"]).to(device)
    scale = torch.as_tensor(batch["pet_scale"], dtype=torch.float64).reshape(-1)
    op = pet_system_operator(
        acq.geometry, attn.double(), scale.cpu() * PET_REF_KBQ_ML, fwhm_mm=acq.fwhm_mm
    )
    op.pet_attenuation = attn
    op.pet_background = torch.as_tensor(batch["pet_bg"]).to(device)
    op.pet_scale = scale
    op.pet_acquisition = acq
    return op


class PETModality(Modality):
    """FDG PET (see the module docstring)."""

    name = "pet"
    aliases = ("fdg-pet",)
    label = "PET"
    family = "pet"
    units = "kBq/mL"
    input_label = "corrected FBP"
    raw_key = "pet_sino"
    h5_group = "pet"
    needs = ("ct",)
    windows: ClassVar[dict[str, tuple[float, float]]] = {"activity": (0.0, 40.0)}
    intensity = "data.pet.pet_to_unit: activity[kBq/mL] / 40, clipped to [0, 1]"

    def to_unit(self, x: Any) -> Any:
        from ..data.pet import pet_to_unit

        return pet_to_unit(x)

    def from_unit(self, u: Any) -> Any:
        from ..data.pet import unit_to_pet

        return unit_to_pet(u)

    def from_phantom(
        self, subject: Any, rng: np.random.Generator, *, fine: bool = False
    ) -> np.ndarray | None:
        from ..data.pet import pet_activity

        if fine:  # PET is simulated on the reconstruction grid (its 4.5 mm blur dominates)
            return None
        return np.asarray(self.to_unit(pet_activity(subject, rng)), dtype=np.float32)

    # ------------------------------------------------------------------ acquisition
    def _acq(self, sim: Any, size: int) -> PETAcquisition:
        options = (getattr(sim, "options", None) or {}).get("pet", {})
        return PETAcquisition.from_options(options, size, getattr(sim, "fov_mm", None))

    def validate(self, sim: Any, size: int, **flags: Any) -> None:
        self._acq(sim, size)

    def file_attrs(self, sim: Any) -> dict[str, Any]:
        size = int(sim.geometry.image_size) if getattr(sim, "geometry", None) else None
        if size is None:
            raise InputError("PET needs the image size (SimulationSpec.geometry)")
        return {"pet": self._acq(sim, size).to_dict(), "intensity": {self.name: self.intensity}}

    def simulator(self, sim: Any, device: torch.device, **kwargs: Any) -> ModalitySimulator:
        return _PETSimulator(self._acq(sim, int(sim.geometry.image_size)))

    def acquisition_from_dict(self, d: Mapping[str, Any] | None) -> Any:
        return PETAcquisition.from_dict(d) if d else None

    # ------------------------------------------------------------------ files
    def open(
        self,
        attrs: Mapping[str, Any],
        f: Any,
        *,
        n_views: int | None = None,
        acceleration: float | None = None,
        seed: int = 0,
    ) -> ModalityReader:
        d = attrs.get("pet")
        return _PETReader(PETAcquisition.from_dict(d) if d else None)

    # ------------------------------------------------------------------ physics
    def operator(
        self,
        batch: Mapping[str, Any],
        acquisition: Any,
        device: torch.device | str | None = None,
        image_shape: tuple[int, int] | None = None,
    ) -> Any:
        if acquisition is None:
            raise InputError("the batch has PET data but no PET acquisition was given")
        for key in ("pet_attn", "pet_bg", "pet_scale"):
            if key not in batch:
                raise InputError(f"the PET batch lacks {key!r} (attenuation/background/scale)")
        return _pet_operator(batch, acquisition, device)

    def back_transform(self, y: torch.Tensor, op: Any) -> torch.Tensor:
        from ..data.pet_sim import pet_fbp

        x = pet_fbp(
            y,
            op.pet_attenuation.to(y.device),
            op.pet_background.to(y.device),
            op.pet_acquisition.geometry,
            scale=op.pet_scale.cpu().numpy(),
        )
        return self.to_unit(x).to(y.dtype if y.is_floating_point() else torch.float32)

    def preview_panels(
        self, item: Mapping[str, Any], acquisition: Any
    ) -> list[tuple[str, np.ndarray, str]]:
        panels = [("GT PET", item["pet"][0].numpy(), "gray")]
        if self.raw_key in item and acquisition is not None:
            batch = {k: v[None] for k, v in item.items() if isinstance(v, torch.Tensor)}
            op = self.operator(batch, acquisition)
            x = self.back_transform(batch[self.raw_key], op)[0].numpy()
            panels.append(("corrected FBP (PET)", x, "gray"))
            panels.append(("sinogram PET prompts", item[self.raw_key].numpy(), "magma"))
        return panels


register(PETModality())
