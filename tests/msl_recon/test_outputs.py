"""NIfTI outputs in physical units: affines checked by round trips through nibabel and SimpleITK
against the source CT; recon.h5 metadata."""

from __future__ import annotations

import hashlib
import json

import h5py
import numpy as np
import pytest

sitk = pytest.importorskip("SimpleITK")
nib = pytest.importorskip("nibabel")

from msl_recon.data.ingest import load_single  # noqa: E402
from msl_recon.data.intensity import unit_to_hu  # noqa: E402
from msl_recon.outputs import (  # noqa: E402
    SliceGeometry,
    intensity_kind,
    read_nifti_stack,
    write_nifti,
    write_recon_metadata,
)


def _source_ct(tmp_path):
    """A 3D CT (LPS .mha) from pydicom's shipped head slice, 5 slices, 1.914 mm pixels."""
    import pydicom
    from pydicom.data import get_testdata_file

    path = get_testdata_file("693_J2KI.dcm")
    if path is None:
        pytest.skip("693_J2KI.dcm not shipped")
    ds = pydicom.dcmread(path)
    hu = ds.pixel_array.astype(np.float32) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    sl = hu.reshape(128, 4, 128, 4).mean(axis=(1, 3))
    vol = np.stack([np.roll(sl, (2 * k, -3 * k), axis=(0, 1)) for k in range(5)])
    img = sitk.GetImageFromArray(vol)
    img.SetSpacing((1.914064, 1.914064, 5.0))
    img.SetOrigin((-122.5, -112.4, 47.0))
    out = tmp_path / "ct.mha"
    sitk.WriteImage(img, str(out))
    return out, img


def test_nifti_affine_round_trip_matches_the_source(tmp_path):
    src_path, src = _source_ct(tmp_path)
    px = 1.914064  # the source spacing: no anti-aliasing, so values are interpolated only
    imgs, _idx, prov = load_single(src_path, "ct", size=160, pixel_size=px)
    geom = SliceGeometry(
        pixel_size_mm=prov["pixel_size_mm"],
        size=160,
        origin_xy_mm=tuple(prov["grid"]["origin_xy_mm"]),
        slice_positions_mm=prov["slice_positions_mm"],
        slice_spacing_mm=prov["slice_spacing_mm"],
    )
    out = write_nifti(tmp_path / "ct.nii.gz", imgs["ct"], geom, kind="ct")
    # nibabel: RAS affine, mm units, HU values
    n = nib.load(str(out))
    assert n.header.get_xyzt_units() == ("mm", "sec")
    assert n.get_data_dtype() == np.int16
    assert int(n.header["sform_code"]) == 1 and int(n.header["qform_code"]) == 1
    assert np.allclose(np.diag(n.affine)[:3], [-px, -px, 5.0])
    vals, _aff = read_nifti_stack(out)
    assert np.abs(vals - unit_to_hu(imgs["ct"])).max() <= 0.5 + 1e-3
    assert vals.min() == -1000 and vals.max() > 1000
    # SimpleITK reads the same file in LPS: every voxel sits where the source has the same HU
    back = sitk.ReadImage(str(out))
    assert back.GetSize() == (160, 160, 5)
    assert np.allclose(back.GetSpacing(), (px, px, 5.0), atol=1e-4)
    assert np.allclose(back.GetDirection(), np.eye(3).ravel(), atol=1e-6)
    resampled = sitk.GetArrayFromImage(
        sitk.Resample(src, back, sitk.Transform(), sitk.sitkLinear, -1000.0)
    )
    diff = np.abs(sitk.GetArrayFromImage(back) - np.clip(resampled, -1000, 2125))
    assert diff.max() <= 1.0, diff.max()  # rounding to integer HU only
    # the SimpleITK origin is the LPS position of pixel [0, 0] of the first slice
    assert np.allclose(
        back.GetOrigin(), (*prov["grid"]["origin_xy_mm"], prov["slice_positions_mm"][0]), atol=1e-3
    )


def test_mr_and_lambda_outputs_keep_their_scale(tmp_path):
    g = SliceGeometry(pixel_size_mm=0.5, size=8, slice_spacing_mm=2.0)
    a = np.linspace(0, 1, 2 * 64, dtype=np.float32).reshape(2, 8, 8)
    write_nifti(tmp_path / "t1.nii", a, g, kind="t1")
    vals, aff = read_nifti_stack(tmp_path / "t1.nii")
    np.testing.assert_array_equal(vals, a)
    assert aff[2, 2] == 2.0 and aff[0, 3] == pytest.approx(3.5 * 0.5)  # centred grid
    write_nifti(tmp_path / "x.nii", a, SliceGeometry(0.5, 8), kind="mixed")  # z unknown
    assert b"z spacing unknown" in nib.load(str(tmp_path / "x.nii")).header["descrip"].tobytes()
    uneven = SliceGeometry(0.5, 8, slice_positions_mm=[0.0, 3.0, 4.0])
    with pytest.warns(UserWarning, match="not evenly spaced"):
        write_nifti(tmp_path / "z.nii", np.concatenate([a, a[:1]]), uneven, kind="mixed")
    with pytest.raises(ValueError, match="stack"):
        write_nifti(tmp_path / "y.nii", a[:, :4], g)


def test_intensity_kind():
    mods = ("ct", "t1")
    assert intensity_kind("gt_ct", mods) == "ct" and intensity_kind("input_t1", mods) == "t1"
    assert intensity_kind("msl_lam0.00", mods) == "ct"
    assert intensity_kind("msl_lam1.00", mods) == "t1"
    assert intensity_kind("msl_lam0.50", mods) == "mixed"
    assert intensity_kind("lambda_map", mods) == "lambda"


def test_recon_metadata(tmp_path):
    ckpt = tmp_path / "m.pt"
    ckpt.write_bytes(b"weights")
    g = SliceGeometry(1.1, 8, slice_positions_mm=[10.0, 15.0, 20.0], source={"file": "x"})
    with h5py.File(tmp_path / "recon.h5", "w") as f:
        write_recon_metadata(
            f,
            geometry=g,
            n_slices=3,
            keys=["gt_ct", "msl_lam0.50"],
            modalities=("ct", "t1"),
            source_file="test.h5",
            checkpoint=ckpt,
            subject_ids=["a", "a", "bé"],
            slice_indices=[3, 7, 2],
            rows=[0, 1, 5],
        )
    with h5py.File(tmp_path / "recon.h5") as f:
        geo = json.loads(f.attrs["geometry"])
        prov = json.loads(f.attrs["provenance"])
        inten = json.loads(f.attrs["intensity"])
        assert geo["pixel_size_mm"] == 1.1 and geo["affine_ras"][2][2] == 5.0
        assert prov["checkpoint_sha256"] == hashlib.sha256(b"weights").hexdigest()
        assert inten["datasets"] == {"gt_ct": "ct", "msl_lam0.50": "mixed"}
        assert f["meta/slice_position_mm"][:].tolist() == [10.0, 15.0, 20.0]
        assert f["meta/row"][:].tolist() == [0, 1, 5]
        assert [s.decode() for s in f["meta/subject_id"][:]] == ["a", "a", "bé"]


def test_simulated_real_data_to_nifti_keeps_physical_positions(tmp_path):
    """source CT → simulate (HDF5 with slice positions + provenance) → NIfTI at the right place."""
    from msl_recon.cli.main import main
    from msl_recon.outputs import slice_geometry_from_dataset, write_nifti_outputs

    src_path, src = _source_ct(tmp_path)
    out = tmp_path / "sim"
    args = ["simulate", "--input", str(src_path), "--modalities", "ct", "--size", "64"]
    args += ["--views", "8", "--slices", "0", "--pixel-size", "4", "--split", "1,0,0", "-q"]
    assert main([*args, "--out", str(out)]) == 0
    with h5py.File(out / "train.h5") as f:
        stack = f["images/ct"][:]
        assert f["meta/slice_position_mm"][:].tolist() == [47.0, 52.0, 57.0, 62.0, 67.0]
    geom = slice_geometry_from_dataset(out / "train.h5", range(5))
    assert geom.pixel_size_mm == 4.0 and geom.slice_spacing_mm == 5.0
    (path,) = write_nifti_outputs(
        tmp_path / "nii",
        {"gt_ct": stack},
        modalities=("ct", "t1"),
        rows=range(5),
        size=64,
        dataset_path=out / "train.h5",
    )
    back = sitk.ReadImage(str(path))
    assert np.allclose(back.GetSpacing(), (4.0, 4.0, 5.0)) and back.GetOrigin()[2] == 47.0
    # the written HU agree with the (4 mm anti-aliased) source resampled at the same points
    ref = sitk.Resample(
        sitk.SmoothingRecursiveGaussian(src, [1.7, 1.7, 0.01]),
        back,
        sitk.Transform(),
        sitk.sitkLinear,
        -1000.0,
    )
    a, b = sitk.GetArrayFromImage(back), np.clip(sitk.GetArrayFromImage(ref), -1000, 2125)
    err = float(np.abs(a - b).mean())
    shifted = float(np.abs(np.roll(a, 1, axis=2) - b).mean())  # one 4 mm pixel off
    mirrored = float(np.abs(a[:, :, ::-1] - b).mean())
    assert err < 0.5 * shifted and err < 0.2 * mirrored, (err, shifted, mirrored)
