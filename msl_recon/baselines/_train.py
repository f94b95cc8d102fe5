"""Time-budgeted training loop shared by the learned reconstruction baselines (FBPConvNet,
Learned Primal-Dual, MoDL).

Adam on ``loss_fn(model, *batch)``, cycling through an iterable of batches until a wall-time
budget (or a step cap) is spent. Seeded: the initialisation is the caller's (build the model
under :func:`seeded`), and the loop itself forks the global RNG with ``seed`` so dropout or any
random op inside the loss is reproducible and the caller's RNG state is untouched.
Validation-based checkpoint selection: every ``val_every`` steps ``val_fn(model)`` (lower is
better; e.g. the validation-set MSE) is evaluated in eval mode, and the parameters of the best
evaluation are restored at the end.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

__all__ = ["TrainResult", "fit_with_validation", "seeded", "train_loop"]


@contextmanager
def seeded(seed: int | None) -> Iterator[None]:
    """Run a block with the global torch CPU RNG seeded, restoring its state afterwards."""
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        yield


@dataclass
class TrainResult:
    """What :func:`train_loop` did.

    Attributes
    ----------
    losses : list of float
        Training loss of every step.
    steps : int
        Optimiser steps taken.
    seconds : float
        Wall time spent.
    val : list of (int, float)
        ``(step, validation score)`` of every evaluation.
    best_step : int or None
        Step whose parameters were restored (None without validation: the last parameters).
    """

    losses: list[float] = field(default_factory=list)
    steps: int = 0
    seconds: float = 0.0
    val: list[tuple[int, float]] = field(default_factory=list)
    best_step: int | None = None


def _cycle(batches: Iterable[Any]) -> Iterator[Any]:
    while True:
        empty = True
        for b in batches:
            empty = False
            yield b
        if empty:
            raise ValueError("the training set yields no batches")


def train_loop(
    model: nn.Module,
    loss_fn: Callable[..., torch.Tensor],
    batches: Iterable[Any],
    *,
    time_budget_s: float,
    lr: float = 1e-3,
    seed: int = 0,
    max_steps: int | None = None,
    prepare: Callable[[Any], tuple[Any, ...]] | None = None,
    val_fn: Callable[[nn.Module], float] | None = None,
    val_every: int = 50,
    grad_clip: float | None = 1.0,
    progress: bool = False,
) -> TrainResult:
    """Train ``model`` by Adam until ``time_budget_s`` seconds (or ``max_steps``) are spent.

    Parameters
    ----------
    model : nn.Module
        Trained in place (and left in eval mode with the selected parameters).
    loss_fn : callable
        ``loss_fn(model, *prepare(batch)) -> scalar loss``.
    batches : iterable
        Training batches; re-iterated when exhausted (a list of tensors tuples, a DataLoader…).
    time_budget_s : float
        Wall-time budget in seconds (> 0); checked after every step.
    lr : float
        Adam learning rate.
    seed : int
        Seed of the random ops during training.
    max_steps : int, optional
        Step cap (whichever of time and steps ends first).
    prepare : callable, optional
        ``batch -> tuple of loss_fn arguments`` (default: the batch is that tuple).
    val_fn : callable, optional
        Validation score of the model (lower is better), evaluated under ``torch.no_grad`` in
        eval mode every ``val_every`` steps and at the end; the best parameters are restored.
    val_every : int
        Steps between validations.
    grad_clip : float, optional
        Clip the gradient norm (unrolled networks can have large early gradients).
    progress : bool
        Show a tqdm bar over steps (unknown total when only time-budgeted).

    Returns
    -------
    TrainResult
    """
    if time_budget_s <= 0:
        raise ValueError(f"time_budget_s must be > 0, got {time_budget_s}")
    if max_steps is not None and max_steps < 1:
        raise ValueError(f"max_steps must be ≥ 1, got {max_steps}")
    prep = prepare or (lambda b: tuple(b))
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr)
    res = TrainResult()
    best_val, best_state = float("inf"), None

    def validate() -> None:
        nonlocal best_val, best_state
        if val_fn is None:
            return
        model.eval()
        with torch.no_grad():
            v = float(val_fn(model))
        model.train()
        res.val.append((res.steps, v))
        if v < best_val:
            best_val, best_state, res.best_step = v, copy.deepcopy(model.state_dict()), res.steps

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=max_steps, desc="training", leave=False)
    t0 = time.perf_counter()
    with seeded(seed):
        model.train()
        for batch in _cycle(batches):
            loss = loss_fn(model, *prep(batch))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if grad_clip is not None:
                nn.utils.clip_grad_norm_(params, grad_clip)
            opt.step()
            res.losses.append(float(loss.detach()))
            res.steps += 1
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{res.losses[-1]:.4g}")
            if val_fn is not None and res.steps % val_every == 0:
                validate()
            out_of_time = time.perf_counter() - t0 >= time_budget_s
            if out_of_time or (max_steps is not None and res.steps >= max_steps):
                break
        if val_fn is not None and (not res.val or res.val[-1][0] != res.steps):
            validate()
    if bar is not None:
        bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    res.seconds = time.perf_counter() - t0
    model.eval()
    return res


def fit_with_validation(
    model: nn.Module,
    loss_fn: Callable[..., torch.Tensor],
    batches: Iterable[Any],
    *,
    prepare: Callable[[Any], tuple[Any, ...]],
    val_batches: Iterable[Any] | None = None,
    **train_kwargs: Any,
) -> nn.Module:
    """Train ``model`` with :func:`train_loop`, selecting its parameters by the mean
    ``loss_fn`` on ``val_batches`` (if given); the record goes to ``model.train_result``."""
    val_fn = None
    if val_batches is not None:
        vb = [prepare(b) for b in val_batches]

        def val_fn(m: nn.Module) -> float:
            return sum(float(loss_fn(m, *b)) for b in vb) / len(vb)

    model.train_result = train_loop(
        model, loss_fn, batches, prepare=prepare, val_fn=val_fn, **train_kwargs
    )
    return model
