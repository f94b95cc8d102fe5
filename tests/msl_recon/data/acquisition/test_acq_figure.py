"""The clinical-subject figure: simulation of one slice and the PNG."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.mark.slow
def test_clinical_slice_and_figure(tmp_path) -> None:
    from msl_recon.data.acquisition.figure import render_clinical_figure, simulate_clinical_slice

    d = simulate_clinical_slice(9, size=64, n_views=32)
    assert d["ct_gt"].shape == d["ct_fbp"].shape == (64, 64)
    assert d["coil_imgs"].shape == (12, 64, 64)
    gt = d["mr_gt"]
    obj = gt > 0.1 * gt.max()
    err = np.linalg.norm((d["sense"] - gt)[obj]) / np.linalg.norm(gt[obj])
    assert err < 0.5
    out = render_clinical_figure(tmp_path / "f.png", size=64)
    assert out.stat().st_size > 10_000
