"""MSLDataset: items per the shared contract, lazy workers, re-derivation of sparser data."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import geometries as geo
import operators as ops
from msl_recon.data.dataset import MSLDataset, reduce_columns
from msl_recon.data.pipeline import write_arrays
from msl_recon.data.simulate import SimulationSpec

N = 32


@pytest.fixture(scope="module")
def h5file(tmp_path_factory):
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:N, :N] - (N - 1) / 2
    disk = (xx**2 + yy**2 < (0.4 * N) ** 2).astype(np.float32)
    imgs = {m: (disk * rng.random((4, N, N))).astype(np.float32) for m in ("ct", "t1", "t2")}
    g = geo.preset("msl-paper", image_size=N, n_views=16)
    m = geo.CartesianMask(shape=(N, N), acceleration=2, center_fraction=0.125, seed=3)
    spec = SimulationSpec(geometry=g, sampling={"t1": m, "t2": m}, mask_seed_mode="per-slice")
    path = tmp_path_factory.mktemp("ds") / "train.h5"
    return write_arrays(path, imgs, spec, subject_ids=["a", "a", "b", "b"])


def test_items_follow_contract(h5file):
    ds = MSLDataset(h5file)
    assert len(ds) == 4 and ds.modalities == ("ct", "t1", "t2")
    it = ds[1]
    assert it["ct"].shape == (1, N, N) and it["ct"].dtype == torch.float32
    assert it["ct_sino"].shape == ds.geometry.sino_shape and it["ct_sino"].dtype == torch.float32
    assert it["t1_kspace"].shape == (N, N) and it["t1_kspace"].dtype == torch.complex64
    assert it["t2_mask"].dtype == torch.bool and it["index"] == 1
    torch.testing.assert_close(it["ct_sino"], ops.RayTransform(ds.geometry)(it["ct"][0]))
    torch.testing.assert_close(it["t1_kspace"], ops.CartesianFourier(it["t1_mask"])(it["t1"][0]))
    assert ds.subject_ids() == ["a", "a", "b", "b"]
    sub = MSLDataset(h5file, modalities=["t2"])
    assert set(sub[0]) == {"t2", "t2_kspace", "t2_mask", "index"}
    with pytest.raises(ValueError, match="unknown modality 'pd'"):
        MSLDataset(h5file, modalities=["pd"])
    with pytest.raises(ValueError, match="no modality"):  # registered, but not in this file
        MSLDataset(h5file, modalities=["pet"])
    with pytest.raises(IndexError):
        ds[4]


def test_num_workers_two(h5file):
    ds = MSLDataset(h5file)
    ds[0]  # opens a handle in the parent; workers must open their own
    loader = torch.utils.data.DataLoader(ds, batch_size=2, num_workers=2)
    batches = list(loader)
    assert len(batches) == 2
    assert batches[1]["ct"].shape == (2, 1, N, N)
    assert torch.equal(batches[1]["t1_kspace"][0], ds[2]["t1_kspace"])
    assert batches[0]["index"].tolist() == [0, 1]


def test_fewer_views_is_a_subset(h5file):
    full = MSLDataset(h5file)
    ds = MSLDataset(h5file, n_views=4)
    assert ds.geometry.n_views == 4
    assert np.allclose(ds.geometry.angles_array, full.geometry.angles_array[::4])
    assert np.allclose(ds.geometry.angles_array, full.geometry.with_views(4).angles_array)
    it = ds[2]
    assert it["ct_sino"].shape == (4, full.geometry.det_count)
    torch.testing.assert_close(it["ct_sino"], ops.RayTransform(ds.geometry)(it["ct"][0]))
    with pytest.raises(ValueError, match="not a subset"):
        MSLDataset(h5file, n_views=5)
    with pytest.raises(ValueError, match="not a subset"):
        MSLDataset(h5file, n_views=32)


def test_higher_acceleration_drops_columns(h5file):
    full = MSLDataset(h5file)
    ds = MSLDataset(h5file, acceleration=4, seed=1)
    base = full.sampling["t1"]
    for i in range(len(ds)):
        a, b = full[i], ds[i]
        m_full, m = a["t1_mask"].numpy(), b["t1_mask"].numpy()
        assert not np.any(m & ~m_full)  # only removes
        assert int(m.any(0).sum()) == N // 4
        assert m[:, base.center_slice].all()  # centre kept
        k = b["t1_kspace"].numpy()
        assert np.array_equal(k[m], a["t1_kspace"].numpy()[m])
        assert np.count_nonzero(k[~m]) == 0
    assert np.array_equal(
        ds[0]["t1_mask"], MSLDataset(h5file, acceleration=4, seed=1)[0]["t1_mask"]
    )
    assert ds.sampling["t1"].acceleration == 4
    with pytest.raises(ValueError, match="only sparser"):
        MSLDataset(h5file, acceleration=1.5)


def test_fixed_mask_rederived_identically(tmp_path, rng):
    g = geo.preset("msl-paper", image_size=N, n_views=8)
    m = geo.CartesianMask(shape=(N, N), acceleration=2, center_fraction=0.125, seed=3)
    imgs = {"t1": rng.random((3, N, N), dtype=np.float32)}
    p = write_arrays(tmp_path / "f.h5", imgs, SimulationSpec(geometry=g, sampling={"t1": m}))
    ds = MSLDataset(p, acceleration=4)
    masks = [ds[i]["t1_mask"] for i in range(3)]
    assert torch.equal(masks[0], masks[1]) and torch.equal(masks[1], masks[2])
    assert not torch.equal(masks[0], MSLDataset(p, acceleration=4, seed=9)[0]["t1_mask"])


def test_reduce_columns_refuses_new_data(rng):
    mask = np.zeros((4, 10), bool)
    mask[:, [0, 4, 5, 8]] = True
    with pytest.raises(ValueError, match="only 4 were measured"):
        reduce_columns(mask, slice(4, 6), 6, rng)
    out = reduce_columns(mask, slice(4, 6), 3, rng)
    assert out[:, 4:6].all() and int(out.any(0).sum()) == 3


def test_radial_spoke_subset(tmp_path, rng):
    traj = geo.RadialTrajectory(n_spokes=8, n_samples=2 * N)
    g = geo.preset("msl-paper", image_size=N, n_views=8)
    imgs = {"t1": rng.random((2, N, N), dtype=np.float32)}
    p = write_arrays(tmp_path / "r.h5", imgs, SimulationSpec(geometry=g, sampling={"t1": traj}))
    ds = MSLDataset(p, acceleration=2)
    it = ds[0]
    assert ds.sampling["t1"].n_spokes == 4 and it["t1_kspace"].shape == (4 * 2 * N,)
    ref = ops.NUFFT(ds.sampling["t1"], image_shape=(N, N))(it["t1"][0])
    torch.testing.assert_close(it["t1_kspace"], ref, rtol=1e-3, atol=1e-4)
    with pytest.raises(ValueError, match="not a subset"):
        MSLDataset(p, acceleration=3)
