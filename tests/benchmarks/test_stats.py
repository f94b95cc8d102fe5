"""Paired subject-level bootstrap: coverage on simulated data with a known difference."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.stats import (
    compare_methods,
    paired_bootstrap,
    per_subject_means,
    subject_summary,
    verdict,
)


def _dataset(rng: np.random.Generator, n_subj: int, true_diff: float):
    """Per-slice metrics of A and B; slices of one subject share a subject effect."""
    subjects, a, b = [], [], []
    for s in range(n_subj):
        n_sl = int(rng.integers(3, 9))
        base = rng.normal(0.8, 0.05)  # subject difficulty, common to both methods
        eff = true_diff + rng.normal(0.0, 0.02)  # subject-level effect: correlated slices
        noise = rng.normal(0.0, 0.005, size=n_sl)
        a.extend(base + eff + noise)
        b.extend(base + rng.normal(0.0, 0.002, size=n_sl))
        subjects.extend([f"s{s}"] * n_sl)
    return np.array(a), np.array(b), subjects


def test_per_subject_means_order_and_values():
    m, ids = per_subject_means([1.0, 3.0, 10.0, 2.0], ["b", "b", "a", "b"])
    assert ids == ["b", "a"]
    assert np.allclose(m, [2.0, 10.0])
    with pytest.raises(ValueError):
        per_subject_means([1.0, 2.0], ["a"])
    with pytest.raises(ValueError):
        per_subject_means([np.nan], ["a"])


def test_coverage_is_about_95_percent():
    rng = np.random.default_rng(1)
    true = 0.01
    trials, hits, slice_hits = 300, 0, 0
    for t in range(trials):
        a, b, subj = _dataset(rng, 30, true)
        ci = paired_bootstrap(a, b, subj, n_boot=800, seed=t)
        hits += ci.contains(true)
        # the naive slice-level bootstrap ignores the within-subject correlation
        naive = paired_bootstrap(a, b, np.arange(a.size), n_boot=800, seed=t)
        slice_hits += naive.contains(true)
    cover, naive_cover = hits / trials, slice_hits / trials
    print("subject-level coverage", cover, "slice-level", naive_cover)
    assert 0.90 <= cover <= 0.985
    assert naive_cover < cover - 0.1  # resampling slices would be over-confident here


def test_seeded_and_verdicts():
    rng = np.random.default_rng(0)
    a, b, subj = _dataset(rng, 20, 0.03)
    c1 = paired_bootstrap(a, b, subj, n_boot=500, seed=3)
    c2 = paired_bootstrap(a, b, subj, n_boot=500, seed=3)
    assert c1 == c2
    assert c1.n_subjects == 20 and c1.n_slices == a.size and c1.low < c1.mean < c1.high
    assert verdict(c1, "MSL", "TV").startswith("MSL beats TV")
    # the same numbers as an error metric (lower is better): B wins
    assert verdict(c1, "MSL", "TV", higher_is_better=False).startswith("TV beats MSL")
    same = paired_bootstrap(b + rng.normal(0, 0.01, b.size), b, subj, n_boot=500)
    assert same.contains(0.0)
    assert verdict(same, "A", "B").startswith("no measurable difference")
    with pytest.raises(ValueError):
        paired_bootstrap([1.0, 2.0], [1.0, 2.0], ["a", "a"])


def test_compare_methods_and_subject_summary():
    rng = np.random.default_rng(2)
    a, b, subj = _dataset(rng, 15, 0.05)
    noisy = a + rng.normal(0.0, 0.01, a.size)  # no systematic difference from MSL
    rows = compare_methods({"MSL": a, "TV": b, "noisy": noisy}, subj, "MSL", n_boot=500)
    assert [r["method"] for r in rows] == ["TV", "noisy"]
    assert rows[0]["verdict"].startswith("MSL beats TV") and rows[0]["ci_high"] < 0
    assert rows[1]["verdict"].startswith("no measurable difference")
    summ = subject_summary([1.0, 3.0, 5.0], ["x", "x", "y"])
    assert summ == {
        "mean": 3.5,
        "sd_subjects": pytest.approx(np.std([2.0, 5.0], ddof=1)),
        "n_subjects": 2,
        "n_slices": 3,
    }
    with pytest.raises(ValueError):
        compare_methods({"A": a}, subj, "B")
