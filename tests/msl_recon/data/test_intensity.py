"""CT HU window and MR normalisation (docs/architecture.md, Conventions)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from msl_recon.data.intensity import HU_MAX, HU_MIN, hu_to_unit, normalize_mr, unit_to_hu


def test_hu_to_unit_anchor_values_numpy() -> None:
    hu = np.array([-1000.0, 0.0, 1000.0, 2125.0], dtype=np.float64)
    u = hu_to_unit(hu)
    np.testing.assert_allclose(u, [0.0, 0.32, 0.64, 1.0], atol=1e-12)
    assert u.dtype == np.float64
    assert HU_MIN == -1000.0
    assert HU_MAX == pytest.approx(2125.0)


def test_hu_to_unit_clips_outside_window() -> None:
    u = hu_to_unit(np.array([-3000.0, -1001.0, 2126.0, 5000.0], dtype=np.float32))
    np.testing.assert_array_equal(u, np.array([0.0, 0.0, 1.0, 1.0], dtype=np.float32))
    assert u.dtype == np.float32


def test_hu_to_unit_integer_input_becomes_float() -> None:
    u = hu_to_unit(np.array([0, 2125], dtype=np.int16))
    assert np.issubdtype(u.dtype, np.floating)
    np.testing.assert_allclose(u, [0.32, 1.0], atol=1e-6)


def test_hu_to_unit_torch_matches_numpy(device: torch.device, dtype: torch.dtype) -> None:
    hu = np.linspace(-1500.0, 2600.0, 101)
    t = torch.tensor(hu, dtype=dtype, device=device)
    out = hu_to_unit(t)
    assert isinstance(out, torch.Tensor)
    assert out.dtype == dtype and out.device == device
    np.testing.assert_allclose(out.cpu().numpy(), hu_to_unit(hu), atol=1e-6)


def test_unit_to_hu_inverts_on_window(rng: np.random.Generator) -> None:
    hu = rng.uniform(-1000.0, 2125.0, size=1000)
    np.testing.assert_allclose(unit_to_hu(hu_to_unit(hu)), hu, atol=1e-9)
    np.testing.assert_allclose(unit_to_hu(np.array([0.0, 1.0])), [-1000.0, 2125.0], atol=1e-9)
    t = unit_to_hu(torch.tensor([0.32], dtype=torch.float64))
    assert t.item() == pytest.approx(0.0, abs=1e-9)


def test_normalize_mr_percentiles(rng: np.random.Generator) -> None:
    vol = rng.gamma(2.0, 100.0, size=(4, 50, 50)).astype(np.float32)
    out = normalize_mr(vol)
    assert out.shape == vol.shape and out.dtype == np.float32
    assert out.min() == 0.0 and out.max() == 1.0
    # 0.5 % of the voxels at or below P0.5 and 0.5 % at or above P99.5
    assert np.mean(out == 0.0) == pytest.approx(0.005, abs=0.001)
    assert np.mean(out == 1.0) == pytest.approx(0.005, abs=0.001)
    lo, hi = np.percentile(vol, [0.5, 99.5])
    mid = vol[(vol > lo) & (vol < hi)][:10]
    np.testing.assert_allclose(
        normalize_mr(vol)[(vol > lo) & (vol < hi)][:10], (mid - lo) / (hi - lo), rtol=1e-5
    )


def test_normalize_mr_custom_percentiles_and_minmax(rng: np.random.Generator) -> None:
    vol = rng.normal(size=(20, 20))
    out = normalize_mr(vol, low=0.0, high=100.0)
    np.testing.assert_allclose(out, (vol - vol.min()) / (vol.max() - vol.min()), atol=1e-12)


def test_normalize_mr_torch_matches_numpy(rng: np.random.Generator, device: torch.device) -> None:
    vol = rng.gamma(2.0, 50.0, size=(3, 33, 31))
    ref = normalize_mr(vol, 1.0, 99.0)
    out = normalize_mr(torch.tensor(vol, device=device), 1.0, 99.0)
    assert out.device == device
    np.testing.assert_allclose(out.cpu().numpy(), ref, atol=1e-10)


def test_normalize_mr_complex_and_constant(rng: np.random.Generator) -> None:
    z = rng.normal(size=(16, 16)) + 1j * rng.normal(size=(16, 16))
    np.testing.assert_allclose(normalize_mr(z), normalize_mr(np.abs(z)))
    np.testing.assert_array_equal(normalize_mr(np.full((4, 4), 3.0)), np.zeros((4, 4)))
    assert torch.count_nonzero(normalize_mr(torch.full((4, 4), 3.0))) == 0


@pytest.mark.parametrize(("low", "high"), [(50.0, 50.0), (-1.0, 99.0), (1.0, 101.0)])
def test_normalize_mr_rejects_bad_percentiles(low: float, high: float) -> None:
    with pytest.raises(ValueError, match="normalize_mr"):
        normalize_mr(np.ones(10), low, high)
