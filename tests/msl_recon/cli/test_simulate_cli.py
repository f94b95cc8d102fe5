"""``msl-recon simulate / inspect / preview / merge`` end to end on tiny phantom datasets."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

import geometries as geo
import operators as ops
from msl_recon.cli.main import main
from msl_recon.data.hdf5 import read_attrs

# the paper preset: noise-free, real-valued, same grid (exact operator round trips below)
TINY = ["--size", "32", "--subjects", "3", "--slices", "2", "--views", "8", "-q"]
TINY += ["--acquisition", "paper"]


def _arrays(path: Path) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    with h5py.File(path, "r") as f:
        f.visititems(
            lambda n, o: out.__setitem__(n, o[()]) if isinstance(o, h5py.Dataset) else None
        )
    return out


def _same_files(a: Path, b: Path) -> None:
    x, y = _arrays(a), _arrays(b)
    assert sorted(x) == sorted(y)
    for k in x:
        assert x[k].dtype == y[k].dtype and np.array_equal(x[k], y[k]), k
    assert read_attrs(a) == read_attrs(b)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sim") / "full"
    assert main(["simulate", *TINY, "--out", str(out), "--ct-i0", "1e5", "--mr-snr", "30"]) == 0
    return out


def test_split_files_by_subject(run_dir):
    subjects = {}
    for s in ("train", "val", "test"):
        p = run_dir / f"{s}.h5"
        assert p.is_file()
        with h5py.File(p) as f:
            subjects[s] = {x.decode() for x in f["meta/subject_id"][:]}
            assert f["images/ct"].shape[1:] == (32, 32)
            assert f["images/ct"].shape[0] == 2 * len(subjects[s])
            for m in ("ct", "t1", "t2"):
                img = f[f"images/{m}"][:]
                assert img.dtype == np.float32 and img.min() >= 0 and img.max() <= 1
            assert f["ct/sinogram"].dtype == np.float32
        a = read_attrs(p)
        assert a["split"] == s and a["noise"]["ct"]["i0"] == 1e5
        assert a["provenance"]["source"] == "phantom"
    assert sum(len(v) for v in subjects.values()) == 3
    assert not (subjects["train"] & subjects["val"]) and not (subjects["train"] & subjects["test"])


def test_noise_free_stored_data_match_operators(tmp_path):
    out = tmp_path / "clean"
    assert (
        main(
            [
                "simulate",
                *TINY,
                "--subjects",
                "1",
                "--split",
                "1,0,0",
                "--out",
                str(out),
                "--mask-mode",
                "per-slice",
            ]
        )
        == 0
    )
    p = out / "train.h5"
    g = geo.geometry_from_dict(read_attrs(p)["geometry"])
    with h5py.File(p) as f:
        x = torch.from_numpy(f["images/ct"][:])
        assert torch.equal(torch.from_numpy(f["ct/sinogram"][:]), ops.RayTransform(g)(x))
        mask = torch.from_numpy(f["mr/t1/mask"][:])
        assert not torch.equal(mask[0], mask[1])  # per-slice masks
        k = ops.CartesianFourier(mask)(torch.from_numpy(f["images/t1"][:]))
        assert torch.equal(torch.from_numpy(f["mr/t1/kspace"][:]), k)


def test_reproducible_and_shards_merge(run_dir, tmp_path):
    again = tmp_path / "again"
    args = ["simulate", *TINY, "--ct-i0", "1e5", "--mr-snr", "30"]
    assert main([*args, "--out", str(again)]) == 0
    for s in ("train", "val", "test"):
        _same_files(run_dir / f"{s}.h5", again / f"{s}.h5")
    sh = tmp_path / "shards"
    for i in (1, 2):
        assert main([*args, "--out", str(sh), "--shard", f"{i}/2"]) == 0
    assert len(list(sh.glob("*.shard-*-of-2.h5"))) == 6
    assert read_attrs(sh / "train.shard-1-of-2.h5")["shard"] == "1/2"
    assert main(["merge", str(sh)]) == 0
    for s in ("train", "val", "test"):
        _same_files(run_dir / f"{s}.h5", sh / f"{s}.h5")
    # merging again refuses to clobber
    assert main(["merge", str(sh)]) == 2


def test_inspect_and_preview(run_dir, tmp_path, capsys):
    assert main(["inspect", str(run_dir / "train.h5")]) == 0
    text = capsys.readouterr().out
    assert "FanBeam2D" in text and "ct/sinogram" in text and "CartesianMask" in text
    assert "subjects: 1" in text
    assert main(["inspect", str(run_dir)]) == 0
    text = capsys.readouterr().out
    assert text.count("subjects: 1") == 3 and "split: val" in text
    png = tmp_path / "p.png"
    assert main(["preview", str(run_dir / "train.h5"), "--out", str(png)]) == 0
    import matplotlib.image as mpimg

    img = mpimg.imread(png)
    assert img.shape[0] > 200 and img.shape[1] > 600 and img.std() > 0.05


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def test_bad_arguments(run_dir, tmp_path, capsys):
    assert main(["simulate", *TINY, "--out", str(run_dir)]) == 2
    assert "--overwrite" in _error_line(capsys)
    assert main(["simulate", *TINY, "--out", str(tmp_path / "x"), "--shard", "3/2"]) == 2
    assert "1 ≤ i ≤ n" in _error_line(capsys)
    assert main(["simulate", *TINY, "--out", str(tmp_path / "x"), "--shard", "a"]) == 2
    _error_line(capsys)
    gfile = tmp_path / "g.json"
    gfile.write_text(json.dumps(geo.preset("msl-paper", image_size=64).to_dict()))
    assert main(["simulate", *TINY, "--out", str(tmp_path / "x"), "--geometry", str(gfile)]) == 2
    assert "mismatched geometry" in _error_line(capsys)
    gfile.write_text("{not json")
    assert main(["simulate", "-q", "--out", str(tmp_path / "x"), "--geometry", str(gfile)]) == 2
    assert "geometry JSON" in _error_line(capsys)
    assert main(["simulate", *TINY, "--out", str(tmp_path / "x"), "--modalities", "spect"]) == 2
    _error_line(capsys)
    assert main(["simulate", *TINY, "--out", str(tmp_path / "x"), "--acceleration", "0.5"]) == 2
    _error_line(capsys)
    assert main(["inspect", str(tmp_path / "missing.h5")]) == 2
    _error_line(capsys)
    assert main(["merge", str(tmp_path)]) == 2
    assert "no shard files" in _error_line(capsys)
    assert not (tmp_path / "x").exists() or not list((tmp_path / "x").iterdir())


def test_geometry_file_and_radial(tmp_path):
    g = geo.ParallelBeam2D(image_size=32, pixel_size=1.0, n_views=12)
    gfile = tmp_path / "g.json"
    gfile.write_text(json.dumps(g.to_dict()))
    out = tmp_path / "r"
    assert (
        main(
            [
                "simulate",
                *TINY[2:],
                "--subjects",
                "1",
                "--split",
                "1,0,0",
                "--geometry",
                str(gfile),
                "--views",
                "6",
                "--trajectory",
                "radial",
                "--spokes",
                "10",
                "--modalities",
                "ct,t2",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    a = read_attrs(out / "train.h5")
    assert geo.geometry_from_dict(a["geometry"]) == g.with_views(6)
    assert a["sampling"]["t2"]["type"] == "RadialTrajectory"
    with h5py.File(out / "train.h5") as f:
        assert f["mr/t2/kspace"].shape == (2, 10 * 64) and "mr/t2/mask" not in f


def test_exception_mid_run_leaves_no_output(tmp_path, monkeypatch):
    from msl_recon.data import simulate as simmod

    calls = {"n": 0}
    real = simmod.Simulator.simulate

    def flaky(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("injected failure")
        return real(self, *a, **k)

    monkeypatch.setattr(simmod.Simulator, "simulate", flaky)
    out = tmp_path / "o"
    with pytest.raises(RuntimeError, match="injected"):
        main(["simulate", *TINY, "--out", str(out)])
    assert calls["n"] == 2
    assert list(out.iterdir()) == []  # neither split files nor temporaries


@pytest.mark.slow
def test_sigkill_mid_write_leaves_no_output_and_rerun_completes(tmp_path):
    out = tmp_path / "o"
    args = ["simulate", "--size", "32", "--subjects", "40", "--slices", "4", "--views", "8", "-q",
            "--out", str(out)]  # fmt: skip
    code = f"from msl_recon.cli.main import main; main({args!r})"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-c", code], env=env)
    try:
        deadline = time.time() + 120
        # wait until slices are being written into the staged files
        while time.time() < deadline:
            staged = list(out.glob(".staging.*.tmp/*.h5")) if out.exists() else []
            if staged and max(t.stat().st_size for t in staged) > 20_000:
                break
            assert proc.poll() is None, "simulation finished before it could be killed"
            time.sleep(0.2)
        else:
            pytest.fail("no staged output appeared")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    assert list(out.glob("*.h5")) == []  # only the hidden stage is left, never a split file
    # the same command again: cleans the dead run's stage and completes
    assert main(args) == 0
    assert sorted(p.name for p in out.iterdir()) == ["test.h5", "train.h5", "val.h5"]


@pytest.mark.slow
def test_workers_give_identical_files(run_dir, tmp_path):
    out = tmp_path / "w2"
    args = ["simulate", *TINY, "--out", str(out), "--ct-i0", "1e5", "--mr-snr", "30"]
    assert main([*args, "--workers", "2"]) == 0
    for s in ("train", "val", "test"):
        _same_files(run_dir / f"{s}.h5", out / f"{s}.h5")


@pytest.mark.slow
def test_no_arguments_writes_default_dataset(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["simulate", "-q"]) == 0
    for s in ("train", "val", "test"):
        p = tmp_path / "data" / "phantom" / f"{s}.h5"
        with h5py.File(p) as f:
            assert f["images/ct"].shape[1:] == (256, 256)
            assert f["ct/sinogram"].shape[1] == 64


def test_clinical_is_the_default_and_avoids_the_inverse_crime(tmp_path):
    """Default ``--acquisition clinical``: preset stored, complex 12-coil k-space with coil maps
    estimated from the data (the true maps are not stored), a sinogram that is not A(gt)."""
    from msl_recon.data.acquisition.presets import AcquisitionPreset
    from msl_recon.data.hdf5 import read_attrs

    out = tmp_path / "clin"
    args = ["--size", "32", "--subjects", "3", "--slices", "2", "--views", "16", "-q"]
    assert main(["simulate", *args, "--out", str(out), "--ct-dose", "none"]) == 0
    attrs = read_attrs(out / "train.h5")
    assert AcquisitionPreset.from_attrs(attrs).name == "clinical"
    a = _arrays(out / "train.h5")
    k = a["mr/t1/kspace"]
    assert k.shape[1:] == (12, 32, 32) and np.iscomplexobj(k)
    assert np.abs(np.angle(k[np.abs(k) > 0])).std() > 0.5  # a phase, not a real image
    assert "mr/t1/coil_maps_est" in a and "mr/t1/coil_maps" not in a
    from msl_recon.data.dataset import MSLDataset

    ds = MSLDataset(out / "train.h5")
    sino = torch.from_numpy(a["ct/sinogram"])
    ref = ops.RayTransform(ds.geometry)(torch.from_numpy(a["images/ct"]))
    rel = float((sino - ref).norm() / ref.norm())
    assert 1e-3 < rel < 0.1, rel  # not the reconstruction operator's output, but close to it
