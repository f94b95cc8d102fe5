"""Torch metrics equal skimage's within 1e-3 (docs/architecture.md, Conventions).

The soft MI is differentiable.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage import data, transform
from skimage.metrics import (
    normalized_mutual_information,
    peak_signal_noise_ratio,
    structural_similarity,
)

from msl_recon import metrics as M


def _pairs(rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray]]:
    cam = transform.resize(data.camera().astype(np.float64) / 255.0, (72, 60))
    noisy = np.clip(cam + 0.1 * rng.standard_normal(cam.shape), 0, 1)
    blocks = np.kron(rng.random((6, 5)), np.ones((12, 12)))  # piecewise constant
    return [
        (rng.random((40, 48)), rng.random((40, 48))),  # random
        (cam, noisy),  # structured + noise
        (cam, cam**2),  # non-linear intensity relation
        (blocks, np.clip(blocks + 0.05 * rng.standard_normal(blocks.shape), 0, 1)),
    ]


@pytest.mark.parametrize("np_dtype", [np.float32, np.float64])
def test_match_skimage(rng, np_dtype, device):
    for a, b in _pairs(rng):
        a, b = a.astype(np_dtype), b.astype(np_dtype)
        ta, tb = torch.from_numpy(a).to(device), torch.from_numpy(b).to(device)
        s_ref = structural_similarity(a, b, data_range=1.0)
        n_ref = normalized_mutual_information(a, b, bins=100)
        p_ref = peak_signal_noise_ratio(a, b, data_range=1.0)
        assert abs(float(M.ssim(ta, tb)) - s_ref) < 1e-3
        assert abs(float(M.nmi(ta, tb)) - n_ref) < 1e-3
        assert abs(float(M.psnr(ta, tb)) - p_ref) < 1e-3
        assert abs(float(M.mae(ta, tb)) - np.abs(a - b).mean()) < 1e-6
        assert 1.0 <= n_ref <= 2.0


def test_batched_and_numpy_wrappers(rng):
    pairs = _pairs(rng)[1:3]
    a = torch.from_numpy(np.stack([p[0] for p in pairs]))[:, None]  # (2, 1, H, W)
    b = torch.from_numpy(np.stack([p[1] for p in pairs]))[:, None]
    s = M.ssim(a, b)
    n = M.nmi(a, b)
    assert s.shape == n.shape == (2, 1)
    for i, (x, y) in enumerate(pairs):
        assert abs(float(s[i, 0]) - structural_similarity(x, y, data_range=1.0)) < 1e-6
        assert abs(float(n[i, 0]) - normalized_mutual_information(x, y, bins=100)) < 1e-6
    x, y = pairs[0]
    d = M.all_metrics_np(x, y)
    assert set(d) == {"mae", "ssim", "mi", "psnr"}
    assert abs(d["ssim"] - structural_similarity(x, y, data_range=1.0)) < 1e-6
    assert M.ssim_np(x, x) == pytest.approx(1.0)
    assert M.nmi_np(x, x) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="same shape"):
        M.ssim(a, b[..., :-1])


def test_soft_nmi_tracks_nmi_and_has_gradients(rng):
    cam = torch.from_numpy(transform.resize(data.camera() / 255.0, (48, 48)))
    noisy = (cam + 0.3 * torch.from_numpy(rng.standard_normal(cam.shape))).clamp(0, 1)
    same, weak = M.soft_nmi(cam, cam), M.soft_nmi(cam, noisy)
    assert float(same) > float(weak) > 1.0  # ordering as the exact NMI
    assert float(M.nmi(cam, cam)) > float(M.nmi(cam, noisy))
    mi_same = M.soft_mutual_information(cam, cam)
    assert float(mi_same) > float(M.soft_mutual_information(cam, noisy)) > 0
    x = noisy.clone().requires_grad_(True)
    M.soft_nmi(x, cam).backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
