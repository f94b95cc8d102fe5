"""FUSION: pixel-wise weighted fusion, and the translation used for misalignment experiments."""

from __future__ import annotations

import pytest
import torch

from msl_recon.baselines import fuse, fuse_many, fuse_sweep, shift_image


@pytest.fixture
def pair(torch_gen: torch.Generator, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    ct = torch.rand(2, 1, 8, 8, generator=torch_gen).to(device)
    mr = torch.rand(2, 1, 8, 8, generator=torch_gen).to(device)
    return ct, mr


def test_lambda_zero_and_one_return_the_inputs(pair: tuple[torch.Tensor, torch.Tensor]) -> None:
    ct, mr = pair
    assert torch.equal(fuse(ct, mr, 0.0), ct)
    assert torch.equal(fuse(ct, mr, 1.0), mr)
    # also as per-sample values and as maps
    assert torch.equal(fuse(ct, mr, torch.zeros(2)), ct)
    assert torch.equal(fuse(ct, mr, torch.ones(2, 1, 8, 8)), mr)


def test_intermediate_and_spatial_lambda(pair: tuple[torch.Tensor, torch.Tensor]) -> None:
    ct, mr = pair
    torch.testing.assert_close(fuse(ct, mr, 0.25), 0.75 * ct + 0.25 * mr)
    lam = torch.tensor([0.0, 1.0], device=ct.device)
    out = fuse(ct, mr, lam)
    torch.testing.assert_close(out[0], ct[0])
    torch.testing.assert_close(out[1], mr[1])
    lam_map = torch.zeros(2, 1, 8, 8, device=ct.device)
    lam_map[..., :, 4:] = 1.0  # left half CT, right half MRI
    out = fuse(ct, mr, lam_map)
    torch.testing.assert_close(out[..., :4], ct[..., :4])
    torch.testing.assert_close(out[..., 4:], mr[..., 4:])
    sweep = fuse_sweep(ct, mr, [0.0, 0.5, 1.0])
    assert sweep.shape == (3, *ct.shape)
    torch.testing.assert_close(sweep[1], (ct + mr) / 2)


def test_rejects_bad_lambda_and_shapes(pair: tuple[torch.Tensor, torch.Tensor]) -> None:
    ct, mr = pair
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        fuse(ct, mr, 1.5)
    with pytest.raises(ValueError, match="shape"):
        fuse(ct, mr[..., :4], 0.5)


def test_fuse_many_on_the_simplex(pair: tuple[torch.Tensor, torch.Tensor]) -> None:
    ct, mr = pair
    t2 = 1 - mr
    w = torch.tensor([[1.0, 0.0, 0.0], [0.2, 0.3, 0.5]], device=ct.device)
    out = fuse_many([ct, mr, t2], w)
    torch.testing.assert_close(out[0], ct[0])
    torch.testing.assert_close(out[1], 0.2 * ct[1] + 0.3 * mr[1] + 0.5 * t2[1])
    wmap = torch.zeros(2, 3, 8, 8, device=ct.device)
    wmap[:, 1] = 1.0
    torch.testing.assert_close(fuse_many([ct, mr, t2], wmap), mr)
    with pytest.raises(ValueError, match="sum to 1"):
        fuse_many([ct, mr, t2], torch.ones(2, 3, device=ct.device))


def test_shift_image_integer_and_subpixel(device: torch.device) -> None:
    img = torch.zeros(1, 1, 8, 8, device=device)
    img[..., 2, 3] = 1.0
    out = shift_image(img, (2, -1))
    assert float(out[..., 4, 2]) == 1.0 and float(out.sum()) == 1.0
    assert float(shift_image(img, (8, 0)).abs().sum()) == 0.0  # shifted out of view
    # a 0.5 px shift along columns splits the pixel between two neighbours
    half = shift_image(img, (0.0, 0.5))
    torch.testing.assert_close(half[0, 0, 2, 3:5], torch.tensor([0.5, 0.5], device=device))
    torch.testing.assert_close(float(half.sum()), 1.0)
