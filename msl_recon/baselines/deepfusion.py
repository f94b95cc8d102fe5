"""DeepFusion: two encoder–decoders reconstruct CT and MRI from their own sparse images, then a
pixel-wise fusion across λ.

* The **MRI network** maps the sparse MRI image (zero-filled / DCF adjoint magnitude) to the MRI.
* The **CT network** maps the sparse CT image (FBP) to the CT *in the MRI frame*: when the pair
  is misaligned, its training target is the CT aligned to the MRI. To know where the MRI frame
  is, it also sees the sparse MRI image (a second input channel); otherwise a network could
  only learn one fixed displacement.
* Fusion: ``(1 − λ)·CT + λ·MRI`` pixel-wise (:func:`.fusion.fuse`), for a global λ or a map.

Both networks are U-Nets (:class:`.unet.UNet`, sigmoid output for [0, 1] images, instance norm)
trained with L1 losses by Adam (lr 2e-4, β = (0.5, 0.999), the pix2pix settings).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from torch import nn

from .fusion import fuse
from .unet import UNet, default_depth

__all__ = ["DeepFusion", "deepfusion_inputs"]

Quad = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


def deepfusion_inputs(
    batch: Mapping[str, torch.Tensor],
    sparse: Mapping[str, torch.Tensor],
    *,
    mr_modality: str = "t1",
    ct_target: torch.Tensor | None = None,
) -> Quad:
    """``(ct_sparse, mr_sparse, ct_target, mr_target)`` from a dataset batch.

    Parameters
    ----------
    batch : mapping
        Ground truth ``"ct"`` and ``"<mr_modality>"``, ``(B, 1, H, W)``.
    sparse : mapping
        Sparse images per modality, ``(B, 1, H, W)`` (:func:`.analytic.sparse_images`); for a
        misalignment experiment the CT one comes from the shifted CT's sinogram.
    ct_target : Tensor, optional
        The CT target in the MRI frame (default ``batch["ct"]``, i.e. aligned data).
    """
    tgt = batch["ct"] if ct_target is None else ct_target
    return sparse["ct"], sparse[mr_modality], tgt, batch[mr_modality]


class DeepFusion(nn.Module):
    """Two U-Nets (CT → CT in the MRI frame, MRI → MRI) and pixel-wise fusion.

    Parameters
    ----------
    image_size : int
        Image side (sets the default U-Net depth).
    base : int
        Base channels of the U-Nets.
    depth : int, optional
        U-Net down-samplings (default :func:`.unet.default_depth`).
    lr : float
        Adam learning rate.
    betas : (float, float)
        Adam betas.
    device : torch.device or str, optional
    seed : int, optional
        Seed of the initialisation (a forked RNG; global state is untouched).
    """

    def __init__(
        self,
        image_size: int,
        *,
        base: int = 64,
        depth: int | None = None,
        lr: float = 2e-4,
        betas: tuple[float, float] = (0.5, 0.999),
        device: torch.device | str | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        d = default_depth(image_size) if depth is None else depth
        with torch.random.fork_rng(devices=[]):
            if seed is not None:
                torch.manual_seed(seed)
            kw: dict[str, Any] = {"base": base, "depth": d, "norm": "instance", "final": "sigmoid"}
            self.ct_net = UNet(2, 1, dropout=False, **kw)
            self.mr_net = UNet(1, 1, dropout=False, **kw)
        self.to(device)
        self.opt = torch.optim.Adam(self.parameters(), lr=lr, betas=betas)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def forward(
        self, ct_sparse: torch.Tensor, mr_sparse: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Reconstruct ``(ct, mr)``, each ``(B, 1, H, W)`` in [0, 1], from sparse images."""
        ct = self.ct_net(torch.cat([ct_sparse, mr_sparse], dim=1))
        mr = self.mr_net(mr_sparse)
        return ct, mr

    def train_step(
        self,
        ct_sparse: torch.Tensor,
        mr_sparse: torch.Tensor,
        ct_target: torch.Tensor,
        mr_target: torch.Tensor,
    ) -> dict[str, float]:
        """One Adam step on ``L1(ct, ct_target) + L1(mr, mr_target)``.

        All inputs ``(B, 1, H, W)`` in [0, 1]; ``ct_target`` is the CT in the MRI frame.
        Returns ``{"loss", "loss_ct", "loss_mr"}``.
        """
        self.train()
        dev = self.device
        ct, mr = self(ct_sparse.to(dev, torch.float32), mr_sparse.to(dev, torch.float32))
        l_ct = torch.mean(torch.abs(ct - ct_target.to(dev, torch.float32)))
        l_mr = torch.mean(torch.abs(mr - mr_target.to(dev, torch.float32)))
        loss = l_ct + l_mr
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return {
            "loss": float(loss.detach()),
            "loss_ct": float(l_ct.detach()),
            "loss_mr": float(l_mr.detach()),
        }

    def fit(
        self,
        loader: Iterable[Any],
        iterations: int,
        *,
        prepare: Callable[[Any], Quad] | None = None,
        progress: bool = True,
    ) -> list[dict[str, float]]:
        """Train for ``iterations`` steps, cycling through ``loader``.

        ``prepare(batch) -> (ct_sparse, mr_sparse, ct_target, mr_target)`` (default: the batch
        is that 4-tuple; see :func:`deepfusion_inputs`). Returns the per-step losses.
        """
        from ._fit import fit_loop

        prep = prepare or (lambda b: (b[0], b[1], b[2], b[3]))
        return fit_loop(
            self.train_step,
            loader,
            iterations,
            prep,
            desc="DeepFusion",
            show="loss",
            progress=progress,
        )

    @torch.no_grad()
    def predict(
        self,
        ct_sparse: torch.Tensor,
        mr_sparse: torch.Tensor,
        lam: float | torch.Tensor | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Reconstruct (eval mode) and optionally fuse.

        Parameters
        ----------
        ct_sparse, mr_sparse : Tensor, shape ``(B, 1, H, W)``
        lam : float or Tensor, optional
            Fusion weight (number, ``(B,)`` or map ``(B, 1, H, W)``); ``None`` returns the
            pair ``(ct, mr)`` instead.

        Returns
        -------
        Tensor ``(B, 1, H, W)`` (fused) or ``(ct, mr)``, on the inputs' device.
        """
        was_training = self.training
        self.eval()
        dev = self.device
        ct, mr = self(ct_sparse.to(dev, torch.float32), mr_sparse.to(dev, torch.float32))
        self.train(was_training)
        ct, mr = ct.to(ct_sparse.device), mr.to(ct_sparse.device)
        if lam is None:
            return ct, mr
        return fuse(ct, mr, lam)
