"""Simulation: stored sensor data equals the operators applied to the stored images; noise."""

from __future__ import annotations

import math

import h5py
import numpy as np
import pytest
import torch

import geometries as geo
import operators as ops
from msl_recon.data.hdf5 import read_attrs
from msl_recon.data.pipeline import write_arrays
from msl_recon.data.simulate import (
    MU_PER_UNIT,
    CTNoise,
    MRNoise,
    SimulationSpec,
    Simulator,
    add_complex_noise,
    add_poisson_noise,
)

N = 32


def _disk_images(rng: np.random.Generator, s: int) -> np.ndarray:
    yy, xx = np.mgrid[:N, :N] - (N - 1) / 2
    disk = (xx**2 + yy**2 < (0.4 * N) ** 2).astype(np.float32)
    return (disk[None] * (0.3 + 0.7 * rng.random((s, N, N)))).astype(np.float32)


@pytest.fixture
def images(rng):
    return {"ct": _disk_images(rng, 3), "t1": _disk_images(rng, 3), "t2": _disk_images(rng, 3)}


def test_stored_sinogram_and_kspace_equal_operators(tmp_path, images):
    g = geo.preset("msl-paper", image_size=N, n_views=16)
    m = geo.CartesianMask(shape=(N, N), acceleration=4, center_fraction=0.1, seed=7)
    spec = SimulationSpec(geometry=g, sampling={"t1": m, "t2": m})
    p = write_arrays(tmp_path / "a.h5", images, spec, subject_ids=["a", "a", "b"])
    g_file = geo.geometry_from_dict(read_attrs(p)["geometry"])
    with h5py.File(p, "r") as f:
        img_ct = torch.from_numpy(f["images/ct"][:])
        sino = torch.from_numpy(f["ct/sinogram"][:])
        ref = ops.RayTransform(g_file)(img_ct)
        # same operator; only the summation order of the sparse product may differ
        torch.testing.assert_close(sino, ref, rtol=1e-6, atol=1e-5)
        for mod in ("t1", "t2"):
            img = torch.from_numpy(f[f"images/{mod}"][:])
            mask = f[f"mr/{mod}/mask"][:]
            assert np.array_equal(mask, np.broadcast_to(m.mask, mask.shape))  # fixed seed
            k = torch.from_numpy(f[f"mr/{mod}/kspace"][:])
            assert k.dtype == torch.complex64
            torch.testing.assert_close(k, ops.CartesianFourier(m)(img), rtol=0, atol=0)
            assert torch.count_nonzero(k[:, ~torch.from_numpy(m.mask)]) == 0


def test_per_slice_masks_deterministic_and_distinct(images):
    g = geo.preset("msl-paper", image_size=N, n_views=8)
    m = geo.CartesianMask(shape=(N, N), acceleration=4, center_fraction=0.1, seed=1)
    sim = Simulator(SimulationSpec(geometry=g, sampling={"t1": m}, mask_seed_mode="per-slice"))
    masks, seeds = sim.masks("t1", subject_index=3, slice_indices=[0, 1, 2])
    masks2, _ = sim.masks("t1", subject_index=3, slice_indices=[0, 1, 2])
    assert np.array_equal(masks, masks2)
    assert len(set(seeds.tolist())) == 3
    assert not np.array_equal(masks[0], masks[1])
    for mk, sd in zip(masks, seeds, strict=True):
        ref = geo.CartesianMask(shape=(N, N), acceleration=4, center_fraction=0.1, seed=int(sd))
        assert np.array_equal(mk, ref.mask)
    out = sim.simulate(
        {"t1": images["t1"]},
        subject_index=3,
        slice_indices=[0, 1, 2],
        generator=torch.Generator().manual_seed(0),
    )
    k_ref = ops.CartesianFourier(torch.from_numpy(masks))(torch.from_numpy(images["t1"]))
    torch.testing.assert_close(torch.from_numpy(out["mr/t1/kspace"]), k_ref, rtol=0, atol=0)


def test_radial_and_multicoil_kspace_equal_operators(images):
    g = geo.preset("msl-paper", image_size=N, n_views=8)
    traj = geo.RadialTrajectory(n_spokes=12, n_samples=2 * N)
    m = geo.CartesianMask(shape=(N, N), acceleration=4, seed=0)
    x = torch.from_numpy(images["t1"])
    out = Simulator(SimulationSpec(geometry=g, sampling={"t1": traj})).simulate(
        {"t1": images["t1"]},
        subject_index=0,
        slice_indices=[0, 1, 2],
        generator=torch.Generator().manual_seed(0),
    )
    k_ref = ops.NUFFT(traj, image_shape=(N, N))(x)
    torch.testing.assert_close(torch.from_numpy(out["mr/t1/kspace"]), k_ref)
    sim = Simulator(SimulationSpec(geometry=g, sampling={"t1": m}, n_coils=4))
    out = sim.simulate(
        {"t1": images["t1"]},
        subject_index=0,
        slice_indices=[0, 1, 2],
        generator=torch.Generator().manual_seed(0),
    )
    maps = ops.birdcage_maps((N, N), 4)
    k_ref = ops.SENSE(maps, ops.CartesianFourier(m))(x)
    assert out["mr/t1/kspace"].shape == (3, 4, N, N)
    torch.testing.assert_close(torch.from_numpy(out["mr/t1/kspace"]), k_ref)


def test_poisson_noise_statistics():
    gen = torch.Generator().manual_seed(0)
    p = torch.full((200, 400), 30.0, dtype=torch.float64)  # ∫μ dl = 1.8
    i0 = 1e4
    noisy = add_poisson_noise(p, CTNoise(i0=i0), gen)
    # delta method: std of -ln(I/I0)/μu = 1/(μu sqrt(I0 exp(-μu p)))
    expected_std = 1.0 / (MU_PER_UNIT * math.sqrt(i0 * math.exp(-MU_PER_UNIT * 30.0)))
    std = float((noisy - p).std())
    assert abs(std / expected_std - 1) < 0.05
    assert abs(float((noisy - p).mean())) < 0.05 * expected_std * 10
    # electronic noise adds variance
    noisy_e = add_poisson_noise(p, CTNoise(i0=i0, sigma_e=30.0), torch.Generator().manual_seed(0))
    assert float((noisy_e - p).std()) > 1.2 * std
    assert add_poisson_noise(p, CTNoise(), gen) is p


def test_complex_noise_snr():
    gen = torch.Generator().manual_seed(0)
    img = torch.rand(2, 64, 64)
    k = torch.zeros(2, 64, 64, dtype=torch.complex64)
    support = torch.zeros(64, 64, dtype=torch.bool)
    support[:, ::2] = True
    noisy = add_complex_noise(k, img, 20.0, gen, support)
    rms = img.reshape(2, -1).pow(2).mean(1).sqrt()
    sigma = noisy[:, support].abs().pow(2).mean(1).sqrt()
    snr = 20 * torch.log10(rms / sigma)
    assert torch.allclose(snr, torch.full_like(snr, 20.0), atol=0.2)
    assert torch.count_nonzero(noisy[:, ~support]) == 0


def test_noisy_write_is_reproducible(tmp_path, images):
    g = geo.preset("msl-paper", image_size=N, n_views=8)
    m = geo.CartesianMask(shape=(N, N), acceleration=4, seed=0)
    spec = SimulationSpec(
        geometry=g, sampling={"t1": m}, ct_noise=CTNoise(1e4, 5.0), mr_noise=MRNoise(25.0)
    )
    imgs = {"ct": images["ct"], "t1": images["t1"]}
    a = write_arrays(tmp_path / "a.h5", imgs, spec, seed=3)
    b = write_arrays(tmp_path / "b.h5", imgs, spec, seed=3)
    c = write_arrays(tmp_path / "c.h5", imgs, spec, seed=4)
    with h5py.File(a) as fa, h5py.File(b) as fb, h5py.File(c) as fc:
        for name in ("ct/sinogram", "mr/t1/kspace"):
            assert np.array_equal(fa[name][:], fb[name][:])
            assert not np.array_equal(fa[name][:], fc[name][:])
        clean = ops.RayTransform(g)(torch.from_numpy(fa["images/ct"][:])).numpy()
        # residuals normalised by the delta-method std, (I + σe²)^½ / (I μu), have unit std
        counts = 1e4 * np.exp(-MU_PER_UNIT * clean)
        pred = np.sqrt(counts + 5.0**2) / counts / MU_PER_UNIT
        z = (fa["ct/sinogram"][:] - clean) / pred
        assert abs(z.std() - 1) < 0.1
    assert read_attrs(a)["noise"]["ct"]["i0"] == 1e4
