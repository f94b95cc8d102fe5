"""pix2pix (Isola et al. 2017): conditional GAN image translation, one model per direction.

Generator: the U-Net of :mod:`.unet`. Discriminator: the PatchGAN ``C64-C128-C256-C512`` with
4×4 convolutions, whose ``n_layers = 3`` version has a 70×70 receptive field. The objective is
``L_GAN(G, D) + 100·L1(G)`` (vanilla GAN with BCE on logits, the discriminator loss halved), and
both networks use Adam with lr 2e-4, β = (0.5, 0.999), as in the paper.

Images are in [0, 1] outside the model; inside they are mapped to [-1, 1] (tanh output).

Small images: the PatchGAN's receptive field is :func:`receptive_field` ``(n_layers)``
= 16, 34, 70, 142 px for 1…4 layers. A 70×70 patch is meaningless on a 64² image (it sees the
whole image, i.e. it degenerates to an image GAN), so by default
(:func:`default_disc_layers`) we use 3 layers (70 px) for images of 128² and up, 2 layers
(34 px) for 64²–127² and 1 layer (16 px) below: the patch stays about a quarter to half of the
image side, which is what 70 px is at pix2pix's 256².

Directions for the MSL comparison: ``"mr2ct"`` (sparse MRI image → CT) and ``"ct2mr"`` (sparse
CT/FBP image → MRI); train one :class:`Pix2Pix` per direction (:func:`translation_pair`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from torch import nn

from .unet import UNet, default_depth, make_norm

__all__ = [
    "PatchDiscriminator",
    "Pix2Pix",
    "default_disc_layers",
    "receptive_field",
    "translation_pair",
]


def receptive_field(n_layers: int) -> int:
    """Receptive field (pixels) of a PatchGAN with ``n_layers`` stride-2 layers.

    The network is ``n_layers`` 4×4 stride-2 convolutions, one 4×4 stride-1 convolution and the
    4×4 stride-1 output convolution.
    """
    rf = 1
    for stride in [1, 1] + [2] * n_layers:  # walk back from the output
        rf = (rf - 1) * stride + 4
    return rf


def default_disc_layers(image_size: int) -> int:
    """3 layers (70 px) from 128², 2 (34 px) from 64², else 1 (16 px); see module docstring."""
    if image_size >= 128:
        return 3
    if image_size >= 64:
        return 2
    return 1


class PatchDiscriminator(nn.Module):
    """PatchGAN discriminator on concatenated (source, target) images.

    Parameters
    ----------
    in_channels : int
        Channels of source + target (2 for single-channel images).
    base : int
        Channels of the first layer (64).
    n_layers : int
        Stride-2 layers (3: 70×70 patches).
    norm : {"batch", "instance", "none"}

    Shapes
    ------
    ``(B, in_channels, H, W) -> (B, 1, H', W')`` logits, one per patch.
    """

    def __init__(
        self, in_channels: int = 2, *, base: int = 64, n_layers: int = 3, norm: str = "batch"
    ) -> None:
        super().__init__()
        if n_layers < 1:
            raise ValueError(f"n_layers must be ≥ 1, got {n_layers}")
        bias = norm != "batch"
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, base, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2, True),
        ]
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2**n, 8)
            stride = 2 if n < n_layers else 1
            layers += [
                nn.Conv2d(base * prev, base * mult, 4, stride=stride, padding=1, bias=bias),
                make_norm(norm, base * mult),
                nn.LeakyReLU(0.2, True),
            ]
        layers.append(nn.Conv2d(base * mult, 1, 4, stride=1, padding=1))
        self.model = nn.Sequential(*layers)
        self.n_layers = n_layers

    @property
    def receptive_field(self) -> int:
        """Patch size in pixels."""
        return receptive_field(self.n_layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def _init_weights(m: nn.Module) -> None:
    # pix2pix: N(0, 0.02) weights, norm scales N(1, 0.02)
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(m.weight, 0.0, 0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


def translation_pair(
    batch: Mapping[str, torch.Tensor],
    sparse: Mapping[str, torch.Tensor],
    direction: str,
    *,
    mr_modality: str = "t1",
) -> tuple[torch.Tensor, torch.Tensor]:
    """(source, target) of a translation direction.

    Parameters
    ----------
    batch : mapping
        Dataset batch with ground truth ``"ct"`` and ``"<mr_modality>"`` ``(B, 1, H, W)``.
    sparse : mapping
        Sparse images ``(B, 1, H, W)`` per modality (:func:`.analytic.sparse_images`).
    direction : {"mr2ct", "ct2mr"}
    mr_modality : str
        Which MR modality (``"t1"`` or ``"t2"``).
    """
    if direction == "mr2ct":
        return sparse[mr_modality], batch["ct"]
    if direction == "ct2mr":
        return sparse["ct"], batch[mr_modality]
    raise ValueError(f"direction must be 'mr2ct' or 'ct2mr', got {direction!r}")


class Pix2Pix(nn.Module):
    """A pix2pix model (generator + PatchGAN + optimisers) for one translation direction.

    Parameters
    ----------
    image_size : int
        Side of the (square) images; sets the default U-Net depth and PatchGAN layers.
    in_channels, out_channels : int
        Image channels.
    base : int
        Base channels of both networks (64 in pix2pix; smaller for tests/CPU).
    unet_depth : int, optional
        Down-samplings of the U-Net (default :func:`.unet.default_depth`).
    disc_layers : int, optional
        PatchGAN layers (default :func:`default_disc_layers`).
    lambda_l1 : float
        Weight of the L1 term (100).
    lr : float
        Adam learning rate (2e-4).
    betas : (float, float)
        Adam betas ((0.5, 0.999)).
    norm : {"batch", "instance", "none"}
    device : torch.device or str, optional
    seed : int, optional
        Seed of the weight initialisation (uses a forked RNG: global state is untouched).
    """

    def __init__(
        self,
        image_size: int,
        *,
        in_channels: int = 1,
        out_channels: int = 1,
        base: int = 64,
        unet_depth: int | None = None,
        disc_layers: int | None = None,
        lambda_l1: float = 100.0,
        lr: float = 2e-4,
        betas: tuple[float, float] = (0.5, 0.999),
        norm: str = "batch",
        device: torch.device | str | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        depth = default_depth(image_size) if unet_depth is None else unet_depth
        n_d = default_disc_layers(image_size) if disc_layers is None else disc_layers
        with torch.random.fork_rng(devices=[]):
            if seed is not None:
                torch.manual_seed(seed)
            self.generator = UNet(in_channels, out_channels, base=base, depth=depth, norm=norm)
            self.discriminator = PatchDiscriminator(
                in_channels + out_channels, base=base, n_layers=n_d, norm=norm
            )
            self.apply(_init_weights)
        self.lambda_l1 = float(lambda_l1)
        self.to(device)
        self.opt_g = torch.optim.Adam(self.generator.parameters(), lr=lr, betas=betas)
        self.opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=lr, betas=betas)
        self._bce = nn.BCEWithLogitsLoss()

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def forward(self, src: torch.Tensor) -> torch.Tensor:
        """Translate ``(B, C, H, W)`` images in [0, 1]; output in [0, 1] (differentiable)."""
        return (self.generator(src * 2 - 1) + 1) / 2

    def train_step(self, src: torch.Tensor, tgt: torch.Tensor) -> dict[str, float]:
        """One pix2pix update of D then G on a batch.

        Parameters
        ----------
        src, tgt : Tensor, shape ``(B, C, H, W)``, values in [0, 1]

        Returns
        -------
        dict
            ``loss_d``, ``loss_g_gan``, ``loss_g_l1`` (mean absolute error in the generator's
            [-1, 1] space, twice the [0, 1]-unit error, before the ×100 weight, as in the
            original) and ``loss_g`` (total generator loss).
        """
        self.train()
        src = src.to(self.device, torch.float32) * 2 - 1
        tgt = tgt.to(self.device, torch.float32) * 2 - 1
        fake = self.generator(src)
        # --- discriminator
        self.opt_d.zero_grad(set_to_none=True)
        pred_fake = self.discriminator(torch.cat([src, fake.detach()], 1))
        pred_real = self.discriminator(torch.cat([src, tgt], 1))
        loss_d = 0.5 * (
            self._bce(pred_fake, torch.zeros_like(pred_fake))
            + self._bce(pred_real, torch.ones_like(pred_real))
        )
        loss_d.backward()
        self.opt_d.step()
        # --- generator
        self.opt_g.zero_grad(set_to_none=True)
        pred = self.discriminator(torch.cat([src, fake], 1))
        loss_gan = self._bce(pred, torch.ones_like(pred))
        # the original's L1 is in the generator's [-1, 1] space, weighted by λ = 100
        loss_l1 = torch.mean(torch.abs(fake - tgt))
        loss_g = loss_gan + self.lambda_l1 * loss_l1
        loss_g.backward()
        self.opt_g.step()
        return {
            "loss_d": float(loss_d.detach()),
            "loss_g_gan": float(loss_gan.detach()),
            "loss_g_l1": float(loss_l1.detach()),
            "loss_g": float(loss_g.detach()),
        }

    def fit(
        self,
        loader: Iterable[Any],
        iterations: int,
        *,
        prepare: Callable[[Any], tuple[torch.Tensor, torch.Tensor]] | None = None,
        progress: bool = True,
    ) -> list[dict[str, float]]:
        """Train for ``iterations`` steps, cycling through ``loader``.

        Parameters
        ----------
        loader : iterable
            Yields batches; re-iterated when exhausted.
        iterations : int
            Number of :meth:`train_step` calls.
        prepare : callable, optional
            ``batch -> (src, tgt)``; default: the batch is already a ``(src, tgt)`` pair (e.g.
            a ``TensorDataset`` loader). For a dataset batch use e.g.
            ``lambda b: translation_pair(b, sparse_images(b, build_operators(...)), "mr2ct")``.
        progress : bool
            Show a tqdm bar.

        Returns
        -------
        list of dict
            The losses of every step.
        """
        from ._fit import fit_loop

        prep = prepare or (lambda b: (b[0], b[1]))
        return fit_loop(
            self.train_step,
            loader,
            iterations,
            prep,
            desc="pix2pix",
            show="loss_g_l1",
            progress=progress,
        )

    @torch.no_grad()
    def predict(self, src: torch.Tensor, *, batch_size: int = 16) -> torch.Tensor:
        """Translate images (eval mode: running batch-norm statistics, no dropout).

        Parameters
        ----------
        src : Tensor, shape ``(B, C, H, W)``, values in [0, 1]
        batch_size : int
            Images per forward pass.

        Returns
        -------
        Tensor, shape ``(B, C_out, H, W)``, values in [0, 1], on ``src``'s device.
        """
        was_training = self.training
        self.eval()
        outs = [
            self(src[i : i + batch_size].to(self.device, torch.float32)).to(src.device)
            for i in range(0, src.shape[0], batch_size)
        ]
        self.train(was_training)
        return torch.cat(outs)
