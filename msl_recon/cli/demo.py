"""``msl-recon demo``: the whole path on the built-in phantom, in minutes on a CPU.

simulate (phantom → sparse-view sinograms + 1/4 k-space) → train the ``small`` model briefly →
reconstruct held-out slices with a λ sweep, a spatial λ map and an MI-optimised λ map → PNG
figures, a metrics table and ``summary.md`` with the timings.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import typer

from ..errors import UserError


def demo_lambda_map(n: int) -> np.ndarray:
    """A smooth spatial λ map ``(n, n)``: 1 (MRI) inside the brain, 0 (CT) at the skull.

    A radial profile ``λ(r) = 1 − smoothstep(0.55, 0.75, r)`` with ``r`` the distance from the
    centre in units of the half image side.
    """
    yy, xx = np.mgrid[-1 : 1 : n * 1j, -1 : 1 : n * 1j]
    r = np.sqrt(xx**2 + (yy * 1.1) ** 2)
    t = np.clip((r - 0.55) / 0.2, 0.0, 1.0)
    return (1.0 - t * t * (3 - 2 * t)).astype(np.float32)


def run_demo(
    out: Path,
    *,
    iterations: int = 400,
    size: int = 128,
    subjects: int = 6,
    slices: int = 8,
    views: int = 64,
    acceleration: float = 4.0,
    config: str = "small",
    batch_size: int | None = None,
    recon_slices: int = 4,
    opt_steps: int = 60,
    device: str = "auto",
    seed: int = 0,
    overwrite: bool = False,
    progress: bool = True,
) -> dict:
    """Run the demo into ``out`` (``data/``, ``run/``, ``recon/``, ``summary.md``).

    Returns
    -------
    dict
        Timings (s) per stage, the training result and the reconstruction metrics rows.
    """
    from ..figures import metrics_markdown, save_image_png
    from ..training.loop import TrainOptions, train
    from .main import main as cli_main
    from .reconstruct import run_reconstruct

    if out.exists() and any(out.iterdir()) and not overwrite:
        raise UserError(f"demo directory {out} is not empty; pass --overwrite to replace it")
    out.mkdir(parents=True, exist_ok=True)
    times: dict[str, float] = {}

    t = time.perf_counter()
    sim_args = [
        "simulate", "--out", str(out / "data"), "--size", str(size), "--subjects", str(subjects),
        "--slices", str(slices), "--modalities", "ct,t1", "--views", str(views),
        "--acceleration", str(acceleration), "--seed", str(seed), "--overwrite",
    ]  # fmt: skip
    if not progress:
        sim_args.append("--quiet")
    typer.echo(f"[1/3] simulating {subjects} phantom subjects at {size}² …")
    rc = cli_main(sim_args)
    if rc != 0:
        raise UserError(f"demo: simulate failed (exit {rc})")
    times["simulate"] = time.perf_counter() - t

    t = time.perf_counter()
    typer.echo(f"[2/3] training the {config!r} model for {iterations} iterations …")
    res = train(
        TrainOptions(
            data=out / "data",
            out=out / "run",
            config=config,
            iterations=iterations,
            batch_size=batch_size,
            seed=seed,
            device=device,
            checkpoint_every=max(iterations // 2, 1),
            val_every=max(iterations // 2, 1),
            val_samples=8,
            overwrite=True,
            progress=progress,
        )
    )
    times["train"] = time.perf_counter() - t
    if res.checkpoint is None:
        raise UserError("demo: training wrote no checkpoint")

    t = time.perf_counter()
    typer.echo("[3/3] reconstructing held-out slices (λ sweep, λ map, optimised λ) …")
    lam_png = out / "lambda_map.png"
    save_image_png(lam_png, demo_lambda_map(size))
    test_h5 = out / "data" / "test.h5"
    if not test_h5.is_file():
        test_h5 = out / "data" / "val.h5"
    import h5py

    with h5py.File(test_h5, "r") as f:
        n_test = int(f["images/ct"].shape[0])
    pick = np.unique(np.linspace(0, n_test - 1, min(recon_slices, n_test)).round().astype(int))
    rec = run_reconstruct(
        checkpoint=out / "run" / "last.pt",
        inputs=[test_h5],
        out=out / "recon",
        lambdas="0,0.25,0.5,0.75,1",
        lambda_map=lam_png,
        optimize_lambda=True,
        opt_iterations=opt_steps,
        slices=",".join(str(i) for i in pick),
        device=device,
        overwrite=True,
        progress=progress,
    )
    times["reconstruct"] = time.perf_counter() - t
    its = len(res.losses) / res.seconds if res.seconds > 0 else float("nan")
    summary = [
        "# msl-recon demo",
        "",
        f"- data: {subjects} phantom subjects × {slices} slices, {size}², CT {views} views, "
        f"MRI 1/{acceleration:g} Cartesian k-space",
        f"- training: `{config}` config, {res.iteration} iterations in {res.seconds:.0f} s "
        f"({its:.2f} it/s)",
        "- times (s): " + ", ".join(f"{k} {v:.0f}" for k, v in times.items()),
        "- validation after training: " + ", ".join(f"{k} {v:.3f}" for k, v in res.val.items()),
    ]
    if rec["objective"]:
        o = rec["objective"]
        summary.append(
            f"- λ optimisation (α={o['alpha']}): objective {o['before_mean']:.4f} → "
            f"{o['after_mean']:.4f}"
        )
    summary += ["", metrics_markdown(rec["metrics"], title="Held-out test slices"), ""]
    summary.append("Figures: `recon/png/slice_*.png`; stacks: `recon/recon.h5`, `recon/nifti/`.")
    (out / "summary.md").write_text("\n".join(summary) + "\n", encoding="utf-8")
    (out / "timings.json").write_text(
        json.dumps({**times, "train_it_per_s": its}, indent=2), encoding="utf-8"
    )
    return {"times": times, "train": res, "metrics": rec["metrics"], "objective": rec["objective"]}


def demo_cmd(
    out: Path = typer.Option(Path("msl-demo"), "--out", "-o", help="Demo directory."),
    iterations: int = typer.Option(400, "--iterations", min=1, help="Training iterations."),
    size: int = typer.Option(128, "--size", min=32, help="Image side (multiple of 16)."),
    subjects: int = typer.Option(6, "--subjects", min=3, help="Phantom subjects."),
    slices: int = typer.Option(8, "--slices", min=1, help="Slices per subject."),
    config: str = typer.Option("small", "--config", help="small | paper | FILE."),
    opt_steps: int = typer.Option(60, "--opt-steps", min=1, help="λ-optimisation steps."),
    device: str = typer.Option("auto", "--device"),
    seed: int = typer.Option(0, "--seed"),
    overwrite: bool = typer.Option(False, "--overwrite"),
    quiet: bool = typer.Option(False, "--quiet"),
) -> None:
    """Simulate → train briefly → reconstruct with λ sweep, λ map and optimised λ."""
    t = time.perf_counter()
    run_demo(
        out, iterations=iterations, size=size, subjects=subjects, slices=slices, config=config,
        opt_steps=opt_steps, device=device, seed=seed, overwrite=overwrite, progress=not quiet,
    )  # fmt: skip
    typer.echo((out / "summary.md").read_text(encoding="utf-8"))
    typer.echo(f"demo finished in {time.perf_counter() - t:.0f} s: see {out}/summary.md")


def register(app: typer.Typer) -> None:
    """Add ``demo`` to the ``msl-recon`` app."""
    app.command("demo")(demo_cmd)
