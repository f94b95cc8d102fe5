"""Choosing regularisation weights on a validation set, widening the grid until the optimum is
interior.

A weight chosen on the edge of its grid says only that the best value may lie beyond it.
:func:`select_weights` therefore scores a log-spaced grid, and while the best value of a widened
parameter sits on an edge of its grid it appends one more value beyond that edge (the grid's
own ratio of neighbouring values) and scores the new combinations, up to ``max_widen`` rounds
(or a parameter bound). The result says whether every widened parameter ended interior.
Scores are cached, so widening only runs the new combinations.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import torch

__all__ = ["WeightSelection", "rmse_score", "select_weights"]

Reconstruct = Callable[..., tuple[torch.Tensor | None, torch.Tensor | None]]


def _rmse(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.sqrt(torch.mean((a.to(torch.float64) - b.to(torch.float64)) ** 2)))


def rmse_score(
    sample: Mapping[str, torch.Tensor], ct: torch.Tensor | None, mr: torch.Tensor | None
) -> float:
    """``RMSE(ct, sample["ct"]) + RMSE(mr, sample["mr"])``, skipping a modality given as None."""
    total = 0.0
    for img, key in ((ct, "ct"), (mr, "mr")):
        if img is not None:
            ref = sample[key].reshape(img.shape)
            total += _rmse(img.abs() if img.is_complex() else img, ref)
    return total


@dataclass
class WeightSelection:
    """Result of :func:`select_weights`.

    Attributes
    ----------
    best : dict of str -> float
        The chosen weights.
    grid : dict of str -> list of float
        The final (widened) grid, sorted.
    table : list of (dict, float)
        Every combination scored, with its mean validation score (lower is better).
    interior : bool
        Whether every widened parameter's best value is strictly inside its final grid.
    rounds : int
        Widening rounds done.
    """

    best: dict[str, float]
    grid: dict[str, list[float]]
    table: list[tuple[dict[str, float], float]] = field(default_factory=list)
    interior: bool = False
    rounds: int = 0


def select_weights(
    reconstruct: Reconstruct,
    samples: Iterable[Mapping[str, torch.Tensor]],
    grid: Mapping[str, Sequence[float]],
    *,
    score: Callable[..., float] = rmse_score,
    widen: Sequence[str] | None = None,
    bounds: Mapping[str, tuple[float, float]] | None = None,
    max_widen: int = 6,
    progress: bool = False,
) -> WeightSelection:
    """Grid search of regularisation weights on validation samples, widening edge optima.

    Parameters
    ----------
    reconstruct : callable
        ``reconstruct(sample, **params) -> (ct, mr)`` (either may be None for a
        single-modality method).
    samples : iterable of mapping
        Validation samples with ground truth (``"ct"``, ``"mr"`` for :func:`rmse_score`);
        consumed once. Use validation subjects, never test subjects.
    grid : mapping of str -> sequence of float
        Initial candidate values per parameter (log-spaced, e.g. ``[1e-4, 1e-3, 1e-2]``).
    score : callable
        ``score(sample, ct, mr) -> float``, lower is better; averaged over samples.
    widen : sequence of str, optional
        Parameters whose grid may be widened (default: every parameter with ≥ 2 positive
        values).
    bounds : mapping of str -> (float, float), optional
        Limits a widened grid never crosses.
    max_widen : int
        Maximum widening rounds.
    progress : bool
        Show a progress bar per round.

    Returns
    -------
    WeightSelection

    Raises
    ------
    ValueError
        Empty samples or grid, a widened parameter with non-positive values, or every score
        non-finite.
    """
    smp = list(samples)
    if not smp:
        raise ValueError("select_weights needs at least one validation sample")
    g = {k: sorted(float(v) for v in vals) for k, vals in grid.items()}
    if not g or any(not v for v in g.values()):
        raise ValueError("the grid is empty")
    names = list(g)
    if widen is None:
        widen = [k for k in names if len(g[k]) >= 2 and min(g[k]) > 0]
    for k in widen:
        if k not in g or len(g[k]) < 2 or min(g[k]) <= 0:
            raise ValueError(f"parameter {k!r} cannot be widened: needs ≥ 2 positive values")
    lim = dict(bounds or {})
    cache: dict[tuple[float, ...], float] = {}

    def evaluate(combo: tuple[float, ...]) -> float:
        if combo not in cache:
            params = dict(zip(names, combo, strict=True))
            vals = [score(s, *reconstruct(s, **params)) for s in smp]
            m = sum(vals) / len(vals)
            cache[combo] = m if math.isfinite(m) else math.inf
        return cache[combo]

    rounds = 0
    while True:
        combos = list(itertools.product(*(g[k] for k in names)))
        it: Iterable[tuple[float, ...]] = combos
        if progress:
            from tqdm.auto import tqdm

            it = tqdm(combos, desc=f"weights (round {rounds})", leave=False)
        scores = [evaluate(c) for c in it]
        i_best = min(range(len(combos)), key=lambda i: (scores[i], i))
        if not math.isfinite(scores[i_best]):
            raise RuntimeError("every weight combination gave a non-finite score")
        best = dict(zip(names, combos[i_best], strict=True))
        grown = False
        on_edge = False
        for k in widen:
            vals = g[k]
            lo_b, hi_b = lim.get(k, (0.0, math.inf))
            if best[k] == vals[0]:
                on_edge = True
                new = vals[0] * vals[0] / vals[1]
                if new >= lo_b and rounds < max_widen:
                    vals.insert(0, new)
                    grown = True
            elif best[k] == vals[-1]:
                on_edge = True
                new = vals[-1] * vals[-1] / vals[-2]
                if new <= hi_b and rounds < max_widen:
                    vals.append(new)
                    grown = True
        if not grown:
            break
        rounds += 1
    table = [
        (dict(zip(names, c, strict=True)), cache[c])
        for c in itertools.product(*(g[k] for k in names))
    ]
    return WeightSelection(best=best, grid=g, table=table, interior=not on_edge, rounds=rounds)
