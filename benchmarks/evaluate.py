"""Evaluation helpers shared by the experiments: batched inference, sparse images, metrics."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

__all__ = [
    "collate",
    "metric_summary",
    "msl_images",
    "per_slice_metrics",
    "shifted_ct_sinograms",
    "sparse_and_truth",
]

MR_DEFAULT = "t1"


def collate(ds: Any, indices: Sequence[int]) -> dict[str, Any]:
    """Default-collated batch of dataset items."""
    from torch.utils.data import default_collate

    return default_collate([ds[int(i)] for i in indices])


def _chunks(indices: Sequence[int], size: int) -> list[list[int]]:
    return [list(indices[i : i + size]) for i in range(0, len(indices), size)]


@torch.no_grad()
def sparse_and_truth(
    ds: Any, indices: Sequence[int], device: torch.device, *, batch: int = 16
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Sparse images (FBP / zero-filled magnitude) and ground truth, ``(S, H, W)`` on CPU."""
    from msl_recon.baselines import sparse_images
    from msl_recon.model import build_operators
    from msl_recon.training.batches import move_batch

    sparse: dict[str, list[torch.Tensor]] = {}
    truth: dict[str, list[torch.Tensor]] = {}
    for chunk in _chunks(indices, batch):
        b = move_batch(collate(ds, chunk), device)
        ops = build_operators(b, ds.acquisition, device)
        for m, img in sparse_images(b, ops).items():
            sparse.setdefault(m, []).append(img[:, 0].float().cpu())
        for m in ds.modalities:
            truth.setdefault(m, []).append(b[m][:, 0].float().cpu())
    return (
        {m: torch.cat(v) for m, v in sparse.items()},
        {m: torch.cat(v) for m, v in truth.items()},
    )


@torch.no_grad()
def msl_images(
    model: Any,
    ds: Any,
    indices: Sequence[int],
    inputs: Sequence[str],
    lams: Sequence[float | torch.Tensor],
    device: torch.device,
    *,
    batch: int = 8,
    override: dict[str, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, float]:
    """MSL images for every λ: ``(L, S, H, W)`` on CPU, and the seconds per slice.

    Parameters
    ----------
    model : LoadedModel
    ds : MSLDataset
    inputs : sequence of str
        Modalities fed to the network (a subset of the model's).
    lams : sequence
        Global λ values (floats) or per-slice maps ``(S, 1, H, W)`` (sliced per batch).
    override : dict, optional
        Replacement measurements ``(S, ...)`` per batch key (e.g. shifted-CT sinograms).
    """
    from msl_recon.inference import Reconstructor

    out: list[torch.Tensor] = []
    t0 = time.perf_counter()
    pos = 0
    for chunk in _chunks(indices, batch):
        b = collate(ds, chunk)
        if override:
            for k, v in override.items():
                b[k] = v[pos : pos + len(chunk)]
        rec = Reconstructor(model, b, ds.acquisition, inputs, device)
        imgs = []
        for lam in lams:
            if isinstance(lam, torch.Tensor):
                lam = lam[pos : pos + len(chunk)]
            imgs.append(rec.decode(lam).cpu())
        out.append(torch.stack(imgs))
        pos += len(chunk)
    seconds = (time.perf_counter() - t0) / max(1, len(indices))
    return torch.cat(out, dim=1), seconds


def per_slice_metrics(pred: torch.Tensor, ref: torch.Tensor) -> dict[str, np.ndarray]:
    """MAE, SSIM, MI (normalised, 100 bins) and PSNR per slice, skimage-equivalent.

    ``pred`` and ``ref`` are ``(S, H, W)`` in [0, 1] (prediction clipped to [0, 1]).
    """
    from msl_recon import metrics

    p = pred.clamp(0, 1).double()[:, None]
    r = ref.double()[:, None]
    return {
        "MAE": metrics.mae(p, r).cpu().numpy().reshape(-1),
        "SSIM": metrics.ssim(p, r).cpu().numpy().reshape(-1),
        "MI": metrics.nmi(p, r).cpu().numpy().reshape(-1),
        "PSNR": metrics.psnr(p, r).cpu().numpy().reshape(-1),
    }


def metric_summary(pred: torch.Tensor, ref: torch.Tensor) -> dict[str, dict[str, float]]:
    """``{metric: {"mean", "std"}}`` over slices."""
    return {
        k: {"mean": float(np.mean(v)), "std": float(np.std(v))}
        for k, v in per_slice_metrics(pred, ref).items()
    }


@torch.no_grad()
def shifted_ct_sinograms(
    ds: Any, indices: Sequence[int], shifts: np.ndarray, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sinograms and images of the ground-truth CT shifted by ``shifts[i] = (dy, dx)`` pixels.

    Returns ``(sinograms (S, V, D), shifted images (S, H, W))`` on CPU; the CT is re-projected
    with the dataset's own geometry, as a mis-registered acquisition would record it.
    """
    import operators as ops
    from msl_recon.baselines import shift_image

    ct = torch.stack([ds[int(i)]["ct"][0] for i in indices]).to(device)
    moved = torch.stack(
        [
            shift_image(ct[j][None, None], tuple(float(s) for s in shifts[j]))[0, 0]
            for j in range(len(indices))
        ]
    )
    ray = ops.RayTransform(ds.geometry)
    sino = ray(moved.to(torch.float32))
    return sino.cpu(), moved.cpu()
