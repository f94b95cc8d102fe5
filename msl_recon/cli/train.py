"""``msl-recon train``: train the MSL network on an HDF5 dataset (single process or torchrun)."""

from __future__ import annotations

from pathlib import Path

import typer

from ..errors import UserError


def _parse_ints(text: str | None, name: str) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        vals = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise UserError(f"{name} {text!r}: expected comma-separated integers") from None
    if not vals or min(vals) < 1:
        raise UserError(f"{name} {text!r}: values must be ≥ 1")
    return vals


def _parse_floats(text: str | None, name: str, minimum: float) -> tuple[float, ...] | None:
    if text is None:
        return None
    try:
        vals = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise UserError(f"{name} {text!r}: expected comma-separated numbers") from None
    if not vals or min(vals) < minimum:
        raise UserError(f"{name} {text!r}: values must be ≥ {minimum}")
    return vals


def train_cmd(
    data: Path = typer.Option(..., "--data", help="Dataset directory with train.h5 (+ val.h5)."),
    out: Path = typer.Option(..., "--out", help="Run directory (checkpoints, log.csv, tb/)."),
    config: str | None = typer.Option(
        None, "--config", help="small | paper | a TOML/YAML file (default small)."
    ),
    modalities: str | None = typer.Option(
        None, "--modalities", help="Comma list in config order, e.g. ct,t1 (mr = t1)."
    ),
    iterations: int | None = typer.Option(None, "--iterations", min=1, help="Total steps."),
    time_budget: float | None = typer.Option(
        None,
        "--time-budget",
        help="Stop after this many seconds of training (then --iterations is only a cap).",
    ),
    batch_size: int | None = typer.Option(None, "--batch-size", min=1, help="Per process."),
    lr: float | None = typer.Option(None, "--lr", help="Adam learning rate (> 0)."),
    seed: int | None = typer.Option(
        None, "--seed", help="Seed of init, data order and randomisation (default 0)."
    ),
    device: str = typer.Option("auto", "--device", help="cpu | cuda | auto."),
    checkpoint_every: int = typer.Option(
        500, "--checkpoint-every", min=0, help="Also keep ckpt_<it>.pt every N steps (0: off)."
    ),
    checkpoint_minutes: float = typer.Option(
        5.0, "--checkpoint-minutes", min=0.0, help="Write last.pt at least this often (0: off)."
    ),
    val_every: int = typer.Option(500, "--val-every", min=0),
    val_samples: int = typer.Option(8, "--val-samples", min=1),
    log_every: int = typer.Option(10, "--log-every", min=1),
    random_views: str | None = typer.Option(
        None, "--random-views", help="View counts drawn per batch, e.g. 16,32,64 (≤ stored)."
    ),
    random_acceleration: str | None = typer.Option(
        None, "--random-acceleration", help="Cartesian accelerations drawn per batch, e.g. 4,6,8."
    ),
    modality_dropout: float | None = typer.Option(
        None, "--modality-dropout", min=0.0, max=1.0, help="P(batch keeps one modality), def. 0."
    ),
    shift_augment: str | None = typer.Option(
        None,
        "--shift-augment",
        help="MOD=PX[,MOD=PX]: re-acquire MOD from its ground truth shifted by up to ±PX pixels "
        "per axis while the target stays (learns to undo misregistration), e.g. ct=4.",
    ),
    threads: int | None = typer.Option(None, "--threads", min=1, help="CPU threads."),
    resume: bool = typer.Option(False, "--resume", help="Continue OUT/last.pt exactly."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Reuse a non-empty OUT."),
    no_tensorboard: bool = typer.Option(False, "--no-tensorboard"),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
) -> None:
    """Train the MSL network; checkpoints are OUT/last.pt and OUT/ckpt_<iteration>.pt.

    Multi-process: torchrun --nproc_per_node=K -m msl_recon.cli.main train ...
    """
    from ..training.loop import TrainOptions, canonical_modalities, train

    opts = TrainOptions(
        data=data,
        out=out,
        config=config,
        modalities=canonical_modalities(modalities),
        iterations=iterations,
        time_budget_s=time_budget,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        device=device,
        checkpoint_every=checkpoint_every,
        checkpoint_minutes=checkpoint_minutes,
        val_every=val_every,
        val_samples=val_samples,
        log_every=log_every,
        random_views=_parse_ints(random_views, "--random-views"),
        random_acceleration=_parse_floats(random_acceleration, "--random-acceleration", 1.0),
        modality_dropout=modality_dropout,
        shift_augment=_parse_shifts(shift_augment),
        resume=resume,
        overwrite=overwrite,
        progress=not quiet,
        tensorboard=not no_tensorboard,
        num_threads=threads,
    )
    res = train(opts)
    if res.checkpoint is None and not res.losses:
        typer.echo(f"nothing to do: the run is already at iteration {res.iteration}")
    elif res.checkpoint is not None:
        its = len(res.losses) / res.seconds if res.seconds > 0 else float("nan")
        typer.echo(
            f"trained to iteration {res.iteration} ({len(res.losses)} steps, {res.seconds:.1f} s, "
            f"{its:.2f} it/s); checkpoint {res.checkpoint}"
        )
        if res.val:
            typer.echo("validation: " + " ".join(f"{k}={v:.4f}" for k, v in res.val.items()))


def register(app: typer.Typer) -> None:
    """Add ``train`` to the ``msl-recon`` app."""
    app.command("train")(train_cmd)


def _parse_shifts(spec: str | None) -> dict[str, float] | None:
    """``"ct=4,t1=2"`` -> ``{"ct": 4.0, "t1": 2.0}`` (canonical modality names)."""
    if spec is None:
        return None
    from .. import modalities

    out: dict[str, float] = {}
    for part in spec.split(","):
        name, sep, px = part.partition("=")
        try:
            value = float(px)
        except ValueError:
            sep = ""
        if not sep:
            raise UserError(f"--shift-augment: expected MOD=PIXELS, got {part!r}")
        out[modalities.get(name.strip()).name] = value  # unknown names: the registry's error
    return out
