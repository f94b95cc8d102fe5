"""CT acquisition: fine-grid projection without inverse crime, dose noise statistics."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import geometries as geo
from msl_recon.data.acquisition import ct
from msl_recon.data.simulate import MU_PER_UNIT as SIM_MU
from msl_recon.errors import InputError
from operators import RayTransform


def _disk(n: int) -> torch.Tensor:
    yy, xx = np.mgrid[:n, :n] - (n - 1) / 2
    img = 0.33 * ((xx / (0.42 * n)) ** 2 + (yy / (0.36 * n)) ** 2 < 1)
    img = img + 0.3 * (((xx - 0.1 * n) / (0.08 * n)) ** 2 + (yy / (0.12 * n)) ** 2 < 1)
    return torch.tensor(img, dtype=torch.float32)[None]


@pytest.fixture(scope="module")
def geom() -> geo.FanBeam2D:
    return geo.preset("msl-paper", image_size=64, n_views=24)


def test_units_match_simulate() -> None:
    assert ct.MU_PER_UNIT == pytest.approx(SIM_MU)


def test_fine_geometry_same_physical_scan(geom: geo.FanBeam2D) -> None:
    f = ct.fine_geometry(geom, 2)
    assert f.image_size == 128 and f.det_count == 2 * geom.det_count
    assert f.image_size * f.pixel_size == pytest.approx(geom.image_size * geom.pixel_size)
    assert f.det_count * f.det_spacing == pytest.approx(geom.det_count * geom.det_spacing)
    assert f.angles == geom.angles and f.source_origin == geom.source_origin


def test_no_inverse_crime(geom: geo.FanBeam2D) -> None:
    fine = _disk(128)
    sino = ct.simulate_ct_sinogram(fine, geom, None)
    ref = RayTransform(geom)(ct.block_average(fine))
    assert sino.shape == ref.shape == (1, *geom.sino_shape)
    rel = float((sino - ref).norm() / ref.norm())
    assert 1e-3 < rel < 0.05  # far above float rounding (~1e-6), but close
    # factor 1 and no noise is exactly the same-grid projection
    same = ct.simulate_ct_sinogram(ct.block_average(fine), geom, None, factor=1)
    assert float((same - ref).abs().max() / ref.abs().max()) < 1e-4


def test_poisson_statistics(geom: geo.FanBeam2D) -> None:
    """Over repeated draws, var of the log data ≈ 1 / expected counts."""
    dose = ct.CTDose(i0=2.0e4, sigma_e=0.0)
    fine = _disk(128).repeat(400, 1, 1)
    gen = torch.Generator().manual_seed(1)
    noisy = ct.simulate_ct_sinogram(fine, geom, dose, gen).double() * ct.MU_PER_UNIT
    clean = ct.simulate_ct_sinogram(fine[:1], geom, None).double()[0] * ct.MU_PER_UNIT
    counts = dose.i0 * torch.exp(-clean)
    sel = counts > 1000
    ratio = noisy.var(0)[sel] * counts[sel]
    assert float(ratio.mean()) == pytest.approx(1.0, abs=0.05)
    assert float((noisy.mean(0) - clean)[sel].abs().max()) < 5 * math.sqrt(1 / 1000 / 400) + 2e-3


def test_electronic_noise_adds_variance() -> None:
    dose = ct.CTDose(i0=1.0e3, sigma_e=20.0)
    t = torch.full((20000,), 0.5, dtype=torch.float64)
    out = ct.poisson_log_noise(t, dose, torch.Generator().manual_seed(0))
    lam = 500.0
    expected = (lam + 20.0**2) / lam**2  # delta method
    assert float(out.var()) == pytest.approx(expected, rel=0.08)


def test_zero_counts_are_floored() -> None:
    dose = ct.CTDose(i0=100.0, min_count=1.0)
    out = ct.poisson_log_noise(torch.zeros(50, dtype=torch.float64), dose, torch.Generator())
    assert torch.allclose(out, torch.full_like(out, math.log(100.0)))


def test_dose_levels() -> None:
    assert ct.dose_level("routine").i0 == pytest.approx(1e5)
    assert ct.dose_level("low").i0 == 4096
    assert ct.dose_level(None) is None
    with pytest.raises(InputError):
        ct.dose_level("ultra")
    with pytest.raises(InputError):
        ct.CTDose(i0=-1.0)


def test_low_dose_noisier(geom: geo.FanBeam2D) -> None:
    fine = _disk(128).repeat(8, 1, 1)
    clean = ct.simulate_ct_sinogram(fine[:1], geom, None)
    err = {}
    for d in ("routine", "low"):
        s = ct.simulate_ct_sinogram(fine, geom, d, torch.Generator().manual_seed(0))
        err[d] = float((s - clean).std())
    # noise std scales like 1/sqrt(I0): ratio ≈ sqrt(1e5 / 4096) ≈ 4.9
    assert err["low"] / err["routine"] == pytest.approx(math.sqrt(1e5 / 4096), rel=0.15)


def test_shape_validation(geom: geo.FanBeam2D) -> None:
    with pytest.raises(InputError):
        ct.simulate_ct_sinogram(torch.zeros(1, 64, 64), geom, None)
    with pytest.raises(InputError):
        ct.simulate_ct_sinogram(torch.zeros(1, 128, 128), geom, "routine")  # no generator


def test_block_average_and_binning() -> None:
    x = torch.arange(16.0).reshape(1, 4, 4)
    assert torch.equal(ct.block_average(x), torch.tensor([[[2.5, 4.5], [10.5, 12.5]]]))
    assert torch.equal(
        ct.bin_detector(torch.tensor([[1.0, 3.0, 5.0, 7.0]])), torch.tensor([[2.0, 6.0]])
    )
