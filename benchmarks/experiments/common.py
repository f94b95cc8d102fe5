"""Shared pieces of the experiments: the modalities studied, the MSL runs, scoreboards."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..context import Context
from ..evaluate import Scoreboard

CT, MR = "ct", "t1"  # the modalities the CT–MRI experiments study
SWEEP = [round(x, 1) for x in np.arange(0.0, 1.01, 0.1)]


def board(ds: Any, idx: list[int]) -> Scoreboard:
    """A scoreboard over slices ``idx`` of ``ds`` (subjects from the file)."""
    subj = ds.subject_ids()
    return Scoreboard([subj[i] for i in idx])


def result(sb: Scoreboard, name: str, comparisons: list[dict] | None = None, **kw: Any) -> dict:
    """A result dict: the scoreboard's table, its CIs, per-slice/per-subject values."""
    tables = {name: sb.rows()}
    if comparisons:
        tables[f"{name} — paired 95% CI over test subjects"] = comparisons
    out: dict[str, Any] = {"tables": tables, "scores": {name: sb.to_dict()}}
    for k, v in kw.items():
        if k == "tables":
            out["tables"].update(v)
        else:
            out[k] = v
    return out


def main_run(ctx: Context, seed: int | None = None, budget: float | None = None) -> Path:
    """The main CT+MRI MSL model (budget ``budget_s``, lr chosen on validation)."""
    from ..budget import msl_lr

    tag = "" if seed is None else f"-s{seed}-{budget:g}"
    return ctx.msl_model(f"main{tag}", (CT, MR), lr=msl_lr(ctx), seed=seed, budget_s=budget)


def single_run(
    ctx: Context, modality: str, seed: int | None = None, budget: float | None = None
) -> Path:
    """An MSL model trained on one modality under the same budget."""
    from ..budget import msl_lr

    tag = "" if seed is None else f"-s{seed}-{budget:g}"
    return ctx.msl_model(
        f"{modality}-only{tag}", (modality,), lr=msl_lr(ctx), seed=seed, budget_s=budget
    )


def main_model(ctx: Context) -> Any:
    """The loaded main model (validation-best checkpoint)."""
    return ctx.load_msl(main_run(ctx))


def train_row(ctx: Context, run: Path, label: str) -> dict[str, Any]:
    """Iterations, seconds (training + checkpoint choice on validation) and lr of an MSL run."""
    info = ctx.run_info(run)
    return {
        "method": label,
        "iterations": info["iterations"],
        "seconds": info["seconds"],
        "select_s": info.get("select_s"),
        "lr": info.get("lr"),
    }
