"""Fig. 7 accelerations are real: re-derived masks sample W / R columns, not the centre block."""

from __future__ import annotations

import numpy as np
import pytest

import geometries as geo
from msl_recon.data.dataset import reduce_columns


@pytest.mark.parametrize("acc", [4, 8, 16])
def test_rederived_mask_hits_the_acceleration(acc: int) -> None:
    base = geo.CartesianMask(shape=(128, 128), acceleration=4, center_fraction=0.1, seed=0)
    n_keep = round(128 / acc)
    mask = reduce_columns(base.mask, base.center_slice, n_keep, np.random.default_rng(0))
    cols = mask.any(axis=0)
    assert 128 / cols.sum() == pytest.approx(acc)  # 1/16 was 13 columns (R ≈ 9.8) before
    assert cols[62:66].all()  # the k-space centre is always kept
    assert not (mask & ~base.mask).any()  # only measured samples are kept
