"""CT plug-in: sparse-view sinograms of a fan- or parallel-beam scanner.

- Ground truth: ``images/ct``, the MSL [0, 1] intensity
  (:func:`msl_recon.data.intensity.hu_to_unit`; units HU).
- Raw data: ``ct/sinogram`` ``(S, V, D)`` line integrals in mm × unit intensity; batch key
  ``ct_sino``.
- Acquisition: a :class:`geometries.CTGeometry` (root attribute ``geometry``), noise
  ``SimulationSpec.ct_noise``.
- Operator: :class:`operators.RayTransform` (ASTRA's exact system matrix, built lazily and cached
  per geometry); back-transform: its pseudo-inverse, the exact FBP.
- Randomisation: a random evenly spaced subset of the stored views.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import torch

from ..errors import InputError
from . import register
from .base import Modality, ModalityReader, ModalitySimulator, lru_get

__all__ = ["CTModality", "ct_operator"]

_ct_cache: OrderedDict[str, Any] = OrderedDict()


def ct_operator(geometry: Any) -> Any:
    """Cached :class:`operators.RayTransform` for ``geometry`` (system matrix built lazily)."""
    from operators import RayTransform

    return lru_get(_ct_cache, geometry.fingerprint(), lambda: RayTransform(geometry))


class _CTSimulator(ModalitySimulator):
    def __init__(self, sim: Any, device: torch.device, ct_backend: str = "astra") -> None:
        self.sim = sim
        self.device = device
        self.ct_backend = ct_backend
        self._ray: Any = None

    @property
    def ray(self) -> Any:
        if self._ray is None:
            from operators import RayTransform

            self._ray = RayTransform(self.sim.geometry, backend=self.ct_backend)
        return self._ray

    def simulate(
        self,
        images: torch.Tensor,
        *,
        subject_index: int,
        slice_indices: Sequence[int],
        generator: torch.Generator,
        context: Mapping[str, torch.Tensor],
    ) -> dict[str, np.ndarray]:
        from ..data.simulate import add_poisson_noise

        fine = context.get("ct@fine")
        factor = int(getattr(self.sim.preset, "supersample", 1))
        if fine is not None and factor > 1:
            # no inverse crime: projected on the finer grid with a finer detector, then binned
            from ..data.acquisition.ct import CTDose, simulate_ct_sinogram

            noise = self.sim.ct_noise
            dose = None if noise.i0 is None else CTDose(i0=noise.i0, sigma_e=noise.sigma_e)
            sino = simulate_ct_sinogram(
                fine, self.sim.geometry, dose, generator, self.device, factor=factor,
                backend=self.ct_backend,
            )  # fmt: skip
        else:
            sino = add_poisson_noise(self.ray(images), self.sim.ct_noise, generator)
        return {"ct/sinogram": sino.float().cpu().numpy()}


class _CTReader(ModalityReader):
    def __init__(self, geometry: Any, view_idx: np.ndarray | None) -> None:
        self.acquisition = geometry
        self.view_idx = view_idx

    def has_raw(self, f: Any) -> bool:
        return "ct/sinogram" in f

    def read(self, f: Any, i: int) -> dict[str, torch.Tensor]:
        if "ct/sinogram" not in f:
            return {}
        sino = np.asarray(f["ct/sinogram"][i], np.float32)
        if self.view_idx is not None:
            sino = np.ascontiguousarray(sino[self.view_idx])
        return {"ct_sino": torch.from_numpy(sino)}


class CTModality(Modality):
    """X-ray CT (see the module docstring)."""

    name = "ct"
    aliases = ("x-ray",)
    label = "CT"
    family = "ct"
    units = "HU"
    input_label = "FBP"
    nifti_dtype = "int16"
    raw_key = "ct_sino"
    h5_group = "ct"
    windows: ClassVar[dict[str, tuple[float, float]]] = {
        "paper": (-1000.0, 2125.0),
        "brain": (0.0, 80.0),
    }
    intensity = "intensity.hu_to_unit: mu[1/cm] = HU/1000*0.192 + 0.192, clipped to [0, 0.6], /0.6"

    def to_unit(self, x: Any) -> Any:
        from ..data.intensity import hu_to_unit

        return hu_to_unit(x)

    def from_unit(self, u: Any) -> Any:
        from ..data.intensity import unit_to_hu

        return unit_to_hu(u)

    air_value = -1000.0

    def body_mask(self, volume: np.ndarray) -> np.ndarray:
        return np.asarray(volume) > -500.0  # soft tissue and bone, not air

    def from_phantom(
        self, subject: Any, rng: np.random.Generator, *, fine: bool = False
    ) -> np.ndarray | None:
        hu = subject.fine.get("ct_hu") if fine else subject.ct_hu
        return None if hu is None else np.asarray(self.to_unit(hu), dtype=np.float32)

    # ------------------------------------------------------------------ acquisition
    def validate(self, sim: Any, size: int, **flags: Any) -> None:
        import warnings

        from ..data.pipeline import detector_coverage

        g = getattr(sim, "geometry", None)
        if g is None:
            raise InputError("CT needs a geometry (SimulationSpec.geometry)")
        if g.image_size != size:
            raise InputError(
                f"mismatched geometry: the CT geometry is for {g.image_size}² images but --size "
                f"is {size}"
            )
        covered, required = detector_coverage(g)
        if covered < required * (1 - 1e-9):
            msg = (
                f"the CT detector covers a disk of radius {covered:.1f} mm, less than the "
                f"{required:.1f} mm disk inscribed in the {2 * required:.1f} mm image: every "
                "projection would be truncated"
            )
            if not flags.get("allow_truncation", False):
                raise InputError(f"{msg}; widen the detector or pass --allow-truncation")
            warnings.warn(msg, stacklevel=3)

    def file_attrs(self, sim: Any) -> dict[str, Any]:
        from ..data.simulate import MU_PER_UNIT

        return {
            "geometry": sim.geometry.to_dict(),
            "intensity": {self.name: self.intensity, "mu_per_unit_per_mm": MU_PER_UNIT},
        }

    def simulator(self, sim: Any, device: torch.device, **kwargs: Any) -> ModalitySimulator:
        return _CTSimulator(sim, device, kwargs.get("ct_backend", "astra"))

    def acquisition_from_dict(self, d: Mapping[str, Any] | None) -> Any:
        import geometries as geo

        return geo.geometry_from_dict(dict(d)) if d else None

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
        import geometries as geo

        g = attrs.get("geometry")
        full = geo.geometry_from_dict(g) if g else None
        view_idx = None
        geometry = full
        if n_views is not None:
            if full is None:
                raise InputError("n_views given but the file has no CT geometry")
            v = int(full.n_views)
            if n_views < 1 or v % n_views:
                raise InputError(
                    f"n_views={n_views} is not a subset of the {v} stored views "
                    f"(it must divide {v})"
                )
            view_idx = np.arange(0, v, v // n_views)
            geometry = full.subset(view_idx)
        return _CTReader(geometry, view_idx)

    def check_file(self, f: Any, attrs: Mapping[str, Any], n_slices: int) -> list[Any]:
        geometry = attrs.get("geometry")
        if not geometry:
            raise InputError("CT images but no CT geometry attribute")
        if "ct/sinogram" not in f:
            raise InputError("no ct/sinogram dataset (the CT measurements)")
        sino = f["ct/sinogram"]
        v = len(geometry.get("angles") or []) or geometry.get("n_views")
        want = (n_slices, v, geometry.get("det_count"))
        if tuple(sino.shape) != want:
            raise InputError(
                f"ct/sinogram has shape {tuple(sino.shape)}, expected {want} "
                "(slices × views × detector bins)"
            )
        return [sino]

    # ------------------------------------------------------------------ physics
    def operator(
        self,
        batch: Mapping[str, Any],
        acquisition: Any,
        device: torch.device | str | None = None,
        image_shape: tuple[int, int] | None = None,
    ) -> Any:
        if acquisition is None:
            raise InputError("the batch has CT data but no CT geometry was given")
        return ct_operator(acquisition)

    def back_transform(self, y: torch.Tensor, op: Any) -> torch.Tensor:
        x = op.pseudo_inverse()(y)
        return x.real if x.is_complex() else x

    # ------------------------------------------------------------------ training / inference
    def randomize(
        self,
        batch: dict[str, Any],
        acquisition: Any,
        gen: np.random.Generator,
        *,
        views: Sequence[int] | None = None,
        accelerations: Sequence[float] | None = None,
    ) -> tuple[dict[str, Any], Any]:
        if not views or self.raw_key not in batch:
            return batch, acquisition
        v_stored = int(batch[self.raw_key].shape[-2])
        n_v = int(gen.choice(np.asarray(views)))
        if n_v > v_stored or n_v < 1:
            raise InputError(f"random view count {n_v} outside 1..{v_stored} (stored views)")
        if n_v < v_stored:
            offset = int(gen.integers(0, max(v_stored // n_v, 1)))
            idx = (np.floor(np.arange(n_v) * (v_stored / n_v)).astype(np.int64) + offset) % v_stored
            idx = np.sort(idx)
            batch = dict(batch)
            batch[self.raw_key] = batch[self.raw_key][..., torch.as_tensor(idx), :].contiguous()
            acquisition = acquisition.subset(idx)
        return batch, acquisition

    def raw_from_array(
        self, a: np.ndarray, acquisition: Any, image_size: int
    ) -> tuple[dict[str, torch.Tensor], Any] | None:
        if np.iscomplexobj(a):
            return None
        if acquisition is None:
            raise InputError("the checkpoint stores no CT geometry; cannot use a raw sinogram")
        v, d = a.shape[-2:]
        if d != acquisition.sino_shape[1]:
            raise InputError(
                f"{d} detector bins, the model's geometry has {acquisition.sino_shape[1]}"
            )
        if v != acquisition.sino_shape[0]:
            try:
                acquisition = acquisition.with_views(int(v))
            except ValueError as exc:
                raise InputError(f"cannot use {v} views with the model's geometry: {exc}") from exc
        return {self.raw_key: torch.from_numpy(a.astype(np.float32))}, acquisition

    def preview_panels(
        self, item: Mapping[str, Any], acquisition: Any
    ) -> list[tuple[str, np.ndarray, str]]:
        panels = [("GT CT", item["ct"][0].numpy(), "gray")]
        if self.raw_key in item and acquisition is not None:
            y = item[self.raw_key][None].double()
            fbp = self.back_transform(y, ct_operator(acquisition))[0].numpy()
            panels.append((f"FBP ({acquisition.n_views} views)", fbp, "gray"))
            panels.append(("sinogram", item[self.raw_key].numpy(), "magma"))
        return panels


register(CTModality())
