"""Figures: colour bars, CT windows, λ labels and the metric rows that make sense."""

from __future__ import annotations

import numpy as np
from PIL import Image

from msl_recon.figures import lambda_title, meaningful_metric_rows, save_strip


def _row(out, lam, ref):
    return {"output": out, "lambda": lam, "reference": ref, "mae": 0.1}


def test_lambda_title_names_the_modality():
    assert lambda_title(0.0, ("ct", "t1")) == "λ=0 (CT)"
    assert lambda_title(1.0, ("ct", "t2")) == "λ=1 (T2)"
    assert lambda_title(0.25, ("ct", "t1")) == "λ=0.25"


def test_meaningful_metric_rows():
    mods = ("ct", "t1")
    both = [
        _row("input FBP", "-", "GT CT"),
        *[_row("MSL", lam, ref) for lam in ("0", "0.5", "1") for ref in ("GT CT", "GT T1")],
        _row("MSL", "map", "GT CT"),
    ]
    kept = {(r["lambda"], r["reference"]) for r in meaningful_metric_rows(both, mods)}
    assert kept == {
        ("-", "GT CT"),
        ("0", "GT CT"),
        ("0.5", "GT CT"),
        ("0.5", "GT T1"),
        ("1", "GT T1"),
        ("map", "GT CT"),
    }
    ct_only = [r for r in both if r["reference"] == "GT CT"]
    kept = {r["lambda"] for r in meaningful_metric_rows(ct_only, mods)}
    assert kept == {"-", "0", "map"}  # a λ > 0 image is not scored as a CT


def test_strip_expands_ct_windows_and_adds_colour_bars(tmp_path):
    img = np.linspace(0, 1, 32 * 32, dtype=np.float32).reshape(32, 32)
    plain = save_strip(tmp_path / "a.png", [[("x", img), ("y", img)]], colorbar=False)
    ct = save_strip(
        tmp_path / "b.png",
        [[("GT CT", img, "ct"), ("y", img)], [("d", img - 0.5, "diff_ct")]],
        diff_rows=[1],
    )
    wa, ha = Image.open(plain).size
    wb, hb = Image.open(ct).size
    # three columns (CT full + brain window + y), each wider for its colour bar; two rows
    assert wb > 1.5 * wa * 1.2 and hb > 1.8 * ha
    arr = np.asarray(Image.open(ct).convert("L"), dtype=float)
    assert arr.std() > 20  # something was drawn
