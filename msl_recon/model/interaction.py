"""Cross-domain interaction (paper §2.3, eqs. 3–7): tokens, transformer, enhanced features, fusion.

Tokenisation
    Each modality's sensor feature map ``(B, C, N/4, N/4)`` is cut into ``patch × patch`` patches
    and linearly projected to the transformer width (one projection per modality: the paper
    tokenises each modality "individually"), giving ``T = (N / (4·patch))²`` tokens.
Token groups
    Each modality's tokens are duplicated into an *intra* group and an *inter* group, so for
    (CT, MRI) the sequence is ``[cls, CT, CT, MR, MR]`` with a learned position embedding over the
    whole sequence (each group has its own positions).
Generalisation to n modalities (ours)
    Modality m's intra group learns m's own fine-grained features (``f_intra_m``) and its inter
    group learns "what m tells the others" (``f_inter_m→others``). For n = 2 these are exactly the
    paper's f_inter_CT2MRI / f_inter_MRI2CT. The enhanced feature of modality m is
    ``f_intra_m + mean_{k≠m, k present} f_inter_k`` (eqs. 3–4); a missing modality's enhanced
    feature is ``mean_{k present} f_inter_k`` (eq. 5) and a lone present modality keeps
    ``f_intra_m`` (eq. 6). Only the present modalities' groups enter the transformer (their
    position embeddings are the same slices as in the full sequence).
Fusion (eq. 7)
    ``f_multi_sensor = UP(Σ_m f_enhanced_m)`` with transposed-conv blocks (u512, u256 in the paper).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from .config import MSLConfig

__all__ = [
    "Attention",
    "CrossDomainInteraction",
    "FeedForward",
    "TransformerBlock",
    "UpBlock",
    "enhanced_features",
]


class Attention(nn.Module):
    """Pre-norm multi-head self-attention with inner dimension ``heads · head_dim``, residual."""

    def __init__(self, width: int, heads: int, head_dim: int, dropout: float) -> None:
        super().__init__()
        self.heads, self.head_dim = heads, head_dim
        inner = heads * head_dim
        self.norm = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * inner, bias=False)
        self.proj = nn.Linear(inner, width)
        self.drop = nn.Dropout(dropout)
        self.attn_dropout = dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, L, width) -> (B, L, width)``."""
        b, n, _ = x.shape
        q, k, v = self.qkv(self.norm(x)).chunk(3, dim=-1)
        q, k, v = (t.reshape(b, n, self.heads, self.head_dim).transpose(1, 2) for t in (q, k, v))
        p = self.attn_dropout if self.training else 0.0
        o = F.scaled_dot_product_attention(q, k, v, dropout_p=p)
        o = o.transpose(1, 2).reshape(b, n, self.heads * self.head_dim)
        return x + self.drop(self.proj(o))


class FeedForward(nn.Module):
    """Pre-norm MLP ``width → mlp_dim → width`` with GELU and dropout, residual."""

    def __init__(self, width: int, mlp_dim: int, dropout: float) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.LayerNorm(width),
            nn.Linear(width, mlp_dim),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(mlp_dim, width),
            nn.Dropout(dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, L, width) -> (B, L, width)``."""
        return x + self.net(x)


class TransformerBlock(nn.Sequential):
    """One pre-norm transformer block: attention then MLP."""

    def __init__(self, cfg: MSLConfig) -> None:
        super().__init__(
            Attention(cfg.width, cfg.heads, cfg.head_dim, cfg.dropout),
            FeedForward(cfg.width, cfg.mlp_dim, cfg.dropout),
        )


class UpBlock(nn.Module):
    """``uk``: 3×3 transposed conv, stride 2 (doubles the size) → InstanceNorm → ReLU."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv = nn.ConvTranspose2d(c_in, c_out, 3, stride=2, padding=1, output_padding=1)
        self.norm = nn.InstanceNorm2d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, c_in, h, w) -> (B, c_out, 2h, 2w)``."""
        return F.relu(self.norm(self.conv(x)))


def enhanced_features(
    intra: Mapping[str, torch.Tensor],
    inter: Mapping[str, torch.Tensor],
    modalities: tuple[str, ...],
) -> dict[str, torch.Tensor]:
    """Enhanced feature of every modality of the model (eqs. 3–6 and their n-modality form).

    Parameters
    ----------
    intra, inter : dict modality -> Tensor ``(B, T, width)``
        Transformer outputs of the *present* modalities.
    modalities : tuple of str
        All modalities of the model, in order.

    Returns
    -------
    dict modality -> Tensor ``(B, T, width)`` for every modality in ``modalities``.
    """
    present = [m for m in modalities if m in intra]
    if not present:
        raise ValueError("enhanced_features needs at least one present modality")
    out: dict[str, torch.Tensor] = {}
    for m in modalities:
        others = [k for k in present if k != m]
        cross = torch.stack([inter[k] for k in others]).mean(0) if others else None
        if m in intra:
            out[m] = intra[m] if cross is None else intra[m] + cross
        else:
            assert cross is not None
            out[m] = cross
    return out


class CrossDomainInteraction(nn.Module):
    """Tokenise the sensor features, run the transformer, fuse and up-sample (eqs. 3–7).

    Parameters
    ----------
    cfg : MSLConfig
    """

    def __init__(self, cfg: MSLConfig) -> None:
        super().__init__()
        self.modalities = cfg.modalities
        self.grid = cfg.token_grid
        self.n_tokens = cfg.token_grid**2
        c = cfg.enc_channels[-1]
        self.patch_embed = nn.ModuleDict(
            {
                m: nn.Conv2d(c, cfg.width, cfg.patch_size, stride=cfg.patch_size)
                for m in cfg.modalities
            }
        )
        n_seq = 1 + 2 * cfg.n_modalities * self.n_tokens
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.width))
        self.pos_embed = nn.Parameter(torch.randn(1, n_seq, cfg.width) * 0.02)
        self.embed_drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.Sequential(*[TransformerBlock(cfg) for _ in range(cfg.depth)])
        self.norm = nn.LayerNorm(cfg.width)
        widths = (cfg.width, *cfg.up_channels)
        self.up = nn.Sequential(*[UpBlock(a, b) for a, b in itertools.pairwise(widths)])

    def _group_slice(self, i: int, inter: bool) -> slice:
        start = 1 + (2 * i + int(inter)) * self.n_tokens
        return slice(start, start + self.n_tokens)

    def tokens(
        self, feats: Mapping[str, torch.Tensor]
    ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """Transformer outputs of the present modalities.

        Parameters
        ----------
        feats : dict modality -> Tensor ``(B, C, N/4, N/4)``
            Sensor features of the present modalities (any non-empty subset).

        Returns
        -------
        intra, inter : dict modality -> Tensor ``(B, T, width)``
        """
        present = [m for m in self.modalities if m in feats]
        unknown = sorted(set(feats) - set(self.modalities))
        if unknown or not present:
            raise ValueError(
                f"CrossDomainInteraction: modalities {sorted(feats)} must be a non-empty subset "
                f"of {self.modalities}"
            )
        any_f = feats[present[0]]
        seq = [self.cls_token.expand(any_f.shape[0], -1, -1) + self.pos_embed[:, :1]]
        for m in present:
            i = self.modalities.index(m)
            tok = self.patch_embed[m](feats[m])
            if tok.shape[-1] != self.grid or tok.shape[-2] != self.grid:
                raise ValueError(
                    f"CrossDomainInteraction: {m} gives a {tuple(tok.shape[-2:])} token grid, "
                    f"the model was built for {(self.grid, self.grid)}"
                )
            tok = tok.flatten(2).transpose(1, 2)  # (B, T, width)
            seq.append(tok + self.pos_embed[:, self._group_slice(i, False)])
            seq.append(tok + self.pos_embed[:, self._group_slice(i, True)])
        x = self.norm(self.blocks(self.embed_drop(torch.cat(seq, dim=1))))
        intra, inter = {}, {}
        t = self.n_tokens
        for j, m in enumerate(present):
            base = 1 + 2 * j * t
            intra[m] = x[:, base : base + t]
            inter[m] = x[:, base + t : base + 2 * t]
        return intra, inter

    def fuse(
        self, intra: Mapping[str, torch.Tensor], inter: Mapping[str, torch.Tensor]
    ) -> torch.Tensor:
        """``f_multi_sensor = UP(Σ_m f_enhanced_m)`` (eq. 7): ``(B, up_channels[-1], N/4, N/4)``."""
        enh = enhanced_features(intra, inter, self.modalities)
        s = torch.stack(list(enh.values())).sum(0)  # (B, T, width)
        b, _, w = s.shape
        grid = s.transpose(1, 2).reshape(b, w, self.grid, self.grid)
        return self.up(grid)

    def forward(
        self, feats: Mapping[str, torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """Sensor features of the present modalities → ``(f_multi_sensor, intra, inter)``."""
        intra, inter = self.tokens(feats)
        return self.fuse(intra, inter), intra, inter
