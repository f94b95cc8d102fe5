"""Periodic validation of the training loop: metrics of the single-modality outputs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from .batches import collate, lam_for_modality, measurement, move_batch

__all__ = ["validate"]


@torch.no_grad()
def validate(
    net: torch.nn.Module,
    dataset: Any,
    modalities: Sequence[str],
    device: torch.device,
    *,
    n_samples: int = 8,
    batch_size: int = 4,
) -> dict[str, float]:
    """MAE/SSIM/MI/PSNR of the single-modality outputs (λ at each vertex) on validation slices.

    Returns
    -------
    dict
        ``{"<m>_mae": ..., "<m>_ssim": ..., "<m>_mi": ..., "<m>_psnr": ...}`` averaged over the
        first ``n_samples`` slices.
    """
    from .. import metrics
    from ..model import build_operators

    was_training = net.training
    net.eval()
    n = min(int(n_samples), len(dataset))
    sums: dict[str, float] = {}
    count = 0
    try:
        for start in range(0, n, batch_size):
            idx = np.arange(start, min(n, start + batch_size))
            batch = move_batch(collate(dataset, idx), device)
            ops = build_operators(batch, dataset.acquisition, device)
            ops = {m: ops[m] for m in modalities}
            meas = {m: measurement(batch, m) for m in modalities}
            feats = net.encode(meas, ops)
            for i, m in enumerate(modalities):
                lam = lam_for_modality(i, len(modalities), len(idx), device)
                out = net.decode(feats, lam).float().clamp(0, 1)
                gt = batch[m].float()
                x, y = out[:, 0], gt[:, 0]
                vals = {
                    "mae": metrics.mae(x, y),
                    "ssim": metrics.ssim(x, y),
                    "mi": metrics.nmi(x, y),
                    "psnr": metrics.psnr(x, y).clamp(max=100.0),
                }
                for k, v in vals.items():
                    key = f"{m}_{k}"
                    sums[key] = sums.get(key, 0.0) + float(v.sum())
            count += len(idx)
    finally:
        net.train(was_training)
    return {k: v / max(count, 1) for k, v in sums.items()}
