"""Batch helpers of the training loop: device moves, λ for a modality, sensor randomisation.

Everything here is a pure function of its inputs (randomness comes from the generator passed in),
which the loop's exact-resume guarantee relies on.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..errors import InputError

__all__ = ["collate", "lam_for_modality", "measurement", "move_batch", "randomize_batch"]


def collate(dataset: Any, indices: np.ndarray) -> dict[str, Any]:
    """Stack the samples ``dataset[i]`` for ``i`` in ``indices`` into one batch dict."""
    from torch.utils.data import default_collate

    return default_collate([dataset[int(i)] for i in indices])


def measurement(batch: dict[str, Any], m: str) -> torch.Tensor:
    """The raw data of modality ``m`` in a batch: ``ct_sino`` for CT, ``<m>_kspace`` for MRI."""
    return batch["ct_sino"] if m == "ct" else batch[f"{m}_kspace"]


def lam_for_modality(index: int, n_modalities: int, batch: int, device: torch.device) -> Any:
    """λ selecting modality ``index`` of ``n_modalities``: a float for n ≤ 2, else a simplex vertex.

    For two modalities in config order ``(a, b)``, λ=0 gives ``a`` and λ=1 gives ``b``.
    """
    if n_modalities <= 2:
        return float(index)
    lam = torch.zeros(batch, n_modalities, device=device)
    lam[:, index] = 1.0
    return lam


def move_batch(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """Move every tensor of a collated batch to ``device`` (non-blocking)."""
    return {
        k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v
        for k, v in batch.items()
    }


def randomize_batch(
    batch: dict[str, Any],
    geometry: Any,
    sampling: dict[str, Any],
    modalities: Sequence[str],
    gen: np.random.Generator,
    *,
    views: Sequence[int] | None = None,
    accelerations: Sequence[float] | None = None,
    modality_dropout: float = 0.0,
) -> tuple[dict[str, Any], Any, tuple[str, ...]]:
    """Training-time randomisation of the sensor data of one batch.

    Parameters
    ----------
    batch : dict
        Collated batch (``ct_sino`` ``(B, V, D)``, ``<m>_kspace`` ``(B, H, W)``, ``<m>_mask``).
    geometry : CTGeometry
        The stored scan (``V`` views).
    sampling : dict
        Modality -> stored sampling (``CartesianMask`` or ``RadialTrajectory``).
    modalities : sequence of str
        Modalities of the model.
    gen : numpy Generator
        Source of randomness (seeded per iteration by the loop).
    views : sequence of int, optional
        Candidate view counts (each ≤ V); one is drawn and an evenly spaced subset of the stored
        views with a random offset is kept (``ct_sino`` and ``geometry`` are restricted).
    accelerations : sequence of float, optional
        Candidate accelerations (Cartesian only, each ≥ the stored one): per sample, stored
        non-centre columns are dropped at random until ``W / R`` columns remain; the k-space is
        zeroed on dropped columns.
    modality_dropout : float
        Probability that the batch keeps only one (random) modality (needs ≥ 2 modalities).

    Returns
    -------
    batch, geometry, present
        The modified batch (new dict), the CT geometry for it, the modalities present.
    """
    batch = dict(batch)
    present = tuple(modalities)
    if "ct" in modalities and views:
        v_stored = int(batch["ct_sino"].shape[-2])
        n_v = int(gen.choice(np.asarray(views)))
        if n_v > v_stored or n_v < 1:
            raise InputError(f"random view count {n_v} outside 1..{v_stored} (stored views)")
        if n_v < v_stored:
            offset = int(gen.integers(0, max(v_stored // n_v, 1)))
            idx = (np.floor(np.arange(n_v) * (v_stored / n_v)).astype(np.int64) + offset) % v_stored
            idx = np.sort(idx)
            batch["ct_sino"] = batch["ct_sino"][..., torch.as_tensor(idx), :].contiguous()
            geometry = geometry.subset(idx)
    if accelerations:
        for m in modalities:
            key = f"{m}_mask"
            if m == "ct" or key not in batch:
                continue
            samp = sampling.get(m)
            r = float(gen.choice(np.asarray(accelerations, dtype=float)))
            mask = batch[key].clone()
            w = mask.shape[-1]
            keep_total = max(1, round(w / r))
            centre = np.zeros(w, dtype=bool)
            if samp is not None and hasattr(samp, "center_slice"):
                centre[samp.center_slice] = True
            for b in range(mask.shape[0]):
                cols = mask[b].any(dim=0).cpu().numpy()
                optional = np.flatnonzero(cols & ~centre)
                n_keep_opt = max(0, keep_total - int((cols & centre).sum()))
                if n_keep_opt >= optional.size:
                    continue
                drop = gen.choice(optional, size=optional.size - n_keep_opt, replace=False)
                mask[b][:, torch.as_tensor(drop)] = False
            batch[key] = mask
            kkey = f"{m}_kspace"
            batch[kkey] = batch[kkey] * mask.to(batch[kkey].dtype)
    if modality_dropout > 0 and len(modalities) > 1 and gen.random() < modality_dropout:
        present = (modalities[int(gen.integers(len(modalities)))],)
    return batch, geometry, present
