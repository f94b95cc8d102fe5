"""Configuration of the MSL network, its losses and its optimiser.

:class:`MSLConfig` is a plain dataclass: it is saved inside checkpoints (:meth:`MSLConfig.to_dict`)
so that a checkpoint alone rebuilds the model. Named configurations ship as TOML files in
``msl_recon/configs/`` (``paper`` and ``small``); :func:`load_config` reads TOML or YAML.

Notes on the ``paper`` configuration (paper §2.6, docs/architecture.md, The model)
-------------------------------------------------------------
The transformer width is 1024 with 8 heads of dimension 64. 8 × 64 = 512 ≠ 1024, so the attention
cannot split the width into heads as ``nn.MultiheadAttention`` does. We follow the common ViT
implementation that the authors' numbers imply (lucidrains ``vit-pytorch``): the attention
projects the width-1024 tokens to an inner dimension ``heads · head_dim = 512`` for q, k and v
(no bias) and back to 1024 with an output projection. ``attn_dim`` makes this explicit; set
``head_dim = width // heads`` to get the ``nn.MultiheadAttention`` form instead.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import tomllib

__all__ = ["MSLConfig", "load_config", "named_configs"]

_OUTPUTS = ("sigmoid", "clamp", "none")
_AUX = ("all", "random", "none")


@dataclass
class MSLConfig:
    """All hyper-parameters of an MSL model and its training.

    Parameters
    ----------
    modalities : tuple of str
        Modalities in order, e.g. ``("ct", "t1")``. For two modalities (a, b), λ=0 decodes a and
        λ=1 decodes b. For n > 2, λ is a point of the simplex (vertex i decodes modality i).
    image_size : int
        Side N of the square images, pixels. Must be divisible by ``4 · patch_size``.
    enc_channels : (int, int, int)
        Widths of c7s1-k, d2k, d4k of each PI-encoder (paper: 64, 128, 256).
    enc_res_blocks : int
        Residual blocks after the encoder's down-sampling (paper: 3).
    patch_size : int
        Side of the square patches that become tokens, in feature-map pixels (paper: 4).
    width : int
        Transformer token width (paper: 1024).
    depth : int
        Number of transformer blocks (paper: 2).
    heads, head_dim : int
        Attention heads and per-head dimension (paper: 8 × 64; see the module notes).
    mlp_dim : int
        Hidden size of each transformer MLP (paper: 3072).
    dropout : float
        Dropout in attention output, MLP and embeddings (paper: 0.1).
    up_channels : tuple of int
        Transposed-conv widths that map the fused token grid back to the sensor-feature size
        (paper: u512, u256): one ×2 block per factor 2 of ``patch_size``. The last must equal
        ``enc_channels[-1]``.
    dec_res_blocks : int
        Conditional residual blocks at the decoder input (paper: 1, "R256").
    dec_channels : (int, int)
        Widths of the decoder up-sampling blocks (paper: u128, u64).
    lambda_embed : int
        Size of the λ embedding s (paper: 256).
    output : {'sigmoid', 'clamp', 'none'}
        Output activation of c7s1-1 (see :mod:`msl_recon.model.decoder`).
    input_skip : bool
        Not in the paper. If true, the back-transformed images (FBP, zero-filled magnitude) of all
        modalities (zeros when absent) are concatenated to the decoder's last feature map, so the
        decoder can refine them (cheaper to train on a CPU).
    residual : bool
        Not in the paper. If true, the decoder output is a correction of the λ-blend of the
        back-transformed images (see :mod:`msl_recon.model.decoder`).
    refine_channels : tuple of int
        Not in the paper (empty there). Full-resolution conditional conv blocks (3×3 conv, CIN on
        λ, ReLU) between the last up-sampling block (and the ``input_skip`` concatenation) and
        c7s1-1, so the decoder can filter the back-transformed images non-linearly at full
        resolution, e.g. remove FBP streaks.
    ssim_weight : float
        Not in the paper (0 there). Adds ``ssim_weight · (1 − SSIM)`` to every MAE term of L_rec
        and L_aux (SSIM as :func:`msl_recon.metrics.ssim`).
    aux : {'all', 'random', 'none'}
        Single-modality scenarios of L_aux per step (paper: all; see
        :func:`msl_recon.model.msl_losses`). ``random`` draws one per step and saves decodes.
    phi_fusion, phi_aux, phi_aux_feat : float
        Loss weights φ_f, φ_a, φ_e of eq. 20 (L_rec has weight 1).
    lr, betas, weight_decay, lr_step, lr_gamma, iterations, batch_size
        Adam settings, step decay (×``lr_gamma`` every ``lr_step`` iterations), run length.
    """

    modalities: tuple[str, ...] = ("ct", "t1")
    image_size: int = 384
    enc_channels: tuple[int, int, int] = (64, 128, 256)
    enc_res_blocks: int = 3
    patch_size: int = 4
    width: int = 1024
    depth: int = 2
    heads: int = 8
    head_dim: int = 64
    mlp_dim: int = 3072
    dropout: float = 0.1
    up_channels: tuple[int, ...] = (512, 256)
    dec_res_blocks: int = 1
    dec_channels: tuple[int, int] = (128, 64)
    lambda_embed: int = 256
    output: str = "sigmoid"
    input_skip: bool = False
    residual: bool = False
    refine_channels: tuple[int, ...] = ()
    ssim_weight: float = 0.0
    aux: str = "all"
    phi_fusion: float = 1.0
    phi_aux: float = 1.0
    phi_aux_feat: float = 0.5
    lr: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.99)
    weight_decay: float = 1e-4
    lr_step: int = 10_000
    lr_gamma: float = 0.5
    iterations: int = 100_000
    batch_size: int = 4
    name: str = field(default="custom", compare=False)

    def __post_init__(self) -> None:
        self.modalities = tuple(str(m) for m in self.modalities)
        if not self.modalities:
            raise ValueError("modalities must name at least one modality")
        if len(set(self.modalities)) != len(self.modalities):
            raise ValueError(f"modalities must be distinct, got {self.modalities}")
        from .. import modalities as registry

        for m in self.modalities:
            canonical = registry.get(m).name
            if canonical != m:
                raise ValueError(
                    f"use the canonical modality name {canonical!r} in configs; {m!r} is an alias"
                )
        for name in ("enc_channels", "up_channels", "dec_channels", "refine_channels", "betas"):
            setattr(self, name, tuple(getattr(self, name)))
        if len(self.enc_channels) != 3 or len(self.dec_channels) != 2:
            raise ValueError("enc_channels needs 3 widths and dec_channels 2")
        p = int(self.patch_size)
        if p < 2 or p & (p - 1):
            raise ValueError(f"patch_size must be a power of 2 (≥ 2), got {self.patch_size}")
        if len(self.up_channels) != p.bit_length() - 1:
            raise ValueError(
                f"up_channels needs log2(patch_size) = {p.bit_length() - 1} widths (each uk "
                f"doubles the token grid back to the sensor-feature size), got {self.up_channels}"
            )
        if self.up_channels[-1] != self.enc_channels[-1]:
            raise ValueError(
                f"up_channels[-1] ({self.up_channels[-1]}) must equal enc_channels[-1] "
                f"({self.enc_channels[-1]}): eq. 7 maps back to the sensor-feature size"
            )
        if self.image_size % (4 * self.patch_size):
            raise ValueError(
                f"image_size ({self.image_size}) must be divisible by 4·patch_size "
                f"({4 * self.patch_size})"
            )
        for name in ("width", "depth", "heads", "head_dim", "mlp_dim", "lambda_embed"):
            if int(getattr(self, name)) <= 0:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {self.dropout}")
        if any(int(c) <= 0 for c in self.refine_channels):
            raise ValueError(f"refine_channels must be positive, got {self.refine_channels}")
        if self.ssim_weight < 0:
            raise ValueError(f"ssim_weight must be ≥ 0, got {self.ssim_weight}")
        if self.aux not in _AUX:
            raise ValueError(f"aux must be one of {_AUX}, got {self.aux!r}")
        if self.output not in _OUTPUTS:
            raise ValueError(f"output must be one of {_OUTPUTS}, got {self.output!r}")

    # ------------------------------------------------------------------ derived
    @property
    def n_modalities(self) -> int:
        """Number of modalities n."""
        return len(self.modalities)

    @property
    def feature_size(self) -> int:
        """Side of the sensor feature maps (image_size / 4)."""
        return self.image_size // 4

    @property
    def token_grid(self) -> int:
        """Tokens per side per modality group (feature_size / patch_size)."""
        return self.feature_size // self.patch_size

    @property
    def attn_dim(self) -> int:
        """Inner attention dimension heads · head_dim (512 for the paper, see module notes)."""
        return self.heads * self.head_dim

    @property
    def lambda_dim(self) -> int:
        """Size of the λ condition vector: 1 for n ≤ 2, n on the simplex for n > 2."""
        return 1 if self.n_modalities <= 2 else self.n_modalities

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible dict (tuples become lists); inverse of :meth:`from_dict`."""
        d = dataclasses.asdict(self)
        return json.loads(json.dumps(d))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> MSLConfig:
        """Build from a dict; unknown keys raise ``ValueError`` naming them."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown MSLConfig keys {unknown}; allowed: {sorted(known)}")
        return cls(**dict(d))

    def replace(self, **changes: Any) -> MSLConfig:
        """A copy with some fields changed (validated)."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def named(cls, name: str, /, **overrides: Any) -> MSLConfig:
        """A shipped configuration: ``"paper"`` (authors' widths, 384²) or ``"small"`` (CPU, 128²).

        Parameters
        ----------
        name : str
            Name of a TOML file in ``msl_recon/configs``.
        **overrides
            Fields to change, e.g. ``modalities=("ct", "t1", "t2")``.
        """
        available = named_configs()
        if name not in available:
            raise ValueError(f"unknown config {name!r}; available: {available}")
        text = (
            resources.files("msl_recon")
            .joinpath("configs", f"{name}.toml")
            .read_text(encoding="utf-8")
        )
        d = tomllib.loads(text)
        d.setdefault("name", name)
        d.update(overrides)
        return cls.from_dict(d)


def named_configs() -> list[str]:
    """Names of the configurations shipped in ``msl_recon/configs``."""
    root = resources.files("msl_recon").joinpath("configs")
    return sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".toml"))


def load_config(path: str | Path) -> MSLConfig:
    """Read an :class:`MSLConfig` from a TOML (``.toml``) or YAML (``.yaml``/``.yml``) file.

    A file may contain ``base = "small"`` (or ``"paper"``) to start from a named configuration
    and override some fields; a ``[model]`` table, if present, holds the fields.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"config file not found: {p}")
    suffix = p.suffix.lower()
    if suffix == ".toml":
        d = tomllib.loads(p.read_text(encoding="utf-8"))
    elif suffix in (".yaml", ".yml"):
        import yaml

        d = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    else:
        raise ValueError(f"config file must be .toml, .yaml or .yml, got {p.name}")
    if not isinstance(d, dict):
        raise ValueError(f"config file {p} must contain a mapping")
    if "model" in d and isinstance(d["model"], dict):
        d = {**d["model"], **{k: v for k, v in d.items() if k not in ("model",)}}
    base = d.pop("base", None)
    d.setdefault("name", p.stem)
    if base is not None:
        return MSLConfig.named(str(base), **d)
    return MSLConfig.from_dict(d)
