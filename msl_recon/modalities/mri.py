"""MRI plug-in: under-sampled Cartesian or radial k-space, single- or multi-coil (T1w and T2w).

- Ground truth: ``images/<m>``, magnitude normalised to [0, 1] per volume
  (:func:`msl_recon.data.intensity.normalize_mr`); units "a.u.".
- Raw data: ``mr/<m>/kspace`` ``(S, H, W)`` masked Cartesian k-space or ``(S, P)`` radial
  samples, ``(S, C, …)`` with C coils; ``mr/<m>/mask`` ``(S, H, W)`` and ``mr/<m>/mask_seed``
  for Cartesian data; batch keys ``<m>_kspace``, ``<m>_mask``.
- Coil maps: multi-coil data carries maps estimated from its own fully sampled centre
  (``mr/<m>/coil_maps_est`` ``(S, C, H, W)``, batch key ``<m>_maps``); the true maps the
  simulator used (``mr/<m>/coil_maps``) are kept for reference and never given to a
  reconstruction.
- Acquisition: a :class:`geometries.CartesianMask` or :class:`geometries.RadialTrajectory`
  (root attribute ``sampling[<m>]``).
- Operator: :class:`operators.CartesianFourier` with the batch's masks or :class:`operators.NUFFT`,
  wrapped in :class:`operators.SENSE` for multi-coil data; back-transform: the magnitude of the
  zero-filled (density-compensated) coil-combined image.
- Randomisation: drop sampled non-centre columns down to a random acceleration (Cartesian).
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import torch

from ..errors import InputError
from . import register
from .base import Modality, ModalityReader, ModalitySimulator, lru_get

__all__ = ["MRIModality"]

_nufft_cache: OrderedDict[tuple[str, tuple[int, int]], Any] = OrderedDict()


def _nufft(traj: Any, shape: tuple[int, int]) -> Any:
    from operators import NUFFT

    key = (traj.fingerprint(), shape)
    return lru_get(_nufft_cache, key, lambda: NUFFT(traj, image_shape=shape))


class _MRSimulator(ModalitySimulator):
    def __init__(self, name: str, sim: Any, device: torch.device) -> None:
        self.m = name
        self.sim = sim
        self.device = device
        self._maps: torch.Tensor | None = None
        self._subject_maps: tuple[int, torch.Tensor] | None = None

    def coil_maps(self, shape: tuple[int, int]) -> torch.Tensor | None:
        if self.sim.n_coils == 1:
            return None
        if self._maps is None:
            from operators import birdcage_maps

            self._maps = birdcage_maps(shape, self.sim.n_coils).to(self.device, torch.complex64)
        return self._maps

    def _masks(self, subject_index: int, slice_indices: Sequence[int]) -> tuple[Any, Any]:
        from ..data.simulate import slice_mask_seed

        base = self.sim.sampling[self.m]
        if self.sim.mask_seed_mode == "fixed":
            seeds = np.full(len(slice_indices), base.seed, dtype=np.int64)
            return np.broadcast_to(base.mask, (len(seeds), *base.mask.shape)).copy(), seeds
        seeds = np.array(
            [slice_mask_seed(base.seed, subject_index, z) for z in slice_indices], dtype=np.int64
        )
        masks = np.stack([dataclasses.replace(base, seed=int(s)).mask for s in seeds])
        return masks, seeds

    def simulate(
        self,
        images: torch.Tensor,
        *,
        subject_index: int,
        slice_indices: Sequence[int],
        generator: torch.Generator,
        context: Mapping[str, torch.Tensor],
    ) -> dict[str, np.ndarray]:
        from geometries import CartesianMask
        from operators import SENSE, CartesianFourier

        from ..data.simulate import add_complex_noise

        m = self.m
        fine = context.get(f"{m}@fine")
        preset = self.sim.preset
        if fine is not None and int(preset.supersample) > 1:
            return self._simulate_realistic(fine, subject_index, slice_indices, generator)
        samp = self.sim.sampling[m]
        shape = (int(images.shape[-2]), int(images.shape[-1]))
        out: dict[str, np.ndarray] = {}
        support = None
        if isinstance(samp, CartesianMask):
            if tuple(samp.shape) != shape:
                raise InputError(f"mask shape {samp.shape} does not match images {shape}")
            masks, seeds = self._masks(subject_index, slice_indices)
            mask_t = torch.from_numpy(masks).to(self.device)
            inner = CartesianFourier(mask_t if self.sim.mask_seed_mode != "fixed" else mask_t[0])
            support = mask_t if self.sim.n_coils == 1 else mask_t[:, None]
            out[f"mr/{m}/mask"] = masks
            out[f"mr/{m}/mask_seed"] = seeds
        else:
            inner = _nufft(samp, shape)
        maps = self.coil_maps(shape)
        op = inner if maps is None else SENSE(maps, inner)
        k = op(images.to(torch.complex64))
        k = add_complex_noise(k, images, self.sim.mr_noise.snr_db, generator, support)
        out[f"mr/{m}/kspace"] = k.to(torch.complex64).cpu().numpy()
        if maps is not None:  # reconstructions get maps estimated from the data, never the true
            from ..data.acquisition import coils

            if isinstance(samp, CartesianMask):
                calib, kw = coils.acs_width(out[f"mr/{m}/mask"][0]), {}
            else:
                calib, kw = max(8, shape[-1] // 16), {"trajectory": samp, "image_shape": shape}
            est = coils.estimate_coil_maps(k.cpu(), max(calib, 2), **kw)
            out[f"mr/{m}/coil_maps_est"] = est.to(torch.complex64).numpy()
        return out

    def static(self) -> dict[str, np.ndarray]:
        if self._maps is None:
            return {}
        return {f"mr/{self.m}/coil_maps": self._maps.cpu().numpy()}

    def _simulate_realistic(
        self,
        fine: torch.Tensor,
        subject_index: int,
        slice_indices: Sequence[int],
        generator: torch.Generator,
    ) -> dict[str, np.ndarray]:
        """Complex multi-coil k-space from the 2× grid (``docs/acquisition.md``): magnitude ×
        smooth random phase, per-subject loop-coil sensitivities, correlated complex noise at the
        preset's SNR; coil maps estimated from the data's own fully sampled centre."""
        from geometries import CartesianMask

        from ..data.acquisition import coils, mri

        m, p = self.m, self.sim.preset
        factor = int(p.supersample)
        samp = self.sim.sampling[m]
        b, n_f = int(fine.shape[0]), int(fine.shape[-1])
        n = n_f // factor
        fine = fine.detach().cpu().float()
        out: dict[str, np.ndarray] = {}
        if isinstance(samp, CartesianMask):
            masks, seeds = self._masks(subject_index, slice_indices)
            out[f"mr/{m}/mask"] = masks
            out[f"mr/{m}/mask_seed"] = seeds
            sampling: Any = masks
            calib = min(int(p.calib_width), coils.acs_width(masks[0]))
        else:
            sampling = samp
            calib = int(p.calib_width)
        maps = None
        if p.n_coils > 1:
            if self._subject_maps is None or self._subject_maps[0] != subject_index:
                seed = int(np.random.SeedSequence([subject_index, 0xC011]).generate_state(1)[0])
                fov = float(self.sim.fov_mm or 220.0)
                maps_f = coils.loop_coil_maps((n_f, n_f), p.n_coils, fov_mm=fov, seed=seed)
                self._subject_maps = (subject_index, maps_f)
            maps = self._subject_maps[1]
        phase = None
        if p.mr_complex:
            phase = mri.random_phase(
                (n_f, n_f), generator, batch=b, poly_rad=p.phase_poly_rad,
                n_bumps=p.phase_bumps, bump_rad=p.phase_bump_rad,
            )  # fmt: skip
        psi = None
        if p.n_coils > 1 and p.coil_noise_correlation > 0:
            psi = mri.coil_noise_covariance(p.n_coils, p.coil_noise_correlation, generator)
        k = mri.simulate_mri_kspace(
            fine, sampling, generator=generator, maps_fine=maps, phase_fine=phase,
            snr=p.mr_snr, covariance=psi, factor=factor,
        )  # fmt: skip
        out[f"mr/{m}/kspace"] = k.cpu().numpy()
        if p.n_coils > 1 and p.coil_estimation != "none":
            kw: dict[str, Any] = {"method": p.coil_estimation}
            if not isinstance(samp, CartesianMask):
                kw.update(trajectory=samp, image_shape=(n, n))
            est = coils.estimate_coil_maps(k, calib, **kw)
            out[f"mr/{m}/coil_maps_est"] = est.to(torch.complex64).cpu().numpy()
        return out


class _MRReader(ModalityReader):
    def __init__(self, m: str, base: Any, sampling: Any, acceleration: float | None, seed: int):
        self.m = m
        self.base = base
        self.acquisition = sampling
        self.acceleration = acceleration
        self.seed = seed
        self.spoke_keep: int | None = None

    def has_raw(self, f: Any) -> bool:
        return f"mr/{self.m}/kspace" in f

    def read(self, f: Any, i: int) -> dict[str, torch.Tensor]:
        import geometries as geo

        from ..data.dataset import reduce_columns

        m = self.m
        if f"mr/{m}/kspace" not in f:
            return {}
        item: dict[str, torch.Tensor] = {}
        k = np.asarray(f[f"mr/{m}/kspace"][i], np.complex64)
        base = self.base
        if isinstance(base, geo.CartesianMask):
            mask = np.asarray(f[f"mr/{m}/mask"][i], bool)
            if self.acceleration is not None:
                n_keep = max(round(mask.shape[1] / self.acceleration), 1)
                # keyed by the stored mask seed: slices that share a mask (the authors' fixed
                # seed) share the re-derived mask too
                key = int(f[f"mr/{m}/mask_seed"][i]) if f"mr/{m}/mask_seed" in f else i
                rng = np.random.default_rng([self.seed, key, 0x6D61736B])
                mask = reduce_columns(mask, base.center_slice, n_keep, rng)
                k = k * (mask[None] if k.ndim == 3 else mask)
            item[f"{m}_mask"] = torch.from_numpy(np.ascontiguousarray(mask))
        elif self.spoke_keep is not None:
            n_new = self.spoke_keep
            spokes = k.reshape(*k.shape[:-1], base.n_spokes, base.n_samples)
            if base.ordering == "uniform":
                spokes = spokes[..., :: base.n_spokes // n_new, :]
            else:
                spokes = spokes[..., :n_new, :]
            k = spokes.reshape(*k.shape[:-1], -1)
        item[f"{m}_kspace"] = torch.from_numpy(np.ascontiguousarray(k, np.complex64))
        if f"mr/{m}/coil_maps_est" in f:
            item[f"{m}_maps"] = torch.from_numpy(
                np.ascontiguousarray(f[f"mr/{m}/coil_maps_est"][i], np.complex64)
            )
        elif f"mr/{m}/coil_maps" in f:  # files of schema 1: the simulator's maps
            item[f"{m}_maps"] = torch.from_numpy(np.asarray(f[f"mr/{m}/coil_maps"][()]))
        return item


class MRIModality(Modality):
    """One MRI contrast (T1w or T2w; see the module docstring)."""

    family = "mri"
    units = "a.u."
    windows: ClassVar[dict[str, tuple[float, float]]] = {"full": (0.0, 1.0)}
    intensity = "intensity.normalize_mr: robust min-max per volume, percentiles 0.5 and 99.5"

    def __init__(self, name: str, label: str, aliases: tuple[str, ...] = ()) -> None:
        self.name = name
        self.label = label
        self.aliases = aliases
        self.input_label = f"zero-filled {name.upper()}"
        self.raw_key = f"{name}_kspace"
        self.h5_group = f"mr/{name}"

    def volume_to_unit(self, volume: np.ndarray) -> np.ndarray:
        from ..data.intensity import normalize_mr

        return np.asarray(normalize_mr(volume), dtype=np.float32)

    def from_phantom(
        self, subject: Any, rng: np.random.Generator, *, fine: bool = False
    ) -> np.ndarray | None:
        img = subject.fine.get(self.name) if fine else subject.mr[self.name]
        return None if img is None else np.asarray(img, dtype=np.float32)

    # ------------------------------------------------------------------ acquisition
    def validate(self, sim: Any, size: int, **flags: Any) -> None:
        s = (getattr(sim, "sampling", None) or {}).get(self.name)
        if s is None:
            raise InputError(f"no MR sampling for {self.name}")
        if hasattr(s, "shape") and tuple(s.shape) != (size, size):
            raise InputError(
                f"mismatched geometry: {self.name} mask shape {s.shape} ≠ ({size}, {size})"
            )

    def file_attrs(self, sim: Any) -> dict[str, Any]:
        return {
            "sampling": {self.name: sim.sampling[self.name].to_dict()},
            "intensity": {self.name: self.intensity},
        }

    def simulator(self, sim: Any, device: torch.device, **kwargs: Any) -> ModalitySimulator:
        return _MRSimulator(self.name, sim, device)

    def acquisition_from_dict(self, d: Mapping[str, Any] | None) -> Any:
        import geometries as geo

        return geo.sampling_from_dict(dict(d)) if d else None

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

        d = (attrs.get("sampling") or {}).get(self.name)
        if d is None:
            return _MRReader(self.name, None, None, None, seed)
        s = geo.sampling_from_dict(d)
        if acceleration is None:
            return _MRReader(self.name, s, s, None, seed)
        if isinstance(s, geo.CartesianMask):
            if acceleration < s.acceleration - 1e-9:
                raise InputError(
                    f"acceleration={acceleration} is below the stored {s.acceleration} for "
                    f"{self.name}: only sparser data can be re-derived"
                )
            return _MRReader(self.name, s, s.with_acceleration(acceleration), acceleration, seed)
        n_new = round(s.n_spokes / acceleration)
        if n_new < 1:
            raise InputError(f"acceleration={acceleration} leaves no spokes for {self.name}")
        if s.ordering == "uniform" and s.n_spokes % n_new:
            raise InputError(
                f"acceleration={acceleration}: {n_new} spokes is not a subset of the "
                f"{s.n_spokes} stored uniform spokes (must divide)"
            )
        # golden: the first n_new spokes; uniform: every (n/n_new)-th spoke — both are again
        # the trajectory with n_new spokes
        r = _MRReader(self.name, s, s.with_spokes(n_new), None, seed)
        r.spoke_keep = n_new
        return r

    def check_file(self, f: Any, attrs: Mapping[str, Any], n_slices: int) -> list[Any]:
        m = self.name
        sampling = (attrs.get("sampling") or {}).get(m)
        if not sampling:
            raise InputError(f"{m} images but no MR sampling for {m} (attribute)")
        if f"mr/{m}/kspace" not in f:
            raise InputError(f"no mr/{m}/kspace dataset (the {m} measurements)")
        k = f[f"mr/{m}/kspace"]
        if k.shape[0] != n_slices:
            raise InputError(f"mr/{m}/kspace has {k.shape[0]} slices, images {n_slices}")
        out = [k]
        if sampling.get("type") == "CartesianMask":
            if f"mr/{m}/mask" not in f:
                raise InputError(f"no mr/{m}/mask dataset (the {m} sampling mask)")
            mask = f[f"mr/{m}/mask"]
            want = (n_slices, *k.shape[-2:])
            if tuple(mask.shape) != want:
                raise InputError(
                    f"mr/{m}/mask has shape {tuple(mask.shape)}, expected {want} (one mask per "
                    "slice)"
                )
        return out

    # ------------------------------------------------------------------ physics
    def operator(
        self,
        batch: Mapping[str, Any],
        acquisition: Any,
        device: torch.device | str | None = None,
        image_shape: tuple[int, int] | None = None,
    ) -> Any:
        from geometries import CartesianMask, RadialTrajectory
        from operators import SENSE, CartesianFourier

        m = self.name
        mask_key = f"{m}_mask"
        if mask_key in batch:
            inner = CartesianFourier(
                torch.as_tensor(batch[mask_key]).to(device=device, dtype=torch.bool)
            )
        elif isinstance(acquisition, CartesianMask):
            inner = CartesianFourier(acquisition)
        elif isinstance(acquisition, RadialTrajectory):
            if image_shape is None:
                raise InputError(f"radial {m} needs the image shape")
            inner = _nufft(acquisition, (int(image_shape[0]), int(image_shape[1])))
        else:
            raise InputError(
                f"no sampling for {m!r}: the batch has no {mask_key!r} and the acquisition is "
                f"{type(acquisition).__name__}"
            )
        maps = batch.get(f"{m}_maps")
        if maps is not None:
            return SENSE(torch.as_tensor(maps).to(device), inner)
        return inner

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
        key = f"{self.name}_mask"
        if not accelerations or key not in batch:
            return batch, acquisition
        batch = dict(batch)
        r = float(gen.choice(np.asarray(accelerations, dtype=float)))
        mask = batch[key].clone()
        w = mask.shape[-1]
        keep_total = max(1, round(w / r))
        centre = np.zeros(w, dtype=bool)
        if acquisition is not None and hasattr(acquisition, "center_slice"):
            centre[acquisition.center_slice] = True
        for b in range(mask.shape[0]):
            cols = mask[b].any(dim=0).cpu().numpy()
            optional = np.flatnonzero(cols & ~centre)
            n_keep_opt = max(0, keep_total - int((cols & centre).sum()))
            if n_keep_opt >= optional.size:
                continue
            drop = gen.choice(optional, size=optional.size - n_keep_opt, replace=False)
            mask[b][:, torch.as_tensor(drop)] = False
        batch[key] = mask
        k = batch[self.raw_key]
        mk = mask.to(k.dtype)
        batch[self.raw_key] = k * (mk[:, None] if k.ndim == 4 else mk)
        return batch, acquisition

    def raw_from_array(
        self, a: np.ndarray, acquisition: Any, image_size: int
    ) -> tuple[dict[str, torch.Tensor], Any] | None:
        if not np.iscomplexobj(a):
            return None
        k = torch.from_numpy(a.astype(np.complex64))
        if tuple(k.shape[-2:]) != (image_size, image_size):
            raise InputError(
                f"k-space shape {tuple(k.shape[-2:])}, the model needs {(image_size, image_size)}"
            )
        mask = (k.abs() > 0).any(dim=-2, keepdim=True).expand_as(k).contiguous()
        return {self.raw_key: k, f"{self.name}_mask": mask}, acquisition

    def preview_panels(
        self, item: Mapping[str, Any], acquisition: Any
    ) -> list[tuple[str, np.ndarray, str]]:
        m = self.name
        panels = [(f"GT {self.label}", item[m][0].numpy(), "gray")]
        if self.raw_key not in item:
            return panels
        batch = {k: v[None] for k, v in item.items() if isinstance(v, torch.Tensor)}
        op = self.operator(batch, acquisition, image_shape=tuple(item[m].shape[-2:]))
        zf = self.back_transform(batch[self.raw_key], op)[0].numpy()
        panels.append((f"zero-filled {self.label}", zf, "gray"))
        k = item[self.raw_key]
        if k.ndim == 3 or (k.ndim == 2 and f"{m}_mask" not in item):  # coils: RSS
            k = k.abs().pow(2).sum(0).sqrt() if k.ndim == 3 else k
        if f"{m}_mask" in item:
            panels.append(("log |k|", np.log1p(k.abs().numpy() * 100), "viridis"))
            panels.append(("mask", item[f"{m}_mask"].numpy().astype(float), "gray"))
        elif acquisition is not None:
            spokes = k.abs().reshape(acquisition.n_spokes, -1).numpy()
            panels.append(("log |k| per spoke", np.log1p(spokes * 100), "viridis"))
        return panels


register(MRIModality("t1", "T1w MRI", aliases=("mr", "mri")))
register(MRIModality("t2", "T2w MRI"))
