"""Mutual-information-optimised spatial λ maps (paper eq. 12–13).

``max_λ  Σ_m MI(X_λ, X_m) − α · TV(λ)``, ``X_λ = D(f_multi_sensor, λ)``, where ``X_m`` is the
model's own single-modality image (λ = vertex m: MSL-CT at λ=0 and MSL-MRI at λ=1 for two
modalities), solved by gradient ascent (Adam) on a per-pixel map.

- MI is eq. 12's mutual information, the differentiable soft-histogram estimate
  :func:`msl_recon.metrics.soft_mutual_information` (nats), by default (``measure="mi"``).
  Normalised MI (``measure="nmi"``, :func:`msl_recon.metrics.soft_nmi`, range 1–2) is available
  but degenerate for this objective: ``NMI(X, X_m) = 2`` when the image *equals* one reference,
  so the sum is maximised at a vertex (the map collapses to λ ≈ 0 or 1), whereas MI rewards an
  image that carries the information of every reference. The history also reports the exact
  histogram NMI (:func:`msl_recon.metrics.nmi`, 100 bins) of the first and final maps.
- TV is the isotropic total variation *summed* over the map's pixels (and channels), so α = 0.001
  (the paper's value) weighs about one unit of MI against a λ edge of ~1000 pixels.
- The map stays valid by construction: ``λ = sigmoid(θ)`` for two modalities and
  ``λ = softmax(θ)`` over the n simplex coordinates for n > 2.
"""

from __future__ import annotations

from typing import Any

import torch

from .metrics import nmi, soft_mutual_information, soft_nmi
from .model.decoder import lambda_condition
from .model.network import MSLFeatures, MSLNet

__all__ = ["MEASURES", "lambda_objective", "optimize_lambda", "total_variation"]

#: Similarity measures of the objective: eq. 12's MI (default) and normalised MI.
MEASURES = {"mi": soft_mutual_information, "nmi": soft_nmi}


def total_variation(lam: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Isotropic TV of maps ``(B, d, H, W)`` summed over pixels and channels: ``(B,)``."""
    dx = lam[..., :-1, 1:] - lam[..., :-1, :-1]
    dy = lam[..., 1:, :-1] - lam[..., :-1, :-1]
    return torch.sqrt(dx * dx + dy * dy + eps).sum(dim=(-3, -2, -1))


def lambda_objective(
    x: torch.Tensor,
    refs: torch.Tensor,
    lam: torch.Tensor,
    alpha: float,
    *,
    bins: int = 32,
    sigma: float | None = None,
    measure: str = "mi",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Objective of eq. 12 per sample.

    Parameters
    ----------
    x : Tensor ``(B, 1, N, N)``
        MSL image for the map.
    refs : Tensor ``(K, B, 1, N, N)``
        Reference images (one per modality).
    lam : Tensor ``(B, d, h, w)``
        The map (for the TV term).
    measure : {"mi", "nmi"}
        Mutual information (eq. 12, default) or normalised MI.

    Returns
    -------
    objective, mi_sum, tv : Tensors ``(B,)``
    """
    if measure not in MEASURES:
        raise ValueError(f"measure must be one of {sorted(MEASURES)}, got {measure!r}")
    fn = MEASURES[measure]
    mi = sum(fn(x[:, 0], r[:, 0], bins=bins, sigma=sigma) for r in refs)
    tv = total_variation(lam)
    return mi - alpha * tv, mi, tv


def _initial_logits(
    init: Any, n: int, b: int, size: tuple[int, int], device: torch.device, dtype: torch.dtype
) -> torch.Tensor:
    lam = lambda_condition(init, n, b, device=device, dtype=dtype)
    if lam.ndim == 2:
        lam = lam[:, :, None, None].expand(-1, -1, *size)
    elif tuple(lam.shape[-2:]) != size:
        lam = torch.nn.functional.interpolate(lam, size=size, mode="bilinear", align_corners=False)
    lam = lam.clamp(1e-4, 1 - 1e-4)
    if lam.shape[1] == 1:
        return torch.logit(lam).contiguous()
    return torch.log(lam / lam.sum(1, keepdim=True)).contiguous()


def _to_map(theta: torch.Tensor) -> torch.Tensor:
    return torch.sigmoid(theta) if theta.shape[1] == 1 else torch.softmax(theta, dim=1)


def optimize_lambda(
    net: MSLNet,
    features: MSLFeatures,
    *,
    init: Any = 0.5,
    alpha: float = 0.001,
    steps: int = 100,
    lr: float = 0.2,
    size: tuple[int, int] | None = None,
    out_size: tuple[int, int] | None = None,
    bins: int = 32,
    sigma: float | None = None,
    measure: str = "mi",
    progress: bool = False,
) -> tuple[torch.Tensor, dict[str, Any]]:
    """Find the spatial λ map maximising ``Σ_m MI(X_λ, X_m) − α·TV(λ)`` (eq. 12).

    Parameters
    ----------
    net : MSLNet
        Trained network (put in eval mode for the optimisation, restored afterwards).
    features : MSLFeatures
        ``net.encode(...)`` of the batch (detached here).
    init : float or Tensor
        Initial λ (scalar, per sample, or a map; for n > 2 a simplex point or map).
    alpha : float
        TV weight α (paper: 0.001), on the pixel-summed TV.
    steps : int
        Adam steps.
    lr : float
        Adam learning rate on the logits θ (λ = sigmoid(θ) / softmax(θ)).
    size : (int, int), optional
        Resolution of the map. Default: the decoder's first feature map (N/4 × N/4), as the
        paper's map has "the same spatial size as the feature map"; it is smoother and better
        conditioned than a per-image-pixel map. The decoder resizes it to each feature map.
    out_size : (int, int), optional
        Size of the returned map (default: the image size N × N; bilinear up-sampling).
    bins, sigma
        Soft histogram of the MI (see :func:`msl_recon.metrics.soft_mutual_information`).
    measure : {"mi", "nmi"}
        ``"mi"`` (eq. 12, default) or normalised MI (degenerate: see the module docstring).
    progress : bool
        Show a tqdm progress bar.

    Returns
    -------
    lam_map : Tensor ``(B, d, h, w)`` in [0, 1] (d = 1 for two modalities, n on the simplex);
        pass it to ``net.decode(features, lam_map)`` (or resize it for display)
        The best map found (highest mean objective over the batch).
    history : dict
        ``"objective"``, ``"mi"``, ``"tv"``: lists (batch means, at the optimisation size) with
        one entry before the first step and one after each step; ``"objective_before"``,
        ``"objective_after"``: per-sample objectives of the initial map and of the returned map,
        both evaluated at ``out_size``; ``"measure"``; ``"nmi_before"``, ``"nmi_after"``: exact
        histogram NMI summed over the references, per sample; ``"best_step"``. ``"mi"`` holds
        the similarity sum of the chosen ``measure``.
    """
    if steps < 0:
        raise ValueError(f"steps must be ≥ 0, got {steps}")
    feats = features.detach()
    p = feats.fused
    n_f = net.cfg.feature_size
    size = (n_f, n_f) if size is None else (int(size[0]), int(size[1]))
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad():
            refs = net.decode_many(feats, [net.vertex(m) for m in net.modalities])
        theta = _initial_logits(
            init, net.cfg.n_modalities, feats.batch_size, size, p.device, p.dtype
        )
        theta.requires_grad_(True)
        opt = torch.optim.Adam([theta], lr=lr)
        hist: dict[str, Any] = {"objective": [], "mi": [], "tv": []}
        best, best_val, best_step = theta.detach().clone(), -float("inf"), 0
        it: Any = range(steps + 1)
        if progress:
            from tqdm.auto import tqdm

            it = tqdm(it, desc="optimising λ", unit="step")
        for i in it:
            with torch.enable_grad():
                lam = _to_map(theta)
                x = net.decode(feats, lam)
                obj, mi, tv = lambda_objective(
                    x, refs, lam, alpha, bins=bins, sigma=sigma, measure=measure
                )
            val = float(obj.detach().mean())
            hist["objective"].append(val)
            hist["mi"].append(float(mi.detach().mean()))
            hist["tv"].append(float(tv.detach().mean()))
            if val > best_val:
                best, best_val, best_step = theta.detach().clone(), val, i
            if progress:
                it.set_postfix(objective=f"{val:.4f}")
            if i == steps:
                break
            (g,) = torch.autograd.grad(-obj.sum(), [theta])
            theta.grad = g
            opt.step()
        # the returned map is at the image size; score it (and the initial map) at that size
        out_size = (net.cfg.image_size, net.cfg.image_size) if out_size is None else out_size
        lam_best = _to_map(best)
        if tuple(lam_best.shape[-2:]) != tuple(out_size):
            lam_best = torch.nn.functional.interpolate(
                lam_best, size=tuple(out_size), mode="bilinear", align_corners=False
            )
        lam_init = _to_map(
            _initial_logits(
                init, net.cfg.n_modalities, feats.batch_size, tuple(out_size), p.device, p.dtype
            )
        )
        with torch.no_grad():
            x0, x1 = net.decode(feats, lam_init), net.decode(feats, lam_best)
            o0 = lambda_objective(
                x0, refs, lam_init, alpha, bins=bins, sigma=sigma, measure=measure
            )[0]
            o1 = lambda_objective(
                x1, refs, lam_best, alpha, bins=bins, sigma=sigma, measure=measure
            )[0]
            hist["nmi_before"] = sum(nmi(x0[:, 0], r[:, 0]) for r in refs).tolist()
            hist["nmi_after"] = sum(nmi(x1[:, 0], r[:, 0]) for r in refs).tolist()
        hist["objective_before"] = o0.tolist()
        hist["objective_after"] = o1.tolist()
        hist["measure"] = measure
        hist["best_step"] = best_step
    finally:
        net.train(was_training)
    return lam_best.detach(), hist
