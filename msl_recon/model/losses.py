"""Training objective of MSL (paper §2.5, eqs. 14–20), generalised to n modalities.

``L = L_rec + φ_f · L_fusion + φ_a · L_aux + φ_e · L_aux_feat`` (eq. 20). The paper names three
weights for the four terms; L_rec has weight 1 and the defaults φ_f = 1.0, φ_a = 1.0, φ_e = 0.5
(docs/architecture.md, The model's "1.0, 1.0, 0.5") weight the other three.

- ``L_rec = Σ_m MAE(X_{λ=vertex m}, GT_m)`` (eq. 14; for (CT, MRI): λ=0 vs CT, λ=1 vs MRI).
- ``L_fusion = Σ_m (1/n) · MSE(X_{λ=centre}, GT_m)`` (eq. 15; centre λ = 0.5 for two modalities).
- ``L_aux``: for each single-modality scenario k (only k's tokens enter the transformer, eqs. 5–6),
  ``Σ_m MAE(X^{aux,k}_{vertex m}, GT_m)`` (eqs. 16–18), averaged over the scenarios used
  (``aux="all"``: every present modality; ``"random"``: one drawn per step; ``"none"``).
- ``L_aux_feat = Σ_m MAE(f_intra_m, mean_{k≠m} f_inter_k)`` over present m (eq. 19).

With ``cfg.ssim_weight = w > 0`` (not in the paper) every MAE of L_rec and L_aux becomes
``MAE + w · (1 − SSIM)``: SSIM punishes the low-amplitude streaks and aliasing left in flat tissue
far more than MAE does, and SSIM is how the outputs are judged.

All decodes of a step (vertices and centre of the joint representation, and the auxiliary ones)
go through the decoder in one batched call.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from ..metrics import ssim
from .network import MSLFeatures, MSLNet
from .physics import measurements_from_batch

__all__ = ["choose_present", "msl_losses"]


def _weights(net: MSLNet, weights: Any) -> dict[str, float]:
    cfg = net.cfg
    w = {"fusion": cfg.phi_fusion, "aux": cfg.phi_aux, "aux_feat": cfg.phi_aux_feat}
    if weights is None:
        return w
    if isinstance(weights, Mapping):
        unknown = sorted(set(weights) - set(w))
        if unknown:
            raise ValueError(f"unknown loss weights {unknown}; allowed: {sorted(w)}")
        w.update({k: float(v) for k, v in weights.items()})
        return w
    vals = list(weights)
    if len(vals) != 3:
        raise ValueError("weights must be a dict or (φ_fusion, φ_aux, φ_aux_feat)")
    return dict(zip(("fusion", "aux", "aux_feat"), map(float, vals), strict=True))


def _image_loss(x: torch.Tensor, gt: torch.Tensor, ssim_weight: float) -> torch.Tensor:
    """MAE, plus ``ssim_weight · (1 − mean SSIM)`` when the weight is positive."""
    loss = F.l1_loss(x, gt)
    if ssim_weight > 0:
        loss = loss + ssim_weight * (1.0 - ssim(x[:, 0], gt[:, 0]).mean())
    return loss


def choose_present(
    available: Sequence[str],
    drop_prob: float,
    generator: torch.Generator | None = None,
) -> list[str]:
    """Randomly drop modalities (each with probability ``drop_prob``), keeping at least one."""
    avail = list(available)
    if drop_prob <= 0 or len(avail) < 2:
        return avail
    r = torch.rand(len(avail), generator=generator)
    keep = [m for m, u in zip(avail, r.tolist(), strict=True) if u >= drop_prob]
    if not keep:
        keep = [avail[int(torch.randint(len(avail), (1,), generator=generator))]]
    return keep


def msl_losses(
    net: MSLNet,
    batch: Mapping[str, Any],
    ops: Mapping[str, Any],
    weights: Mapping[str, float] | Sequence[float] | None = None,
    *,
    present: Sequence[str] | None = None,
    drop_prob: float = 0.0,
    aux: str | None = None,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Total MSL loss and its parts for one batch.

    Parameters
    ----------
    net : MSLNet
    batch : dict
        Collated batch: ground truth ``"<m>"`` ``(B, 1, N, N)`` and raw data ``"ct_sino"``,
        ``"<m>_kspace"`` (see :class:`msl_recon.data.dataset.MSLDataset`).
    ops : dict modality -> LinearOperator
        From :func:`msl_recon.model.physics.build_operators`.
    weights : dict or (φ_f, φ_a, φ_e), optional
        Keys ``"fusion"``, ``"aux"``, ``"aux_feat"``; defaults from ``net.cfg``.
    present : sequence of str, optional
        Modalities whose measurements the network sees (default: all in the batch).
    drop_prob : float
        Training-time randomisation: drop each present modality with this probability (at least
        one is kept) so the model also learns single-modality imaging (eqs. 5–6).
    aux : {'all', 'random', 'none'}, optional
        Which single-modality scenarios L_aux uses (see module docs); default ``net.cfg.aux``.
    generator : torch.Generator, optional
        CPU generator for the random choices (reproducible training).
    device : optional
        Where to move the batch tensors (default: the network's device).

    Returns
    -------
    total : Tensor (scalar, differentiable)
    parts : dict with ``"rec"``, ``"fusion"``, ``"aux"``, ``"aux_feat"``, ``"total"`` (detached)
    """
    if aux is None:
        aux = net.cfg.aux
    if aux not in ("all", "random", "none"):
        raise ValueError(f"aux must be 'all', 'random' or 'none', got {aux!r}")
    w = _weights(net, weights)
    p0 = next(net.parameters())
    device = p0.device if device is None else torch.device(device)
    mods = net.modalities
    meas = measurements_from_batch(batch, mods, device=device)
    avail = [m for m in mods if m in meas and (present is None or m in present)]
    if not avail:
        raise ValueError(f"msl_losses: the batch has no measurement of {mods} (present={present})")
    use = choose_present(avail, drop_prob, generator)
    gts = {
        m: torch.as_tensor(batch[m]).to(device=device, dtype=p0.dtype) for m in mods if m in batch
    }
    if not gts:
        raise ValueError(f"msl_losses: the batch has no ground truth for any of {mods}")

    feats, x0 = net.sensor_features({m: meas[m] for m in use}, ops)
    joint = net.features_from(feats, x0)

    # ---- one batched decoder call: (representation, λ, target-tag) jobs
    targets = [m for m in mods if m in gts]
    jobs: list[tuple[MSLFeatures, torch.Tensor, str]] = [
        (joint, net.vertex(m), f"rec:{m}") for m in targets
    ]
    if net.cfg.n_modalities >= 2:
        jobs.append((joint, net.center(), "fusion"))
    scenarios: list[str] = []
    if aux != "none" and len(use) >= 2:
        scenarios = list(use)
        if aux == "random":
            scenarios = [use[int(torch.randint(len(use), (1,), generator=generator))]]
        for k in scenarios:
            single = net.features_from(feats, x0, subset=[k])
            jobs += [(single, net.vertex(m), f"aux:{m}") for m in targets]

    b = joint.batch_size
    fused = torch.cat([j[0].fused for j in jobs], 0)
    conds = torch.cat(
        [
            torch.as_tensor(j[1], dtype=fused.dtype, device=device).reshape(1, -1).expand(b, -1)
            for j in jobs
        ],
        0,
    )
    uses_x0 = net.cfg.input_skip or net.cfg.residual
    skip = torch.cat([j[0].skip_images() for j in jobs], 0) if uses_x0 else None
    base = torch.cat([j[0].base_images() for j in jobs], 0) if net.cfg.residual else None
    out = net.decoder(fused, conds, skip, base).reshape(len(jobs), b, *gts[targets[0]].shape[1:])

    zero = fused.new_zeros(())
    rec, fusion, aux_l = zero, zero, zero
    n = net.cfg.n_modalities
    sw = float(net.cfg.ssim_weight)
    for i, (_, _, tag) in enumerate(jobs):
        x = out[i]
        if tag.startswith("rec:"):
            rec = rec + _image_loss(x, gts[tag[4:]], sw)
        elif tag == "fusion":
            fusion = fusion + sum(F.mse_loss(x, gts[m]) for m in targets) / n
        else:
            aux_l = aux_l + _image_loss(x, gts[tag[4:]], sw)
    if scenarios:
        aux_l = aux_l / len(scenarios)

    feat_l = zero
    for m in joint.present:
        others = [k for k in joint.present if k != m]
        if others:
            cross = torch.stack([joint.inter[k] for k in others]).mean(0)
            feat_l = feat_l + F.l1_loss(joint.intra[m], cross)

    total = rec + w["fusion"] * fusion + w["aux"] * aux_l + w["aux_feat"] * feat_l
    parts = {
        "rec": rec.detach(),
        "fusion": fusion.detach(),
        "aux": aux_l.detach(),
        "aux_feat": feat_l.detach(),
        "total": total.detach(),
    }
    return total, parts
