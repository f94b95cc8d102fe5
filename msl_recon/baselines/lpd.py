"""Learned Primal-Dual reconstruction for CT (Adler & Öktem 2018), unrolled over our
:class:`operators.RayTransform`.

The network unrolls ``n_iter`` primal–dual updates with learned CNN proximal operators::

    h ← h + Γ_θi([h, A f⁽¹⁾, y])        dual update, in sinogram space (n_dual channels)
    f ← f + Λ_θi([f, Aᵀ h⁽¹⁾])          primal update, in image space (n_primal channels)

starting from ``f = 0``, ``h = 0``; the reconstruction is the first primal channel. Each ``Γ``,
``Λ`` is a 3-layer CNN (3×3 convolutions, 32 channels, PReLU), separate for every iteration, as
in the paper, with ``n_primal = n_dual = 5``. The paper unrolls 10 iterations; the CPU default
here is ``n_iter = 4`` (pass ``n_iter=10`` for the original). ``A`` enters through its torch
autograd (exact adjoint for the gradient); it is scaled by ``1/‖A‖`` and the sinogram likewise,
so the learned updates see data of unit scale whatever the geometry (a reparametrisation: the
network can represent the same maps). Training minimises the squared error to the ground truth.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

from operators import LinearOperator

from ._cnn import ConvNet
from ._train import TrainResult, fit_with_validation, seeded

__all__ = ["LearnedPrimalDual", "reconstruct_lpd", "train_lpd"]


class LearnedPrimalDual(nn.Module):
    """Learned Primal-Dual network for one CT geometry.

    Parameters
    ----------
    ray : LinearOperator
        The ray transform ``A`` (domain ``(H, W)``, range ``(V, D)``), e.g. a ``RayTransform``.
    n_iter : int
        Unrolled iterations (paper: 10; default 4 for CPU).
    n_primal, n_dual : int
        Memory channels (paper: 5 and 5).
    width : int
        Hidden channels of the CNNs (paper: 32).
    op_norm : float, optional
        ``‖A‖`` (estimated once when omitted).

    Shapes
    ------
    sinogram ``(B, V, D)`` (mm, line integrals) → image ``(B, 1, H, W)``.
    """

    def __init__(
        self,
        ray: LinearOperator,
        *,
        n_iter: int = 4,
        n_primal: int = 5,
        n_dual: int = 5,
        width: int = 32,
        op_norm: float | None = None,
    ) -> None:
        super().__init__()
        if n_iter < 1 or n_primal < 2 or n_dual < 1:
            raise ValueError("need n_iter ≥ 1, n_primal ≥ 2 and n_dual ≥ 1")
        self.ray = ray
        self.scale = 1.0 / float(ray.opnorm(n_iter=100) if op_norm is None else op_norm)
        self.n_primal, self.n_dual = n_primal, n_dual
        self.dual = nn.ModuleList(
            [ConvNet(n_dual + 2, n_dual, width=width, n_layers=3) for _ in range(n_iter)]
        )
        self.primal = nn.ModuleList(
            [ConvNet(n_primal + 1, n_primal, width=width, n_layers=3) for _ in range(n_iter)]
        )
        self.train_result: TrainResult | None = None

    def forward_op(self, f: torch.Tensor) -> torch.Tensor:
        """Scaled ``A/‖A‖`` of images ``(B, H, W)`` → ``(B, V, D)`` (autograd through A)."""
        return self.ray(f) * self.scale

    def adjoint_op(self, h: torch.Tensor) -> torch.Tensor:
        """Scaled ``Aᵀ/‖A‖`` of sinograms ``(B, V, D)`` → ``(B, H, W)``."""
        return self.ray.H(h) * self.scale

    def forward(self, sinogram: torch.Tensor) -> torch.Tensor:
        """Reconstruct ``(B, V, D)`` sinograms into ``(B, 1, H, W)`` images (unclipped)."""
        y = (sinogram * self.scale)[:, None]
        b = y.shape[0]
        h_img, w_img = self.ray.domain_shape
        f = y.new_zeros((b, self.n_primal, h_img, w_img))
        h = y.new_zeros((b, self.n_dual, *y.shape[-2:]))
        for gamma, lam in zip(self.dual, self.primal, strict=True):
            af = self.forward_op(f[:, 1])[:, None]
            h = h + gamma(torch.cat([h, af, y], dim=1))
            ath = self.adjoint_op(h[:, 0])[:, None]
            f = f + lam(torch.cat([f, ath], dim=1))
        return f[:, :1]


def _mse(model: LearnedPrimalDual, sino: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    dev = next(model.parameters()).device
    pred = model(sino.to(dev, torch.float32))
    return torch.mean((pred - target.to(dev, torch.float32).reshape(pred.shape)) ** 2)


def train_lpd(
    batches: Iterable[Any],
    ray: LinearOperator,
    *,
    time_budget_s: float,
    lr: float = 1e-3,
    device: torch.device | str | None = None,
    seed: int = 0,
    n_iter: int = 4,
    n_primal: int = 5,
    n_dual: int = 5,
    width: int = 32,
    max_steps: int | None = None,
    prepare: Callable[[Any], tuple[torch.Tensor, torch.Tensor]] | None = None,
    val_batches: Iterable[Any] | None = None,
    val_every: int = 50,
    progress: bool = False,
) -> LearnedPrimalDual:
    """Train a Learned Primal-Dual network within a wall-time budget.

    Parameters
    ----------
    batches : iterable
        Training batches ``(sinogram (B, V, D), target (B, 1, H, W))`` (or raw batches mapped
        by ``prepare``), in the geometry of ``ray``.
    ray : LinearOperator
        The ray transform of the geometry.
    time_budget_s, lr, device, seed, max_steps, prepare, val_batches, val_every, progress
        As in :func:`.fbpconvnet.train_fbpconvnet` (Adam; the paper also clips the gradient
        norm to 1, as :func:`._train.train_loop` does).
    n_iter, n_primal, n_dual, width : int
        Network size (see :class:`LearnedPrimalDual`).

    Returns
    -------
    LearnedPrimalDual
        In eval mode; ``model.train_result`` holds the training record.
    """
    norm = float(ray.opnorm(n_iter=100))
    with seeded(seed):
        model = LearnedPrimalDual(
            ray, n_iter=n_iter, n_primal=n_primal, n_dual=n_dual, width=width, op_norm=norm
        ).to(device)
    return fit_with_validation(
        model,
        _mse,
        batches,
        prepare=prepare or (lambda b: (b[0], b[1])),
        val_batches=val_batches,
        time_budget_s=time_budget_s,
        lr=lr,
        seed=seed,
        max_steps=max_steps,
        val_every=val_every,
        progress=progress,
    )


@torch.no_grad()
def reconstruct_lpd(
    model: LearnedPrimalDual, sinogram: torch.Tensor, *, clip: bool = True, batch_size: int = 16
) -> torch.Tensor:
    """Reconstruct sinograms ``(B, V, D)`` with a trained network → images ``(B, H, W)``."""
    was = model.training
    model.eval()
    dev = next(model.parameters()).device
    out = torch.cat(
        [
            model(sinogram[i : i + batch_size].to(dev, torch.float32))[:, 0]
            for i in range(0, sinogram.shape[0], batch_size)
        ]
    )
    model.train(was)
    return (out.clamp(0, 1) if clip else out).to(sinogram.device)
