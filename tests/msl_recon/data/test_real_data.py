"""Real images that ship in wheels (pydicom's CTs/MRs, nilearn's MNI152): orientation, physical
size, input checks."""

from __future__ import annotations

import gzip
import shutil
import warnings

import numpy as np
import pytest

sitk = pytest.importorskip("SimpleITK")
nib = pytest.importorskip("nibabel")
pydicom_data = pytest.importorskip("pydicom.data")

from msl_recon.data.checks import check_file_complete, detect_layout  # noqa: E402
from msl_recon.data.ingest import (  # noqa: E402
    discover,
    load_paired,
    load_single,
    read_image,
)
from msl_recon.data.intensity import hu_to_unit  # noqa: E402
from msl_recon.errors import InputError  # noqa: E402


def _dcm(name: str) -> str:
    path = pydicom_data.get_testdata_file(name)
    if path is None:
        pytest.skip(f"{name} not shipped with this pydicom")
    return path


def _ct_volume() -> tuple[np.ndarray, tuple[float, float, float], tuple[float, float, float]]:
    """A small 3D head CT (HU, ``(z, y, x)``) built from the shipped 693_J2KI slice.

    Every slice differs (shifted copies), so a wrong axis order or flip changes the slices.
    """
    import pydicom

    ds = pydicom.dcmread(_dcm("693_J2KI.dcm"))
    hu = ds.pixel_array.astype(np.float32) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    sl = hu.reshape(128, 4, 128, 4).mean(axis=(1, 3))  # 512² → 128², 4 × 0.4785 mm
    vol = np.stack([np.roll(sl, (2 * k, -3 * k), axis=(0, 1)) for k in range(5)])
    vol[2, 40:50, 60:70] = 1500.0  # an asymmetric marker
    spacing = (4 * 0.478516, 4 * 0.478516, 5.0)
    origin = (-122.5, -112.4, 47.0)
    return vol, spacing, origin


def _lps_image(vol, spacing, origin):
    img = sitk.GetImageFromArray(vol)
    img.SetSpacing(spacing)
    img.SetOrigin(origin)
    return img


def _write_ras_nifti(vol, spacing, origin, path) -> None:
    """The same CT stored RAS with nibabel (NIfTI's usual storage; independent of SimpleITK)."""
    _, ny, nx = vol.shape
    sx, sy, sz = spacing
    ox, oy, oz = origin
    data = np.ascontiguousarray(vol[:, ::-1, ::-1].transpose(2, 1, 0))  # data[i, j, k], i → R
    aff = np.array(
        [
            [sx, 0, 0, -ox - sx * (nx - 1)],
            [0, sy, 0, -oy - sy * (ny - 1)],
            [0, 0, sz, oz],
            [0, 0, 0, 1],
        ]
    )
    nib.save(nib.Nifti1Image(data, aff), str(path))


def _pir_image(vol, spacing, origin):
    """The same CT stored PIR (a sagittal acquisition): axes posterior, inferior, right."""
    nz, _, nx = vol.shape
    b = np.ascontiguousarray(vol[::-1, :, ::-1].transpose(2, 0, 1))  # (R, I, P) array order
    img = sitk.GetImageFromArray(b)
    img.SetSpacing((spacing[1], spacing[2], spacing[0]))
    img.SetDirection((0, 0, -1, 1, 0, 0, 0, -1, 0))
    o = np.asarray(origin) + np.asarray(spacing) * np.array([nx - 1, 0, nz - 1])
    img.SetOrigin(o.tolist())
    return img


def test_same_ct_in_lps_ras_pir_gives_the_same_slices(tmp_path):
    vol, sp, org = _ct_volume()
    lps = tmp_path / "lps.mha"
    sitk.WriteImage(_lps_image(vol, sp, org), str(lps))
    ras = tmp_path / "ras.nii.gz"
    _write_ras_nifti(vol, sp, org, ras)
    pir = tmp_path / "pir.mha"
    sitk.WriteImage(_pir_image(vol, sp, org), str(pir))
    assert read_image(pir).GetSize() == (128, 5, 128)  # really stored sagittally
    out = {}
    for name, path in (("lps", lps), ("ras", ras), ("pir", pir)):
        imgs, idx, prov = load_single(path, "ct", size=96, pixel_size=2.6)
        out[name] = (imgs["ct"], idx, prov)
    assert out["ras"][2]["sources"]["ct"]["orientation"] == "RAS"
    assert out["pir"][2]["sources"]["ct"]["orientation"] == "PIR"
    ref = out["lps"][0]
    assert ref.shape == (5, 96, 96)
    for name in ("ras", "pir"):
        np.testing.assert_array_equal(out[name][1], out["lps"][1])
        np.testing.assert_allclose(out[name][0], ref, atol=1e-4, err_msg=name)
    # the slices are the axial slices of the LPS volume: anterior up, patient right on the left
    marker = np.argwhere(ref[2] > hu_to_unit(np.float32(1200.0)))
    assert marker.size
    y0 = org[1] + sp[1] * 45  # marker centre (LPS mm)
    grid = out["lps"][2]["grid"]
    row = (y0 - grid["origin_xy_mm"][1]) / grid["pixel_size_mm"]
    assert abs(marker[:, 0].mean() - row) < 1.5


def _width_mm(tissue: np.ndarray, pixel_mm: float) -> float:
    """Left–right extent (mm) of the columns holding ≥ 10 mm of tissue (ignores thin lines)."""
    cols = np.flatnonzero(tissue.sum(axis=0) * pixel_mm >= 10.0)
    return float((cols[-1] - cols[0] + 1) * pixel_mm)


@pytest.mark.parametrize(
    "name", ["693_J2KI.dcm", "J2K_pixelrep_mismatch.dcm", "CT_small.dcm"], ids=lambda n: n[:8]
)
def test_real_ct_keeps_its_physical_width(name):
    path = _dcm(name)
    raw = read_image(path)
    hu = sitk.GetArrayFromImage(raw)[0]
    width_mm = _width_mm(hu > -500, raw.GetSpacing()[0])
    for px in (None, 2.0):  # fitted, and a given pixel size whose field of view holds the head
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # nothing is cut
            imgs, _, prov = load_single(path, "ct", size=128, pixel_size=px)
        tissue = imgs["ct"][0] > hu_to_unit(np.float32(-500.0))
        out_mm = _width_mm(tissue, prov["pixel_size_mm"])
        assert abs(out_mm / width_mm - 1.0) < 0.05, (name, px, out_mm, width_mm)


def test_head_wider_than_the_field_of_view_is_cut_with_a_warning():
    path = _dcm("693_J2KI.dcm")
    with pytest.warns(UserWarning, match=r"243 mm wide .* cut"):
        imgs, _, prov = load_single(path, "ct", size=64, pixel_size=1.5)
    assert prov["grid"]["cut_mm"] > 50
    assert imgs["ct"].shape == (1, 64, 64)


def test_truncated_files_are_refused(tmp_path):
    import importlib.util
    from pathlib import Path

    from msl_recon.data._mni import _FILES

    spec = importlib.util.find_spec("nilearn")
    if spec is None:
        pytest.skip("nilearn not installed")
    src = Path(spec.origin).parent / "datasets" / "data" / _FILES["t1"]
    good = tmp_path / "t1.nii.gz"
    shutil.copy(src, good)
    check_file_complete(good)  # the intact file passes
    raw = src.read_bytes()
    for n in (1024, len(raw) // 2):
        bad = tmp_path / f"cut{n}.nii.gz"
        bad.write_bytes(raw[:n])
        with pytest.raises(InputError, match=r"truncated|corrupt|cannot read"):
            read_image(bad)
    # uncompressed NIfTI and MetaImage cut short
    nii = tmp_path / "t1.nii"
    nii.write_bytes(gzip.decompress(raw)[:-5000])
    with pytest.raises(InputError, match="truncated"):
        read_image(nii)
    img = sitk.GetImageFromArray(np.ones((8, 16, 16), np.float32))
    sitk.WriteImage(img, str(tmp_path / "v.mha"))
    data = (tmp_path / "v.mha").read_bytes()
    (tmp_path / "w.mha").write_bytes(data[:-100])
    with pytest.raises(InputError, match=r"truncated|cannot read"):
        read_image(tmp_path / "w.mha")


def test_mr_dicom_given_as_ct_warns():
    path = _dcm("MR_small.dcm")
    with pytest.warns(UserWarning, match="Modality is 'MR' but it is used as CT"):
        load_single(path, "ct", size=32, pixel_size=1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_single(path, "t1", size=32)


def test_layout_errors_name_the_layouts(tmp_path):
    d = tmp_path / "sr" / "1BA001"
    d.mkdir(parents=True)
    img = sitk.GetImageFromArray(np.zeros((4, 8, 8), np.float32))
    sitk.WriteImage(img, str(d / "ct.nii.gz"))
    sitk.WriteImage(img, str(d / "mr.nii.gz"))
    assert detect_layout(d.parent) == "synthrad"
    with pytest.raises(InputError, match=r"looks like the synthrad layout.*csv = "):
        discover(d.parent, "rire", ("ct", "t1"))
    (s,) = discover(d.parent, "auto", ("ct", "t1"))
    assert s.layout == "synthrad"
    with pytest.raises(InputError, match="cannot tell the layout"):
        discover(tmp_path, "auto", ("ct", "t1"))


def test_one_file_dicom_series_error(tmp_path):
    (tmp_path / "p" / "patient_001" / "ct").mkdir(parents=True)
    (tmp_path / "p" / "patient_001" / "mr_T1").mkdir(parents=True)
    shutil.copy(_dcm("CT_small.dcm"), tmp_path / "p" / "patient_001" / "ct" / "a.dcm")
    shutil.copy(_dcm("MR_small.dcm"), tmp_path / "p" / "patient_001" / "mr_T1" / "a.dcm")
    (s,) = discover(tmp_path / "p", "rire", ("ct", "t1"))
    with pytest.raises(InputError, match=r"single slice .* DICOM series of ≥ 2 slices"):
        load_paired(s, size=32, pixel_size=1.0)


def _run(args) -> int:
    from msl_recon.cli.main import main

    return main(args)


def test_simulate_pixel_size_fit_and_provenance(tmp_path, capsys):
    import json

    import h5py

    path = _dcm("693_J2KI.dcm")
    out = tmp_path / "o"
    args = ["simulate", "--input", path, "--modalities", "ct", "--size", "64", "--views", "8"]
    assert _run([*args, "--pixel-size", "fit", "--out", str(out), "-q"]) == 0
    assert "pixel size fitted to the data" in capsys.readouterr().out
    with h5py.File(out / "train.h5") as f:
        g = json.loads(f.attrs["geometry"])
        prov = json.loads(f.attrs["provenance"])
    assert g["pixel_size"] * 64 == pytest.approx(243 * 1.1, rel=0.03)  # head + 5 % margins
    assert prov["register"] is None and prov["source"] == "single"  # auto-detected layout
    assert _run([*args, "--pixel-size", "-1", "--out", str(tmp_path / "p"), "-q"]) == 2
    assert "--pixel-size" in capsys.readouterr().err


def test_strict_refuses_a_registration_that_got_worse(tmp_path, monkeypatch, capsys):
    import msl_recon.data.registration as reg

    d = tmp_path / "sr" / "c1"
    d.mkdir(parents=True)
    vol, sp, org = _ct_volume()
    sitk.WriteImage(_lps_image(vol, sp, org), str(d / "ct.nii.gz"))
    sitk.WriteImage(_lps_image(np.clip(vol + 1000, 0, None) / 3000, sp, org), str(d / "mr.nii.gz"))
    real = reg.register_affine

    def worse(fixed, moving, **kw):
        res = real(fixed, moving, iterations=1, shrink_factors=(1,), smoothing_sigmas=(0.0,))
        res.initial_metric = res.metric - 0.1  # pretend it started better
        return res

    monkeypatch.setattr(reg, "register_affine", worse)
    base = ["simulate", "--input", str(d.parent), "--modalities", "ct,t1", "--size", "32"]
    base += ["--views", "8", "--split", "1,0,0", "--pixel-size", "8", "-q"]
    assert _run([*base, "--out", str(tmp_path / "a")]) == 0  # the CLI prints warnings as lines
    err = capsys.readouterr().err
    assert "warning:" in err and "ended worse than it started" in err
    assert _run([*base, "--strict", "--out", str(tmp_path / "b")]) == 2
    assert "ended worse than it started" in capsys.readouterr().err


@pytest.mark.slow
def test_paired_ingest_of_an_oblique_mr_and_a_ras_ct(tmp_path):
    """MNI152 T1 with a 4.8° + 5 mm misalignment in its (oblique) header, CT stored RAS:
    after load_paired the MR slices match those of the never-moved MR."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from test_registration import _misalignment, _mni_pair

    from msl_recon.data.layouts import SubjectFiles

    ct, t1 = _mni_pair()
    truth = _misalignment()
    a = np.asarray(truth.GetMatrix()).reshape(3, 3)
    obl = sitk.Image(t1)
    obl.SetDirection((a @ np.asarray(t1.GetDirection()).reshape(3, 3)).ravel().tolist())
    obl.SetOrigin(truth.TransformPoint(t1.GetOrigin()))
    sitk.WriteImage(sitk.Flip(ct, [True, True, False]), str(tmp_path / "ct.nii.gz"))  # RAS
    sitk.WriteImage(obl, str(tmp_path / "obl.nii.gz"))
    sitk.WriteImage(t1, str(tmp_path / "t1.nii.gz"))
    kw = {"size": 96, "pixel_size": 2.0, "n_slices": 8}
    moved = SubjectFiles("s", {"ct": tmp_path / "ct.nii.gz", "t1": tmp_path / "obl.nii.gz"})
    reg, idx, prov = load_paired(moved, register=True, **kw)
    unreg, _, _ = load_paired(moved, register=False, **kw)
    still = SubjectFiles("s", {"ct": tmp_path / "ct.nii.gz", "t1": tmp_path / "t1.nii.gz"})
    ref, idx2, _ = load_paired(still, register=False, **kw)
    np.testing.assert_array_equal(idx, idx2)
    head = ref["ct"] > 0.05
    err = np.abs(reg["t1"] - ref["t1"])[head].mean()
    before = np.abs(unreg["t1"] - ref["t1"])[head].mean()
    assert err < 0.25 * before, (err, before)  # measured 0.015 vs 0.104
    assert prov["sources"]["ct"]["orientation"] == "RAS"
    assert prov["sources"]["t1"]["obliquity_deg"] > 3.0
    r = prov["registration"]["t1"]
    assert r["metric_final"] < r["metric_initial"] and not r["worsened"]


def test_simulate_prints_a_registration_summary(tmp_path, capsys):
    d = tmp_path / "sr" / "c1"
    d.mkdir(parents=True)
    vol, sp, org = _ct_volume()
    sitk.WriteImage(_lps_image(vol, sp, org), str(d / "ct.nii.gz"))
    mr = _lps_image(np.clip(vol + 1000, 0, 1200) / 1200, sp, org)
    sitk.WriteImage(mr, str(d / "mr.nii.gz"))
    args = ["simulate", "--input", str(d.parent), "--modalities", "ct,t1", "--size", "32"]
    args += ["--views", "8", "--split", "1,0,0", "--pixel-size", "8", "--out", str(tmp_path / "o")]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert _run(args) == 0
    err = capsys.readouterr().err
    assert "registration c1 t1: MI " in err and " it, init " in err
