"""The MSL training loop: exact resume, optional DDP, checkpoints, validation and logging.

Determinism
-----------
The data stream is the concatenation of per-epoch permutations; epoch ``e`` is
``numpy.random.default_rng([seed, e]).permutation(n)``, a pure function of ``(seed, epoch)``.
Each optimiser step consumes ``batch_size * world_size`` consecutive stream entries (rank ``r``
takes block ``r``), so the position in the data is a single integer ``consumed`` that the
checkpoint stores. Training-time randomisation (view subsets, acceleration, modality dropout) draws
from a generator seeded by ``(seed, iteration)``; dropout inside the network draws from torch's
global generator, whose state the checkpoint stores. An interrupted and resumed CPU run therefore
ends with bit-identical weights to an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import InputError
from ..modalities.acquisition import acquisition_to_dict
from .batches import collate, move_batch, randomize_batch, shift_augment
from .checkpoint import (
    capture_rng_state,
    config_from_dict,
    config_to_dict,
    list_checkpoints,
    load_latest_checkpoint,
    restore_rng_state,
    save_checkpoint,
)
from .distributed import (
    DistInfo,
    all_reduce_mean,
    barrier,
    cleanup_distributed,
    init_distributed,
    replica_checksums,
    shard_batch,
    stream_indices,
)
from .logger import RunLogger
from .options import (
    TrainOptions,
    TrainResult,
    _check_positive,
    _check_resume_options,
    _with_fields,
    canonical_modalities,
    resolve_config,
    resolve_device,
)
from .validation import validate

__all__ = [
    "TrainOptions",
    "TrainResult",
    "canonical_modalities",
    "config_to_dict",
    "resolve_config",
    "resolve_device",
    "stream_indices",
    "train",
]


class _LossModule(torch.nn.Module):
    """Wraps ``msl_losses`` so that DDP sees one forward per step."""

    def __init__(self, net: torch.nn.Module, weights: dict[str, float] | None) -> None:
        super().__init__()
        self.net = net
        self.weights = weights

    def forward(
        self, batch: dict[str, Any], ops: dict[str, Any], present: Sequence[str]
    ) -> tuple[torch.Tensor, dict]:
        from ..model import msl_losses

        return msl_losses(self.net, batch, ops, weights=self.weights, present=list(present))


def _cfg(cfg: Any, name: str, default: Any) -> Any:
    return getattr(cfg, name, default)


# ---------------------------------------------------------------------------- training
def _open_datasets(opts: TrainOptions, modalities: tuple[str, ...] | None) -> tuple[Any, Any]:
    from .._io import recover_staged
    from ..data.dataset import MSLDataset
    from ..data.hdf5 import validate as validate_file

    data = Path(opts.data)
    with contextlib.suppress(OSError):  # split files of a simulate killed while publishing
        recover_staged(data if data.is_dir() else data.parent)
    train_path = data / "train.h5" if data.is_dir() else data
    if not train_path.is_file():
        raise InputError(f"training data {train_path} does not exist (expected DIR/train.h5)")
    # schema (every requested modality), shapes and finiteness, before any work
    mods = validate_file(train_path, modalities)
    try:
        train_ds = MSLDataset(train_path, modalities=mods)
    except InputError:
        raise
    except (OSError, KeyError, ValueError) as exc:
        raise InputError(f"cannot open {train_path}: {exc}") from exc
    val_path = train_path.parent / "val.h5"
    val_ds = None
    if val_path.is_file():
        validate_file(val_path, train_ds.modalities)
        val_ds = MSLDataset(val_path, modalities=train_ds.modalities)
    return train_ds, val_ds


def _prepare_run_dir(opts: TrainOptions, info: DistInfo) -> Path:
    from .._io import check_output_dir, remove_stale_temps

    out = check_output_dir(opts.out)
    if info.is_main:
        started = out.is_dir() and (out / "log.csv").is_file()
        if opts.resume:
            if not list_checkpoints(out):
                if started:
                    raise InputError(
                        f"--resume: {out} holds no checkpoint yet (the run stopped before its "
                        "first one); start it again with --overwrite"
                    )
                raise InputError(f"--resume: no checkpoint {out / 'last.pt'}")
        elif out.exists() and any(out.iterdir()) and not opts.overwrite:
            if started and not list_checkpoints(out):
                raise InputError(
                    f"run directory {out} holds a run that stopped before its first checkpoint;"
                    " pass --overwrite to start it again"
                )
            raise InputError(f"run directory {out} is not empty; pass --overwrite or --resume")
        remove_stale_temps(out)  # orphans of killed runs (e.g. .last.pt.<pid>.*.tmp)
    return out


def train(opts: TrainOptions) -> TrainResult:
    """Train an MSL network (single process, or one rank of a ``torchrun`` job).

    Parameters
    ----------
    opts : TrainOptions

    Returns
    -------
    TrainResult

    Raises
    ------
    InputError
        Missing data, a non-empty run directory without ``--overwrite``/``--resume``, a
        modality missing from the data, an invalid config.
    """
    from ..model import MSLNet, build_operators

    _check_positive(opts)
    device = resolve_device(opts.device)
    if opts.num_threads:
        torch.set_num_threads(int(opts.num_threads))
    info = init_distributed(device)
    if info.enabled and device.type == "cuda":
        device = torch.device("cuda", info.local_rank)
    try:
        return _train(opts, device, info, MSLNet, build_operators)
    finally:
        cleanup_distributed(info)


def _train(
    opts: TrainOptions, device: torch.device, info: DistInfo, MSLNet: Any, build_operators: Any
) -> TrainResult:
    run_dir = _prepare_run_dir(opts, info)
    ckpt: dict[str, Any] | None = None
    if opts.resume:
        ckpt, _ = load_latest_checkpoint(run_dir, map_location="cpu")
        cfg = config_from_dict(ckpt["config"])
        _check_resume_options(opts, ckpt, cfg)
        modalities = tuple(ckpt["modalities"])
        saved = ckpt.get("train_args", {})
        seed = int(saved.get("seed", 0))
        batch_size = int(saved.get("batch_size"))
        iterations = int(saved["iterations"] if opts.iterations is None else opts.iterations)
        if saved.get("time_budget_s") and opts.iterations is None and opts.time_budget_s is None:
            raise InputError(
                "--resume: the run was stopped by a time budget; pass --time-budget SECONDS "
                "(the time to train on) or --iterations N"
            )
        # exact resume: the randomisation and loss settings of the run, not of the command line
        opts = dataclasses.replace(
            opts,
            random_views=tuple(saved.get("random_views") or ()) or None,
            random_acceleration=tuple(saved.get("random_acceleration") or ()) or None,
            modality_dropout=float(saved.get("modality_dropout", 0.0)),
            shift_augment=dict(saved.get("shift_augment") or {}) or None,
            loss_weights=dict(saved.get("loss_weights") or {}) or None,
        )
    else:
        cfg = resolve_config("small" if opts.config is None else opts.config)
        modalities = canonical_modalities(opts.modalities)
        if modalities is None:
            modalities = tuple(_cfg(cfg, "modalities", ()) or ()) or None
        seed = 0 if opts.seed is None else int(opts.seed)
        batch_size = int(_cfg(cfg, "batch_size", 4) if opts.batch_size is None else opts.batch_size)
        if opts.iterations is not None:
            iterations = int(opts.iterations)
        elif opts.time_budget_s is not None:
            iterations = 10**9  # the wall-time budget ends the run
        else:
            iterations = int(_cfg(cfg, "iterations", 1000))
        opts = dataclasses.replace(opts, modality_dropout=float(opts.modality_dropout or 0.0))
    train_ds, val_ds = _open_datasets(opts, modalities)  # validated before the run dir exists
    modalities = tuple(train_ds.modalities) if modalities is None else modalities
    missing = [m for m in modalities if m not in train_ds.modalities]
    if missing:
        raise InputError(f"modalities {missing} not in the training data {train_ds.modalities}")
    for m, smax in (opts.shift_augment or {}).items():
        if m not in modalities:
            raise InputError(f"--shift-augment: {m!r} is not a modality of the model {modalities}")
        if not (float(smax) >= 0 and math.isfinite(float(smax))):
            raise InputError(f"--shift-augment: the shift of {m!r} must be ≥ 0 pixels, got {smax}")
    n_px = int(train_ds[0][modalities[0]].shape[-1])
    if ckpt is not None and int(_cfg(cfg, "image_size", n_px)) != n_px:
        raise InputError(
            f"--resume: the run was trained on {_cfg(cfg, 'image_size', n_px)}² images but "
            f"{opts.data} holds {n_px}² images; resume with the run's data"
        )
    if ckpt is None:
        try:
            cfg = _with_fields(cfg, modalities=modalities, image_size=n_px)
        except ValueError as exc:
            raise InputError(f"the config does not fit the data ({n_px}² images): {exc}") from exc
    if ckpt is not None:
        lr = float(ckpt["train_args"].get("lr", _cfg(cfg, "lr", 2e-4)))
    else:
        lr = float(_cfg(cfg, "lr", 2e-4) if opts.lr is None else opts.lr)

    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - the legacy global state, for user code
    net = MSLNet(cfg).to(device)
    optim = torch.optim.Adam(
        net.parameters(),
        lr=lr,
        betas=tuple(_cfg(cfg, "betas", (0.5, 0.99))),
        weight_decay=float(_cfg(cfg, "weight_decay", 1e-4)),
    )
    sched = torch.optim.lr_scheduler.StepLR(
        optim,
        step_size=int(_cfg(cfg, "lr_step", 10_000)),
        gamma=float(_cfg(cfg, "lr_gamma", 0.5)),
    )
    iteration, consumed = 0, 0
    if ckpt is not None:
        try:
            net.load_state_dict(ckpt["model"])
            optim.load_state_dict(ckpt["optimizer"])
            sched.load_state_dict(ckpt["scheduler"])
        except (RuntimeError, ValueError, KeyError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise InputError(
                f"--resume: the weights in {run_dir} do not match the run's stored config ({first})"
            ) from exc
        iteration = int(ckpt["iteration"])
        consumed = int(ckpt["data_state"]["consumed"])
        restore_rng_state(ckpt["rng"])
        if ckpt["data_state"].get("world_size", 1) != info.world_size:
            raise InputError(
                f"checkpoint was written by {ckpt['data_state'].get('world_size', 1)} processes, "
                f"resuming with {info.world_size}: exact resume needs the same world size"
            )
    weights = opts.loss_weights
    loss_mod: torch.nn.Module = _LossModule(net, weights)
    if info.enabled:
        from torch.nn.parallel import DistributedDataParallel

        loss_mod = DistributedDataParallel(
            loss_mod,
            device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=True,
        )
    train_args = {
        "seed": seed,
        "batch_size": batch_size,
        "iterations": iterations,
        "lr": lr,
        "random_views": list(opts.random_views or []),
        "random_acceleration": list(opts.random_acceleration or []),
        "modality_dropout": float(opts.modality_dropout),
        "data": str(opts.data),
        "loss_weights": dict(weights or {}),
        "time_budget_s": opts.time_budget_s,
        "shift_augment": dict(opts.shift_augment or {}),
    }
    if info.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
    barrier(info)
    logger = RunLogger(
        run_dir,
        enabled=info.is_main,
        tensorboard=opts.tensorboard,
        resume_iteration=iteration if ckpt is not None else None,
    )
    result = TrainResult(run_dir=run_dir, iteration=iteration)
    end = iterations if opts.stop_after is None else min(iterations, int(opts.stop_after))
    global_batch = batch_size * info.world_size
    autocast = device.type == "cuda"
    bar = None
    if opts.progress and info.is_main:
        from tqdm.auto import tqdm

        total = None if opts.iterations is None and opts.time_budget_s is not None else iterations
        bar = tqdm(total=total, initial=iteration, desc="train", unit="it", dynamic_ncols=True)

    last_save = time.monotonic()
    budget = None if opts.time_budget_s is None else float(opts.time_budget_s)
    every_s = None if opts.checkpoint_every_s is None else float(opts.checkpoint_every_s)
    next_named = every_s

    def agreed(due: bool) -> bool:
        """Rank 0's clock decides for every rank."""
        if info.enabled:
            flag = torch.tensor(float(due and info.is_main), device=device)
            due = float(all_reduce_mean(flag, info)) > 0
        return due

    def time_due() -> bool:
        """Whether ``checkpoint_minutes`` passed."""
        return agreed(
            bool(opts.checkpoint_minutes)
            and time.monotonic() - last_save >= 60.0 * float(opts.checkpoint_minutes)
        )

    def checkpoint(name_iter: bool) -> None:
        nonlocal last_save
        last_save = time.monotonic()
        sums = replica_checksums(net, info)  # collective: every rank takes part
        if len(set(sums)) != 1:
            raise RuntimeError(f"DDP replicas diverged at iteration {iteration}: checksums {sums}")
        if not info.is_main:
            return
        state = {
            "model": net.state_dict(),
            "optimizer": optim.state_dict(),
            "scheduler": sched.state_dict(),
            "rng": capture_rng_state(),
            "data_state": {"seed": seed, "consumed": consumed, "world_size": info.world_size},
            "iteration": iteration,
            "config": config_to_dict(cfg),
            "train_args": train_args,
            "modalities": list(modalities),
            "acquisition": acquisition_to_dict(train_ds.acquisition),
            "val": dict(result.val),
            "replica_checksums": sums,
        }
        path = save_checkpoint(run_dir / "last.pt", state)
        if name_iter:
            path = save_checkpoint(run_dir / f"ckpt_{iteration:07d}.pt", state)
        result.checkpoint = path

    net.train()
    t0 = time.perf_counter()
    try:
        while iteration < end:
            gidx = stream_indices(seed, len(train_ds), consumed, global_batch)
            idx = shard_batch(gidx, info)
            gen = np.random.default_rng([seed, 7919, iteration])
            batch = collate(train_ds, idx)
            batch, acq, present = randomize_batch(
                batch,
                train_ds.acquisition,
                modalities,
                gen,
                views=opts.random_views,
                accelerations=opts.random_acceleration,
                modality_dropout=opts.modality_dropout,
            )
            batch = move_batch(batch, device)
            ops = build_operators(batch, acq, device)
            ops = {m: ops[m] for m in present}
            if opts.shift_augment:
                batch = shift_augment(batch, ops, opts.shift_augment, gen)
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
                total, parts = loss_mod(batch, ops, present)
            optim.zero_grad(set_to_none=True)
            total.backward()
            optim.step()
            sched.step()
            iteration += 1
            consumed += global_batch
            loss = float(all_reduce_mean(total.detach().float(), info))
            if not math.isfinite(loss):
                raise RuntimeError(
                    f"training diverged: loss {loss} at iteration {iteration} (the data passed "
                    "the finiteness check; lower --lr or resume from an earlier checkpoint)"
                )
            result.losses.append(loss)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
            if opts.log_every and (iteration % opts.log_every == 0 or iteration == end):
                row = {"loss": loss, "lr": sched.get_last_lr()[0]}
                row.update({k: float(v) for k, v in parts.items()})
                logger.log(iteration, row, prefix="")
            if (
                val_ds is not None
                and opts.val_every
                and (iteration % opts.val_every == 0 or iteration == iterations)
            ):
                if info.is_main:
                    result.val = validate(
                        net, val_ds, modalities, device, n_samples=opts.val_samples
                    )
                    logger.log(iteration, result.val, prefix="val_")
                    if bar is not None:
                        bar.write(
                            f"[{iteration}] val "
                            + " ".join(f"{k}={v:.4f}" for k, v in result.val.items())
                        )
                barrier(info)
            elapsed = time.perf_counter() - t0
            out_of_time = budget is not None and agreed(elapsed >= budget)
            periodic = bool(opts.checkpoint_every and iteration % opts.checkpoint_every == 0)
            if next_named is not None and agreed(elapsed >= next_named):
                periodic = True
                while next_named <= elapsed:
                    next_named += every_s or 1.0
            if periodic or iteration == end or out_of_time or time_due():
                checkpoint(periodic)
                barrier(info)
            if out_of_time:
                break
    finally:
        if bar is not None:
            bar.close()
        logger.close()
    result.iteration = iteration
    result.seconds = time.perf_counter() - t0
    return result
