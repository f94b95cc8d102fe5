"""MRI sampling patterns: Cartesian masks and radial trajectories (geometries/_mri.py)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import geometries as geo
from geometries import GOLDEN_ANGLE, CartesianMask, RadialTrajectory, sampling_from_dict


# ------------------------------------------------------------------------------- CartesianMask
@pytest.mark.parametrize("pattern", ["random", "equispaced"])
@pytest.mark.parametrize(
    ("shape", "acceleration", "center_fraction"),
    [((64, 64), 4, 0.08), ((32, 96), 8, 0.04), ((48, 40), 2.5, 0.1), ((16, 128), 4, 0.1)],
)
def test_mask_hits_acceleration_and_center(
    shape: tuple[int, int], acceleration: float, center_fraction: float, pattern: str
) -> None:
    m = CartesianMask(
        shape=shape, acceleration=acceleration, center_fraction=center_fraction, pattern=pattern
    )
    w = shape[1]
    cols = m.columns
    assert cols.shape == (w,) and cols.dtype == bool
    assert int(cols.sum()) == round(w / acceleration)
    assert abs(m.achieved_acceleration - acceleration) <= acceleration**2 / w
    # the fully sampled centre block: round(W * cf) contiguous columns around W // 2
    n_center = round(w * center_fraction)
    sl = m.center_slice
    assert sl.stop - sl.start == n_center
    assert cols[sl].all()
    assert sl.start <= w // 2 < sl.stop
    # the 2D mask selects whole columns (phase encodes)
    mask = m.mask
    assert mask.shape == shape
    assert (mask == cols[None, :]).all()


def test_acceleration_wins_over_the_center_block() -> None:
    m = CartesianMask(shape=(32, 100), acceleration=10, center_fraction=0.2)
    assert int(m.columns.sum()) == 10  # R = 10 is met: the 20-column centre shrinks to 10
    assert m.achieved_acceleration == pytest.approx(10.0)
    assert m.columns[m.center_slice].all() and m.center_slice.stop - m.center_slice.start == 10
    assert m.columns[45:55].all()  # the most central columns
    # the Fig. 7 case: 1/16 of 128 columns with a 10 % centre is 8 columns, not 13
    m16 = CartesianMask(shape=(128, 128), acceleration=16, center_fraction=0.1)
    assert m16.achieved_acceleration == pytest.approx(16.0)


def test_full_mask_at_acceleration_one() -> None:
    m = CartesianMask(shape=(8, 12), acceleration=1, center_fraction=0.0)
    assert m.mask.all()
    assert m.achieved_acceleration == 1.0


@pytest.mark.parametrize("pattern", ["random", "equispaced"])
def test_mask_seed_determinism(pattern: str) -> None:
    a = CartesianMask(shape=(64, 64), acceleration=4, seed=7, pattern=pattern)
    b = CartesianMask(shape=(64, 64), acceleration=4, seed=7, pattern=pattern)
    assert np.array_equal(a.mask, b.mask)
    others = [
        CartesianMask(shape=(64, 64), acceleration=4, seed=s, pattern=pattern).columns
        for s in range(8, 12)
    ]
    assert any(not np.array_equal(a.columns, o) for o in others)


def test_random_masks_differ_between_seeds() -> None:
    a = CartesianMask(shape=(64, 128), acceleration=4, seed=0).columns
    b = CartesianMask(shape=(64, 128), acceleration=4, seed=1).columns
    assert not np.array_equal(a, b)


def test_equispaced_spacing() -> None:
    m = CartesianMask(shape=(32, 128), acceleration=4, center_fraction=0.0625, pattern="equispaced")
    n_center = round(128 * 0.0625)
    center = np.zeros(128, dtype=bool)
    center[m.center_slice] = True
    free = np.flatnonzero(~center)
    rest = round(128 / 4) - n_center
    picked = np.flatnonzero(m.columns & ~center)
    assert picked.size == rest
    pos = np.searchsorted(free, picked)  # positions among the free columns
    gaps = np.diff(pos)
    step = free.size / rest
    assert set(gaps.tolist()) <= {math.floor(step), math.ceil(step)}


def test_mask_roundtrip_json() -> None:
    m = CartesianMask(
        shape=(40, 48), acceleration=6, center_fraction=0.1, pattern="equispaced", seed=3
    )
    d = json.loads(json.dumps(m.to_dict()))
    assert d["type"] == "CartesianMask"
    m2 = CartesianMask.from_dict(d)
    assert m2 == m
    assert np.array_equal(m2.mask, m.mask)
    assert m2.fingerprint() == m.fingerprint()
    m3 = sampling_from_dict(d)
    assert isinstance(m3, CartesianMask) and m3 == m
    assert m.with_acceleration(8).fingerprint() != m.fingerprint()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"shape": (0, 8)},
        {"shape": (8,)},
        {"shape": (8, -2)},
        {"shape": (8, 8), "acceleration": 0.5},
        {"shape": (8, 8), "acceleration": "4"},
        {"shape": (8, 8), "center_fraction": 1.5},
        {"shape": (8, 8), "center_fraction": -0.1},
        {"shape": (8, 8), "pattern": "spiral"},
    ],
)
def test_mask_invalid_arguments(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        CartesianMask(**kwargs)


# ------------------------------------------------------------------------------- RadialTrajectory
def test_radial_uniform_angles_and_ktraj() -> None:
    t = RadialTrajectory(n_spokes=12, n_samples=32)
    np.testing.assert_allclose(t.spoke_angles, np.arange(12) * math.pi / 12)
    k = t.ktraj
    assert k.shape == (2, 12 * 32) and k.dtype == np.float64
    assert t.n_points == 12 * 32
    assert k.min() >= -math.pi - 1e-12 and k.max() < math.pi
    radius = np.hypot(k[0], k[1]).reshape(12, 32)
    np.testing.assert_allclose(radius.max(), math.pi)
    # every spoke passes through k = 0 (sample n_samples // 2) with spacing 2π / n_samples
    np.testing.assert_allclose(radius[:, 16], 0.0, atol=1e-15)
    np.testing.assert_allclose(np.diff(radius[0, 16:]), 2 * math.pi / 32)
    # the first spoke (angle 0) runs along the row axis
    np.testing.assert_allclose(k[1, :32], 0.0, atol=1e-15)


def test_radial_golden_angles() -> None:
    t = RadialTrajectory(n_spokes=20, n_samples=8, ordering="golden", rotation=0.3)
    a = t.spoke_angles
    assert a[0] == pytest.approx(0.3)
    steps = np.mod(np.diff(a), 2 * math.pi)
    np.testing.assert_allclose(steps, GOLDEN_ANGLE)
    assert GOLDEN_ANGLE == pytest.approx(math.radians(111.246), abs=1e-4)
    # golden angles never repeat a spoke direction
    assert np.unique(np.round(np.mod(a, math.pi), 9)).size == 20


def test_radial_roundtrip_and_with_spokes() -> None:
    t = RadialTrajectory(n_spokes=10, n_samples=64, ordering="golden", rotation=0.1)
    d = json.loads(json.dumps(t.to_dict()))
    t2 = sampling_from_dict(d)
    assert isinstance(t2, RadialTrajectory) and t2 == t
    np.testing.assert_array_equal(t2.ktraj, t.ktraj)
    t3 = t.with_spokes(5)
    assert t3.n_spokes == 5 and t3.ktraj.shape == (2, 5 * 64)
    # golden ordering: a prefix of the spokes is the smaller trajectory
    np.testing.assert_allclose(t3.ktraj, t.ktraj[:, : 5 * 64])


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n_spokes": 0, "n_samples": 8},
        {"n_spokes": 4, "n_samples": -1},
        {"n_spokes": 4.5, "n_samples": 8},
        {"n_spokes": 4, "n_samples": 8, "ordering": "spiral"},
    ],
)
def test_radial_invalid_arguments(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        RadialTrajectory(**kwargs)


def test_sampling_from_dict_unknown_type() -> None:
    with pytest.raises(ValueError, match="unknown sampling type"):
        sampling_from_dict({"type": "Spiral"})
    assert geo.sampling_from_dict is sampling_from_dict
