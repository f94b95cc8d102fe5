"""Training of the MSL network: loop (exact resume, DDP), checkpoints, distributed helpers, logs.

Entry point: :func:`train` with :class:`TrainOptions` (what ``msl-recon train`` runs).
"""

from .batches import randomize_batch
from .checkpoint import (
    capture_rng_state,
    latest_checkpoint,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
)
from .distributed import DistInfo, init_distributed, parameter_checksum, shard_batch
from .logger import RunLogger
from .loop import (
    TrainOptions,
    TrainResult,
    canonical_modalities,
    resolve_config,
    stream_indices,
    train,
)
from .validation import validate

__all__ = [
    "DistInfo",
    "RunLogger",
    "TrainOptions",
    "TrainResult",
    "canonical_modalities",
    "capture_rng_state",
    "init_distributed",
    "latest_checkpoint",
    "load_checkpoint",
    "parameter_checksum",
    "randomize_batch",
    "resolve_config",
    "restore_rng_state",
    "save_checkpoint",
    "shard_batch",
    "stream_indices",
    "train",
    "validate",
]
