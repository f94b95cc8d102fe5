"""Paired comparisons of two methods over test subjects: bootstrap confidence intervals.

Slices of one subject are not independent samples (they share anatomy, scanner and noise), so
the unit of resampling is the **subject**. For methods A and B evaluated on the same slices:

1. per slice, the difference ``d = metric_A − metric_B``;
2. per subject, the mean of its slices' differences (:func:`per_subject_means`);
3. the statistic is the mean over subjects of the per-subject differences;
4. its 95 % confidence interval is the percentile interval of the statistic over ``B`` bootstrap
   resamples of the subjects (with replacement), from a seeded generator
   (:func:`paired_bootstrap`).

:func:`verdict` words the result: "A beats B" only when the interval excludes zero on the
favourable side, "no measurable difference" when it contains zero.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "PairedCI",
    "compare_methods",
    "paired_bootstrap",
    "per_subject_means",
    "subject_summary",
    "verdict",
]


def per_subject_means(
    values: Sequence[float] | np.ndarray, subjects: Sequence[Hashable] | np.ndarray
) -> tuple[np.ndarray, list[Hashable]]:
    """Mean of per-slice values within each subject.

    Parameters
    ----------
    values : array-like, shape ``(S,)``
        One value per slice (a metric, or a paired difference of metrics).
    subjects : array-like, shape ``(S,)``
        The subject of each slice (any hashable id).

    Returns
    -------
    means : ndarray, float64, shape ``(n_subjects,)``
        Per-subject means, in order of first appearance.
    ids : list
        The subject ids, same order.

    Raises
    ------
    ValueError
        If the lengths differ, there are no slices, or a value is not finite.
    """
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    subj = list(np.asarray(subjects, dtype=object).reshape(-1))
    if v.size != len(subj):
        raise ValueError(f"got {v.size} values for {len(subj)} subject labels")
    if v.size == 0:
        raise ValueError("no slices")
    if not np.all(np.isfinite(v)):
        raise ValueError("per-slice values must be finite")
    ids: list[Hashable] = []
    index: dict[Hashable, int] = {}
    for s in subj:
        if s not in index:
            index[s] = len(ids)
            ids.append(s)
    codes = np.array([index[s] for s in subj])
    sums = np.bincount(codes, weights=v, minlength=len(ids))
    counts = np.bincount(codes, minlength=len(ids))
    return sums / counts, ids


@dataclass(frozen=True)
class PairedCI:
    """A paired bootstrap result (metric of A minus metric of B, over subjects).

    Attributes
    ----------
    mean : float
        Mean over subjects of the per-subject mean difference.
    low, high : float
        Percentile confidence interval.
    level : float
        Confidence level (0.95).
    n_subjects, n_slices, n_boot : int
    """

    mean: float
    low: float
    high: float
    level: float
    n_subjects: int
    n_slices: int
    n_boot: int

    def contains(self, value: float) -> bool:
        """Whether ``value`` lies in the closed interval."""
        return self.low <= value <= self.high


def paired_bootstrap(
    metric_a: Sequence[float] | np.ndarray,
    metric_b: Sequence[float] | np.ndarray,
    subjects: Sequence[Hashable] | np.ndarray,
    *,
    n_boot: int = 10_000,
    level: float = 0.95,
    seed: int = 0,
) -> PairedCI:
    """Paired bootstrap CI of ``mean(metric_a − metric_b)`` resampling subjects.

    Parameters
    ----------
    metric_a, metric_b : array-like, shape ``(S,)``
        Per-slice metric of methods A and B on the same slices (same order).
    subjects : array-like, shape ``(S,)``
        Subject id of each slice.
    n_boot : int
        Bootstrap resamples.
    level : float
        Confidence level in (0, 1).
    seed : int
        Seed of the resampling (``numpy.random.default_rng``).

    Returns
    -------
    PairedCI

    Raises
    ------
    ValueError
        Mismatched lengths, fewer than 2 subjects, ``level`` outside (0, 1), ``n_boot < 1``.
    """
    a = np.asarray(metric_a, dtype=np.float64).reshape(-1)
    b = np.asarray(metric_b, dtype=np.float64).reshape(-1)
    if a.shape != b.shape:
        raise ValueError(f"metric_a has {a.size} slices, metric_b {b.size}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be ≥ 1, got {n_boot}")
    d, _ = per_subject_means(a - b, subjects)
    n = d.size
    if n < 2:
        raise ValueError("a bootstrap over subjects needs at least 2 subjects")
    rng = np.random.default_rng(seed)
    stats = np.empty(n_boot)
    chunk = max(1, 2_000_000 // n)
    for i in range(0, n_boot, chunk):
        m = min(chunk, n_boot - i)
        stats[i : i + m] = d[rng.integers(0, n, size=(m, n))].mean(axis=1)
    alpha = (1 - level) / 2
    low, high = np.quantile(stats, [alpha, 1 - alpha])
    return PairedCI(
        mean=float(d.mean()),
        low=float(low),
        high=float(high),
        level=level,
        n_subjects=n,
        n_slices=a.size,
        n_boot=n_boot,
    )


def verdict(ci: PairedCI, name_a: str, name_b: str, *, higher_is_better: bool = True) -> str:
    """Wording of a paired comparison.

    Parameters
    ----------
    ci : PairedCI
        Result of :func:`paired_bootstrap` for ``A − B``.
    name_a, name_b : str
        Method names.
    higher_is_better : bool
        ``True`` for SSIM / PSNR / MI, ``False`` for MAE / RMSE.

    Returns
    -------
    str
        ``"<A> beats <B>"``, ``"<B> beats <A>"`` or ``"no measurable difference"``, followed by
        the difference and its interval, e.g.
        ``"A beats B (Δ = 0.012, 95% CI [0.004, 0.020], 12 subjects)"``.
    """
    sign = 1.0 if higher_is_better else -1.0
    lo, hi = sorted((sign * ci.low, sign * ci.high))
    if lo > 0:
        head = f"{name_a} beats {name_b}"
    elif hi < 0:
        head = f"{name_b} beats {name_a}"
    else:
        head = "no measurable difference"
    pct = round(100 * ci.level)
    return (
        f"{head} (Δ = {ci.mean:.4g}, {pct}% CI [{ci.low:.4g}, {ci.high:.4g}], "
        f"{ci.n_subjects} subjects)"
    )


def subject_summary(
    values: Sequence[float] | np.ndarray, subjects: Sequence[Hashable] | np.ndarray
) -> dict[str, float]:
    """Mean and spread of a per-slice metric with subjects as the unit.

    Returns
    -------
    dict
        ``mean`` (mean of per-subject means), ``sd_subjects`` (their standard deviation,
        ddof = 1; 0 for one subject), ``n_subjects``, ``n_slices``.
    """
    m, _ = per_subject_means(values, subjects)
    return {
        "mean": float(m.mean()),
        "sd_subjects": float(m.std(ddof=1)) if m.size > 1 else 0.0,
        "n_subjects": int(m.size),
        "n_slices": int(np.asarray(values).size),
    }


def compare_methods(
    per_slice: Mapping[str, Sequence[float] | np.ndarray],
    subjects: Sequence[Hashable] | np.ndarray,
    reference: str,
    *,
    higher_is_better: bool = True,
    n_boot: int = 10_000,
    level: float = 0.95,
    seed: int = 0,
) -> list[dict[str, object]]:
    """Every method against ``reference`` on the same slices: one row per other method.

    Parameters
    ----------
    per_slice : mapping of str -> array-like ``(S,)``
        Method name -> per-slice metric, all on the same slices in the same order.
    subjects : array-like ``(S,)``
        Subject of each slice.
    reference : str
        The method compared against (e.g. ``"MSL"``).
    higher_is_better, n_boot, level, seed
        See :func:`paired_bootstrap` and :func:`verdict` (the same seed for every pair).

    Returns
    -------
    list of dict
        ``method``, ``reference``, ``diff`` (method − reference), ``ci_low``, ``ci_high``,
        ``n_subjects``, ``verdict``.
    """
    if reference not in per_slice:
        raise ValueError(f"reference {reference!r} is not among {sorted(per_slice)}")
    rows: list[dict[str, object]] = []
    for name, vals in per_slice.items():
        if name == reference:
            continue
        ci = paired_bootstrap(
            vals, per_slice[reference], subjects, n_boot=n_boot, level=level, seed=seed
        )
        rows.append(
            {
                "method": name,
                "reference": reference,
                "diff": ci.mean,
                "ci_low": ci.low,
                "ci_high": ci.high,
                "n_subjects": ci.n_subjects,
                "verdict": verdict(ci, name, reference, higher_is_better=higher_is_better),
            }
        )
    return rows
