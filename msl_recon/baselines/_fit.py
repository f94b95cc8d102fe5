"""The training loop shared by the learned baselines (pix2pix, DeepFusion)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

__all__ = ["fit_loop"]


def fit_loop(
    step: Callable[..., dict[str, float]],
    loader: Iterable[Any],
    iterations: int,
    prepare: Callable[[Any], Sequence[Any]],
    *,
    desc: str,
    show: str,
    progress: bool = True,
) -> list[dict[str, float]]:
    """Call ``step(*prepare(batch))`` ``iterations`` times, cycling through ``loader``.

    Parameters
    ----------
    step : callable
        One optimisation step; returns its losses.
    loader : iterable
        Yields batches; re-iterated when exhausted.
    prepare : callable
        ``batch -> arguments of step``.
    desc, show : str
        Progress-bar label and the loss shown on it.

    Returns
    -------
    list of dict
        The losses of every step.

    Raises
    ------
    ValueError
        If the loader yields no batches.
    """
    from tqdm.auto import tqdm

    history: list[dict[str, float]] = []
    it = iter(loader)
    bar = tqdm(total=iterations, desc=desc, disable=not progress, leave=False)
    while len(history) < iterations:
        try:
            batch = next(it)
        except StopIteration:
            it = iter(loader)
            try:
                batch = next(it)
            except StopIteration:
                raise ValueError("the loader yields no batches") from None
        history.append(step(*prepare(batch)))
        bar.update(1)
        bar.set_postfix({show: f"{history[-1][show]:.4f}"})
    bar.close()
    return history
