"""Every bad input is one ``error:`` line with status 2; Ctrl-C is 130; bugs keep a traceback.

One representative case per class of the issue: framework option errors, filesystem errors,
invalid data (schema, NaN), resume mismatches, silent defaults, interruption.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import msl_recon_testdata as H
import numpy as np
import pytest
import torch
import yaml

from msl_recon.cli.main import main

SIM = ["--size", "32", "--subjects", "3", "--slices", "1", "--views", "8", "-q"]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> tuple[Path, Path, Path]:
    """Tiny train/val/test splits, a tiny config file and an untrained checkpoint."""
    root = tmp_path_factory.mktemp("err")
    H.write_tiny_split(root / "train.h5", "train", 4, 1)
    H.write_tiny_split(root / "val.h5", "val", 2, 2)
    H.write_tiny_split(root / "test.h5", "test", 2, 3)
    cfg = root / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(H.tiny_config().to_dict()))
    return root, cfg, H.make_checkpoint(root / "model.pt", root)


def _one_error_line(capsys, rc: int, needle: str) -> str:
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert rc == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    assert needle in lines[0], lines[0]
    return lines[0]


def _train(root: Path, cfg: Path, out: Path, *extra: str) -> list[str]:
    return ["train", "--data", str(root), "--out", str(out), "--config", str(cfg),
            "--iterations", "1", "--quiet", "--device", "cpu", "--no-tensorboard",
            "--val-every", "0", *extra]  # fmt: skip


# ------------------------------------------------------------------ framework option errors
@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["train", "--data", "d", "--out", "o", "--batch-size", "0"], "--batch-size"),
        (["train", "--data", "d", "--out", "o", "--iterations", "0"], "--iterations"),
        (["simulate", "--size", "abc"], "--size"),
        (["simulate", "--views", "0"], "--views"),
        (["simulate", "--trajectory", "radial", "--spokes", "0"], "--spokes"),
        (["reconstruct", "-c", "x.pt", "-o", "o", "--batch-size", "0"], "--batch-size"),
        (["no-such-command"], "No such command"),
    ],
)
def test_option_errors_are_one_line(capsys, args, needle) -> None:
    _one_error_line(capsys, main(args), needle)


def test_library_rejects_zero_views_instead_of_defaulting() -> None:
    import geometries as geo

    with pytest.raises(ValueError, match="n_views"):
        geo.preset("msl-paper", image_size=32, n_views=0)
    assert geo.preset("msl-paper", image_size=32).n_views == 64  # None = the preset's


# ------------------------------------------------------------------ filesystem errors
def test_output_under_a_file(data, tmp_path, capsys) -> None:
    root, cfg, ckpt = data
    blocker = tmp_path / "file"
    blocker.write_text("x")
    rec = ["reconstruct", "-i", str(root / "test.h5"), "-c", str(ckpt), "-o", str(blocker / "o"),
           "--device", "cpu", "--quiet"]  # fmt: skip
    cases = [
        (["simulate", *SIM, "--out", str(blocker / "sub")], "file"),
        (["simulate", *SIM, "--out", str(blocker)], "not a directory"),
        (_train(root, cfg, blocker / "run"), "file"),
        (rec, "file"),
        (["preview", str(root / "test.h5"), "--out", str(blocker / "p.png")], "file"),
    ]
    for args, needle in cases:
        _one_error_line(capsys, main(args), needle)
    assert blocker.read_text() == "x"


def test_os_error_from_deep_inside_is_one_line(data, tmp_path, capsys, monkeypatch) -> None:
    from msl_recon.data import pipeline

    def deny(run):
        raise PermissionError(13, "Permission denied", str(tmp_path / "train.h5"))

    monkeypatch.setattr(pipeline, "run_simulation", deny)
    line = _one_error_line(capsys, main(["simulate", *SIM, "--out", str(tmp_path)]), "Permission")
    assert str(tmp_path / "train.h5") in line


def test_bogus_device(tmp_path, capsys) -> None:
    _one_error_line(
        capsys, main(["simulate", *SIM, "--out", str(tmp_path), "--device", "bogus"]), "bogus"
    )


# ------------------------------------------------------------------ invalid data
def _copy_without(src: Path, dst: Path, drop: str) -> Path:
    shutil.copy(src, dst)
    with h5py.File(dst, "a") as f:
        del f[drop]
    return dst


def test_missing_mri_group(data, tmp_path, capsys) -> None:
    root, cfg, ckpt = data
    d = tmp_path / "d"
    d.mkdir()
    _copy_without(root / "train.h5", d / "train.h5", "mr/t1")
    _one_error_line(capsys, main(_train(d, cfg, tmp_path / "run")), "mr/t1/kspace")
    assert not (tmp_path / "run").exists()
    rec = ["reconstruct", "-i", str(d / "train.h5"), "-c", str(ckpt), "-o", str(tmp_path / "o"),
           "--modalities", "mr", "--device", "cpu", "--quiet"]  # fmt: skip
    _one_error_line(capsys, main(rec), "mr/t1/kspace")
    assert not (tmp_path / "o").exists()


def test_nan_in_raw_data_is_caught_before_training(data, tmp_path, capsys) -> None:
    root, cfg, _ = data
    d = tmp_path / "d"
    d.mkdir()
    shutil.copy(root / "train.h5", d / "train.h5")
    with h5py.File(d / "train.h5", "a") as f:
        f["ct/sinogram"][2, 3, 4] = np.nan
    line = _one_error_line(capsys, main(_train(d, cfg, tmp_path / "run")), "non-finite")
    assert "ct/sinogram" in line and "slice 2" in line


def test_nan_in_raw_npy_input(data, tmp_path, capsys) -> None:
    root, _, ckpt = data
    with h5py.File(root / "test.h5") as f:
        sino = f["ct/sinogram"][:1]
    sino[0, 1, 2] = np.inf
    np.save(tmp_path / "sino.npy", sino)
    rec = ["reconstruct", "-i", str(tmp_path / "sino.npy"), "-c", str(ckpt), "-o",
           str(tmp_path / "o"), "--device", "cpu", "--quiet"]  # fmt: skip
    _one_error_line(capsys, main(rec), "non-finite")
    assert not (tmp_path / "o").exists()


def test_validate_checks_shapes(data, tmp_path) -> None:
    from msl_recon.data.hdf5 import validate
    from msl_recon.errors import InputError

    root, _, _ = data
    assert validate(root / "train.h5") == ("ct", "t1")
    p = tmp_path / "bad.h5"
    shutil.copy(root / "train.h5", p)
    with h5py.File(p, "a") as f:
        sino = f["ct/sinogram"][:, :8]
        del f["ct/sinogram"]
        f["ct/sinogram"] = sino
    with pytest.raises(InputError, match=r"ct/sinogram has shape \(4, 8, \d+\), expected"):
        validate(p)


# ------------------------------------------------------------------ resume
@pytest.fixture(scope="module")
def run(data, tmp_path_factory) -> Path:
    root, cfg, _ = data
    out = tmp_path_factory.mktemp("run") / "r"
    assert main(_train(root, cfg, out, "--checkpoint-every", "1")) == 0
    return out


def test_resume_refuses_options_it_cannot_honour(data, run, tmp_path, capsys) -> None:
    root, cfg, _ = data
    work = tmp_path / "r"
    shutil.copytree(run, work)
    base = ["train", "--data", str(root), "--out", str(work), "--iterations", "2", "--resume",
            "--quiet", "--device", "cpu", "--no-tensorboard", "--val-every", "0"]  # fmt: skip
    _one_error_line(capsys, main([*base, "--config", "paper"]), "--config paper")
    _one_error_line(capsys, main([*base, "--lr", "0.5"]), "--lr 0.5")
    _one_error_line(capsys, main([*base, "--batch-size", "3"]), "--batch-size 3")
    # the stored values themselves are fine
    assert main([*base, "--config", str(cfg), "--batch-size", "2"]) == 0


def test_resume_with_mismatched_weights(data, run, tmp_path, capsys) -> None:
    from msl_recon.training.checkpoint import load_checkpoint, save_checkpoint

    root, _, _ = data
    work = tmp_path / "r"
    shutil.copytree(run, work)
    for p in work.glob("*.pt"):
        ck = load_checkpoint(p)
        name = next(iter(ck["model"]))
        ck["model"][name] = torch.zeros(3, 3)
        save_checkpoint(p, ck)
    args = ["train", "--data", str(root), "--out", str(work), "--iterations", "2", "--resume",
            "--quiet", "--device", "cpu"]  # fmt: skip
    _one_error_line(capsys, main(args), "do not match")


def test_resume_on_data_of_another_size(data, run, tmp_path, capsys, monkeypatch) -> None:
    d = tmp_path / "d16"
    d.mkdir()
    monkeypatch.setattr(H, "TINY_N", 16)
    H.write_tiny_split(d / "train.h5", "train", 2, 1)
    work = tmp_path / "r"
    shutil.copytree(run, work)
    args = ["train", "--data", str(d), "--out", str(work), "--iterations", "2", "--resume",
            "--quiet", "--device", "cpu"]  # fmt: skip
    _one_error_line(capsys, main(args), "32² images")


def test_zero_lr_is_an_error_not_the_default(data, tmp_path, capsys) -> None:
    root, cfg, _ = data
    _one_error_line(capsys, main(_train(root, cfg, tmp_path / "r", "--lr", "0")), "--lr")
    _one_error_line(capsys, main(_train(root, cfg, tmp_path / "r", "--lr", "-1")), "--lr")


def test_run_killed_before_first_checkpoint_says_what_to_do(data, tmp_path, capsys) -> None:
    root, cfg, _ = data
    out = tmp_path / "r"
    out.mkdir()
    (out / "log.csv").write_text("iteration,loss\n1,0.5\n")  # what a killed run leaves
    line = _one_error_line(capsys, main(_train(root, cfg, out, "--resume")), "--overwrite")
    assert "before its first" in line
    line = _one_error_line(capsys, main(_train(root, cfg, out)), "--overwrite")
    assert "before its first" in line
    assert main(_train(root, cfg, out, "--overwrite")) == 0


# ------------------------------------------------------------------ silent defaults
def test_preview_does_not_overwrite_by_default(data, tmp_path, capsys) -> None:
    root, _, _ = data
    png = tmp_path / "p.png"
    png.write_bytes(b"old")
    _one_error_line(capsys, main(["preview", str(root / "test.h5"), "--out", str(png)]), "exists")
    assert png.read_bytes() == b"old"
    assert main(["preview", str(root / "test.h5"), "--out", str(png), "--overwrite"]) == 0
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_truncating_detector_is_an_error_unless_allowed(tmp_path, capsys) -> None:
    import geometries as geo

    g = geo.preset("msl-paper", image_size=32, n_views=8).to_dict()
    g["det_count"], g["det_spacing"] = 4, 0.5  # ~7 mm of a 141.7 mm field
    gf = tmp_path / "g.json"
    gf.write_text(json.dumps(g))
    args = ["simulate", *SIM, "--geometry", str(gf), "--modalities", "ct"]
    line = _one_error_line(capsys, main([*args, "--out", str(tmp_path / "a")]), "truncated")
    assert "--allow-truncation" in line and "141.7 mm" in line
    assert not (tmp_path / "a").exists()
    rc = main([*args, "--out", str(tmp_path / "b"), "--allow-truncation"])
    err = capsys.readouterr().err
    assert rc == 0 and (tmp_path / "b" / "train.h5").is_file()
    warn = [ln for ln in err.splitlines() if ln.strip()]
    assert warn and all(ln.startswith("warning: ") for ln in warn), err  # no source lines


# ------------------------------------------------------------------ interruption, bugs
def test_ctrl_c_is_130_with_one_line(tmp_path, capsys, monkeypatch) -> None:
    from msl_recon.data import pipeline

    def interrupted(run):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "run_simulation", interrupted)
    rc = main(["simulate", *SIM, "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 130 and err.strip() == "interrupted", err


def test_genuine_bugs_keep_their_traceback(tmp_path, monkeypatch) -> None:
    from msl_recon.data import pipeline

    def bug(run):
        return 1 / 0

    monkeypatch.setattr(pipeline, "run_simulation", bug)
    with pytest.raises(ZeroDivisionError):
        main(["simulate", *SIM, "--out", str(tmp_path)])
