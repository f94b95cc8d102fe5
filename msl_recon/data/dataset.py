"""Lazy torch ``Dataset`` over an msl-recon HDF5 split file, with load-time re-derivation.

``MSLDataset(path, n_views=16)`` keeps every ``V/16``-th stored view (the geometry follows via
``CTGeometry.subset``); ``acceleration=8`` drops sampled non-centre k-space columns of each
stored mask, deterministically per slice, until ``round(W / 8)`` columns remain (for radial data
it keeps a subset of the spokes). Both only ever remove measured data, never invent it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["MSLDataset", "reduce_columns"]


def reduce_columns(
    mask: np.ndarray, center: slice, n_keep: int, rng: np.random.Generator
) -> np.ndarray:
    """Keep ``n_keep`` sampled columns of ``mask`` (``(H, W)`` bool): the centre block plus a
    random subset of the other sampled columns; when ``n_keep`` is smaller than the centre
    block, its ``n_keep`` most central columns (the acceleration is met exactly).

    Raises
    ------
    ValueError
        If ``n_keep`` exceeds the sampled columns (that would need new data).
    """
    cols = mask.any(axis=0)
    n_have = int(cols.sum())
    if n_keep > n_have:
        raise ValueError(
            f"acceleration asks for {n_keep} columns but only {n_have} were measured; a "
            "re-derived acceleration must be ≥ the stored one"
        )
    centre = np.zeros_like(cols)
    centre[center] = True
    centre &= cols
    excess = int(centre.sum()) - n_keep
    if excess > 0:  # the acceleration wins: keep the n_keep most central columns of the block
        idx = np.flatnonzero(centre)
        centre[idx[: (excess + 1) // 2]] = False
        centre[idx[idx.size - excess // 2 :]] = False
    others = np.flatnonzero(cols & ~centre)
    n_other = max(n_keep - int(centre.sum()), 0)
    keep = np.zeros_like(cols)
    keep[centre] = True
    if n_other:
        keep[np.sort(rng.choice(others, size=n_other, replace=False))] = True
    return np.broadcast_to(keep[None, :], mask.shape) & mask


class MSLDataset(torch.utils.data.Dataset):
    """Slices of one split file: ground truth plus raw sensor data.

    Parameters
    ----------
    path : path-like
        A split file written by ``msl-recon simulate`` (``train.h5`` …).
    modalities : sequence of str, optional
        Subset of the stored modalities (default: all, in file order ``ct, t1, t2``).
    n_views : int, optional
        Keep ``n_views`` of the stored views: must divide the stored count (a subset).
    acceleration : float, optional
        Re-derived MRI acceleration (≥ the stored one).
    seed : int
        Seed of the re-derived masks (combined with each slice's stored mask seed, so slices
        that share a stored mask also share the re-derived one).

    Attributes
    ----------
    geometry : geometries.CTGeometry or None
        The CT geometry after any view reduction.
    sampling : dict
        ``{m: CartesianMask | RadialTrajectory}`` after any re-derivation (Cartesian: the stored
        base mask's description with the new acceleration; per-slice masks come with the items).
    modalities : tuple of str

    Items are dicts (default-collatable): ``"<m>"`` float32 ``(1, N, N)``; ``"ct_sino"`` float32
    ``(V, D)``; ``"<m>_kspace"`` complex64 ``(H, W)`` (radial ``(P,)``; multi-coil gets a leading
    coil axis); ``"<m>_mask"`` bool ``(H, W)`` (Cartesian); ``"index"`` int.

    Notes
    -----
    The HDF5 file is opened lazily in each process (so ``num_workers > 0`` works: every worker
    opens its own handle after the fork/spawn).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        modalities: Any = None,
        n_views: int | None = None,
        acceleration: float | None = None,
        seed: int = 0,
    ) -> None:
        import h5py

        import geometries as geo

        from .hdf5 import read_attrs

        self.path = Path(path)
        attrs = read_attrs(self.path)
        self.attrs = attrs
        with h5py.File(self.path, "r") as f:
            stored = [m for m in ("ct", "t1", "t2") if f"images/{m}" in f]
            self._len = int(f[f"images/{stored[0]}"].shape[0]) if stored else 0
            self._has_sino = "ct/sinogram" in f
        if modalities is None:
            mods = stored
        else:
            mods = [modalities] if isinstance(modalities, str) else list(modalities)
            missing = [m for m in mods if m not in stored]
            if missing:
                raise ValueError(f"{self.path} has no modality {missing}; stored: {stored}")
        self.modalities: tuple[str, ...] = tuple(mods)
        self.seed = int(seed)

        g = attrs.get("geometry")
        self._full_geometry = geo.geometry_from_dict(g) if g else None
        self._view_idx: np.ndarray | None = None
        self.geometry = self._full_geometry
        if n_views is not None:
            if self._full_geometry is None:
                raise ValueError("n_views given but the file has no CT geometry")
            v = int(self._full_geometry.n_views)
            if n_views < 1 or v % n_views:
                raise ValueError(
                    f"n_views={n_views} is not a subset of the {v} stored views "
                    f"(it must divide {v})"
                )
            self._view_idx = np.arange(0, v, v // n_views)
            self.geometry = self._full_geometry.subset(self._view_idx)

        self.sampling: dict[str, Any] = {}
        self._base_sampling: dict[str, Any] = {}
        self.acceleration = acceleration
        self._spoke_keep: dict[str, int] = {}
        for m, d in (attrs.get("sampling") or {}).items():
            s = geo.sampling_from_dict(d)
            self._base_sampling[m] = s
            if acceleration is None:
                self.sampling[m] = s
            elif isinstance(s, geo.CartesianMask):
                if acceleration < s.acceleration - 1e-9:
                    raise ValueError(
                        f"acceleration={acceleration} is below the stored {s.acceleration} for "
                        f"{m}: only sparser data can be re-derived"
                    )
                self.sampling[m] = s.with_acceleration(acceleration)
            else:
                n_new = round(s.n_spokes / acceleration)
                if n_new < 1:
                    raise ValueError(f"acceleration={acceleration} leaves no spokes for {m}")
                if s.ordering == "uniform" and s.n_spokes % n_new:
                    raise ValueError(
                        f"acceleration={acceleration}: {n_new} spokes is not a subset of the "
                        f"{s.n_spokes} stored uniform spokes (must divide)"
                    )
                self._spoke_keep[m] = n_new
                # golden: the first n_new spokes; uniform: every (n/n_new)-th spoke — both are
                # again the trajectory with n_new spokes
                self.sampling[m] = s.with_spokes(n_new)
        self._file: Any = None
        self._pid: int | None = None

    # ------------------------------------------------------------------ file handle
    def _h5(self) -> Any:
        import h5py

        if self._file is None or self._pid != os.getpid():
            self._file = h5py.File(self.path, "r")
            self._pid = os.getpid()
        return self._file

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_file"] = None
        state["_pid"] = None
        return state

    def __del__(self) -> None:
        f = getattr(self, "_file", None)
        if f is not None:
            try:
                f.close()
            except Exception:  # interpreter shutdown
                pass

    def __len__(self) -> int:
        return self._len

    # ------------------------------------------------------------------ items
    def subject_ids(self) -> list[str]:
        """Subject id of every slice."""
        raw = self._h5()["meta/subject_id"][:]
        return [s.decode() if isinstance(s, bytes) else str(s) for s in raw]

    def __getitem__(self, i: int) -> dict[str, Any]:
        import geometries as geo

        if not -self._len <= i < self._len:
            raise IndexError(f"index {i} out of range for {self._len} slices")
        i = int(i) % self._len
        f = self._h5()
        item: dict[str, Any] = {"index": i}
        for m in self.modalities:
            item[m] = torch.from_numpy(np.asarray(f[f"images/{m}"][i], np.float32)[None])
        if "ct" in self.modalities and self._has_sino:
            sino = np.asarray(f["ct/sinogram"][i], np.float32)
            if self._view_idx is not None:
                sino = np.ascontiguousarray(sino[self._view_idx])
            item["ct_sino"] = torch.from_numpy(sino)
        for m in self.modalities:
            if m == "ct" or f"mr/{m}/kspace" not in f:
                continue
            k = np.asarray(f[f"mr/{m}/kspace"][i], np.complex64)
            base = self._base_sampling.get(m)
            if isinstance(base, geo.CartesianMask):
                mask = np.asarray(f[f"mr/{m}/mask"][i], bool)
                if self.acceleration is not None:
                    n_keep = max(round(mask.shape[1] / self.acceleration), 1)
                    # keyed by the stored mask seed: slices that share a mask (the authors'
                    # fixed seed) share the re-derived mask too
                    key = int(f[f"mr/{m}/mask_seed"][i]) if f"mr/{m}/mask_seed" in f else i
                    rng = np.random.default_rng([self.seed, key, 0x6D61736B])
                    mask = reduce_columns(mask, base.center_slice, n_keep, rng)
                    k = k * mask
                item[f"{m}_mask"] = torch.from_numpy(np.ascontiguousarray(mask))
            elif m in self._spoke_keep:
                n_new = self._spoke_keep[m]
                spokes = k.reshape(*k.shape[:-1], base.n_spokes, base.n_samples)
                if base.ordering == "uniform":
                    spokes = spokes[..., :: base.n_spokes // n_new, :]
                else:
                    spokes = spokes[..., :n_new, :]
                k = spokes.reshape(*k.shape[:-1], -1)
            item[f"{m}_kspace"] = torch.from_numpy(np.ascontiguousarray(k, np.complex64))
        return item

    def coil_maps(self, m: str) -> torch.Tensor | None:
        """Stored coil sensitivities ``(C, H, W)`` of a modality, or None (single coil)."""
        f = self._h5()
        name = f"mr/{m}/coil_maps"
        return torch.from_numpy(f[name][()]) if name in f else None

    def describe(self) -> str:
        """One-line description (path, slices, modalities, geometry views)."""
        v = None if self.geometry is None else self.geometry.n_views
        return (
            f"{self.path.name}: {self._len} slices, modalities {','.join(self.modalities)}, "
            f"{v} views, sampling "
            f"{json.dumps({m: type(s).__name__ for m, s in self.sampling.items()})}"
        )
