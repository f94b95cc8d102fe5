"""Data order, sharding, batch randomisation, logging: the parts of training without a model."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

import geometries as geo
from msl_recon.errors import InputError
from msl_recon.training.batches import randomize_batch
from msl_recon.training.distributed import DistInfo, all_reduce_mean, shard_batch
from msl_recon.training.logger import RunLogger
from msl_recon.training.loop import canonical_modalities, stream_indices


def test_stream_is_concatenated_epoch_permutations() -> None:
    n = 7
    s = stream_indices(5, n, 0, 3 * n)
    for e in range(3):
        np.testing.assert_array_equal(
            s[e * n : (e + 1) * n], np.random.default_rng([5, e]).permutation(n)
        )
        assert sorted(s[e * n : (e + 1) * n].tolist()) == list(range(n))
    # any window equals the same slice of the full stream (resume mid-epoch)
    np.testing.assert_array_equal(stream_indices(5, n, 4, 9), s[4:13])
    assert not np.array_equal(stream_indices(6, n, 0, n), s[:n])


def test_shard_batch_is_disjoint_and_complete() -> None:
    g = np.arange(12)
    parts = [shard_batch(g, DistInfo(rank=r, world_size=3, backend="gloo")) for r in range(3)]
    np.testing.assert_array_equal(np.concatenate(parts), g)
    with pytest.raises(ValueError, match="does not split"):
        shard_batch(np.arange(5), DistInfo(rank=0, world_size=2, backend="gloo"))
    t = torch.tensor(3.0)
    assert all_reduce_mean(t, DistInfo()).item() == 3.0


def test_canonical_modalities() -> None:
    assert canonical_modalities("ct,mr") == ("ct", "t1")
    assert canonical_modalities(" T2 ,ct") == ("t2", "ct")
    assert canonical_modalities(None) is None
    with pytest.raises(InputError, match="unknown modality"):
        canonical_modalities("ct,spect")
    with pytest.raises(InputError, match="twice"):
        canonical_modalities("mr,t1")


def _fake_batch(b: int = 3, v: int = 16, n: int = 32) -> tuple[dict, object, dict]:
    g = geo.preset("msl-paper", image_size=n, n_views=v)
    m = geo.CartesianMask(shape=(n, n), acceleration=2, center_fraction=0.125, seed=1)
    k = torch.randn(b, n, n, dtype=torch.complex64) * torch.from_numpy(m.mask)
    batch = {
        "ct_sino": torch.arange(b * v * 5, dtype=torch.float32).reshape(b, v, 5),
        "t1_kspace": k,
        "t1_mask": torch.from_numpy(np.broadcast_to(m.mask, (b, n, n)).copy()),
    }
    return batch, g, {"t1": m}


def test_randomize_views_subsets_sinogram_and_geometry() -> None:
    batch, g, s = _fake_batch()
    rng = np.random.default_rng(0)
    out, acq, present = randomize_batch(batch, {"ct": g, **s}, ("ct", "t1"), rng, views=(4,))
    g2 = acq["ct"]
    assert acq["t1"] is s["t1"]
    assert out["ct_sino"].shape == (3, 4, 5)
    assert g2.n_views == 4
    # the kept rows are stored views at the kept angles
    idx = [int(np.argmin(np.abs(g.angles_array - a))) for a in g2.angles_array]
    assert torch.equal(out["ct_sino"], batch["ct_sino"][:, idx])
    assert np.allclose(np.diff(np.asarray(idx)), 4)
    assert present == ("ct", "t1")
    assert batch["ct_sino"].shape == (3, 16, 5)  # input untouched


def test_randomize_acceleration_drops_columns_keeps_centre() -> None:
    batch, g, s = _fake_batch()
    out, _, _ = randomize_batch(
        batch, {"ct": g, **s}, ("ct", "t1"), np.random.default_rng(1), accelerations=(8,)
    )
    cols = out["t1_mask"].any(dim=1)
    assert cols.sum(dim=1).tolist() == [4, 4, 4]  # 32 / 8
    centre = torch.zeros(32, dtype=torch.bool)
    centre[s["t1"].center_slice] = True
    assert bool(cols[:, centre].all())
    assert bool((cols <= batch["t1_mask"].any(dim=1)).all())  # a subset of the stored mask
    assert float(out["t1_kspace"][~out["t1_mask"]].abs().max()) == 0.0


def test_modality_dropout_keeps_one() -> None:
    batch, g, s = _fake_batch()
    seen = set()
    for i in range(20):
        _, _, present = randomize_batch(
            batch, {"ct": g, **s}, ("ct", "t1"), np.random.default_rng(i), modality_dropout=1.0
        )
        assert len(present) == 1
        seen.add(present[0])
    assert seen == {"ct", "t1"}


def test_run_logger_csv_and_resume_truncation(tmp_path) -> None:
    log = RunLogger(tmp_path, tensorboard=True)
    for it in (1, 2, 3):
        log.log(it, {"loss": 1.0 / it})
    log.log(3, {"ct_ssim": 0.5}, prefix="val_")
    had_tb = log.has_tensorboard
    log.close()
    assert had_tb
    pytest.importorskip("tensorboard")
    assert any(f.name.startswith("events.") for f in (tmp_path / "tb").iterdir())
    rows = list(csv.DictReader((tmp_path / "log.csv").open()))
    assert [r["iteration"] for r in rows] == ["1", "2", "3", "3"]
    assert rows[-1]["val_ct_ssim"] == "0.5"
    log2 = RunLogger(tmp_path, tensorboard=False, resume_iteration=2)
    log2.log(3, {"loss": 0.25})
    rows = list(csv.DictReader((tmp_path / "log.csv").open()))
    assert [(r["iteration"], r["loss"]) for r in rows] == [
        ("1", "1.0"),
        ("2", "0.5"),
        ("3", "0.25"),
    ]
    silent = RunLogger(tmp_path / "other", enabled=False)
    silent.log(1, {"loss": 1.0})
    assert not (tmp_path / "other").exists()
