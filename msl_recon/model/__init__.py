"""The MSL network (paper §2): PI-encoders, cross-domain interaction, conditional decoder.

Public API
----------
- :class:`MSLConfig`, :func:`load_config`: hyper-parameters (``MSLConfig.named("paper"|"small")``).
- :class:`MSLNet`: ``net.encode(measurements, ops) -> MSLFeatures``, ``net.decode(features, lam)``,
  ``net(measurements, ops, lam)``.
- :func:`build_operators`: the per-batch physics ``{modality: LinearOperator}``.
- :func:`msl_losses`: ``(total, parts)`` of eq. 20.
"""

from .config import MODALITY_KINDS, MSLConfig, load_config, modality_kind, named_configs
from .decoder import ConditionalDecoder, lambda_condition
from .encoders import PIEncoder, build_encoder, encoder_kinds, register_encoder
from .interaction import CrossDomainInteraction, enhanced_features
from .losses import choose_present, msl_losses
from .network import MSLFeatures, MSLNet, count_parameters
from .physics import build_operators, ct_operator, measurement_key, measurements_from_batch

__all__ = [
    "MODALITY_KINDS",
    "ConditionalDecoder",
    "CrossDomainInteraction",
    "MSLConfig",
    "MSLFeatures",
    "MSLNet",
    "PIEncoder",
    "build_encoder",
    "build_operators",
    "choose_present",
    "count_parameters",
    "ct_operator",
    "encoder_kinds",
    "enhanced_features",
    "lambda_condition",
    "load_config",
    "measurement_key",
    "measurements_from_batch",
    "modality_kind",
    "msl_losses",
    "named_configs",
    "register_encoder",
]
