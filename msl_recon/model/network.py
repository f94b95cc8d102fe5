"""The MSL network: PI-encoders → cross-domain interaction → conditional decoder (paper Fig. 1).

>>> import torch
>>> from msl_recon.model import MSLConfig, MSLNet
>>> net = MSLNet(MSLConfig.named("small"))
>>> # feats = net.encode({"ct": sino, "t1": kspace}, ops); x_ct = net.decode(feats, 0.0)

Measurements are a dict ``modality -> raw data`` holding any non-empty subset of the model's
modalities (missing ones are reconstructed from the others, eqs. 5–6); ``ops`` holds the batch's
operator for each present modality (see :func:`msl_recon.model.physics.build_operators`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .config import MSLConfig
from .decoder import ConditionalDecoder, LambdaLike, lambda_condition
from .encoders import build_encoder
from .interaction import CrossDomainInteraction

__all__ = ["MSLFeatures", "MSLNet", "count_parameters"]


@dataclass
class MSLFeatures:
    """Everything the decoder and the losses need from one encoding pass.

    Attributes
    ----------
    fused : Tensor ``(B, C, N/4, N/4)``
        The multi-sensor representation f_multi_sensor (eq. 7).
    intra, inter : dict modality -> Tensor ``(B, T, width)``
        Transformer outputs of the present modalities (f_intra_m, f_inter_m→others).
    x0 : dict modality -> Tensor ``(B, 1, N, N)``
        Back-transformed input images (FBP, zero-filled magnitude) of the present modalities.
    sensor : dict modality -> Tensor ``(B, C, N/4, N/4)``
        PI-encoder outputs of the present modalities.
    modalities : tuple of str
        All modalities of the model, in order.
    """

    fused: torch.Tensor
    intra: dict[str, torch.Tensor]
    inter: dict[str, torch.Tensor]
    x0: dict[str, torch.Tensor]
    sensor: dict[str, torch.Tensor] = field(default_factory=dict)
    modalities: tuple[str, ...] = ()

    @property
    def present(self) -> tuple[str, ...]:
        """The modalities that were measured."""
        return tuple(m for m in self.modalities if m in self.x0)

    @property
    def batch_size(self) -> int:
        """B."""
        return int(self.fused.shape[0])

    def skip_images(self) -> torch.Tensor:
        """``(B, n, N, N)``: back-transformed images in model order, zeros where absent."""
        ref = next(iter(self.x0.values()))
        zeros = torch.zeros_like(ref)
        return torch.cat([self.x0.get(m, zeros) for m in self.modalities], dim=1)

    def base_images(self) -> torch.Tensor:
        """``(B, n, N, N)``: the residual decoder's base images in model order.

        Present modalities: their back-transformed images. Absent ones: the mean of the present
        modalities' images, so that the λ-blend that the residual decoder refines is never a
        zero image (``logit(0)`` would make every absent-modality output start from black).
        """
        fill = torch.stack(list(self.x0.values())).mean(0)
        return torch.cat([self.x0.get(m, fill) for m in self.modalities], dim=1)

    def detach(self) -> MSLFeatures:
        """A copy with every tensor detached (e.g. for λ optimisation)."""

        def d(x: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
            return {k: v.detach() for k, v in x.items()}

        return MSLFeatures(
            self.fused.detach(),
            d(self.intra),
            d(self.inter),
            d(self.x0),
            d(self.sensor),
            self.modalities,
        )


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters (works on the ``meta`` device)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


class MSLNet(nn.Module):
    """Multi-sensor learning network.

    Parameters
    ----------
    cfg : MSLConfig
        Architecture; stored as ``net.cfg`` (save ``cfg.to_dict()`` in checkpoints).
    """

    def __init__(self, cfg: MSLConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoders = nn.ModuleDict({m: build_encoder(m, cfg) for m in cfg.modalities})
        self.interaction = CrossDomainInteraction(cfg)
        self.decoder = ConditionalDecoder(cfg)

    @property
    def modalities(self) -> tuple[str, ...]:
        """The model's modalities, in order."""
        return self.cfg.modalities

    # ------------------------------------------------------------------ encoding
    def sensor_features(
        self, measurements: Mapping[str, torch.Tensor], ops: Mapping[str, Any]
    ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """PI-encode each present modality (eqs. 1–2).

        Returns
        -------
        feats : dict modality -> ``(B, C, N/4, N/4)``
        x0 : dict modality -> ``(B, 1, N, N)`` back-transformed images
        """
        present = [m for m in self.modalities if m in measurements]
        unknown = sorted(set(measurements) - set(self.modalities))
        if unknown:
            raise ValueError(f"MSLNet: unknown modalities {unknown}; model has {self.modalities}")
        if not present:
            raise ValueError(f"MSLNet: no measurement given; expected some of {self.modalities}")
        feats, x0 = {}, {}
        for m in present:
            if m not in ops:
                raise ValueError(f"MSLNet: no operator for modality {m!r} (ops has {sorted(ops)})")
            feats[m], x0[m] = self.encoders[m](measurements[m], ops[m])
        return feats, x0

    def features_from(
        self,
        feats: Mapping[str, torch.Tensor],
        x0: Mapping[str, torch.Tensor],
        subset: Sequence[str] | None = None,
    ) -> MSLFeatures:
        """Run the interaction module on the sensor features of ``subset`` (default: all given)."""
        keep = [m for m in self.modalities if m in feats and (subset is None or m in subset)]
        f = {m: feats[m] for m in keep}
        fused, intra, inter = self.interaction(f)
        return MSLFeatures(fused, intra, inter, {m: x0[m] for m in keep}, dict(f), self.modalities)

    def encode(
        self, measurements: Mapping[str, torch.Tensor], ops: Mapping[str, Any]
    ) -> MSLFeatures:
        """Raw measurements of any non-empty subset of modalities → :class:`MSLFeatures`."""
        feats, x0 = self.sensor_features(measurements, ops)
        return self.features_from(feats, x0)

    # ------------------------------------------------------------------ decoding
    def decode(self, features: MSLFeatures, lam: LambdaLike) -> torch.Tensor:
        """MSL image at λ (eq. 8): ``(B, 1, N, N)``.

        ``lam``: float, ``(B,)``, a map ``(B, 1, H, W)``; for n > 2 modalities a simplex point
        ``(B, n)`` or map ``(B, n, H, W)`` (see :func:`msl_recon.model.decoder.lambda_condition`).
        """
        x0 = features.skip_images() if self._uses_x0 else None
        base = features.base_images() if self.cfg.residual else None
        return self.decoder(features.fused, lam, x0, base)

    @property
    def _uses_x0(self) -> bool:
        return bool(self.cfg.input_skip or self.cfg.residual)

    def decode_many(self, features: MSLFeatures, lams: Sequence[LambdaLike]) -> torch.Tensor:
        """Decode several λ in one batched decoder call: ``(K, B, 1, N, N)``.

        All entries of ``lams`` must be non-spatial (scalars / per-sample) or all spatial maps of
        the same size.
        """
        b = features.batch_size
        p = features.fused
        conds = [
            lambda_condition(lam, self.cfg.n_modalities, b, device=p.device, dtype=p.dtype)
            for lam in lams
        ]
        if len({c.shape[1:] for c in conds}) != 1:
            raise ValueError("decode_many: all λ must have the same kind (scalar or same-size map)")
        k = len(conds)
        fused = p.repeat(k, *([1] * (p.ndim - 1)))
        x0 = base = None
        if self._uses_x0:
            x0 = features.skip_images().repeat(k, 1, 1, 1)
        if self.cfg.residual:
            base = features.base_images().repeat(k, 1, 1, 1)
        out = self.decoder(fused, torch.cat(conds, 0), x0, base)
        return out.reshape(k, b, *out.shape[1:])

    def forward(
        self,
        measurements: Mapping[str, torch.Tensor],
        ops: Mapping[str, Any],
        lam: LambdaLike,
    ) -> torch.Tensor:
        """``decode(encode(measurements, ops), lam)``: ``(B, 1, N, N)``."""
        return self.decode(self.encode(measurements, ops), lam)

    def vertex(self, modality: str) -> torch.Tensor:
        """The λ that decodes ``modality``: 0/1 for n ≤ 2, a one-hot simplex vertex for n > 2."""
        i = self.modalities.index(modality)
        if self.cfg.n_modalities <= 2:
            return torch.tensor(float(i))
        return torch.nn.functional.one_hot(torch.tensor(i), self.cfg.n_modalities).float()

    def center(self) -> torch.Tensor:
        """The fusion anchor: λ = 0.5 for two modalities, the barycentre for n > 2."""
        n = self.cfg.n_modalities
        if n <= 2:
            return torch.tensor(0.5)
        return torch.full((n,), 1.0 / n)
