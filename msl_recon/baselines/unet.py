"""The pix2pix U-Net generator (Isola et al. 2017), with a configurable depth for small images.

Encoder ``C64-C128-C256-C512-C512-…`` (4×4 convolutions, stride 2, LeakyReLU 0.2, no norm on the
first layer and on the innermost one), decoder of 4×4 transposed convolutions (ReLU) with skip
connections, dropout 0.5 in the three decoder layers nearest the bottleneck (except the
innermost), as in the reference implementation. ``depth`` down-samplings need an image side
divisible by ``2**depth``; pix2pix's ``unet_256`` is ``depth=8`` at 256², and for small images
``depth = log2(side)`` reaches a 1×1 bottleneck as in the paper.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["UNet", "default_depth", "make_norm"]


def make_norm(kind: str, channels: int) -> nn.Module:
    """``"batch"`` (pix2pix default), ``"instance"`` or ``"none"``."""
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=False)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"norm must be 'batch', 'instance' or 'none', got {kind!r}")


def default_depth(image_size: int, max_depth: int = 8) -> int:
    """Number of down-samplings for an image side: ``min(log2(side), max_depth)`` (≥ 1)."""
    if image_size < 2:
        raise ValueError(f"image_size must be ≥ 2, got {image_size}")
    d = 0
    s = int(image_size)
    while s % 2 == 0 and s > 1 and d < max_depth:
        s //= 2
        d += 1
    if d == 0:
        raise ValueError(f"image size {image_size} is not divisible by 2")
    return d


class _Block(nn.Module):
    """One level of the U-Net: down, the inner levels, up, and the skip concatenation."""

    def __init__(
        self,
        outer: int,
        inner: int,
        *,
        in_channels: int | None = None,
        sub: nn.Module | None = None,
        outermost: bool = False,
        innermost: bool = False,
        norm: str = "batch",
        dropout: bool = False,
        out_channels: int | None = None,
    ) -> None:
        super().__init__()
        self.outermost = outermost
        cin = outer if in_channels is None else in_channels
        down = nn.Conv2d(cin, inner, 4, stride=2, padding=1, bias=norm != "batch")
        if outermost:
            up = nn.ConvTranspose2d(inner * 2, out_channels or outer, 4, stride=2, padding=1)
            layers: list[nn.Module] = [down, sub, nn.ReLU(True), up]  # type: ignore[list-item]
        elif innermost:
            up = nn.ConvTranspose2d(inner, outer, 4, stride=2, padding=1, bias=norm != "batch")
            layers = [nn.LeakyReLU(0.2, True), down, nn.ReLU(True), up, make_norm(norm, outer)]
        else:
            up = nn.ConvTranspose2d(inner * 2, outer, 4, stride=2, padding=1, bias=norm != "batch")
            layers = [
                nn.LeakyReLU(0.2, True),
                down,
                make_norm(norm, inner),
                sub,  # type: ignore[list-item]
                nn.ReLU(True),
                up,
                make_norm(norm, outer),
            ]
            if dropout:
                layers.append(nn.Dropout(0.5))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.model(x)
        return y if self.outermost else torch.cat([x, y], dim=1)


class UNet(nn.Module):
    """pix2pix U-Net generator.

    Parameters
    ----------
    in_channels, out_channels : int
        Image channels.
    base : int
        Channels of the first layer (64 in pix2pix); level ``i`` has ``base·2^min(i, 3)``.
    depth : int
        Number of stride-2 down-samplings (≥ 1). The input side must be divisible by
        ``2**depth``.
    norm : {"batch", "instance", "none"}
        Normalisation layers.
    dropout : bool
        Dropout 0.5 in up to three decoder levels next to the bottleneck.
    final : {"tanh", "sigmoid", "none"}
        Output activation (pix2pix: tanh, for images in [-1, 1]).

    Shapes
    ------
    ``(B, in_channels, H, W) -> (B, out_channels, H, W)``.
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 1,
        *,
        base: int = 64,
        depth: int = 8,
        norm: str = "batch",
        dropout: bool = True,
        final: str = "tanh",
    ) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError(f"depth must be ≥ 1, got {depth}")
        if final not in ("tanh", "sigmoid", "none"):
            raise ValueError(f"final must be 'tanh', 'sigmoid' or 'none', got {final!r}")
        make_norm(norm, 1)  # validate
        self.depth = depth
        ch = [base * 2 ** min(i, 3) for i in range(depth)]  # channels after down-sampling i
        if depth == 1:
            # a single level: down then up (no skip connection, as pix2pix's outermost block)
            block: nn.Module = nn.Sequential(
                nn.Conv2d(in_channels, ch[0], 4, stride=2, padding=1),
                nn.ReLU(True),
                nn.ConvTranspose2d(ch[0], out_channels, 4, stride=2, padding=1),
            )
        else:
            block = _Block(ch[-2], ch[-1], innermost=True, norm=norm)
            for j, i in enumerate(range(depth - 2, 0, -1)):
                # pix2pix: dropout in the (up to) three 8·base levels just outside the bottleneck
                drop = dropout and j < 3 and ch[i] == ch[i - 1] == base * 8
                block = _Block(ch[i - 1], ch[i], sub=block, norm=norm, dropout=drop)
            block = _Block(
                out_channels,
                ch[0],
                in_channels=in_channels,
                sub=block,
                outermost=True,
                norm=norm,
                out_channels=out_channels,
            )
        self.net = block
        self.final = {"tanh": nn.Tanh(), "sigmoid": nn.Sigmoid(), "none": nn.Identity()}[final]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Translate ``(B, C_in, H, W)`` images; H and W divisible by ``2**depth``."""
        f = 2**self.depth
        if x.shape[-1] % f or x.shape[-2] % f:
            raise ValueError(
                f"UNet: image side must be divisible by 2**depth = {f}, got {tuple(x.shape[-2:])}"
            )
        return self.final(self.net(x))
