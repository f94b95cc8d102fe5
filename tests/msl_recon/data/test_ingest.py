"""Ingest of real data layouts (fake RIRE / SynthRAD2023 / CSV written here) and real DICOM."""

from __future__ import annotations

import csv

import h5py
import numpy as np
import pytest

sitk = pytest.importorskip("SimpleITK")

from msl_recon.cli.main import main  # noqa: E402
from msl_recon.data.ingest import discover, load_paired, load_single, read_image  # noqa: E402
from msl_recon.errors import InputError  # noqa: E402

SPACING = (2.0, 2.0, 3.0)
MR_SPACING = (2.4, 2.4, 3.5)


def _volumes(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CT in HU and T1/T2-like arrays ``(z, y, x)`` of an ellipsoidal head with features."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    n, nz = 48, 32
    z, y, x = np.meshgrid(*(np.arange(k) - (k - 1) / 2 for k in (nz, n, n)), indexing="ij")
    zz, yy, xx = z * SPACING[2], y * SPACING[1], x * SPACING[0]
    r = np.sqrt((xx / 38) ** 2 + (yy / 45) ** 2 + (zz / 40) ** 2)
    ct = np.full(r.shape, -1000.0)
    ct[r < 1], ct[r < 0.85] = 1200.0, 35.0
    t1 = np.where(r < 1, 0.1, 0.0)
    t1[r < 0.85] = 0.6
    t2 = np.where(r < 1, 0.05, 0.0)
    t2[r < 0.85] = 0.4
    for cx, cy, cz, rad, hu, a1, a2 in [
        (-8, 5, 0, 8, 5, 0.15, 0.95),
        (12, -15, 6, 6, 60, 0.8, 0.3),
        (0, 22, -9, 7, 20, 0.35, 0.7),
    ]:
        b = (xx - cx) ** 2 + (yy - cy) ** 2 + (zz - cz) ** 2 < rad**2
        ct[b], t1[b], t2[b] = hu, a1, a2
    tex = gaussian_filter(rng.standard_normal(r.shape), 1.5) * (r < 1)
    return (
        (ct + 10 * tex).astype(np.float32),
        (t1 * (1 + 0.1 * tex)).astype(np.float32),
        (t2 * (1 + 0.1 * tex)).astype(np.float32),
    )


def _image(arr: np.ndarray, spacing=SPACING) -> sitk.Image:
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing(spacing)
    img.SetOrigin(tuple(-s * d / 2 for s, d in zip(img.GetSize(), spacing, strict=True)))
    return img


def _known_affine() -> sitk.AffineTransform:
    rot = sitk.Euler3DTransform()
    rot.SetRotation(0.03, -0.02, 0.07)
    t = sitk.AffineTransform(3)
    t.SetMatrix(
        (np.asarray(rot.GetMatrix()).reshape(3, 3) @ np.diag([1.03, 0.98, 1.0])).ravel().tolist()
    )
    t.SetTranslation((4.0, -3.0, 2.5))
    return t


def _moved_mr(arr: np.ndarray, transform) -> sitk.Image:
    """MR on its own grid (other spacing) whose points are ``transform(CT points)``."""
    src = _image(arr)
    size = [round(s * d / m) for s, d, m in zip(src.GetSize(), SPACING, MR_SPACING, strict=True)]
    ref = sitk.Image(size, sitk.sitkFloat32)
    ref.SetSpacing(MR_SPACING)
    ref.SetOrigin(tuple(-s * d / 2 for s, d in zip(size, MR_SPACING, strict=True)))
    return sitk.Resample(src, ref, transform.GetInverse(), sitk.sitkLinear, 0.0)


@pytest.fixture(scope="module")
def rire(tmp_path_factory):
    root = tmp_path_factory.mktemp("rire")
    for i in (1, 2):
        ct, t1, t2 = _volumes(i)
        d = root / f"patient_{i:03d}"
        for sub in ("ct", "mr_T1", "mr_T2"):
            (d / sub).mkdir(parents=True)
        sitk.WriteImage(_image(ct), str(d / "ct" / f"patient_{i:03d}_ct.mhd"))
        sitk.WriteImage(_moved_mr(t1, _known_affine()), str(d / "mr_T1" / "t1.mhd"))
        sitk.WriteImage(_moved_mr(t2, _known_affine()), str(d / "mr_T2" / "t2.mhd"))
    return root


@pytest.fixture(scope="module")
def synthrad(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthrad")
    for i, case in enumerate(("1BA001", "1BA002")):
        ct, t1, _ = _volumes(10 + i)
        d = root / case
        d.mkdir()
        sitk.WriteImage(_image(ct), str(d / "ct.nii.gz"))
        sitk.WriteImage(_image(t1), str(d / "mr.nii.gz"))  # SynthRAD ships registered pairs
        sitk.WriteImage(_image((ct > -500).astype(np.uint8)), str(d / "mask.nii.gz"))
    return root


def test_rire_registration_realigns_mr(rire):
    (s1, _s2) = discover(rire, "rire")
    assert s1.subject_id == "patient_001" and set(s1.paths) == {"ct", "t1", "t2"}
    imgs, idx, info = load_paired(s1, size=32, n_slices=4, register=True)
    unreg, idx2, _ = load_paired(s1, size=32, n_slices=4, register=False)
    assert np.array_equal(idx, idx2) and len(idx) == 4
    assert imgs["ct"].shape == (4, 32, 32) and imgs["t1"].dtype == np.float32
    assert 0.0 <= imgs["t2"].min() and imgs["t2"].max() <= 1.0
    assert info["registration"]["t1"]["iterations"] > 0
    assert not info["registration"]["t1"]["worsened"]
    # the reference: the same MR never moved, on the CT grid
    ct, t1, _ = _volumes(1)
    ref_dir = rire.parent / "rire_ref"
    (ref_dir / "patient_001" / "ct").mkdir(parents=True, exist_ok=True)
    (ref_dir / "patient_001" / "mr_T1").mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(_image(ct), str(ref_dir / "patient_001" / "ct" / "ct.mha"))
    sitk.WriteImage(_image(t1), str(ref_dir / "patient_001" / "mr_T1" / "t1.mha"))
    (ref,) = discover(ref_dir, "rire", ("ct", "t1"))
    truth, _, _ = load_paired(ref, size=32, n_slices=4, register=False)
    err_reg = np.abs(imgs["t1"] - truth["t1"]).mean()
    err_unreg = np.abs(unreg["t1"] - truth["t1"]).mean()
    assert err_reg < 0.6 * err_unreg, (err_reg, err_unreg)


def test_rire_and_synthrad_simulate(rire, synthrad, tmp_path):
    out = tmp_path / "rire_out"
    args = [
        "simulate",
        "--input",
        str(rire),
        "--layout",
        "rire",
        "--size",
        "32",
        "--views",
        "8",
        "--slices",
        "2",
        "--split",
        "0.5,0.5,0",
        "--out",
        str(out),
        "-q",
        "--acquisition",
        "paper",
    ]
    assert main(args) == 0
    with h5py.File(out / "train.h5") as f, h5py.File(out / "val.h5") as g:
        assert f["ct/sinogram"].shape == (2, 8, f["ct/sinogram"].shape[2])
        assert f["mr/t2/kspace"].shape == (2, 32, 32)
        ids = {f["meta/subject_id"][0].decode(), g["meta/subject_id"][0].decode()}
        assert ids == {"patient_001", "patient_002"}
    out2 = tmp_path / "sr_out"
    assert (
        main(
            [
                "simulate",
                "--input",
                str(synthrad),
                "--layout",
                "synthrad",
                "--modalities",
                "ct,mr",
                "--size",
                "32",
                "--views",
                "8",
                "--slices",
                "2",
                "--no-register",
                "--split",
                "1,0,0",
                "--out",
                str(out2),
                "-q",
                "--acquisition",
                "paper",
            ]
        )
        == 0
    )
    with h5py.File(out2 / "train.h5") as f:
        assert f["images/t1"].shape == (4, 32, 32) and "images/t2" not in f
        assert "synthrad" in f.attrs["provenance"]


def test_csv_layout(synthrad, tmp_path):
    csv_path = tmp_path / "pairs.csv"
    with csv_path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["subject", "ct", "t1", "mask"])
        w.writerow(
            [
                "a",
                str(synthrad / "1BA001" / "ct.nii.gz"),
                str(synthrad / "1BA001" / "mr.nii.gz"),
                "",
            ]
        )
    (s,) = discover(csv_path, "csv", ("ct", "t1"))
    assert s.subject_id == "a" and s.mask is None
    imgs, _idx, _ = load_paired(s, size=16, n_slices=3, register=False)
    assert imgs["ct"].shape == (3, 16, 16) and imgs["t1"].max() > 0.5


def test_shipped_dicom_head_ct(tmp_path):
    from pydicom.data import get_testdata_file

    path = get_testdata_file("693_J2KI.dcm")
    img = read_image(path)
    arr = sitk.GetArrayFromImage(img)
    assert arr.shape == (1, 512, 512) and arr.min() < -900 and arr.max() > 1000  # HU
    import geometries as geo

    px = geo.preset("msl-paper", image_size=64).pixel_size
    with pytest.warns(UserWarning, match="mm cut"):  # a 243 mm head in a 142 mm field of view
        imgs, idx, prov = load_single(path, "ct", size=64, pixel_size=px)
    assert prov["pixel_size_mm"] == px and prov["sources"]["ct"]["dicom_modality"] == "CT"
    ct = imgs["ct"]
    assert ct.shape == (1, 64, 64) and idx.tolist() == [0]
    assert 0.0 <= ct.min() and ct.max() <= 1.0 and (ct > 0.3).mean() > 0.2  # head tissue
    out = tmp_path / "dcm"
    assert (
        main(
            [
                "simulate",
                "--input",
                path,
                "--layout",
                "single",
                "--modalities",
                "ct",
                "--size",
                "64",
                "--views",
                "16",
                "--out",
                str(out),
                "-q",
                "--acquisition",
                "paper",
            ]
        )
        == 0
    )
    with h5py.File(out / "train.h5") as f:
        assert f["ct/sinogram"].shape[:2] == (1, 16) and "mr" not in f
        assert np.array_equal(f["images/ct"][:], ct)


def _one_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def test_bad_inputs(tmp_path, capsys, rire):
    base = [
        "simulate",
        "--size",
        "16",
        "--views",
        "4",
        "--slices",
        "1",
        "-q",
        "--acquisition",
        "paper",
        "--out",
        str(tmp_path / "o"),
    ]
    # missing input
    assert main([*base, "--input", str(tmp_path / "nope"), "--layout", "rire"]) == 2
    assert "does not exist" in _one_error(capsys)
    # a CT without its MR
    d = tmp_path / "rire_bad" / "patient_009"
    (d / "ct").mkdir(parents=True)
    sitk.WriteImage(_image(_volumes(0)[0]), str(d / "ct" / "ct.mha"))
    assert main([*base, "--input", str(d.parent), "--layout", "rire"]) == 2
    assert "mr_T1" in _one_error(capsys)
    # unreadable file
    s = tmp_path / "sr_bad" / "c1"
    s.mkdir(parents=True)
    (s / "ct.nii.gz").write_bytes(b"this is not nifti")
    (s / "mr.nii.gz").write_bytes(b"nor this")
    assert (
        main([*base, "--input", str(s.parent), "--layout", "synthrad", "--modalities", "ct,t1"])
        == 2
    )
    assert "cannot read" in _one_error(capsys)
    # 2D where 3D is needed
    s2 = tmp_path / "sr_2d" / "c1"
    s2.mkdir(parents=True)
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((16, 16), np.float32)), str(s2 / "ct.nii.gz"))
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((16, 16), np.float32)), str(s2 / "mr.nii.gz"))
    assert (
        main([*base, "--input", str(s2.parent), "--layout", "synthrad", "--modalities", "ct,t1"])
        == 2
    )
    assert "3D" in _one_error(capsys)
    # NaNs
    s3 = tmp_path / "sr_nan" / "c1"
    s3.mkdir(parents=True)
    ct, t1, _ = _volumes(0)
    ct[3, 4, 5] = np.nan
    sitk.WriteImage(_image(ct), str(s3 / "ct.mha"))  # NIfTI I/O drops NaNs
    sitk.WriteImage(_image(t1), str(s3 / "mr.nii.gz"))
    assert (
        main([*base, "--input", str(s3.parent), "--layout", "synthrad", "--modalities", "ct,t1"])
        == 2
    )
    assert "NaN" in _one_error(capsys)
    # an MR that does not overlap the CT (mismatched geometry, --no-register)
    s4 = tmp_path / "sr_far" / "c1"
    s4.mkdir(parents=True)
    far = _image(t1)
    far.SetOrigin((1000.0, 1000.0, 1000.0))
    sitk.WriteImage(_image(_volumes(0)[0]), str(s4 / "ct.nii.gz"))
    sitk.WriteImage(far, str(s4 / "mr.nii.gz"))
    assert (
        main(
            [
                *base,
                "--input",
                str(s4.parent),
                "--layout",
                "synthrad",
                "--modalities",
                "ct,t1",
                "--no-register",
            ]
        )
        == 2
    )
    assert "mismatched geometry" in _one_error(capsys)
    assert not (tmp_path / "o").exists() or not list((tmp_path / "o").glob("*.h5"))
    with pytest.raises(InputError, match="exactly one modality"):
        discover(rire, "single", ("ct", "t1"))


def test_dicom_series_folder(tmp_path):
    ct, _, _ = _volumes(0)
    vol = _image(ct.astype(np.int16))
    d = tmp_path / "series"
    d.mkdir()
    w = sitk.ImageFileWriter()
    w.KeepOriginalImageUIDOn()
    for z in range(vol.GetDepth()):
        sl = vol[:, :, z]
        sl.SetMetaData("0020|000e", "1.2.826.0.1.3680043.2.1125.1")  # series UID
        sl.SetMetaData(
            "0020|0032", "\\".join(map(str, vol.TransformIndexToPhysicalPoint((0, 0, z))))
        )
        sl.SetMetaData("0020|0013", str(z))
        sl.SetMetaData("0008|0060", "CT")
        w.SetFileName(str(d / f"{z:03d}.dcm"))
        w.Execute(sl)
    img = read_image(d)
    assert img.GetSize() == vol.GetSize()
    assert np.allclose(img.GetSpacing(), SPACING, atol=1e-3)
    assert np.array_equal(sitk.GetArrayFromImage(img), ct.astype(np.int16).astype(np.float32))
