"""Coil maps: loop-coil model, estimation from the ACS block, combined back-transforms."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import geometries as geo
from msl_recon.data.acquisition import coils, ct, mri
from msl_recon.errors import InputError
from operators import NUFFT
from operators.mri import centered_fft2


def _object(n: int) -> torch.Tensor:
    """Head-like complex object: textured ellipse with a smooth phase, shape (1, n, n)."""
    c = (np.arange(n) + 0.5) / n * 2 - 1
    yy, xx = np.meshgrid(c, c, indexing="ij")
    head = ((xx / 0.8) ** 2 + (yy / 0.68) ** 2 < 1) * 1.0
    inner = ((xx / 0.6) ** 2 + (yy / 0.5) ** 2 < 1) * 0.6
    mag = torch.tensor(head * (0.5 + 0.2 * np.cos(6 * xx) * np.sin(5 * yy)) + inner)
    ph = mri.random_phase((n, n), torch.Generator().manual_seed(1))[0].double()
    return (mag * torch.exp(1j * ph))[None]


def _agreement(est: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    """Per-pixel |<s_est, s_true>| / (|s_est| |s_true|) over the coil axis."""
    ip = (est.conj() * true).sum(-3).abs()
    return ip / (est.abs().pow(2).sum(-3).sqrt() * true.abs().pow(2).sum(-3).sqrt()).clamp_min(
        1e-12
    )


def _data(n: int = 64, n_coils: int = 8, seed: int = 4):
    x_f = _object(2 * n)
    maps_f = coils.loop_coil_maps((2 * n, 2 * n), n_coils, fov_mm=220.0, seed=seed)
    maps = coils.loop_coil_maps((n, n), n_coils, fov_mm=220.0, seed=seed)
    k = mri.fine_cartesian_kspace(maps_f * x_f[:, None])  # (1, C, n, n)
    support = ct.block_average(x_f.abs())[0] > 0.3
    return x_f, k, maps, support


def test_loop_maps_unit_rss_smooth_and_per_subject() -> None:
    m = coils.loop_coil_maps((64, 64), 12, fov_mm=220.0, seed=0)
    assert m.shape == (12, 64, 64) and m.dtype == torch.complex64
    assert torch.allclose(m.abs().pow(2).sum(0), torch.ones(64, 64), atol=1e-4)
    # a coil is brighter on its own side: the magnitude varies strongly across the FOV
    assert float(m.abs()[0].max() / m.abs()[0].min()) > 3.0
    c = (np.arange(64) + 0.5) / 64 * 2 - 1
    disc = torch.from_numpy(np.add.outer(c**2, c**2) < 0.9**2)[:, :-1]  # where the head can be
    assert float(m.diff(dim=-1).abs()[:, disc].max()) < 0.2  # smooth (3.4 mm pixels)
    other = coils.loop_coil_maps((64, 64), 12, fov_mm=220.0, seed=1)
    assert float(_agreement(m, other).mean()) < 0.9  # another subject, another array
    fine = coils.loop_coil_maps((128, 128), 12, fov_mm=220.0, seed=0)
    rel = (ct.block_average(fine) - m).norm() / m.norm()
    assert float(rel) < 0.02  # the same physical maps on any grid


def test_lowres_estimate_matches_true_maps() -> None:
    _, k, maps, support = _data()
    mask = geo.CartesianMask(shape=(64, 64), acceleration=4, center_fraction=0.25, seed=0)
    km = k * torch.from_numpy(mask.mask)
    cw = coils.acs_width(mask)
    assert cw >= 16
    est = coils.estimate_coil_maps(km[0], min(16, cw))
    agree = _agreement(est, maps.to(est.dtype))[support]
    assert float(agree.min()) > 0.9 and float(agree.mean()) > 0.97
    # batched input gives the same maps
    est_b = coils.estimate_coil_maps(km, min(16, cw))
    assert torch.allclose(est_b[0], est, atol=1e-5)


@pytest.mark.slow
def test_espirit_estimate_matches_true_maps() -> None:
    _, k, maps, support = _data()
    est = coils.estimate_coil_maps(k[0], 16, method="espirit")
    agree = _agreement(est, maps.to(est.dtype))[support]
    assert float(agree.min()) > 0.9


def test_radial_estimate_matches_true_maps() -> None:
    x_f, _, maps, support = _data(n=32)
    maps_f = coils.loop_coil_maps((64, 64), 8, fov_mm=220.0, seed=4)
    traj = geo.RadialTrajectory(n_spokes=32, n_samples=64)
    k = mri.fine_radial_kspace(maps_f * x_f[:, None], traj)
    est = coils.estimate_coil_maps(k, 12, trajectory=traj, image_shape=(32, 32))
    assert est.shape == (1, 8, 32, 32)
    agree = _agreement(est[0], maps.to(est.dtype))[support]
    assert float(agree.mean()) > 0.95 and float(np.quantile(agree.numpy(), 0.05)) > 0.9
    comb = coils.sense_combine_adjoint(k, NUFFT(traj, (32, 32), dcf="ramp"), est)
    assert comb.shape == (1, 32, 32)


def test_sense_combine_full_sampling_recovers_image() -> None:
    n = 32
    x = _object(n)
    maps = coils.loop_coil_maps((n, n), 6, fov_mm=220.0, seed=2).to(torch.complex128)
    k = centered_fft2(maps * x[:, None])
    comb = coils.sense_combine_adjoint(k, None, maps)
    assert torch.allclose(comb, x, atol=1e-5)
    rss = coils.rss_adjoint(k)
    assert torch.allclose(rss, x.abs(), atol=1e-5)


def test_sense_combine_undersampled_is_magnitude_input() -> None:
    x_f, k, _, support = _data()
    mask = geo.CartesianMask(shape=(64, 64), acceleration=4, center_fraction=0.25, seed=0)
    est = coils.estimate_coil_maps(k[0] * torch.from_numpy(mask.mask), 16)
    sparse = geo.CartesianMask(shape=(64, 64), acceleration=6, center_fraction=0.25, seed=0)
    comb = coils.sense_combine_adjoint(k, sparse, est)
    gt = ct.block_average(x_f.abs())
    full = coils.sense_combine_adjoint(k, None, est)
    err_full = float((full.abs() - gt)[0][support].norm() / gt[0][support].norm())
    err_us = float((comb.abs() - gt)[0][support].norm() / gt[0][support].norm())
    assert err_full < 0.08 and err_us > 2 * err_full  # aliasing from under-sampling


def test_acs_width() -> None:
    m = np.zeros((8, 16), bool)
    m[:, 6:11] = True
    m[:, 2] = True
    assert coils.acs_width(m) == 5
    assert coils.acs_width(np.zeros((8, 16), bool)) == 0


def test_bad_inputs() -> None:
    with pytest.raises(InputError):
        coils.estimate_coil_maps(torch.zeros(2, 8, 8), 4)  # not complex
    with pytest.raises(InputError):
        coils.estimate_coil_maps(torch.zeros(2, 8, 8, dtype=torch.complex64), 4, method="x")
    with pytest.raises(InputError):
        coils.loop_coil_maps((8, 8), 0, fov_mm=100.0)
