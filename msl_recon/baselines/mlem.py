"""MLEM and OSEM for emission tomography (PET), batched over slices on torch.

For Poisson data ``y ~ Poisson(P x + r)`` with a non-negative system operator ``P`` (e.g.
:func:`msl_recon.data.pet_sim.pet_system_operator`) and a known background ``r`` (scatter +
randoms), the EM update of Shepp & Vardi (IEEE TMI 1:113, 1982) and Lange & Carson (JCAT 8:306,
1984) is::

    x ← x / (Pᵀ 1) · Pᵀ( y / (P x + r) )

It keeps ``x >= 0`` for a positive start and never decreases the Poisson log-likelihood
``L(x) = Σ y log(P x + r) − (P x + r)`` (the ``log y!`` constant is dropped). OSEM (Hudson &
Larkin, IEEE TMI 13:601, 1994) applies the same update with the views split into interleaved
ordered subsets; it is faster per pass but not monotone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from operators import LinearOperator

from ..errors import InputError

__all__ = ["MLEMResult", "mlem", "poisson_log_likelihood"]


@dataclass(frozen=True)
class MLEMResult:
    """Outcome of :func:`mlem`.

    Attributes
    ----------
    image : torch.Tensor, ``(B, N, N)``
        The reconstruction (same units as the operator's domain), ``>= 0``.
    log_likelihood : torch.Tensor, ``(n_iter + 1, B)`` float64
        ``L(x_k)`` of the start image and after every iteration (full pass for OSEM).
    """

    image: torch.Tensor
    log_likelihood: torch.Tensor


def poisson_log_likelihood(y: torch.Tensor, ybar: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """``Σ y log(ȳ) − ȳ`` over the last two axes, float64 (``log y!`` dropped)."""
    yb = ybar.to(torch.float64)
    return (y.to(torch.float64) * torch.log(yb.clamp_min(eps)) - yb).sum(dim=(-2, -1))


def _positive_start(y: torch.Tensor, r: torch.Tensor, sens: torch.Tensor) -> torch.Tensor:
    # uniform image whose expected trues match the measured net counts
    net = (y - r).clamp_min(0.0).sum(dim=(-2, -1))
    total_sens = sens.sum(dim=(-2, -1)).clamp_min(1e-30)
    level = (net / total_sens).clamp_min(1e-6)
    return level[..., None, None].expand_as(sens).clone()


@torch.no_grad()
def mlem(
    y: torch.Tensor,
    op: LinearOperator,
    background: torch.Tensor | float | None = None,
    n_iter: int = 50,
    x0: torch.Tensor | None = None,
    *,
    n_subsets: int = 1,
    eps: float = 1e-12,
) -> MLEMResult:
    """Maximum-likelihood expectation maximisation (OSEM with ``n_subsets > 1``).

    Parameters
    ----------
    y : torch.Tensor, ``(B, V, D)``
        Measured prompts (counts, ``>= 0``).
    op : LinearOperator
        Non-negative system operator ``(N, N) -> (V, D)`` mapping the image to expected trues
        (per-sample factors aligned with the leading batch axis, as
        :class:`operators.AttenuatedRayTransform`). OSEM needs ``op.view_subset(indices)``.
    background : tensor ``(B, V, D)`` or float, optional
        Expected scatter + randoms (counts); None means 0.
    n_iter : int
        Iterations (full passes through the data).
    x0 : torch.Tensor, ``(B, N, N)``, optional
        Positive start image; default a uniform image matching the net counts.
    n_subsets : int
        Ordered subsets of interleaved views (1 = MLEM, monotone).
    eps : float
        Guard of the divisions.

    Returns
    -------
    MLEMResult
        ``image`` ``(B, N, N)`` in the dtype of ``y`` (float32 or float64) and the
        log-likelihood history.
    """
    if not isinstance(y, torch.Tensor) or y.ndim != 3:
        raise InputError(f"mlem: y must be a (B, V, D) tensor, got {getattr(y, 'shape', y)}")
    if tuple(y.shape[-2:]) != op.range_shape:
        raise InputError(
            f"mlem: y has shape {tuple(y.shape)}, the operator's range is {op.range_shape}"
        )
    if int(n_iter) != n_iter or n_iter < 0:
        raise InputError(f"mlem: n_iter must be a non-negative integer, got {n_iter}")
    if int(n_subsets) != n_subsets or not 1 <= n_subsets <= op.range_shape[0]:
        raise InputError(f"mlem: n_subsets must be in [1, {op.range_shape[0]}], got {n_subsets}")
    if bool((y < 0).any()):
        raise InputError("mlem: y must be >= 0")
    dt = torch.float64 if y.dtype == torch.float64 else torch.float32
    yy = y.to(dt)
    b = yy.shape[0]
    r = torch.zeros_like(yy) if background is None else torch.as_tensor(background)
    r = r.to(device=yy.device, dtype=dt).expand_as(yy)
    if bool((r < 0).any()):
        raise InputError("mlem: background must be >= 0")

    v = op.range_shape[0]
    if n_subsets == 1:
        subsets = [(None, op)]
    else:
        if not hasattr(op, "view_subset"):
            raise InputError(f"mlem: OSEM needs an operator with view_subset(), got {op.name}")
        subsets = [
            (torch.from_numpy(idx), op.view_subset(idx))
            for idx in (np.arange(k, v, n_subsets) for k in range(n_subsets))
        ]
    ones = torch.ones_like(yy)
    sens = []
    for idx, sub in subsets:
        sens.append(sub.H(ones if idx is None else ones[:, idx]).expand(b, *op.domain_shape))
    sens_total = sum(sens) if n_subsets > 1 else sens[0]

    if x0 is None:
        x = _positive_start(yy, r, sens_total)
    else:
        x = x0.to(device=yy.device, dtype=dt).expand(b, *op.domain_shape).clone()
        if bool((x < 0).any()):
            raise InputError("mlem: x0 must be >= 0")

    ybar = op(x) + r
    history = [poisson_log_likelihood(yy, ybar, eps)]
    for _ in range(n_iter):
        if n_subsets == 1:
            x = x * op.H(yy / ybar.clamp_min(eps)) / sens[0].clamp_min(eps)
            x = torch.where(sens[0] > eps, x, torch.zeros_like(x))
        else:
            for (idx, sub), s in zip(subsets, sens, strict=True):
                yb = sub(x) + r[:, idx]
                x = x * sub.H(yy[:, idx] / yb.clamp_min(eps)) / s.clamp_min(eps)
                x = torch.where(s > eps, x, torch.zeros_like(x))
        ybar = op(x) + r
        history.append(poisson_log_likelihood(yy, ybar, eps))
    ll = torch.stack(history)
    return MLEMResult(image=x, log_likelihood=ll)
