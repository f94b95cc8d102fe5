"""The MSL network (paper §2): PI-encoders, cross-domain interaction, conditional decoder.

Public API
----------
- :class:`MSLConfig`, :func:`load_config`: hyper-parameters (``MSLConfig.named("paper"|"small")``).
- :class:`MSLNet`: ``net.encode(measurements, ops) -> MSLFeatures``, ``net.decode(features, lam)``,
  ``net(measurements, ops, lam)``.
- :func:`build_operators`: the per-batch physics ``{modality: LinearOperator}``.
- :func:`msl_losses`: ``(total, parts)`` of eq. 20.
"""

from .config import MSLConfig, load_config, named_configs
from .decoder import ConditionalDecoder, lambda_condition
from .encoders import PIEncoder, build_encoder
from .interaction import CrossDomainInteraction, enhanced_features
from .losses import choose_present, msl_losses
from .network import MSLFeatures, MSLNet, count_parameters
from .physics import build_operators, measurement_key, measurements_from_batch

__all__ = [
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
    "enhanced_features",
    "lambda_condition",
    "load_config",
    "measurement_key",
    "measurements_from_batch",
    "msl_losses",
    "named_configs",
]
