"""MoDL (Aggarwal, Mani & Jacob 2019): an unrolled MRI reconstruction alternating a CNN denoiser
and a conjugate-gradient data-consistency step.

With the forward model ``E`` (:class:`operators.CartesianFourier` for single-coil data, or
:class:`operators.SENSE` for multi-coil data with given coil maps), k-space ``k`` and a learned
weight ``λ > 0``::

    x₀ = Eᴴ k
    z_i = D_w(x_i) = x_i + CNN_w(x_i)                       (weights shared across iterations)
    x_{i+1} = argmin_x ‖E x − k‖² + λ ‖x − z_i‖²  =  (EᴴE + λI)⁻¹ (Eᴴ k + λ z_i)

The normal equations are solved by conjugate gradients (:func:`cg_solve`) inside the graph
(the gradient flows through the CG iterations, as in the paper). Images are complex, fed to the
CNN as two channels (real, imaginary). The paper uses 10 unrolled iterations, 10 CG iterations
and a 5-layer, 64-channel CNN; the CPU defaults here are 4 unrolled iterations, 10 CG
iterations and a 5-layer, 32-channel CNN. Training minimises the squared error of the image
magnitude to the ground truth (our MR ground truths are magnitude images).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from operators import LinearOperator

from ._cnn import ConvNet
from ._train import TrainResult, fit_with_validation, seeded

__all__ = ["MoDL", "cg_solve", "reconstruct_modl", "train_modl"]


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-sample ``Re <a, b>`` over the last two axes (keepdim)."""
    return (torch.conj(a) * b).real.sum(dim=(-2, -1), keepdim=True)


def cg_solve(
    apply: Callable[[torch.Tensor], torch.Tensor],
    b: torch.Tensor,
    x0: torch.Tensor | None = None,
    *,
    n_iter: int = 10,
    tol: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Batched conjugate gradients for a Hermitian positive-definite ``apply``.

    Parameters
    ----------
    apply : callable
        ``x -> M x`` on ``(*batch, H, W)`` images (real or complex), ``M`` Hermitian PD.
    b : Tensor, shape ``(*batch, H, W)``
        Right-hand sides.
    x0 : Tensor, optional
        Start (default zeros).
    n_iter : int
        Maximum iterations.
    tol : float
        Stop early when every sample's relative residual ``‖b − M x‖ / ‖b‖`` is below ``tol``
        (0: always ``n_iter`` iterations, e.g. inside a network).

    Returns
    -------
    x : Tensor
        The solution estimate.
    rel_res : Tensor, shape ``(*batch,)``
        The final relative residuals (from the CG recursion).
    """
    x = torch.zeros_like(b) if x0 is None else x0
    r = b - apply(x) if x0 is not None else b.clone()
    p = r
    rr = _dot(r, r)
    bb = _dot(b, b).clamp_min(1e-30)
    for _ in range(n_iter):
        if tol > 0 and bool((rr / bb).sqrt().max() < tol):
            break
        mp = apply(p)
        alpha = rr / _dot(p, mp).clamp_min(1e-30)
        x = x + alpha * p
        r = r - alpha * mp
        rr_new = _dot(r, r)
        p = r + (rr_new / rr.clamp_min(1e-30)) * p
        rr = rr_new
    return x, (rr / bb).sqrt()[..., 0, 0]


class MoDL(nn.Module):
    """MoDL network.

    Parameters
    ----------
    op : LinearOperator, optional
        Default forward model ``E`` (complex domain ``(H, W)``). Batches may instead carry a
        per-batch mask (see :meth:`operator_for`).
    coil_maps : Tensor, optional
        ``(C, H, W)`` coil maps: per-batch masks then build ``SENSE(coil_maps, Cartesian)``.
    n_iter : int
        Unrolled iterations (paper: 10; default 4).
    cg_iter : int
        CG iterations per data-consistency step (paper: 10).
    width, n_layers : int
        Denoiser CNN size (paper: 64 channels, 5 layers; default 32, 5).
    lam_init : float
        Initial ``λ`` (paper: 0.05), learned through a softplus.
    """

    def __init__(
        self,
        op: LinearOperator | None = None,
        *,
        coil_maps: torch.Tensor | None = None,
        n_iter: int = 4,
        cg_iter: int = 10,
        width: int = 32,
        n_layers: int = 5,
        lam_init: float = 0.05,
    ) -> None:
        super().__init__()
        if n_iter < 1 or cg_iter < 1 or lam_init <= 0:
            raise ValueError("need n_iter ≥ 1, cg_iter ≥ 1 and lam_init > 0")
        self.op, self.coil_maps = op, coil_maps
        self.n_iter, self.cg_iter = n_iter, cg_iter
        self.denoiser = ConvNet(2, 2, width=width, n_layers=n_layers)
        # softplus(ρ) = λ
        self.rho = nn.Parameter(torch.tensor(float(torch.log(torch.expm1(torch.tensor(lam_init))))))
        self.train_result: TrainResult | None = None

    @property
    def lam(self) -> torch.Tensor:
        """The data-consistency weight ``λ = softplus(ρ) > 0``."""
        return F.softplus(self.rho)

    def operator_for(self, mask: torch.Tensor | None) -> LinearOperator:
        """The forward model of a batch: the default ``op``, or one built from a mask ``(B, H, W)``
        (``CartesianFourier``, wrapped in ``SENSE`` when the model has coil maps)."""
        if mask is None:
            if self.op is None:
                raise ValueError("MoDL: no operator given and no mask in the batch")
            return self.op
        from operators import SENSE, CartesianFourier  # type: ignore[attr-defined]

        cart = CartesianFourier(mask)
        return cart if self.coil_maps is None else SENSE(self.coil_maps, cart)

    def _denoise(self, x: torch.Tensor) -> torch.Tensor:
        xr = torch.stack([x.real, x.imag], dim=1)
        out = xr + self.denoiser(xr)
        return torch.complex(out[:, 0], out[:, 1])

    def forward(self, kspace: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Reconstruct complex images ``(B, H, W)`` from k-space ``(B, *E.range_shape)``."""
        op = self.operator_for(mask)
        k = kspace.to(torch.complex64)
        x = op.H(k)
        rhs0 = x
        lam = self.lam.to(x.real.dtype)

        def normal(v: torch.Tensor) -> torch.Tensor:
            return op.H(op(v)) + lam * v

        for _ in range(self.n_iter):
            z = self._denoise(x)
            x, _ = cg_solve(normal, rhs0 + lam * z, x, n_iter=self.cg_iter)
        return x


def _loss(model: MoDL, *batch: torch.Tensor) -> torch.Tensor:
    kspace, target = batch[0], batch[-1]
    mask = batch[1] if len(batch) == 3 else None
    dev = next(model.parameters()).device
    x = model(kspace.to(dev), None if mask is None else mask.to(dev))
    return torch.mean((x.abs() - target.to(dev, torch.float32).reshape(x.shape)) ** 2)


def train_modl(
    batches: Iterable[Any],
    op: LinearOperator | None = None,
    *,
    time_budget_s: float,
    lr: float = 1e-3,
    device: torch.device | str | None = None,
    seed: int = 0,
    coil_maps: torch.Tensor | None = None,
    n_iter: int = 4,
    cg_iter: int = 10,
    width: int = 32,
    max_steps: int | None = None,
    prepare: Callable[[Any], tuple[torch.Tensor, ...]] | None = None,
    val_batches: Iterable[Any] | None = None,
    val_every: int = 50,
    progress: bool = False,
) -> MoDL:
    """Train MoDL within a wall-time budget.

    Parameters
    ----------
    batches : iterable
        ``(kspace, target)`` with the fixed ``op``, or ``(kspace, mask (B, H, W), target)``
        with per-batch Cartesian masks; targets ``(B, H, W)`` or ``(B, 1, H, W)`` magnitudes.
    op : LinearOperator, optional
        Fixed forward model (``CartesianFourier`` or ``SENSE``).
    coil_maps : Tensor, optional
        ``(C, H, W)`` for multi-coil data with per-batch masks.
    time_budget_s, lr, device, seed, max_steps, prepare, val_batches, val_every, progress
        As in :func:`.fbpconvnet.train_fbpconvnet`.
    n_iter, cg_iter, width : int
        Network size (see :class:`MoDL`).

    Returns
    -------
    MoDL
        In eval mode; ``model.train_result`` holds the training record.
    """
    with seeded(seed):
        model = MoDL(op, coil_maps=coil_maps, n_iter=n_iter, cg_iter=cg_iter, width=width).to(
            device
        )
    return fit_with_validation(
        model,
        _loss,
        batches,
        prepare=prepare or (lambda b: tuple(b)),
        val_batches=val_batches,
        time_budget_s=time_budget_s,
        lr=lr,
        seed=seed,
        max_steps=max_steps,
        val_every=val_every,
        progress=progress,
    )


@torch.no_grad()
def reconstruct_modl(
    model: MoDL,
    kspace: torch.Tensor,
    mask: torch.Tensor | None = None,
    *,
    magnitude: bool = True,
    clip: bool = True,
) -> torch.Tensor:
    """Reconstruct with a trained MoDL: ``(B, H, W)`` magnitudes (clipped to [0, 1]) or complex."""
    was = model.training
    model.eval()
    dev = next(model.parameters()).device
    x = model(kspace.to(dev), None if mask is None else mask.to(dev))
    model.train(was)
    if not magnitude:
        return x.to(kspace.device)
    m = x.abs()
    return (m.clamp(0, 1) if clip else m).to(kspace.device)
