"""CT window metrics against skimage, head mask."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from skimage.metrics import mean_squared_error, peak_signal_noise_ratio, structural_similarity

from msl_recon import metrics as M


def _pair(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[:64, :64] - 31.5
    head = (xx / 28) ** 2 + (yy / 24) ** 2 < 1
    skull = head & ((xx / 25) ** 2 + (yy / 21) ** 2 > 1)
    gt = np.full((64, 64), -1000.0)
    gt[head] = 30 + 8 * ndimage.gaussian_filter(rng.standard_normal((64, 64)), 2)[head] * 5
    gt[skull] = 1500.0
    pred = gt + rng.normal(0, 15, gt.shape)
    return pred, gt


@pytest.mark.parametrize("window", ["paper", "brain", (-100.0, 200.0)])
def test_window_metrics_match_skimage(window, rng) -> None:
    pred, gt = _pair(rng)
    lo, hi = M.CT_WINDOWS[window] if isinstance(window, str) else window
    a = (np.clip(pred, lo, hi) - lo) / (hi - lo)
    b = (np.clip(gt, lo, hi) - lo) / (hi - lo)
    out = M.window_metrics(pred, gt, window)
    assert out["ssim"] == pytest.approx(structural_similarity(a, b, data_range=1.0), abs=1e-7)
    assert out["psnr"] == pytest.approx(peak_signal_noise_ratio(b, a, data_range=1.0), abs=1e-7)
    assert out["mae"] == pytest.approx(np.abs(a - b).mean(), abs=1e-10)
    assert out["mae_hu"] == pytest.approx(np.abs(a - b).mean() * (hi - lo), abs=1e-7)


def test_masked_window_metrics_match_skimage_map(rng) -> None:
    pred, gt = _pair(rng)
    mask = M.head_mask(gt)
    lo, hi = M.CT_WINDOWS["brain"]
    a = (np.clip(pred, lo, hi) - lo) / (hi - lo)
    b = (np.clip(gt, lo, hi) - lo) / (hi - lo)
    _, smap = structural_similarity(a, b, data_range=1.0, full=True)
    crop = (slice(3, -3), slice(3, -3))
    ref_ssim = smap[crop][mask[crop]].mean()
    out = M.window_metrics(pred, gt, "brain", mask)
    assert out["ssim"] == pytest.approx(ref_ssim, abs=1e-7)
    mse = mean_squared_error(a[mask], b[mask])
    assert out["psnr"] == pytest.approx(10 * np.log10(1 / mse), abs=1e-7)
    # the brain window separates what the paper window hides
    paper = M.window_metrics(pred, gt, "paper", mask)
    assert out["mae"] > 5 * paper["mae"]


def test_batched(rng) -> None:
    pairs = [_pair(rng) for _ in range(3)]
    pred = np.stack([p for p, _ in pairs])
    gt = np.stack([g for _, g in pairs])
    out = M.window_metrics(pred, gt, "brain", M.head_mask(gt))
    assert out["ssim"].shape == (3,)
    single = M.window_metrics(pred[1], gt[1], "brain", M.head_mask(gt[1]))
    assert out["ssim"][1] == pytest.approx(single["ssim"])


def test_head_mask_fills_holes() -> None:
    hu = np.full((32, 32), -1000.0)
    hu[4:28, 4:28] = 40.0
    hu[12:16, 12:16] = -950.0  # a sinus inside the head
    m = M.head_mask(hu)
    assert m[13, 13] and m[5, 5] and not m[1, 1]


def test_bad_window() -> None:
    with pytest.raises(ValueError):
        M.window_metrics(np.zeros((8, 8)), np.zeros((8, 8)), (10.0, 0.0))
