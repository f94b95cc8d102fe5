"""Equal training budgets: every learned method trains for the same wall time, at a learning
rate chosen on validation from a short run of each candidate.

MSL trains with the loop's own clock (``TrainOptions.time_budget_s``, see
:meth:`benchmarks.context.Context.msl_model`; the checkpoint choice on validation counts
against the budget). The CNN baselines train by :func:`budget_fit` (pix2pix, DeepFusion) or by
their own ``train_xxx(time_budget_s=...)`` (FBPConvNet, LPD, MoDL); all keep the parameters
that score best on validation.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch

__all__ = ["budget_fit", "msl_lr", "tune_lr"]


def msl_lr(ctx: Any, modalities: tuple[str, ...] = ("ct", "t1")) -> float:
    """The MSL learning rate chosen on validation (short runs of every ``lr_grid_msl`` value)."""
    key = "lr/msl"
    if key in ctx.timings:
        return float(ctx.timings[key]["chosen"])
    from .evaluate import msl_val_score

    val = ctx.test_set(split="val")
    idx = ctx.val_indices(val)
    scores = {}
    for lr in ctx.suite.lr_grid_msl:
        run = ctx.msl_model(f"lr-{lr:g}", modalities, budget_s=ctx.suite.lr_budget_s, lr=lr)
        scores[lr] = msl_val_score(ctx.load_msl(run), val, idx, modalities, ctx.device)
    chosen = min(scores, key=scores.get)
    ctx.record(key, {"chosen": chosen, "val_mae": {f"{k:g}": v for k, v in scores.items()}})
    return float(chosen)


def tune_lr(
    train: Callable[[float, float], Any],
    score: Callable[[Any], float],
    grid: Sequence[float],
    short_s: float,
) -> tuple[float, dict[str, float]]:
    """Choose a learning rate: ``train(lr, seconds)`` for each candidate, lowest ``score``.

    Returns the chosen rate and the validation score of every candidate.
    """
    scores = {float(lr): float(score(train(lr, short_s))) for lr in grid}
    chosen = min(scores, key=scores.get)
    return chosen, {f"{k:g}": v for k, v in scores.items()}


def budget_fit(
    model: torch.nn.Module,
    step: Callable[..., Any],
    batches: Iterable[Any],
    budget_s: float,
    *,
    val_fn: Callable[[], float] | None = None,
    val_every: int = 25,
) -> dict[str, float]:
    """Call ``step(*batch)`` until ``budget_s`` seconds are spent; keep the validation-best state.

    Parameters
    ----------
    model : nn.Module
        Whose ``state_dict`` is checkpointed (e.g. a :class:`Pix2Pix` or :class:`DeepFusion`).
    step : callable
        One optimisation step on a batch tuple.
    batches : iterable
        Re-iterated when exhausted.
    budget_s : float
        Wall time (s); checked after every step.
    val_fn : callable, optional
        Validation loss of the current model (lower is better), every ``val_every`` steps and
        at the end.

    Returns
    -------
    dict
        ``iterations``, ``seconds`` (training steps plus validations), ``best_step``.
    """
    best, best_state, best_step, steps = float("inf"), None, 0, 0
    data = list(batches)
    if not data:
        raise ValueError("no training batches")

    def validate() -> None:
        nonlocal best, best_state, best_step
        if val_fn is None:
            return
        v = float(val_fn())
        if v < best:
            best, best_state, best_step = v, copy.deepcopy(model.state_dict()), steps

    t0 = time.perf_counter()
    while True:
        for b in data:
            step(*b)
            steps += 1
            if val_fn is not None and steps % val_every == 0:
                validate()
            if time.perf_counter() - t0 >= budget_s:
                break
        if time.perf_counter() - t0 >= budget_s:
            break
    validate()
    if best_state is not None:
        model.load_state_dict(best_state)
    return {"iterations": steps, "seconds": time.perf_counter() - t0, "best_step": best_step}
