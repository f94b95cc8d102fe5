"""Per-batch physics: the operators that the PI-encoders back-transform with.

:func:`build_operators` turns a collated :class:`msl_recon.data.dataset.MSLDataset` batch and the
dataset's acquisition (``dataset.acquisition``: one entry per modality — a CT geometry, a
Cartesian mask or radial trajectory, a PET acquisition …) into ``{modality: LinearOperator}``.
Each modality's plug-in (:mod:`msl_recon.modalities`) builds its own operator; operators with an
expensive set-up (ASTRA system matrices, NUFFT plans) are cached by their plug-ins, and built
lazily, so the encoder, which only calls ``pseudo_inverse()``, never pays for a system matrix.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch

from .. import modalities as registry

__all__ = ["build_operators", "measurement_key", "measurements_from_batch"]


def measurement_key(modality: str) -> str:
    """Batch key of a modality's raw data (e.g. ``"ct_sino"``, ``"t1_kspace"``)."""
    return registry.get(modality).raw_key


def measurements_from_batch(
    batch: Mapping[str, Any],
    modalities: Iterable[str],
    *,
    device: torch.device | str | None = None,
) -> dict[str, torch.Tensor]:
    """The raw measurements of ``modalities`` that the batch holds (others are skipped)."""
    out = {}
    for m in modalities:
        spec = registry.get(m)
        if spec.raw_key in batch:
            out[m] = torch.as_tensor(spec.measurement(batch)).to(device)
    return out


def build_operators(
    batch: Mapping[str, Any],
    acquisition: Mapping[str, Any],
    device: torch.device | str | None = None,
    *,
    modalities: Iterable[str] | None = None,
    image_shape: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """Operators of the batch's physics, one per modality whose measurement the batch holds.

    Parameters
    ----------
    batch : dict
        Collated dataset batch (``"<m>"`` ground truth ``(B, 1, N, N)`` and each modality's raw
        data and per-sample extras, e.g. ``"ct_sino"``, ``"t1_kspace"``, ``"t1_mask"``).
    acquisition : mapping modality -> acquisition
        What each modality's operator is built from (``MSLDataset.acquisition``); per-sample
        data in the batch (Cartesian masks, coil maps) takes precedence where a plug-in has it.
    device : torch.device or str, optional
        Device of per-sample tensors (operators follow their inputs' device otherwise).
    modalities : iterable of str, optional
        Restrict to these modalities (default: every registered modality found in the batch).
    image_shape : (int, int), optional
        Image shape (default: that of a ground-truth image in the batch, else of a CT geometry).

    Returns
    -------
    dict modality -> LinearOperator
    """
    names = registry.names() if modalities is None else tuple(modalities)
    if image_shape is None:
        for m in names:
            if m in batch:
                image_shape = tuple(torch.as_tensor(batch[m]).shape[-2:])
                break
        else:
            for a in acquisition.values():
                if hasattr(a, "image_shape"):
                    image_shape = tuple(a.image_shape)
                    break
    ops: dict[str, Any] = {}
    for m in names:
        spec = registry.get(m)
        if spec.raw_key not in batch:
            continue
        ops[m] = spec.operator(batch, acquisition.get(m), device, image_shape)
    return ops
