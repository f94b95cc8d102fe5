"""``msl-recon reconstruct`` from the command line: outputs, and bad input (exit 2)."""

from __future__ import annotations

import json
from pathlib import Path

import msl_recon_testdata as H
import numpy as np
import pytest

from msl_recon.cli.main import main


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("cli-rec")
    H.write_tiny_split(root / "train.h5", "train", 2, 1)
    H.write_tiny_split(root / "test.h5", "test", 2, 3)
    return root, H.make_checkpoint(root / "model.pt", root)


def test_reconstruct_mr_only_with_map(setup, tmp_path, capsys) -> None:
    from PIL import Image

    root, ckpt = setup
    Image.fromarray(np.full((10, 10), 255, np.uint8)).save(tmp_path / "lam.png")
    out = tmp_path / "o"
    rc = main(["reconstruct", "-i", str(root / "test.h5"), "-c", str(ckpt), "-o", str(out),
               "--modalities", "mr", "--lambda", "0,1", "--lambda-map", str(tmp_path / "lam.png"),
               "--slices", "1", "--device", "cpu", "--quiet"])  # fmt: skip
    assert rc == 0
    text = capsys.readouterr().out
    assert "| MSL | map | GT T1 |" in text
    payload = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    rows = {(r["output"], r["lambda"], r["reference"]): r for r in payload["rows"]}
    assert ("input zero-filled T1", "-", "GT T1") in rows
    assert ("input FBP", "-", "GT CT") not in rows  # CT data was not used
    # λ map of ones == λ = 1
    assert rows[("MSL", "map", "GT T1")]["mae"] == pytest.approx(
        rows[("MSL", "1", "GT T1")]["mae"], abs=1e-6
    )
    assert (out / "png" / "slice_0001.png").is_file()
    header = "output,lambda,reference,mae,ssim,mi,psnr"
    assert (out / "metrics.csv").read_text(encoding="utf-8").startswith(header)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--lambda", "0,1.5"], "outside [0, 1]"),
        (["--modalities", "t2"], "not in the checkpoint"),
        (["--lambda-map", "/nonexistent.png"], "does not exist"),
        (["--lambda-map", "BAD"], "cannot read"),
        (["--slices", "9"], "outside"),
        (["-c", "/nonexistent.pt"], "does not exist"),
        (["-i", "/nonexistent.h5"], "does not exist"),
        (["--out", "EXISTING"], "--overwrite"),
    ],
)
def test_bad_reconstruct_input_exits_2(setup, tmp_path, capsys, extra, message) -> None:
    root, ckpt = setup
    (tmp_path / "bad.png").write_bytes(b"garbage")
    (tmp_path / "existing").mkdir()
    (tmp_path / "existing" / "recon.h5").write_text("old")
    extra = [
        str(tmp_path / "bad.png") if e == "BAD" else str(tmp_path / "existing") if e == "EXISTING"
        else e
        for e in extra
    ]  # fmt: skip
    args = ["reconstruct", "-i", str(root / "test.h5"), "-c", str(ckpt), "-o",
            str(tmp_path / "o"), "--quiet", "--device", "cpu"]  # fmt: skip
    assert main(args + extra) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
    assert (tmp_path / "existing" / "recon.h5").read_text(encoding="utf-8") == "old"


def test_reconstruct_fewer_views_higher_acceleration(setup, tmp_path) -> None:
    """Other view counts / accelerations than the training data, without retraining."""
    import h5py

    root, ckpt = setup
    out = tmp_path / "o"
    rc = main(["reconstruct", "-i", str(root / "test.h5"), "-c", str(ckpt), "-o", str(out),
               "--n-views", "8", "--acceleration", "8", "--lambda", "0", "--quiet",
               "--device", "cpu"])  # fmt: skip
    assert rc == 0
    with h5py.File(out / "recon.h5") as f:
        assert f["msl_lam0.00"].shape == (2, 32, 32)
        assert np.isfinite(f["msl_lam0.00"][:]).all()
    bad = main(["reconstruct", "-i", str(root / "test.h5"), "-c", str(ckpt), "-o",
                str(tmp_path / "o2"), "--n-views", "7", "--quiet"])  # fmt: skip
    assert bad == 2


@pytest.mark.slow
def test_demo_end_to_end(tmp_path) -> None:
    """The README's main job at toy size: simulate → train → reconstruct (λ sweep/map/optimised)."""
    out = tmp_path / "demo"
    rc = main(["demo", "--out", str(out), "--size", "64", "--subjects", "3", "--slices", "2",
               "--iterations", "3", "--opt-steps", "3", "--quiet", "--device", "cpu"])  # fmt: skip
    assert rc == 0
    summary = (out / "summary.md").read_text(encoding="utf-8")
    assert "| MSL | optimized | GT CT |" in summary and "| MSL | map | GT T1 |" in summary
    assert (out / "run" / "last.pt").is_file() and (out / "lambda_map.png").is_file()
    assert len(list((out / "recon" / "png").glob("slice_*.png"))) >= 1
    assert main(["demo", "--out", str(out), "--quiet"]) == 2  # exists, no --overwrite


def test_reconstruct_three_modalities_simplex_sweep(setup, tmp_path, capsys) -> None:
    """n > 2: the default sweep is the vertices and the barycentre; ``--lambda`` takes points."""
    import h5py

    root, _ = setup
    ckpt = H.make_checkpoint(tmp_path / "m3.pt", root, modalities=("ct", "t1", "t2"))
    base = ["reconstruct", "-i", str(root / "test.h5"), "-c", str(ckpt), "--slices", "0",
            "--device", "cpu", "--quiet"]  # fmt: skip
    assert main([*base, "-o", str(tmp_path / "a")]) == 0
    with h5py.File(tmp_path / "a" / "recon.h5") as f:
        keys = {k for k in f if k.startswith("msl_")}
        assert keys == {"msl_ct", "msl_t1", "msl_t2", "msl_lam0.33-0.33-0.33"}
        assert not np.allclose(f["msl_ct"][:], f["msl_lam0.33-0.33-0.33"][:])
    payload = json.loads((tmp_path / "a" / "metrics.json").read_text(encoding="utf-8"))
    lams = {(r["output"], r["lambda"]) for r in payload["rows"]}
    assert ("MSL-CT", "vertex") in lams and ("MSL", "0.33:0.33:0.33") in lams
    capsys.readouterr()
    assert main([*base, "-o", str(tmp_path / "b"), "--lambda", "2:2:0,0:0:1"]) == 0
    with h5py.File(tmp_path / "b" / "recon.h5") as f:
        assert {k for k in f if k.startswith("msl_")} == {"msl_lam0.50-0.50-0.00", "msl_t2"}
    for bad, message in (("0.5", "needs 3 weights"), ("1:-1:1", "≥ 0"), ("a:b:c", "non-number")):
        assert main([*base, "-o", str(tmp_path / "c"), "--lambda", bad]) == 2
        assert message in capsys.readouterr().err
