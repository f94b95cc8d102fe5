"""DeepFusion: two encoder–decoders reconstruct CT and MRI from their own sparse images, then a
pixel-wise fusion across λ.

* The **MRI network** maps the sparse MRI image (zero-filled / DCF adjoint magnitude) to the MRI.
* The **CT network** maps the sparse CT image (FBP) to the CT *in the MRI frame*. It sees only
  the sparse CT (as the method is described; no MRI input). To learn the warp into the MRI
  frame it is trained with **random-shift augmentation**: each training CT input is translated
  by a random sub-pixel shift (uniform in ``±max_shift`` px per axis) while its target stays the
  CT aligned to the MRI, so the network learns to map misplaced anatomy back to the common frame
  (our data are acquired in one frame, so the MRI frame is the canonical position).
* Fusion: ``(1 − λ)·CT + λ·MRI`` pixel-wise (:func:`.fusion.fuse`), for a global λ or a map.

Both networks are skip-connected U-Nets with a global residual and a linear output
(:class:`._cnn.SkipUNet`: no sigmoid, so 0 and 1 are reachable and the network starts at its
input image rather than at 0.5); :meth:`DeepFusion.predict` clips to [0, 1]. They are trained with
L1 losses by Adam (lr 2e-4, β = (0.5, 0.999)).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from torch import nn

from ._cnn import SkipUNet
from .fusion import fuse, shift_image

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
        Image side (sets the default U-Net depth: ``levels`` with side divisible by 2^levels,
        at most 4).
    base : int
        Base channels of the U-Nets.
    depth : int, optional
        U-Net down-samplings (default: up to 4, as the image side allows).
    lr : float
        Adam learning rate.
    betas : (float, float)
        Adam betas.
    max_shift : float, optional
        Largest random shift (pixels, per axis) of the CT training inputs; default
        ``image_size · 16/384`` (covers the paper's 5–15 px at 384²). 0 disables augmentation.
    device : torch.device or str, optional
    seed : int, optional
        Seed of the initialisation and of the augmentation (forked RNGs; global state is
        untouched).
    """

    def __init__(
        self,
        image_size: int,
        *,
        base: int = 16,
        depth: int | None = None,
        lr: float = 2e-4,
        betas: tuple[float, float] = (0.5, 0.999),
        max_shift: float | None = None,
        device: torch.device | str | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        d = _levels(image_size) if depth is None else depth
        with torch.random.fork_rng(devices=[]):
            if seed is not None:
                torch.manual_seed(seed)
            self.ct_net = SkipUNet(1, 1, base=base, levels=d, residual=True)
            self.mr_net = SkipUNet(1, 1, base=base, levels=d, residual=True)
        self.max_shift = image_size * 16 / 384 if max_shift is None else float(max_shift)
        self._aug = torch.Generator().manual_seed(0 if seed is None else seed + 1)
        self.to(device)
        self.opt = torch.optim.Adam(self.parameters(), lr=lr, betas=betas)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def forward(
        self, ct_sparse: torch.Tensor, mr_sparse: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Reconstruct ``(ct, mr)``, each ``(B, 1, H, W)`` (unclipped), from sparse images.

        The CT network sees only ``ct_sparse``; ``mr_sparse`` feeds the MRI network.
        """
        return self.ct_net(ct_sparse), self.mr_net(mr_sparse)

    def _shift(self, ct_sparse: torch.Tensor) -> torch.Tensor:
        """Random per-sample translation of CT inputs (uniform in ±max_shift px per axis)."""
        if self.max_shift <= 0:
            return ct_sparse
        sh = (torch.rand(ct_sparse.shape[0], 2, generator=self._aug) * 2 - 1) * self.max_shift
        return torch.cat(
            [
                shift_image(ct_sparse[i : i + 1], (float(sh[i, 0]), float(sh[i, 1])))
                for i in range(ct_sparse.shape[0])
            ]
        )

    def train_step(
        self,
        ct_sparse: torch.Tensor,
        mr_sparse: torch.Tensor,
        ct_target: torch.Tensor,
        mr_target: torch.Tensor,
    ) -> dict[str, float]:
        """One Adam step on ``L1(ct, ct_target) + L1(mr, mr_target)``.

        All inputs ``(B, 1, H, W)`` in [0, 1]; ``ct_target`` is the CT in the MRI frame. The CT
        input is randomly shifted first (``max_shift``), the target is not.
        Returns ``{"loss", "loss_ct", "loss_mr"}``.
        """
        self.train()
        dev = self.device
        ct_in = self._shift(ct_sparse.to(torch.float32).cpu()).to(dev)
        ct, mr = self(ct_in, mr_sparse.to(dev, torch.float32))
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
        Tensor ``(B, 1, H, W)`` (fused) or ``(ct, mr)``, clipped to [0, 1], on the inputs'
        device.
        """
        was_training = self.training
        self.eval()
        dev = self.device
        ct, mr = self(ct_sparse.to(dev, torch.float32), mr_sparse.to(dev, torch.float32))
        ct, mr = ct.clamp(0, 1), mr.clamp(0, 1)
        self.train(was_training)
        ct, mr = ct.to(ct_sparse.device), mr.to(ct_sparse.device)
        if lam is None:
            return ct, mr
        return fuse(ct, mr, lam)


def _levels(image_size: int, max_levels: int = 4) -> int:
    """Down-samplings of a U-Net for an image side: the most (≤ ``max_levels``) that divide it."""
    d = 0
    while d < max_levels and image_size % 2 ** (d + 1) == 0 and image_size // 2 ** (d + 1) >= 4:
        d += 1
    if d == 0:
        raise ValueError(f"image size {image_size} is too small or odd for a U-Net")
    return d
