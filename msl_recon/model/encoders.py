"""Physics-informed encoders (paper §2.2, eqs. 1–2): back-transform, then a CNN.

Each modality has its own encoder. An encoder receives the raw measurement of a batch and the
batch's operator, applies the operator's analytical back-transform ``op.pseudo_inverse()`` (FBP
for CT; the magnitude of the zero-filled IFFT, or of the density-compensated adjoint NUFFT, for
MRI), and maps the resulting image through c7s1-k, d2k, d4k and residual blocks (instance norm,
ReLU, reflect padding). Because the operator is built per batch, the same weights serve other view
counts, accelerations and trajectories.

The back-transform belongs to the modality's plug-in (:meth:`msl_recon.modalities.Modality.
back_transform`), so a new sensor needs no encoder code: :func:`build_encoder` builds a
:class:`PIEncoder` around the registered modality.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .config import MSLConfig

__all__ = ["ConvBlock", "PIEncoder", "ResBlock", "build_encoder"]


class ConvBlock(nn.Sequential):
    """Conv (reflect padding) → InstanceNorm → ReLU.

    ``c7s1-k`` is ``ConvBlock(c, k, 7, 1)``; ``dk`` is ``ConvBlock(c, k, 4, 2)`` (4×4, stride 2).
    """

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int) -> None:
        if stride == 1:
            pad: Any = nn.ReflectionPad2d(kernel // 2)
        else:  # 4x4 stride 2: pad 1 each side halves an even size exactly
            pad = nn.ReflectionPad2d((kernel - 2) // 2 if kernel % 2 == 0 else kernel // 2)
        super().__init__(
            pad,
            nn.Conv2d(c_in, c_out, kernel, stride=stride),
            nn.InstanceNorm2d(c_out),
            nn.ReLU(inplace=True),
        )


class ResBlock(nn.Module):
    """``Rk``: x + (conv3×3 → IN → ReLU → conv3×3 → IN)(x), reflect padding."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(c, c, 3),
            nn.InstanceNorm2d(c),
            nn.ReLU(inplace=True),
            nn.ReflectionPad2d(1),
            nn.Conv2d(c, c, 3),
            nn.InstanceNorm2d(c),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W) -> (B, C, H, W)``."""
        return x + self.body(x)


class PIEncoder(nn.Module):
    """Physics-informed encoder: the modality's analytical back-transform, then the CNN.

    Parameters
    ----------
    cfg : MSLConfig
        Uses ``enc_channels`` (c7s1-k0, d k1, d k2) and ``enc_res_blocks``.
    modality : msl_recon.modalities.Modality
        The sensor plug-in whose back-transform feeds the CNN.
    """

    def __init__(self, cfg: MSLConfig, modality: Any) -> None:
        super().__init__()
        self.modality = modality
        c0, c1, c2 = cfg.enc_channels
        self.image_size = cfg.image_size
        layers: list[nn.Module] = [
            ConvBlock(1, c0, 7, 1),
            ConvBlock(c0, c1, 4, 2),
            ConvBlock(c1, c2, 4, 2),
        ]
        layers += [ResBlock(c2) for _ in range(cfg.enc_res_blocks)]
        self.cnn = nn.Sequential(*layers)

    def back_transform(self, y: torch.Tensor, op: Any) -> torch.Tensor:
        """Analytical image ``(B, N, N)`` real from the measurement ``y`` (the plug-in's)."""
        return self.modality.back_transform(y, op)

    def forward(self, y: torch.Tensor, op: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode a measurement.

        Parameters
        ----------
        y : Tensor
            Raw measurement with a batch axis: sinogram ``(B, V, D)`` or k-space ``(B, H, W)``
            / ``(B, P)``.
        op : LinearOperator
            The batch's forward operator (only ``op.pseudo_inverse()`` is used).

        Returns
        -------
        features : Tensor ``(B, enc_channels[-1], N/4, N/4)``
        x0 : Tensor ``(B, 1, N, N)`` the back-transformed image (same dtype as the weights).
        """
        x0 = self.back_transform(y, op)
        if x0.ndim == 2:
            x0 = x0.unsqueeze(0)
        x0 = x0.unsqueeze(1).to(self.cnn[0][1].weight.dtype)
        if tuple(x0.shape[-2:]) != (self.image_size, self.image_size):
            raise ValueError(
                f"{type(self).__name__}: back-transformed image has shape {tuple(x0.shape[-2:])}, "
                f"the model expects {(self.image_size, self.image_size)}"
            )
        return self.cnn(x0), x0


def build_encoder(modality: str, cfg: MSLConfig) -> PIEncoder:
    """The PI-encoder of a registered modality (name or alias)."""
    from .. import modalities

    return PIEncoder(cfg, modalities.get(modality))
