"""Inference building blocks and ``run_reconstruct``: λ parsing, λ-map files, outputs."""

from __future__ import annotations

from pathlib import Path

import h5py
import msl_recon_testdata as H
import numpy as np
import pytest
import torch

from msl_recon.errors import InputError
from msl_recon.inference import (
    Reconstructor,
    load_lambda_map,
    load_model,
    parse_lambdas,
    parse_slices,
)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("inf")
    H.write_tiny_split(root / "train.h5", "train", 4, 1)
    H.write_tiny_split(root / "test.h5", "test", 3, 3)
    return root, H.make_checkpoint(root / "model.pt", root)


def test_parse_lambdas_and_slices() -> None:
    assert parse_lambdas("0, 0.25,1") == [0.0, 0.25, 1.0]
    for bad in ("1.5", "-0.1", "x", ""):
        with pytest.raises(InputError):
            parse_lambdas(bad)
    assert parse_slices(None, 4) == [0, 1, 2, 3]
    assert parse_slices("1:3,0", 4) == [1, 2, 0]
    with pytest.raises(InputError, match="outside"):
        parse_slices("5", 4)
    with pytest.raises(InputError):
        parse_slices("a:b", 4)


def test_lambda_map_formats_are_resized(tmp_path) -> None:
    import nibabel as nib
    from PIL import Image

    ramp = np.tile(np.linspace(0, 1, 16, dtype=np.float32), (16, 1))  # left 0 → right 1
    np.save(tmp_path / "m.npy", ramp)
    Image.fromarray((ramp * 255).round().astype(np.uint8)).save(tmp_path / "m.png")
    nib.save(nib.Nifti1Image(ramp.T.copy(), np.eye(4)), str(tmp_path / "m.nii.gz"))
    for name in ("m.npy", "m.png", "m.nii.gz"):
        lam = load_lambda_map(tmp_path / name, (32, 32))
        assert lam.shape == (32, 32) and lam.dtype == np.float32
        assert 0.0 <= lam.min() < 0.05 and 0.95 < lam.max() <= 1.0, name
        assert lam[:, :4].mean() < 0.2 and lam[:, -4:].mean() > 0.8, name  # orientation kept
        assert np.allclose(lam[0], lam[-1], atol=1e-2), name


def test_lambda_map_one_bit_png_is_zero_or_one(tmp_path) -> None:
    from PIL import Image

    half = np.zeros((16, 16), dtype=bool)
    half[:, 8:] = True
    Image.fromarray(half).convert("1").save(tmp_path / "bits.png")
    with Image.open(tmp_path / "bits.png") as im:
        assert im.mode == "1"  # really a 1-bit file
    lam = load_lambda_map(tmp_path / "bits.png", (16, 16))
    assert np.array_equal(lam, half.astype(np.float32))


def test_lambda_map_bad_inputs(tmp_path) -> None:
    np.save(tmp_path / "big.npy", np.full((8, 8), 1.5))
    np.save(tmp_path / "cube.npy", np.zeros((2, 3, 4)))
    (tmp_path / "junk.png").write_bytes(b"not a png")
    (tmp_path / "m.txt").write_text("0.5")
    for name, msg in [
        ("big.npy", "outside"),
        ("cube.npy", "2D"),
        ("junk.png", "cannot read"),
        ("m.txt", "unsupported"),
        ("none.npy", "does not exist"),
    ]:
        with pytest.raises(InputError, match=msg):
            load_lambda_map(tmp_path / name, (32, 32))


def test_model_from_checkpoint_and_single_modality(tiny) -> None:
    from torch.utils.data import default_collate

    from msl_recon.data.dataset import MSLDataset

    root, ckpt = tiny
    m = load_model(ckpt, "cpu")
    assert m.modalities == ("ct", "t1") and m.config.image_size == 32
    assert not m.net.training
    ds = MSLDataset(root / "test.h5")
    batch = default_collate([ds[i] for i in range(2)])
    both = Reconstructor(m, batch, ds.acquisition, ("ct", "t1"), torch.device("cpu"))
    ct_only = Reconstructor(m, batch, ds.acquisition, ("ct",), torch.device("cpu"))
    a, b = both.decode(0.0), ct_only.decode(0.0)
    assert a.shape == b.shape == (2, 32, 32)
    assert float((a - b).abs().max()) > 0  # the MRI input changes the result
    lam = torch.full((2, 1, 32, 32), 0.3)
    assert torch.allclose(both.decode(lam), both.decode(0.3), atol=1e-5)
    assert set(ct_only.inputs()) == {"ct"}
    with pytest.raises(InputError, match="not in the checkpoint"):
        Reconstructor(m, batch, ds.acquisition, ("t2",), torch.device("cpu"))


def test_run_reconstruct_writes_everything(tiny, tmp_path) -> None:
    from msl_recon.cli.reconstruct import run_reconstruct

    root, ckpt = tiny
    np.save(tmp_path / "lam.npy", np.full((8, 8), 0.5))
    out = tmp_path / "rec"
    res = run_reconstruct(
        checkpoint=ckpt, inputs=[root / "test.h5"], out=out, lambdas="0,0.5,1",
        lambda_map=tmp_path / "lam.npy", optimize_lambda=True, opt_iterations=2, slices="0,2",
        progress=False,
    )  # fmt: skip
    with h5py.File(out / "recon.h5") as f:
        keys = set(f)
        assert f["msl_lam0.50"].shape == (2, 32, 32)
        # a constant λ map of 0.5 equals global λ = 0.5
        np.testing.assert_allclose(f["msl_map"][:], f["msl_lam0.50"][:], atol=1e-5)
        lo = f["lambda_optimized"][:]
        assert lo.shape == (2, 32, 32) and 0.0 <= lo.min() and lo.max() <= 1.0
    assert {"input_ct", "input_t1", "gt_ct", "gt_t1", "msl_lam0.00", "msl_lam1.00",
            "msl_optimized", "lambda_map"} <= keys  # fmt: skip
    # slices 0 and 2 are two phantom subjects: one NIfTI folder each (one affine per head)
    assert len(list((out / "nifti").glob("*/msl_lam1.00.nii.gz"))) == 2
    assert sorted(p.name for p in (out / "png").iterdir()) == ["slice_0000.png", "slice_0002.png"]
    rows = res["metrics"]
    assert {(r["output"], r["lambda"], r["reference"]) for r in rows} >= {
        ("MSL", "0", "GT CT"), ("MSL", "1", "GT T1"), ("MSL", "map", "GT CT"),
        ("MSL", "optimized", "GT T1"), ("input FBP", "-", "GT CT"),
    }  # fmt: skip
    assert all(0 <= r["mae"] <= 1 and 1 <= r["mi"] <= 2 for r in rows)
    # title, blank line, header, rule, rows
    assert (out / "metrics.md").read_text(encoding="utf-8").count("\n") == len(rows) + 4
    obj = res["objective"]
    assert len(obj["before"]) == 2 and obj["after_mean"] >= obj["before_mean"]


def test_run_reconstruct_from_raw_sinogram(tiny, tmp_path) -> None:
    from msl_recon.cli.reconstruct import run_reconstruct

    root, ckpt = tiny
    with h5py.File(root / "test.h5") as f:
        np.save(tmp_path / "sino.npy", f["ct/sinogram"][:2, ::2])  # 8 of the 16 views
    res = run_reconstruct(
        checkpoint=ckpt, inputs=[tmp_path / "sino.npy"], out=tmp_path / "rec", lambdas="0,1",
        progress=False,
    )  # fmt: skip
    assert res["metrics"] == []  # no ground truth for raw input
    with h5py.File(tmp_path / "rec" / "recon.h5") as f:
        assert set(f) >= {"input_ct", "msl_lam0.00", "msl_lam1.00"}
        assert "input_t1" not in f and f["msl_lam0.00"].shape == (2, 32, 32)
