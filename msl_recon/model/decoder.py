"""Conditional decoder (paper §2.4, eqs. 8–11): R256, u128, u64, c7s1-1 with CIN on λ.

λ conventions
    Two modalities (a, b): λ ∈ [0, 1], λ=0 decodes a (e.g. CT), λ=1 decodes b (e.g. MRI); the
    condition vector is ``c = (λ,)``. One modality: λ is accepted and used the same way (the model
    has a single target). n > 2 modalities: λ is a point on the simplex, ``c = λ ∈ R^n``, vertex i
    decodes modality i. A spatial map gives one condition per pixel (``(B, d, H, W)``).

Conditional instance norm (eq. 11)
    ``CIN(x; s) = γ(s) · (x − μ(x)) / σ(x) + β(s)`` with ``s = f_s(c) ∈ R^256`` (one linear layer
    shared by the whole decoder) and per-layer linear ``γ``, ``β``. μ and σ are the per-channel
    instance statistics of x over all pixels. As f_s, γ and β are linear, γ(f_s(c)) is the affine
    map ``A c + a`` with ``A = W_γ W_s``; we evaluate that composed map, elementwise, in the same
    way for a scalar and for a per-pixel condition, so a constant λ map gives bit-for-bit the
    scalar result. A spatial map is resized (bilinear, antialiased) to each feature map's size.

Using the back-transformed inputs (not in the paper; config switches)
    ``input_skip`` concatenates the n back-transformed images x0 to the last feature map.
    ``residual`` makes the decoder predict a correction of the λ-blend of the inputs,
    ``base = (1−λ)·x0_a + λ·x0_b`` (``Σ λ_m x0_m`` for n > 2; an absent modality's image is
    replaced by the mean of the present ones', never by zeros, so that its output does not start
    from ``logit(0)``; the ``input_skip`` channels keep zeros, marking the absence):
    ``sigmoid(logit(base) + c7s1-1(...))`` (or ``base + c7s1-1(...)`` without sigmoid), so training
    starts from FBP / zero-filled quality instead of from nothing.
    ``refine_channels`` adds full-resolution blocks (3×3 conv → CIN(λ) → ReLU) between that
    concatenation and c7s1-1. Without them the decoder's only full-resolution layer is c7s1-1,
    which is linear in x0 and cannot remove FBP streaks or aliasing that vary pixel by pixel;
    in the ``small`` config two 16-channel blocks (12.2 → 20.1 GFLOP per training step, see
    ``configs/small.toml``) lift the held-out SSIM far more than doubling the encoder width did.

Output activation
    ``sigmoid`` (default): images live in [0, 1] and the background of CT and MRI is exactly 0;
    a sigmoid keeps every output a valid intensity with non-zero gradients everywhere (a clamp has
    zero gradient outside [0, 1], which stalls pixels that start out of range). ``clamp`` and
    ``none`` are available.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .config import MSLConfig

__all__ = ["CondInstanceNorm", "ConditionalDecoder", "lambda_condition"]

LambdaLike = Any  # float | Tensor (B,) | (B, d) | (B, d, H, W) | (B, H, W)


def lambda_condition(
    lam: LambdaLike,
    n_modalities: int,
    batch_size: int,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Normalise λ to a condition tensor ``(B, d)`` or ``(B, d, H, W)``.

    Parameters
    ----------
    lam : float, Tensor or array
        n ≤ 2: a float, ``(B,)``, ``(B, 1)``, a map ``(B, 1, H, W)`` or ``(B, H, W)``.
        n > 2: a simplex point ``(n,)`` or ``(B, n)``, or a map ``(B, n, H, W)``.
        A leading batch axis of size 1 broadcasts to ``batch_size``.
    n_modalities : int
    batch_size : int

    Returns
    -------
    Tensor ``(B, d)`` or ``(B, d, H, W)`` with ``d = 1`` for n ≤ 2 and ``d = n`` otherwise.
    """
    d = 1 if n_modalities <= 2 else n_modalities
    t = torch.as_tensor(lam, dtype=dtype, device=device)
    if not torch.is_floating_point(t):
        t = t.to(dtype)
    if d == 1:
        if t.ndim == 0:
            t = t.reshape(1, 1)
        elif t.ndim == 1:
            t = t[:, None]
        elif t.ndim == 3:
            t = t[:, None]
        if t.ndim not in (2, 4) or t.shape[1] != 1:
            raise ValueError(
                f"λ for {n_modalities} modalities must be a float, (B,), (B, 1), (B, H, W) or "
                f"(B, 1, H, W); got shape {tuple(t.shape)}"
            )
    else:
        if t.ndim == 1:
            t = t[None]
        if t.ndim not in (2, 4) or t.shape[1] != d:
            raise ValueError(
                f"λ for {n_modalities} modalities must be a simplex point (n,), (B, n) or a map "
                f"(B, n, H, W) with n={d}; got shape {tuple(t.shape)}"
            )
        total = t.sum(1)
        if bool((t < -1e-4).any()) or bool(((total - 1).abs() > 1e-3).any()):
            raise ValueError("λ for n > 2 modalities must lie on the simplex (≥ 0, summing to 1)")
    if t.shape[0] == 1 and batch_size != 1:
        t = t.expand(batch_size, *t.shape[1:])
    if t.shape[0] != batch_size:
        raise ValueError(f"λ has batch size {t.shape[0]}, features have {batch_size}")
    return t


def _resize(cond: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize a condition map to ``size``; exact for constant maps (offset by the minimum)."""
    if tuple(cond.shape[-2:]) == size:
        return cond
    lo = cond.amin(dim=(-2, -1), keepdim=True)
    shrink = size[0] < cond.shape[-2] or size[1] < cond.shape[-1]
    r = F.interpolate(cond - lo, size=size, mode="bilinear", align_corners=False, antialias=shrink)
    return lo + r


class CondInstanceNorm(nn.Module):
    """Conditional instance norm (eq. 11) with per-layer γ(s), β(s) from a shared embedding s.

    Parameters
    ----------
    channels : int
        Channels C of the normalised feature map.
    embed_dim : int
        Size of s (256 in the paper).
    """

    def __init__(self, channels: int, embed_dim: int) -> None:
        super().__init__()
        self.gamma = nn.Linear(embed_dim, channels)
        self.beta = nn.Linear(embed_dim, channels)
        # start close to a plain instance norm (γ ≈ 1, β ≈ 0) with a small λ dependence
        nn.init.normal_(self.gamma.weight, std=0.02)
        nn.init.ones_(self.gamma.bias)
        nn.init.normal_(self.beta.weight, std=0.02)
        nn.init.zeros_(self.beta.bias)

    @staticmethod
    def _affine(lin: nn.Linear, embed: nn.Linear, cond: torch.Tensor) -> torch.Tensor:
        a = lin.weight @ embed.weight  # (C, d)
        a0 = lin.weight @ embed.bias + lin.bias  # (C,)
        if cond.ndim == 2:
            out = a0[None, :, None, None]
            for j in range(cond.shape[1]):
                out = out + cond[:, j, None, None, None] * a[None, :, j, None, None]
        else:
            out = a0[None, :, None, None]
            for j in range(cond.shape[1]):
                out = out + cond[:, j, None] * a[None, :, j, None, None]
        return out

    def forward(self, x: torch.Tensor, cond: torch.Tensor, embed: nn.Linear) -> torch.Tensor:
        """Normalise ``x`` ``(B, C, h, w)`` and modulate with the condition ``(B, d[, H, W])``."""
        if cond.ndim == 4:
            cond = _resize(cond, (x.shape[-2], x.shape[-1]))
        xn = F.instance_norm(x)
        return self._affine(self.gamma, embed, cond) * xn + self._affine(self.beta, embed, cond)


class _CondRes(nn.Module):
    def __init__(self, c: int, e: int) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(c, c, 3)
        self.n1 = CondInstanceNorm(c, e)
        self.c2 = nn.Conv2d(c, c, 3)
        self.n2 = CondInstanceNorm(c, e)

    def forward(self, x: torch.Tensor, cond: torch.Tensor, embed: nn.Linear) -> torch.Tensor:
        h = F.relu(self.n1(self.c1(F.pad(x, (1, 1, 1, 1), mode="reflect")), cond, embed))
        h = self.n2(self.c2(F.pad(h, (1, 1, 1, 1), mode="reflect")), cond, embed)
        return x + h


class _CondUp(nn.Module):
    def __init__(self, c_in: int, c_out: int, e: int) -> None:
        super().__init__()
        self.conv = nn.ConvTranspose2d(c_in, c_out, 3, stride=2, padding=1, output_padding=1)
        self.norm = CondInstanceNorm(c_out, e)

    def forward(self, x: torch.Tensor, cond: torch.Tensor, embed: nn.Linear) -> torch.Tensor:
        return F.relu(self.norm(self.conv(x), cond, embed))


class _CondConv(nn.Module):
    """Full-resolution refinement block: 3×3 conv (reflect padding) → CIN(λ) → ReLU."""

    def __init__(self, c_in: int, c_out: int, e: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3)
        self.norm = CondInstanceNorm(c_out, e)

    def forward(self, x: torch.Tensor, cond: torch.Tensor, embed: nn.Linear) -> torch.Tensor:
        return F.relu(self.norm(self.conv(F.pad(x, (1, 1, 1, 1), mode="reflect")), cond, embed))


class ConditionalDecoder(nn.Module):
    """``R256 → u128 → u64 → c7s1-1`` with CIN on λ (widths from the config).

    Parameters
    ----------
    cfg : MSLConfig
        Uses ``up_channels[-1]`` (input width), ``dec_res_blocks``, ``dec_channels``,
        ``lambda_embed``, ``lambda_dim``, ``output`` and ``input_skip``.
    """

    def __init__(self, cfg: MSLConfig) -> None:
        super().__init__()
        c = cfg.up_channels[-1]
        e = cfg.lambda_embed
        self.n_modalities = cfg.n_modalities
        self.output = cfg.output
        self.input_skip = cfg.input_skip
        self.residual = cfg.residual
        self.embed = nn.Linear(cfg.lambda_dim, e)  # f_s: λ -> s (eq. 11)
        self.res = nn.ModuleList([_CondRes(c, e) for _ in range(cfg.dec_res_blocks)])
        d0, d1 = cfg.dec_channels
        self.up = nn.ModuleList([_CondUp(c, d0, e), _CondUp(d0, d1, e)])
        c_last = d1 + (cfg.n_modalities if cfg.input_skip else 0)
        refine = []
        for w in cfg.refine_channels:
            refine.append(_CondConv(c_last, w, e))
            c_last = w
        self.refine = nn.ModuleList(refine)
        self.out = nn.Conv2d(c_last, 1, 7)

    def forward(
        self,
        f: torch.Tensor,
        lam: LambdaLike,
        x0: torch.Tensor | None = None,
        base: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Decode ``f`` ``(B, C, N/4, N/4)`` at λ into ``(B, 1, N, N)``.

        Parameters
        ----------
        f : Tensor
            Multi-sensor representation (eq. 7).
        lam : float or Tensor
            See :func:`lambda_condition`.
        x0 : Tensor ``(B, n, N, N)``, optional
            Back-transformed images of all modalities (zeros where absent); required when the
            config has ``input_skip`` or ``residual``.
        base : Tensor ``(B, n, N, N)``, optional
            Images whose λ-blend the ``residual`` decoder refines (default ``x0``); the network
            passes the present modalities' images in place of absent ones
            (:meth:`MSLFeatures.base_images`).
        """
        cond = lambda_condition(lam, self.n_modalities, f.shape[0], device=f.device, dtype=f.dtype)
        h = f
        for blk in self.res:
            h = blk(h, cond, self.embed)
        for blk in self.up:
            h = blk(h, cond, self.embed)
        if (self.input_skip or self.residual) and x0 is None:
            raise ValueError("this decoder uses the inputs: pass the back-transformed images x0")
        if self.input_skip:
            h = torch.cat([h, x0.to(h.dtype)], dim=1)
        for blk in self.refine:
            h = blk(h, cond, self.embed)
        y = self.out(F.pad(h, (3, 3, 3, 3), mode="reflect"))
        blend = None
        if self.residual:
            blend = self._blend((x0 if base is None else base).to(y.dtype), cond)
        if self.output == "sigmoid":
            if blend is not None:
                y = y + torch.logit(blend.clamp(0.0, 1.0), eps=1e-3)
            return torch.sigmoid(y)
        if blend is not None:
            y = y + blend
        if self.output == "clamp":
            return y.clamp(0.0, 1.0)
        return y

    def _blend(self, x0: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """λ-weighted mix of the back-transformed images ``(B, n, N, N)`` → ``(B, 1, N, N)``."""
        if cond.ndim == 4:
            cond = _resize(cond, (x0.shape[-2], x0.shape[-1]))
        else:
            cond = cond[:, :, None, None]
        n = x0.shape[1]
        if n == 1:
            return x0
        if n == 2:
            return (1 - cond) * x0[:, :1] + cond * x0[:, 1:]
        return (cond * x0).sum(1, keepdim=True)
