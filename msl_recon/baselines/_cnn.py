"""Small CNN building blocks of the learned baselines: a skip-connected U-Net and a plain CNN.

:class:`SkipUNet` is the FBPConvNet / DeepFusion encoder–decoder (Ronneberger et al. 2015;
Jin et al. 2017): at every level two 3×3 convolutions (batch norm, ReLU), 2×2 max-pooling down,
bilinear up-sampling, concatenation with the encoder features of the same level (the skip
connections), and a final 1×1 convolution. With ``residual=True`` the first input channel is
added to the output (a global skip: the network learns the correction of its input image). The
output is linear (no sigmoid/tanh), so targets at 0 or 1 do not need infinite activations;
clamp at inference if a range is needed.

:class:`ConvNet` is the small fully convolutional network used inside unrolled schemes (Learned
Primal-Dual, MoDL): ``3×3 conv → PReLU`` layers and a last linear 3×3 convolution.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ConvNet", "SkipUNet"]


def _double_conv(cin: int, cout: int, norm: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in ((cin, cout), (cout, cout)):
        layers.append(nn.Conv2d(a, b, 3, padding=1, bias=not norm))
        if norm:
            layers.append(nn.BatchNorm2d(b))
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class SkipUNet(nn.Module):
    """U-Net with skip connections at every level and an optional global residual.

    Parameters
    ----------
    in_channels, out_channels : int
        Image channels.
    base : int
        Channels of the first level; level ``i`` has ``base·2^i``. FBPConvNet uses 64; the
        CPU-friendly default here is 16.
    levels : int
        Number of 2× down-samplings (FBPConvNet: 4). The image side must be divisible by
        ``2**levels``.
    residual : bool
        Add input channel 0 to the output (requires ``out_channels == 1``).
    norm : bool
        Batch normalisation after each convolution.

    Shapes
    ------
    ``(B, in_channels, H, W) -> (B, out_channels, H, W)``.
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 1,
        *,
        base: int = 16,
        levels: int = 3,
        residual: bool = True,
        norm: bool = True,
    ) -> None:
        super().__init__()
        if levels < 1 or base < 1:
            raise ValueError(f"need levels ≥ 1 and base ≥ 1, got {levels}, {base}")
        if residual and out_channels != 1:
            raise ValueError("residual=True needs out_channels == 1")
        self.levels, self.residual = levels, residual
        ch = [base * 2**i for i in range(levels + 1)]
        self.down = nn.ModuleList(
            [_double_conv(in_channels if i == 0 else ch[i - 1], ch[i], norm) for i in range(levels)]
        )
        self.bottom = _double_conv(ch[levels - 1], ch[levels], norm)
        self.up = nn.ModuleList(
            [_double_conv(ch[i + 1] + ch[i], ch[i], norm) for i in reversed(range(levels))]
        )
        self.head = nn.Conv2d(ch[0], out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the network; H and W must be divisible by ``2**levels``."""
        f = 2**self.levels
        if x.shape[-1] % f or x.shape[-2] % f:
            raise ValueError(
                f"SkipUNet: image side must be divisible by {f}, got {tuple(x.shape[-2:])}"
            )
        skips = []
        h = x
        for blk in self.down:
            h = blk(h)
            skips.append(h)
            h = F.max_pool2d(h, 2)
        h = self.bottom(h)
        for blk, s in zip(self.up, reversed(skips), strict=True):
            h = F.interpolate(h, size=s.shape[-2:], mode="bilinear", align_corners=False)
            h = blk(torch.cat([h, s], dim=1))
        out = self.head(h)
        return out + x[:, :1] if self.residual else out


class ConvNet(nn.Module):
    """``n_layers`` 3×3 convolutions, PReLU between them, linear output.

    Parameters
    ----------
    in_channels, out_channels : int
    width : int
        Hidden channels (Learned Primal-Dual: 32).
    n_layers : int
        Convolutions (≥ 2; Learned Primal-Dual: 3).
    """

    def __init__(self, in_channels: int, out_channels: int, *, width: int = 32, n_layers: int = 3):
        super().__init__()
        if n_layers < 2:
            raise ValueError(f"n_layers must be ≥ 2, got {n_layers}")
        layers: list[nn.Module] = []
        c = in_channels
        for _ in range(n_layers - 1):
            layers += [nn.Conv2d(c, width, 3, padding=1), nn.PReLU(width)]
            c = width
        last = nn.Conv2d(c, out_channels, 3, padding=1)
        nn.init.zeros_(last.weight)  # start as the identity update (x + 0)
        nn.init.zeros_(last.bias)
        layers.append(last)
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, in_channels, H, W) -> (B, out_channels, H, W)``."""
        return self.net(x)
