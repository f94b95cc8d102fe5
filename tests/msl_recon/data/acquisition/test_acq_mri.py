"""MRI acquisition: fine-grid k-space without inverse crime, phase, coil noise statistics."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import geometries as geo
from msl_recon.data.acquisition import ct, mri
from msl_recon.errors import InputError
from operators import NUFFT
from operators.mri import centered_fft2


def _blob(n: int, *, sigma: float, shift: tuple[float, float] = (3.3, -5.1)) -> torch.Tensor:
    """Smooth (nearly band-limited) Gaussian blob on an n² grid; sigma and shift in units of n."""
    c = (np.arange(n) + 0.5) / n * 64  # same physical coordinates for any n
    yy, xx = np.meshgrid(c, c, indexing="ij")
    g = np.exp(-((yy - 32 - shift[0]) ** 2 + (xx - 32 - shift[1]) ** 2) / (2 * sigma**2))
    return torch.tensor(g, dtype=torch.float64)[None]


def _ellipse(n: int) -> torch.Tensor:
    c = (np.arange(n) + 0.5) / n * 2 - 1
    yy, xx = np.meshgrid(c, c, indexing="ij")
    return torch.tensor(((xx / 0.8) ** 2 + (yy / 0.65) ** 2 < 1) * 1.0, dtype=torch.float64)[None]


def test_constant_image_keeps_fft_convention() -> None:
    k = mri.fine_cartesian_kspace(torch.ones(1, 64, 64, dtype=torch.float64))
    ref = centered_fft2(torch.ones(1, 32, 32, dtype=torch.float64))
    assert torch.allclose(k, ref, atol=1e-10)


def test_cartesian_matches_coarse_fft_for_smooth_object() -> None:
    """The half-pixel ramp and 1/factor scale make a smooth object agree to < 0.5 %."""
    fine = _blob(128, sigma=4.0)
    k = mri.fine_cartesian_kspace(fine)
    ref = centered_fft2(ct.block_average(fine))
    assert float((k - ref).norm() / ref.norm()) < 5e-3


def test_cartesian_no_inverse_crime() -> None:
    fine = _ellipse(128) * torch.exp(
        1j * mri.random_phase((128, 128), torch.Generator().manual_seed(0)).double()
    )
    k = mri.fine_cartesian_kspace(fine)
    ref = centered_fft2(ct.block_average(fine))
    rel = float((k - ref).norm() / ref.norm())
    assert 1e-3 < rel < 0.08  # sharp edges: truncation of the true spectrum vs the pixel average


def test_radial_matches_coarse_nufft() -> None:
    traj = geo.RadialTrajectory(n_spokes=16, n_samples=64)
    fine = _blob(128, sigma=4.0).to(torch.complex128)
    k = mri.fine_radial_kspace(fine, traj)
    ref = NUFFT(traj, (64, 64))(ct.block_average(fine))
    assert k.shape == ref.shape == (1, 16 * 64)
    assert float((k - ref).norm() / ref.norm()) < 5e-3
    fine = _ellipse(128).to(torch.complex128)
    k = mri.fine_radial_kspace(fine, traj)
    ref = NUFFT(traj, (64, 64))(ct.block_average(fine))
    assert 1e-3 < float((k - ref).norm() / ref.norm()) < 0.05


def test_random_phase_seeded_smooth_and_grid_independent() -> None:
    a = mri.random_phase((64, 64), torch.Generator().manual_seed(5), batch=2)
    b = mri.random_phase((64, 64), torch.Generator().manual_seed(5), batch=2)
    assert torch.equal(a, b)
    assert not torch.allclose(a[0], a[1])
    assert float(a.max() - a.min()) > 1.0  # a real phase variation, not a constant
    assert float(a.diff(dim=-1).abs().max()) < 0.5  # smooth: < 0.5 rad per pixel
    fine = mri.random_phase((128, 128), torch.Generator().manual_seed(5), batch=2)
    assert float((ct.block_average(fine) - a).abs().max()) < 0.02


def test_noise_sigma_definition() -> None:
    m = 2.0 * _ellipse(64)
    assert float(mri.noise_sigma(m, 40.0)[0]) == pytest.approx(2.0 / 40.0)
    with pytest.raises(InputError):
        mri.noise_sigma(m, 0.0)


def test_white_coil_noise_statistics() -> None:
    k = torch.zeros(4, 6, 32, 32, dtype=torch.complex64)
    out = mri.add_coil_noise(
        k, torch.tensor([0.5, 0.5, 1.0, 1.0]), torch.Generator().manual_seed(0)
    )
    p = out.abs().pow(2).double()
    assert float(p[:2].mean()) == pytest.approx(0.25, rel=0.03)
    assert float(p[2:].mean()) == pytest.approx(1.0, rel=0.03)
    assert float(out.real[2:].double().var()) == pytest.approx(0.5, rel=0.04)
    per_coil = p[2:].mean(dim=(0, 2, 3))
    assert torch.allclose(per_coil, torch.ones(6, dtype=torch.float64), rtol=0.06)


def test_correlated_coil_noise_covariance() -> None:
    psi = mri.coil_noise_covariance(8, 0.3, torch.Generator().manual_seed(2))
    assert torch.allclose(psi, psi.conj().T)
    assert torch.allclose(psi.diagonal().real, torch.ones(8, dtype=torch.float64))
    assert float(torch.linalg.eigvalsh(psi).min()) > 0
    assert abs(float(psi[0, 1].abs())) > 0.2
    k = torch.zeros(2, 8, 64, 64, dtype=torch.complex128)
    sigma = 0.7
    n = mri.add_coil_noise(k, sigma, torch.Generator().manual_seed(3), covariance=psi)
    z = n.permute(1, 0, 2, 3).reshape(8, -1)
    emp = z @ z.conj().T / z.shape[1]
    assert float((emp - sigma**2 * psi).abs().max()) < 0.03


def test_support_keeps_unsampled_zero() -> None:
    k = torch.zeros(1, 2, 16, 16, dtype=torch.complex64)
    mask = torch.zeros(16, 16, dtype=torch.bool)
    mask[:, ::4] = True
    out = mri.add_coil_noise(k, 1.0, torch.Generator().manual_seed(0), support=mask)
    assert torch.count_nonzero(out[..., ~mask]) == 0
    assert torch.count_nonzero(out[..., mask]) == out[..., mask].numel()


def test_bad_covariance_shape() -> None:
    with pytest.raises(InputError):
        mri.add_coil_noise(
            torch.zeros(1, 3, 4, 4, dtype=torch.complex64), 1.0, torch.Generator(), torch.eye(2)
        )
    with pytest.raises(InputError):
        mri.coil_noise_covariance(4, 1.0)


def test_phase_scale_is_plausible() -> None:
    """The default draw spans more than π over the image (a magnitude-only solver is needed)."""
    ph = mri.random_phase((64, 64), torch.Generator().manual_seed(0), batch=8)
    spans = (ph.flatten(1).amax(1) - ph.flatten(1).amin(1)).numpy()
    assert np.median(spans) > math.pi


def test_simulate_mri_kspace_cartesian_noise_level_and_mask() -> None:
    from msl_recon.data.acquisition import coils

    mag = 2.0 * _ellipse(64).repeat(2, 1, 1).float()
    maps = coils.loop_coil_maps((64, 64), 4, fov_mm=220.0, seed=0)
    mask = geo.CartesianMask(shape=(32, 32), acceleration=4, center_fraction=0.2, seed=0)
    ph = mri.random_phase((64, 64), torch.Generator().manual_seed(0), batch=2)
    clean = mri.simulate_mri_kspace(
        mag, mask, generator=torch.Generator(), maps_fine=maps, phase_fine=ph
    )
    noisy = mri.simulate_mri_kspace(
        mag,
        mask,
        generator=torch.Generator().manual_seed(1),
        maps_fine=maps,
        phase_fine=ph,
        snr=20.0,
    )
    assert clean.shape == (2, 4, 32, 32) and clean.dtype == torch.complex64
    m = torch.from_numpy(mask.mask)
    assert torch.count_nonzero(noisy[..., ~m]) == 0
    sigma = float(mri.noise_sigma(ct.block_average(mag.double()), 20.0)[0])
    emp = float((noisy - clean)[..., m].abs().pow(2).mean().sqrt())
    assert emp == pytest.approx(sigma, rel=0.05)
    # fully sampled: noise-free coil combination with the true maps gives the target magnitude
    full = mri.simulate_mri_kspace(
        mag, np.ones((32, 32), bool), generator=torch.Generator(), maps_fine=maps, phase_fine=ph
    )
    comb = coils.sense_combine_adjoint(full, None, coils.loop_coil_maps((32, 32), 4, fov_mm=220.0))
    gt = ct.block_average(mag.double())
    assert float((comb.abs() - gt).norm() / gt.norm()) < 0.1


@pytest.mark.parametrize(("n", "factor"), [(16, 2), (10, 2), (7, 2), (8, 3)])
def test_polyphase_equals_cropped_fine_spectrum(n: int, factor: int) -> None:
    """The fast central-block FFT equals shifting and cropping the full fine spectrum."""
    g = torch.Generator().manual_seed(n)
    x = torch.randn(2, 3, factor * n, factor * n, generator=g, dtype=torch.float64)
    x = torch.complex(x, torch.randn(x.shape, generator=g, dtype=torch.float64))
    fast = mri.fine_cartesian_kspace(x, factor)
    nf = factor * n
    full = centered_fft2(x)
    r0 = nf // 2 - n // 2
    crop = full[..., r0 : r0 + n, r0 : r0 + n]
    kf = (torch.arange(n, dtype=torch.float64) - n // 2) * (2 * math.pi / nf)
    ramp = torch.exp(0.5j * (factor - 1) * (kf[:, None] + kf[None, :]))
    assert torch.allclose(fast, crop * ramp / factor, atol=1e-12)


def test_maps_inside_polyphase_equal_product() -> None:
    from msl_recon.data.acquisition import coils

    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 32, 32, generator=g).to(torch.complex64)
    maps = coils.loop_coil_maps((32, 32), 3, fov_mm=220.0, seed=0)
    fused = mri.fine_cartesian_kspace(x, 2, maps=maps)
    ref = mri.fine_cartesian_kspace(x[:, None] * maps, 2)
    assert fused.shape == (2, 3, 16, 16)
    assert torch.allclose(fused, ref, atol=1e-5)


def test_simulate_mri_kspace_radial() -> None:
    from msl_recon.data.acquisition import coils

    traj = geo.RadialTrajectory(n_spokes=16, n_samples=32)
    mag = _ellipse(32).float()
    maps = coils.loop_coil_maps((32, 32), 3, fov_mm=220.0, seed=0)
    g = torch.Generator().manual_seed(0)
    clean = mri.simulate_mri_kspace(mag, traj, generator=g, maps_fine=maps)
    noisy = mri.simulate_mri_kspace(mag, traj, generator=g, maps_fine=maps, snr=10.0)
    assert clean.shape == (1, 3, 16 * 32)
    ref = mri.fine_radial_kspace(mag.to(torch.complex64)[:, None] * maps, traj)
    assert torch.allclose(clean, ref, atol=1e-5)
    sigma = float(mri.noise_sigma(ct.block_average(mag.double()), 10.0)[0])
    assert float((noisy - clean).abs().pow(2).mean().sqrt()) == pytest.approx(sigma, rel=0.1)


def _column_masks(n: int, b: int) -> np.ndarray:
    return np.stack(
        [
            geo.CartesianMask(shape=(n, n), acceleration=4, center_fraction=0.2, seed=s).mask
            for s in range(b)
        ]
    )


@pytest.mark.parametrize(("n", "factor"), [(16, 2), (7, 2), (10, 3), (9, 3)])
@pytest.mark.parametrize("coil_maps", ["none", "shared", "per-slice"])
def test_pruned_column_kspace_equals_masked_reference(n: int, factor: int, coil_maps: str) -> None:
    """The pruned column FFT (per-slice masks) equals ``fine_cartesian_kspace · mask``."""
    from msl_recon.data.acquisition import coils

    g = torch.Generator().manual_seed(n + factor)
    nf = factor * n
    mag = torch.rand(3, nf, nf, generator=g)
    ph = mri.random_phase((nf, nf), g, batch=3)
    maps = None
    if coil_maps != "none":
        maps = coils.loop_coil_maps((nf, nf), 4, fov_mm=220.0, seed=0).to(torch.complex64)
        if coil_maps == "per-slice":
            maps = maps * torch.exp(1j * torch.rand(3, 1, 1, 1, generator=g))
    masks = _column_masks(n, 3)
    k = mri.simulate_mri_kspace(
        mag, masks, generator=g, maps_fine=maps, phase_fine=ph, factor=factor
    )
    x = torch.polar(mag.double(), ph.double())
    if maps is None:
        ref = mri.fine_cartesian_kspace(x[:, None], factor)
    else:
        ref = mri.fine_cartesian_kspace(x, factor, maps=maps.to(torch.complex128))
    ref = ref * torch.from_numpy(masks)[:, None]
    assert k.shape == ref.shape and k.dtype == torch.complex64
    assert float((k - ref).norm() / ref.norm()) < 1e-5
    assert torch.count_nonzero(k[..., ~torch.from_numpy(masks)[:, None].expand_as(k)]) == 0
    cols = [torch.from_numpy(np.flatnonzero(mk[0])) for mk in masks]
    parts = mri.fine_cartesian_columns(torch.polar(mag, ph), cols, factor, maps=maps)
    for b in range(3):
        want = ref[b][..., cols[b]]
        assert float((parts[b] - want).norm() / want.norm()) < 1e-5


def test_non_column_mask_falls_back_to_full_fft() -> None:
    g = torch.Generator().manual_seed(0)
    mag = torch.rand(2, 32, 32, generator=g)
    mask = torch.rand(2, 16, 16, generator=g).numpy() < 0.4  # scattered points, not columns
    k = mri.simulate_mri_kspace(mag, mask, generator=g)
    ref = mri.fine_cartesian_kspace(mag.double()[:, None]) * torch.from_numpy(mask)[:, None]
    assert float((k - ref).norm() / ref.norm()) < 1e-5


@pytest.mark.parametrize("layout", ["columns", "points"])
def test_coil_noise_covariance_on_a_support(layout: str) -> None:
    """Per-coil E|n|²/σ² ≈ 1 and E[n n^H] ≈ σ² Ψ on column and on scattered supports."""
    psi = mri.coil_noise_covariance(6, 0.3, torch.Generator().manual_seed(2))
    g = torch.Generator().manual_seed(4)
    if layout == "columns":
        sup = torch.from_numpy(_column_masks(128, 3))[:, None]
    else:
        sup = (torch.rand(3, 128, 128, generator=g) < 0.25)[:, None]
    sigma = torch.tensor([0.5, 1.0, 2.0])
    k = torch.zeros(3, 6, 128, 128, dtype=torch.complex64)
    n = mri.add_coil_noise(k, sigma, g, covariance=psi, support=sup)
    assert torch.count_nonzero(n[~sup.expand_as(n)]) == 0
    # (C, P) whitened by each slice's σ, pooled over slices (~12k samples per coil)
    z = torch.cat([n[b][:, sup[b, 0]].to(torch.complex128) / float(sigma[b]) for b in range(3)], 1)
    assert torch.allclose(z.abs().pow(2).mean(1), torch.ones(6, dtype=torch.float64), rtol=0.06)
    assert float((z @ z.conj().T / z.shape[1] - psi).abs().max()) < 0.05


def test_simulated_column_noise_matches_sigma_and_covariance() -> None:
    from msl_recon.data.acquisition import coils

    mag = 2.0 * _ellipse(256).repeat(2, 1, 1).float()
    maps = coils.loop_coil_maps((256, 256), 4, fov_mm=220.0, seed=0)
    psi = mri.coil_noise_covariance(4, 0.3, torch.Generator().manual_seed(1))
    masks = _column_masks(128, 2)
    kw = {"maps_fine": maps, "covariance": psi}
    clean = mri.simulate_mri_kspace(mag, masks, generator=torch.Generator(), **kw)
    noisy = mri.simulate_mri_kspace(
        mag, masks, generator=torch.Generator().manual_seed(1), snr=20.0, **kw
    )
    sigma = float(mri.noise_sigma(ct.block_average(mag.double()), 20.0)[0])
    m = torch.from_numpy(masks)
    z = torch.cat([(noisy - clean)[b][:, m[b]].to(torch.complex128) for b in range(2)], 1) / sigma
    assert torch.allclose(z.abs().pow(2).mean(1), torch.ones(4, dtype=torch.float64), rtol=0.06)
    assert float((z @ z.conj().T / z.shape[1] - psi).abs().max()) < 0.05


def test_column_masks_with_different_counts_per_slice() -> None:
    """Slices whose masks keep different numbers of columns are exact, noise only there."""
    g = torch.Generator().manual_seed(0)
    mag = torch.rand(3, 32, 32, generator=g)
    masks = np.zeros((3, 16, 16), bool)
    for b, cols in enumerate(([0, 5, 8], [8], [1, 2, 8, 9, 15])):
        masks[b][:, cols] = True
    k = mri.simulate_mri_kspace(mag, masks, generator=g)
    ref = mri.fine_cartesian_kspace(mag.double()[:, None]) * torch.from_numpy(masks)[:, None]
    assert float((k - ref).norm() / ref.norm()) < 1e-5
    noisy = mri.simulate_mri_kspace(mag, masks, generator=g, snr=5.0)
    sampled = torch.from_numpy(masks)[:, None].expand_as(noisy)
    assert torch.count_nonzero(noisy[~sampled]) == 0
    assert torch.count_nonzero(noisy - k) == int(sampled.sum())
