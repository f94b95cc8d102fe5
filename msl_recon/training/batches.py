"""Batch helpers of the training loop: device moves, λ for a modality, sensor randomisation.

Everything here is a pure function of its inputs (randomness comes from the generator passed in),
which the loop's exact-resume guarantee relies on.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

__all__ = [
    "collate",
    "lam_for_modality",
    "measurement",
    "move_batch",
    "randomize_batch",
    "shift_augment",
]


def collate(dataset: Any, indices: np.ndarray) -> dict[str, Any]:
    """Stack the samples ``dataset[i]`` for ``i`` in ``indices`` into one batch dict."""
    from torch.utils.data import default_collate

    return default_collate([dataset[int(i)] for i in indices])


def measurement(batch: dict[str, Any], m: str) -> torch.Tensor:
    """The raw data of modality ``m`` in a batch (its plug-in's ``raw_key``)."""
    from .. import modalities

    return modalities.get(m).measurement(batch)


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
    acquisition: dict[str, Any],
    modalities: Sequence[str],
    gen: np.random.Generator,
    *,
    views: Sequence[int] | None = None,
    accelerations: Sequence[float] | None = None,
    modality_dropout: float = 0.0,
) -> tuple[dict[str, Any], dict[str, Any], tuple[str, ...]]:
    """Training-time randomisation of the sensor data of one batch.

    Each modality's plug-in randomises its own data (:meth:`msl_recon.modalities.Modality.
    randomize`): CT keeps a random evenly spaced subset of the stored views, Cartesian MRI drops
    sampled non-centre columns down to a random acceleration.

    Parameters
    ----------
    batch : dict
        Collated batch.
    acquisition : dict
        Modality -> stored acquisition (``MSLDataset.acquisition``).
    modalities : sequence of str
        Modalities of the model, in order (the plug-ins draw from ``gen`` in this order).
    gen : numpy Generator
        Source of randomness (seeded per iteration by the loop).
    views : sequence of int, optional
        Candidate CT view counts (each ≤ the stored count).
    accelerations : sequence of float, optional
        Candidate MRI accelerations (Cartesian only, each ≥ the stored one).
    modality_dropout : float
        Probability that the batch keeps only one (random) modality (needs ≥ 2 modalities).

    Returns
    -------
    batch, acquisition, present
        The modified batch and acquisition (new dicts), the modalities present.
    """
    from .. import modalities as registry

    batch = dict(batch)
    acquisition = dict(acquisition)
    present = tuple(modalities)
    for m in modalities:
        batch, acquisition[m] = registry.get(m).randomize(
            batch, acquisition.get(m), gen, views=views, accelerations=accelerations
        )
    if modality_dropout > 0 and len(modalities) > 1 and gen.random() < modality_dropout:
        present = (modalities[int(gen.integers(len(modalities)))],)
    return batch, acquisition, present


def shift_augment(
    batch: dict[str, Any],
    ops: dict[str, Any],
    max_shift_px: dict[str, float],
    gen: np.random.Generator,
) -> dict[str, Any]:
    """Misregistration augmentation: re-acquire a modality from its shifted ground truth.

    For every modality ``m`` in ``max_shift_px`` that is in ``ops``, each slice's ground truth is
    translated by a random shift, uniform in ``±max_shift_px[m]`` pixels per axis (bilinear,
    air/zero enters at the border), and its raw data is replaced by the batch operator applied
    to the shifted image (noise-free, on the reconstruction grid); the target ``batch[m]`` stays
    in the reference frame. The network thus learns to return ``m`` in the frame of the other
    modalities, the "warp CT into the MRI frame" of the paper's misalignment experiment.

    Parameters
    ----------
    batch : dict
        Collated batch on the device, ground truth ``batch[m]`` ``(B, 1, N, N)`` in [0, 1].
    ops : dict
        Modality -> the batch's forward operator (:func:`msl_recon.model.build_operators`).
    max_shift_px : dict
        Modality -> largest shift (pixels, per axis, ≥ 0).
    gen : numpy Generator
        Source of the shifts (the loop's per-iteration generator).

    Returns
    -------
    dict
        A new batch dict with the re-acquired raw data.
    """
    from .. import modalities
    from ..baselines.fusion import shift_image

    out = dict(batch)
    for m, smax in max_shift_px.items():
        if m not in ops:
            continue
        gt = batch[m].float()
        shifts = gen.uniform(-float(smax), float(smax), size=(gt.shape[0], 2))
        moved = torch.cat(
            [shift_image(gt[i : i + 1], (shifts[i, 0], shifts[i, 1])) for i in range(gt.shape[0])]
        )
        key = modalities.get(m).raw_key
        y = ops[m](moved[:, 0])
        out[key] = y.to(batch[key].dtype).reshape(batch[key].shape)
    return out
