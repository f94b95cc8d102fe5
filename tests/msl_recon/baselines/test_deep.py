"""U-Net, PatchGAN, pix2pix and DeepFusion on tiny images (16², few channels)."""

from __future__ import annotations

import pytest
import torch

from msl_recon.baselines import (
    DeepFusion,
    PatchDiscriminator,
    Pix2Pix,
    UNet,
    deepfusion_inputs,
    receptive_field,
    shift_image,
    translation_pair,
)
from msl_recon.baselines.pix2pix import default_disc_layers
from msl_recon.baselines.unet import default_depth


def _pairs(gen: torch.Generator, n: int = 4, size: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """Source/target images with a learnable relation (target = smoothed 1 − source)."""
    src = torch.rand(n, 1, size, size, generator=gen)
    tgt = torch.nn.functional.avg_pool2d(1 - src, 3, stride=1, padding=1)
    return src, tgt


@pytest.mark.parametrize("depth", [1, 2, 4])
def test_unet_shapes(depth: int, device: torch.device) -> None:
    net = UNet(2, 1, base=4, depth=depth).to(device)
    x = torch.rand(2, 2, 16, 16, device=device)
    with torch.no_grad():
        y = net(x)
    assert y.shape == (2, 1, 16, 16)
    assert float(y.abs().max()) <= 1.0  # tanh
    with pytest.raises(ValueError, match="divisible"):
        net(torch.rand(1, 2, 17, 17, device=device))


def test_unet_matches_pix2pix_reference_size() -> None:
    # pix2pix's unet_256 (ngf=64, 8 down-samplings) has 54,407,809 parameters
    assert sum(p.numel() for p in UNet(1, 1).parameters()) == 54_407_809
    assert default_depth(256) == 8 and default_depth(48) == 4
    assert sum(isinstance(m, torch.nn.Dropout) for m in UNet(1, 1).modules()) == 3


@pytest.mark.parametrize("n_layers", [1, 2, 3])
def test_patchgan_receptive_field(n_layers: int) -> None:
    assert receptive_field(n_layers) == {1: 16, 2: 34, 3: 70}[n_layers]
    d = PatchDiscriminator(2, base=4, n_layers=n_layers).eval()
    x = torch.rand(1, 2, 96, 96, requires_grad=True)
    out = d(x)
    out[0, 0, out.shape[2] // 2, out.shape[3] // 2].backward()
    rows = (x.grad.abs().sum(dim=(0, 1, 3)) > 0).nonzero()
    assert int(rows.max() - rows.min() + 1) == receptive_field(n_layers)
    assert default_disc_layers(256) == 3 and default_disc_layers(64) == 2
    assert default_disc_layers(32) == 1


def test_pix2pix_trains_and_predicts(torch_gen: torch.Generator, device: torch.device) -> None:
    state = torch.random.get_rng_state()
    model = Pix2Pix(16, base=8, device=device, seed=0)
    assert torch.equal(torch.random.get_rng_state(), state)  # global RNG untouched
    assert model.discriminator.receptive_field == 16
    src, tgt = _pairs(torch_gen)
    loader = [(src[:2], tgt[:2]), (src[2:], tgt[2:])]
    hist = model.fit(loader, 30, progress=False)
    assert len(hist) == 30
    assert set(hist[0]) == {"loss_d", "loss_g_gan", "loss_g_l1", "loss_g"}
    first = sum(h["loss_g_l1"] for h in hist[:4]) / 4
    last = sum(h["loss_g_l1"] for h in hist[-4:]) / 4
    assert last < 0.85 * first, (first, last)
    out = model.predict(src.to(device))
    assert out.shape == (4, 1, 16, 16) and out.device.type == device.type
    assert 0.0 <= float(out.min()) and float(out.max()) <= 1.0
    assert model.lambda_l1 == 100.0
    assert model.opt_g.defaults["lr"] == 2e-4 and model.opt_g.defaults["betas"] == (0.5, 0.999)


def test_translation_pair_directions() -> None:
    b = {"ct": torch.zeros(1, 1, 4, 4), "t1": torch.ones(1, 1, 4, 4)}
    sp = {"ct": torch.full((1, 1, 4, 4), 2.0), "t1": torch.full((1, 1, 4, 4), 3.0)}
    s, t = translation_pair(b, sp, "mr2ct")
    assert float(s.mean()) == 3.0 and float(t.mean()) == 0.0
    s, t = translation_pair(b, sp, "ct2mr")
    assert float(s.mean()) == 2.0 and float(t.mean()) == 1.0
    with pytest.raises(ValueError):
        translation_pair(b, sp, "ct2ct")


def test_deepfusion_trains_warps_and_fuses(
    torch_gen: torch.Generator, device: torch.device
) -> None:
    n = 16
    ct_gt = torch.zeros(4, 1, n, n)
    mr_gt = torch.zeros(4, 1, n, n)
    for i in range(4):  # squares at different places; MRI has another contrast
        r, c = 3 + i, 4 + (i % 2) * 3
        ct_gt[i, 0, r : r + 6, c : c + 6] = 0.8
        mr_gt[i, 0, r : r + 6, c : c + 6] = 0.3
        mr_gt[i, 0, r + 2 : r + 4, c + 2 : c + 4] = 0.9
    # misaligned CT input (shifted by 2 px), noisy "sparse" images; CT target in the MRI frame
    ct_sparse = shift_image(ct_gt, (0, 2)) + 0.05 * torch.randn(ct_gt.shape, generator=torch_gen)
    mr_sparse = mr_gt + 0.05 * torch.randn(mr_gt.shape, generator=torch_gen)
    batch = {"ct": ct_gt, "t1": mr_gt}
    quad = deepfusion_inputs(batch, {"ct": ct_sparse, "t1": mr_sparse})
    assert quad[2] is ct_gt and quad[3] is mr_gt
    # a larger learning rate than the default 2e-4 so that a few steps show the warp
    model = DeepFusion(n, base=8, device=device, seed=0, lr=2e-3)
    hist = model.fit([quad], 40, progress=False)
    assert hist[-1]["loss"] < 0.5 * hist[0]["loss"], (hist[0], hist[-1])
    ct, mr = model.predict(ct_sparse.to(device), mr_sparse.to(device))
    assert ct.shape == mr.shape == (4, 1, n, n)
    # λ = 0 / 1 give the two reconstructions; a λ map mixes them
    torch.testing.assert_close(model.predict(ct_sparse, mr_sparse, 0.0), ct.cpu())
    torch.testing.assert_close(model.predict(ct_sparse, mr_sparse, 1.0), mr.cpu())
    half = model.predict(ct_sparse, mr_sparse, torch.full((4, 1, n, n), 0.5))
    torch.testing.assert_close(half, (ct.cpu() + mr.cpu()) / 2)
    # the CT network sees the sparse CT only; outputs are linear (no sigmoid) until predict
    assert model.ct_net.down[0][0].in_channels == 1
    assert not any(isinstance(m, torch.nn.Sigmoid) for m in model.modules())
    # after training, the CT output is closer to the aligned CT than to the shifted input frame
    err_aligned = float((ct.cpu() - ct_gt).abs().mean())
    err_shifted = float((ct.cpu() - shift_image(ct_gt, (0, 2))).abs().mean())
    assert err_aligned < err_shifted


def test_pix2pix_l1_is_in_minus_one_one_space() -> None:
    """The original computes L1 on [-1, 1] images with λ = 100 (not on [0, 1] images)."""
    model = Pix2Pix(16, base=4, seed=0)

    class _Offset(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + 0.2  # 0.2 off in the generator's [-1, 1] space (0.1 in [0, 1] units)

    model.generator = _Offset()
    img = torch.full((2, 1, 16, 16), 0.5)
    out = model.train_step(img, img)
    assert abs(out["loss_g_l1"] - 0.2) < 1e-6
    assert abs(out["loss_g"] - (out["loss_g_gan"] + 100 * 0.2)) < 1e-4


def test_deepfusion_shift_augmentation_is_seeded_and_bounded() -> None:
    img = torch.zeros(3, 1, 32, 32)
    img[:, :, 12:20, 12:20] = 1.0
    a, b = DeepFusion(32, base=4, seed=1, max_shift=3.0), DeepFusion(32, base=4, seed=1)
    assert b.max_shift == pytest.approx(32 * 16 / 384)  # the paper's largest shift, scaled
    s1 = a._shift(img)
    s2 = DeepFusion(32, base=4, seed=1, max_shift=3.0)._shift(img)
    torch.testing.assert_close(s1, s2)  # seeded
    assert not torch.allclose(s1, img)
    # the centre of mass moves by at most max_shift per axis
    ys = torch.arange(32.0)[None, None, :, None]
    com = (s1 * ys).sum(dim=(1, 2, 3)) / s1.sum(dim=(1, 2, 3))
    assert float((com - 15.5).abs().max()) <= 3.0 + 1e-4
    assert DeepFusion(32, base=4, max_shift=0.0)._shift(img) is img
