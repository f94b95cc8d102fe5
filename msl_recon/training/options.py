"""Options and result of the training loop, and their validation (before any work starts).

:class:`TrainOptions` is what ``msl-recon train`` fills in; :func:`_check_resume_options` refuses
options that ``--resume`` cannot honour (the stored run's config, seed, batch size …).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..errors import InputError
from .checkpoint import config_from_dict, config_to_dict

__all__ = [
    "TrainOptions",
    "TrainResult",
    "canonical_modalities",
    "resolve_config",
    "resolve_device",
]


# ---------------------------------------------------------------------------- small helpers
def canonical_modalities(spec: str | Sequence[str] | None) -> tuple[str, ...] | None:
    """Parse ``"ct,mr"`` into canonical names ``("ct", "t1")`` via the modality registry
    (aliases resolve, e.g. ``mr`` = ``t1``); ``None`` stays ``None``.

    Raises
    ------
    InputError
        On an unknown or repeated modality name, or an empty list.
    """
    from .. import modalities

    return None if spec is None else modalities.parse(spec)


def resolve_device(spec: str | None) -> torch.device:
    """``"cpu"``, ``"cuda"``, ``"cuda:1"`` or ``None``/``"auto"`` (CUDA when available)."""
    if spec in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(spec)
    except RuntimeError as exc:
        raise InputError(f"invalid device {spec!r}: use cpu, cuda or cuda:N") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda requested but CUDA is not available")
    if dev.type not in ("cpu", "cuda"):
        raise InputError(f"unsupported device {spec!r}: use cpu or cuda")
    return dev


def resolve_config(spec: Any) -> Any:
    """An ``MSLConfig`` from a name (``small``/``paper``), a TOML/YAML path or a config object."""
    from ..model import MSLConfig, load_config

    if isinstance(spec, MSLConfig):
        return spec
    if isinstance(spec, dict):
        return config_from_dict(spec)
    s = str(spec)
    if s in ("small", "paper"):
        return MSLConfig.named(s)
    p = Path(s)
    if not p.is_file():
        raise InputError(f"--config {s!r} is neither 'small', 'paper' nor an existing file")
    try:
        return load_config(p)
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"cannot read config {p}: {exc}") from exc


def _with_fields(cfg: Any, **kw: Any) -> Any:
    """``dataclasses.replace`` restricted to fields the config has (others are ignored)."""
    names = {f.name for f in dataclasses.fields(cfg)}
    use = {k: v for k, v in kw.items() if k in names and v is not None}
    return dataclasses.replace(cfg, **use) if use else cfg


# ---------------------------------------------------------------------------- options / result
@dataclass
class TrainOptions:
    """Everything ``msl-recon train`` needs (CLI flags map 1:1).

    Attributes
    ----------
    data : path
        Directory with ``train.h5`` (and optionally ``val.h5``).
    out : path
        Run directory: ``last.pt``, ``ckpt_<iteration>.pt``, ``log.csv``, ``tb/``.
    config : str or MSLConfig, optional
        ``"small"``, ``"paper"`` or a TOML/YAML file (default ``"small"``; on resume: the run's).
    modalities : tuple of str, optional
        Modalities in config order (default: the config's, else all in the data).
    iterations, batch_size, lr : optional
        Override the config's values (must be positive).
    seed : int, optional
        Seed of initialisation, data order and randomisation (default 0).
    device : str, optional
        ``cpu``, ``cuda`` or ``None`` (auto).
    checkpoint_every, val_every, log_every : int
        Periods in iterations (0 disables periodic checkpoints/validation).
    checkpoint_minutes : float
        Also write ``last.pt`` when this many minutes passed since the last checkpoint (0
        disables), so that a long run is resumable early whatever ``checkpoint_every`` is.
    val_samples : int
        Validation slices evaluated (the first ones of ``val.h5``).
    resume : bool
        Continue from ``<out>/last.pt`` (a damaged one: from the newest valid ``ckpt_*.pt``).
        Options that change the run (config, modalities, batch size, lr, seed, randomisation)
        must be left unset or equal the stored ones.
    overwrite : bool
        Allow a non-empty run directory to be reused from scratch.
    random_views : tuple of int, optional
        Candidate view counts drawn per batch (subsets of the stored views).
    random_acceleration : tuple of float, optional
        Candidate Cartesian accelerations drawn per batch.
    modality_dropout : float, optional
        Probability that a batch keeps a single modality (default 0).
    stop_after : int, optional
        Stop (with a checkpoint) after this iteration although ``iterations`` is larger:
        simulates an interruption (tests) or splits a run into chunks.
    shift_augment : dict, optional
        Modality -> largest random shift (pixels per axis) of its ground truth, re-acquired
        per batch while the target stays put (:func:`.batches.shift_augment`): trains the
        network to return that modality in the frame of the others (misregistered inputs).
    time_budget_s : float, optional
        Stop (with a checkpoint) once this many seconds of training passed, measured from the
        first step and including periodic checkpoints and validation; ``iterations`` is then an
        upper bound. Equal wall-time comparisons use it. The learning-rate schedule is
        iteration-based (``lr_step``), so it does not need the total up front.
    checkpoint_every_s : float, optional
        Also write a numbered ``ckpt_<iteration>.pt`` every this many seconds of training (for
        validation checkpoint selection in time-budgeted runs).
    progress : bool
        Show a tqdm bar (rank 0 only).
    tensorboard : bool
        Also log to TensorBoard when available.
    num_threads : int, optional
        ``torch.set_num_threads`` for CPU training.
    """

    data: Path
    out: Path
    config: Any = None
    modalities: tuple[str, ...] | None = None
    iterations: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    seed: int | None = None
    device: str | None = None
    checkpoint_every: int = 500
    checkpoint_minutes: float = 5.0
    val_every: int = 500
    log_every: int = 10
    val_samples: int = 8
    resume: bool = False
    overwrite: bool = False
    random_views: tuple[int, ...] | None = None
    random_acceleration: tuple[float, ...] | None = None
    modality_dropout: float | None = None
    stop_after: int | None = None
    shift_augment: dict[str, float] | None = None
    time_budget_s: float | None = None
    checkpoint_every_s: float | None = None
    progress: bool = True
    tensorboard: bool = True
    num_threads: int | None = None
    loss_weights: dict[str, float] | None = None


@dataclass
class TrainResult:
    """Outcome of :func:`train`.

    Attributes
    ----------
    run_dir : Path
    iteration : int
        Completed iterations.
    losses : list of float
        Training loss per iteration run in this call (rank-averaged).
    val : dict
        Last validation metrics (empty if none ran).
    seconds : float
        Wall time of the iterations of this call.
    checkpoint : Path or None
        The last checkpoint written (rank 0).
    """

    run_dir: Path
    iteration: int
    losses: list[float] = field(default_factory=list)
    val: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    checkpoint: Path | None = None


def _check_positive(opts: TrainOptions) -> None:
    for name in ("iterations", "batch_size", "lr"):
        v = getattr(opts, name)
        if v is not None and not (float(v) > 0 and math.isfinite(float(v))):
            raise InputError(f"--{name.replace('_', '-')} must be > 0, got {v}")
    if opts.checkpoint_minutes < 0:
        raise InputError(f"--checkpoint-minutes must be ≥ 0, got {opts.checkpoint_minutes}")
    for name, flag in (("time_budget_s", "--time-budget"), ("checkpoint_every_s", None)):
        v = getattr(opts, name)
        if v is not None and not (float(v) > 0 and math.isfinite(float(v))):
            raise InputError(f"{flag or name} must be > 0 seconds, got {v}")


def _check_resume_options(opts: TrainOptions, ckpt: dict[str, Any], cfg: Any) -> None:
    """Refuse options a resumed run cannot honour: they must be unset or equal the stored ones."""
    saved = ckpt.get("train_args", {})
    bad: list[str] = []

    def differs(flag: str, given: Any, stored: Any) -> None:
        if given is not None and given != stored:
            bad.append(f"{flag} {given} (the run has {stored})")

    differs("--seed", opts.seed, saved.get("seed"))
    differs("--batch-size", opts.batch_size, saved.get("batch_size"))
    differs("--lr", None if opts.lr is None else float(opts.lr), saved.get("lr"))
    differs(
        "--modalities",
        None if opts.modalities is None else ",".join(canonical_modalities(opts.modalities) or ()),
        ",".join(ckpt.get("modalities", [])),
    )
    for flag, name in (
        ("--random-views", "random_views"),
        ("--random-acceleration", "random_acceleration"),
    ):
        given = getattr(opts, name)
        differs(flag, None if given is None else list(given), list(saved.get(name) or []))
    differs("--modality-dropout", opts.modality_dropout, saved.get("modality_dropout", 0.0))
    if opts.loss_weights is not None and dict(opts.loss_weights) != dict(
        saved.get("loss_weights") or {}
    ):
        bad.append("loss weights")
    if opts.config is not None:
        try:
            given_cfg = resolve_config(opts.config)
            given_cfg = _with_fields(
                given_cfg, modalities=tuple(cfg.modalities), image_size=cfg.image_size
            )
            same = config_to_dict(given_cfg) == config_to_dict(cfg)
        except (InputError, ValueError, TypeError):
            same = False
        if not same:
            bad.append(
                f"--config {opts.config if isinstance(opts.config, str) else '<object>'}"
                " (differs from the run's stored config)"
            )
    if bad:
        raise InputError(
            "--resume continues the stored run and cannot honour: "
            + "; ".join(bad)
            + ". Drop these options (or start a new run in another directory)"
        )
