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

from ..errors import InputError

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

        from .hdf5 import read_attrs

        self.path = Path(path)
        attrs = read_attrs(self.path)
        self.attrs = attrs
        from .. import modalities as registry

        with h5py.File(self.path, "r") as f:
            stored = [m for m in registry.names() if f"images/{m}" in f]
            self._len = int(f[f"images/{stored[0]}"].shape[0]) if stored else 0
            if modalities is None:
                mods = stored
            else:
                mods = [modalities] if isinstance(modalities, str) else list(modalities)
                mods = [registry.get(m).name for m in mods]
                missing = [m for m in mods if m not in stored]
                if missing:
                    raise InputError(f"{self.path} has no modality {missing}; stored: {stored}")
            self.modalities: tuple[str, ...] = tuple(mods)
            self.seed = int(seed)
            self.acceleration = acceleration
            self._readers = {
                m: registry.get(m).open(
                    attrs, f, n_views=n_views, acceleration=acceleration, seed=self.seed
                )
                for m in self.modalities
            }
        #: Acquisition of each modality after any re-derivation (what its operator takes).
        self.acquisition: dict[str, Any] = {m: r.acquisition for m, r in self._readers.items()}
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

        if not -self._len <= i < self._len:
            raise IndexError(f"index {i} out of range for {self._len} slices")
        i = int(i) % self._len
        f = self._h5()
        item: dict[str, Any] = {"index": i}
        for m in self.modalities:
            item[m] = torch.from_numpy(np.asarray(f[f"images/{m}"][i], np.float32)[None])
        for m in self.modalities:
            item.update(self._readers[m].read(f, i))
        return item

    @property
    def geometry(self) -> Any:
        """The CT geometry after any view reduction (``acquisition["ct"]``), or None."""
        return self.acquisition.get("ct")

    @property
    def sampling(self) -> dict[str, Any]:
        """MRI sampling of each modality that has one (the ``sampling`` file attribute)."""
        from .. import modalities as registry

        return {m: a for m, a in self.acquisition.items() if registry.get(m).family == "mri"}

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
            f"{v} views, acquisition "
            f"{json.dumps({m: type(s).__name__ for m, s in self.acquisition.items()})}"
        )
