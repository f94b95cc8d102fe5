"""FBPConvNet (Jin, McCann, Froustey & Unser 2017): a residual U-Net that post-processes FBP.

``x̂ = FBP(y) + U(FBP(y))`` with ``U`` the skip-connected U-Net of :class:`._cnn.SkipUNet`
(the paper: 4 levels, 64 base channels, batch norm, global residual), trained on pairs
``(FBP image, ground truth)`` with the squared error. Defaults here are CPU-sized (3 levels,
16 base channels); pass ``base=64, levels=4`` for the original width.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

from ._cnn import SkipUNet
from ._train import TrainResult, fit_with_validation, seeded

__all__ = ["FBPConvNet", "reconstruct_fbpconvnet", "train_fbpconvnet"]


class FBPConvNet(nn.Module):
    """Residual U-Net on FBP images.

    Parameters
    ----------
    base : int
        Channels of the first U-Net level (paper: 64; default 16).
    levels : int
        Down-samplings (paper: 4; default 3). Image sides must be divisible by ``2**levels``.

    Shapes
    ------
    ``(B, 1, H, W) -> (B, 1, H, W)``, the FBP image in, the corrected image out (unclipped).
    """

    def __init__(self, *, base: int = 16, levels: int = 3) -> None:
        super().__init__()
        self.unet = SkipUNet(1, 1, base=base, levels=levels, residual=True)
        self.train_result: TrainResult | None = None

    def forward(self, fbp: torch.Tensor) -> torch.Tensor:
        """Correct FBP images ``(B, 1, H, W)``."""
        return self.unet(fbp)


def _mse(model: nn.Module, fbp: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    dev = next(model.parameters()).device
    pred = model(fbp.to(dev, torch.float32))
    return torch.mean((pred - target.to(dev, torch.float32).reshape(pred.shape)) ** 2)


def train_fbpconvnet(
    batches: Iterable[Any],
    *,
    time_budget_s: float,
    lr: float = 1e-3,
    device: torch.device | str | None = None,
    seed: int = 0,
    base: int = 16,
    levels: int = 3,
    max_steps: int | None = None,
    prepare: Callable[[Any], tuple[torch.Tensor, torch.Tensor]] | None = None,
    val_batches: Iterable[Any] | None = None,
    val_every: int = 50,
    progress: bool = False,
) -> FBPConvNet:
    """Train an FBPConvNet within a wall-time budget.

    Parameters
    ----------
    batches : iterable
        Training batches ``(fbp, target)``, each ``(B, 1, H, W)`` (or raw batches mapped by
        ``prepare``); re-iterated when exhausted.
    time_budget_s : float
        Wall-time budget (seconds).
    lr : float
        Adam learning rate.
    device : torch.device or str, optional
    seed : int
        Seed of the initialisation and of the training loop.
    base, levels : int
        Network size (see :class:`FBPConvNet`).
    max_steps : int, optional
        Step cap.
    prepare : callable, optional
        ``raw batch -> (fbp, target)``.
    val_batches : iterable, optional
        Validation batches (same format); the parameters with the lowest validation MSE are
        kept.
    val_every : int
        Steps between validations.
    progress : bool

    Returns
    -------
    FBPConvNet
        In eval mode; ``model.train_result`` holds the :class:`._train.TrainResult`.
    """
    with seeded(seed):
        model = FBPConvNet(base=base, levels=levels).to(device)
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
def reconstruct_fbpconvnet(
    model: FBPConvNet, fbp: torch.Tensor, *, clip: bool = True, batch_size: int = 16
) -> torch.Tensor:
    """Apply a trained FBPConvNet to FBP images.

    Parameters
    ----------
    model : FBPConvNet
    fbp : Tensor, shape ``(B, H, W)`` or ``(B, 1, H, W)``
        FBP images (same scale as training).
    clip : bool
        Clip to [0, 1].
    batch_size : int

    Returns
    -------
    Tensor, same shape as ``fbp``, on ``fbp``'s device.
    """
    was = model.training
    model.eval()
    x = fbp if fbp.ndim == 4 else fbp[:, None]
    dev = next(model.parameters()).device
    out = torch.cat(
        [
            model(x[i : i + batch_size].to(dev, torch.float32))
            for i in range(0, x.shape[0], batch_size)
        ]
    )
    model.train(was)
    out = out.clamp(0, 1) if clip else out
    return out.reshape(fbp.shape).to(fbp.device)
