"""Evaluation helpers shared by the experiments: batched inference, sparse images, metrics."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

__all__ = [
    "Scoreboard",
    "collate",
    "metric_summary",
    "msl_images",
    "msl_val_score",
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
    """Analytical images (each plug-in's ``back_transform``: FBP, zero-filled magnitude,
    corrected PET FBP), clipped to [0, 1], and ground truth, ``(S, H, W)`` on CPU."""
    from msl_recon import modalities as registry
    from msl_recon.model import build_operators
    from msl_recon.training.batches import move_batch

    sparse: dict[str, list[torch.Tensor]] = {}
    truth: dict[str, list[torch.Tensor]] = {}
    for chunk in _chunks(indices, batch):
        b = move_batch(collate(ds, chunk), device)
        ops = build_operators(b, ds.acquisition, device)
        for m, op in ops.items():
            spec = registry.get(m)  # the plug-in's analytical image (FBP, zero-filled, PET FBP)
            img = spec.back_transform(spec.measurement(b), op).reshape(
                b[m].shape[0], *b[m].shape[-2:]
            )
            sparse.setdefault(m, []).append(img.float().clamp(0, 1).cpu())
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


def msl_val_score(
    model: Any, ds: Any, indices: Sequence[int], inputs: Sequence[str], device: torch.device
) -> float:
    """Validation MAE of an MSL model: mean over its modalities of MAE(end-point image, GT).

    The first modality is scored at λ = 0, the last at λ = 1 (one modality: λ = 0).
    """
    inputs = tuple(inputs)
    lams = [0.0] if len(inputs) == 1 else [0.0, 1.0]
    targets = [inputs[0]] if len(inputs) == 1 else [inputs[0], inputs[-1]]
    imgs, _ = msl_images(model, ds, indices, inputs, lams, device)
    truth = torch.stack([torch.stack([ds[int(i)][m][0] for i in indices]) for m in targets])
    return float(torch.mean(torch.abs(imgs.clamp(0, 1) - truth)))


class Scoreboard:
    """Per-slice metrics of every (method, target) on one set of test slices.

    Parameters
    ----------
    subjects : sequence of str
        Subject id of every scored slice (the unit of the bootstrap).
    """

    METRICS = ("MAE", "SSIM", "MI", "PSNR")

    def __init__(self, subjects: Sequence[str]) -> None:
        self.subjects = [str(s) for s in subjects]
        self.values: dict[str, dict[str, dict[str, list[float]]]] = {}
        self.extra: dict[tuple[str, str], dict[str, Any]] = {}

    def add(
        self, method: str, target: str, pred: torch.Tensor, ref: torch.Tensor, **extra: Any
    ) -> None:
        """Score ``pred`` against ``ref`` (``(S, H, W)``, the board's slices)."""
        if pred.shape[0] != len(self.subjects):
            raise ValueError(f"{method}: {pred.shape[0]} slices, board has {len(self.subjects)}")
        m = per_slice_metrics(pred, ref)
        self.values.setdefault(method, {})[target] = {k: v.tolist() for k, v in m.items()}
        self.extra[(method, target)] = extra

    def rows(self) -> list[dict[str, Any]]:
        """``method, target``, each metric's mean of per-subject means and ``_std`` (SD over
        subjects), plus the extras."""
        from .stats import subject_summary

        rows = []
        for method, by_t in self.values.items():
            for target, mets in by_t.items():
                row: dict[str, Any] = {"method": method, "target": target}
                row.update(self.extra.get((method, target), {}))
                for k, v in mets.items():
                    s = subject_summary(v, self.subjects)
                    row[k], row[f"{k}_std"] = s["mean"], s["sd_subjects"]
                rows.append(row)
        return rows

    def compare(
        self, reference: str, target: str, metrics: Sequence[str] = ("SSIM", "PSNR", "MAE")
    ) -> list[dict[str, Any]]:
        """Paired bootstrap CIs (over subjects) of every other method minus ``reference``."""
        from .stats import compare_methods

        out = []
        for k in metrics:
            per = {
                m: by_t[target][k]
                for m, by_t in self.values.items()
                if target in by_t and k in by_t[target]
            }
            if reference not in per or len(per) < 2 or len(set(self.subjects)) < 2:
                continue
            for r in compare_methods(per, self.subjects, reference, higher_is_better=k != "MAE"):
                out.append({"target": target, "metric": k, **r})
        return out

    def to_dict(self) -> dict[str, Any]:
        """Per-slice values, subjects and per-subject means (stored in results.json)."""
        from .stats import per_subject_means

        per_subject = {
            method: {
                t: {k: per_subject_means(v, self.subjects)[0].tolist() for k, v in mets.items()}
                for t, mets in by_t.items()
            }
            for method, by_t in self.values.items()
        }
        ids = per_subject_means(np.zeros(len(self.subjects)), self.subjects)[1]
        return {
            "subjects": self.subjects,
            "subject_ids": [str(i) for i in ids],
            "per_slice": self.values,
            "per_subject": per_subject,
        }
