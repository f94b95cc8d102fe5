"""``msl-recon train`` from the command line: a short run, resume, and bad input (exit 2)."""

from __future__ import annotations

import csv
from pathlib import Path

import msl_recon_testdata as H
import pytest
import yaml

from msl_recon.cli.main import main
from msl_recon.training.checkpoint import load_checkpoint


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("cli-train")
    H.write_tiny_split(root / "train.h5", "train", 4, 1)
    H.write_tiny_split(root / "val.h5", "val", 2, 2)
    cfg = root / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(H.tiny_config().to_dict()))
    return root, cfg


def test_train_then_resume(setup, tmp_path, capsys) -> None:
    root, cfg = setup
    out = tmp_path / "run"
    args = ["train", "--data", str(root), "--out", str(out), "--config", str(cfg),
            "--batch-size", "2", "--val-every", "2", "--val-samples", "2", "--log-every", "1",
            "--checkpoint-every", "1", "--device", "cpu", "--quiet",
            "--modalities", "ct,mr"]  # fmt: skip
    assert main([*args, "--iterations", "2"]) == 0
    assert "trained to iteration 2" in capsys.readouterr().out
    assert {p.name for p in out.iterdir()} >= {"last.pt", "ckpt_0000001.pt", "ckpt_0000002.pt",
                                               "log.csv", "tb"}  # fmt: skip
    assert main([*args, "--iterations", "3", "--resume"]) == 0
    ck = load_checkpoint(out / "last.pt")
    assert ck["iteration"] == 3 and ck["modalities"] == ["ct", "t1"]
    rows = list(csv.DictReader((out / "log.csv").open()))
    assert [int(r["iteration"]) for r in rows if r.get("loss")] == [1, 2, 3]
    assert any(r.get("val_ct_ssim") for r in rows)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--data", "/nonexistent/dir"], "does not exist"),
        (["--modalities", "ct,spect"], "unknown modality"),
        (["--random-views", "0,8"], "≥ 1"),
        (["--random-acceleration", "0.5"], "≥ 1"),
        (["--config", "nonexistent.toml"], "neither"),
        (["--resume"], "no checkpoint"),
    ],
)
def test_bad_train_input_exits_2(setup, tmp_path, capsys, extra, message) -> None:
    root, cfg = setup
    args = ["train", "--data", str(root), "--out", str(tmp_path / "r"), "--config", str(cfg),
            "--iterations", "1", "--quiet", "--device", "cpu"]  # fmt: skip
    # later options win in click, so the bad value overrides the good one
    assert main(args + extra) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_non_empty_out_needs_overwrite(setup, tmp_path, capsys) -> None:
    root, cfg = setup
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "x").write_text("x")
    args = ["train", "--data", str(root), "--out", str(tmp_path / "r"), "--config", str(cfg),
            "--iterations", "1", "--quiet"]  # fmt: skip
    assert main(args) == 2
    assert "--overwrite" in capsys.readouterr().err
