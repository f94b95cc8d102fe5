"""MSLNet with the real operators: shapes, λ handling, single-modality inference, transfer."""

from __future__ import annotations

import pytest
import torch
from msl_recon_testdata import tiny_config

import geometries as geo
import operators as ops
from msl_recon.model import MSLConfig, MSLNet, build_operators, enhanced_features

N = 32


def tiny_cfg(modalities: tuple[str, ...] = ("ct", "t1"), **kw: object) -> MSLConfig:
    """The shipped ``tiny`` config (32², fast on CPU), without dropout."""
    return tiny_config(**{"modalities": modalities, "dropout": 0.0, **kw})


def geometry(n_views: int = 64) -> geo.FanBeam2D:
    return geo.FanBeam2D(
        image_size=N,
        pixel_size=1.0,
        n_views=n_views,
        det_count=48,
        det_spacing=1.5,
        source_origin=100.0,
        origin_detector=50.0,
    )


def images(b: int, gen: torch.Generator, device: torch.device) -> torch.Tensor:
    """Smooth random blobs in [0, 1], shape (B, 1, N, N)."""
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, N), torch.linspace(-1, 1, N), indexing="ij")
    out = torch.zeros(b, 1, N, N)
    for i in range(b):
        for _ in range(4):
            c = torch.rand(2, generator=gen) - 0.5
            r = 0.15 + 0.3 * torch.rand(1, generator=gen)
            out[i, 0] += 0.4 * ((yy - c[0]) ** 2 + (xx - c[1]) ** 2 < r**2).float()
    return out.clamp(0, 1).to(device)


def make_batch(
    modalities: tuple[str, ...],
    gen: torch.Generator,
    device: torch.device,
    *,
    b: int = 2,
    n_views: int = 64,
    acceleration: float = 4.0,
) -> tuple[dict[str, torch.Tensor], geo.FanBeam2D, dict[str, geo.CartesianMask]]:
    g = geometry(n_views)
    batch: dict[str, torch.Tensor] = {}
    sampling = {}
    for j, m in enumerate(modalities):
        x = images(b, gen, device)
        batch[m] = x
        if m == "ct":
            batch["ct_sino"] = ops.RayTransform(g)(x[:, 0])
        else:
            cm = geo.CartesianMask(shape=(N, N), acceleration=acceleration, seed=j)
            sampling[m] = cm
            mask = torch.as_tensor(cm.mask, device=device)[None].expand(b, N, N)
            batch[f"{m}_kspace"] = ops.CartesianFourier(mask)(x[:, 0])
            batch[f"{m}_mask"] = mask
    return batch, g, sampling


def measurements(batch: dict[str, torch.Tensor], modalities: tuple[str, ...]) -> dict:
    return {m: batch["ct_sino" if m == "ct" else f"{m}_kspace"] for m in modalities}


@pytest.mark.parametrize("mods", [("ct",), ("ct", "t1"), ("ct", "t1", "t2"), ("t1", "t2")])
def test_shapes_for_1_2_3_modalities(mods, device, torch_gen):
    torch.manual_seed(0)
    net = MSLNet(tiny_cfg(mods)).to(device)
    batch, g, s = make_batch(mods, torch_gen, device, b=3)
    o = build_operators(batch, {"ct": g, **s}, device)
    assert sorted(o) == sorted(mods)
    f = net.encode(measurements(batch, mods), o)
    assert f.fused.shape == (3, net.cfg.enc_channels[-1], N // 4, N // 4)
    assert f.present == mods
    n = len(mods)
    for m in mods:
        assert f.intra[m].shape == (3, (N // 4 // 4) ** 2, net.cfg.width)
    lam_scalar = 0.5 if n <= 2 else torch.full((n,), 1.0 / n)
    y = net.decode(f, lam_scalar)
    assert y.shape == (3, 1, N, N) and y.device.type == device.type
    assert torch.isfinite(y).all() and (y >= 0).all() and (y <= 1).all()
    if n <= 2:
        lam_map = torch.rand(3, 1, N, N, generator=torch_gen).to(device)
    else:
        lam_map = torch.softmax(torch.randn(3, n, N, N, generator=torch_gen), 1).to(device)
    ym = net.decode(f, lam_map)
    assert ym.shape == (3, 1, N, N)
    # per-sample λ
    lam_b = torch.tensor([0.0, 0.5, 1.0]) if n <= 2 else torch.eye(n)[:3]
    assert net.decode(f, lam_b.to(device)).shape == (3, 1, N, N)


@pytest.mark.parametrize(
    "extra",
    [{}, {"input_skip": True, "residual": True}, {"input_skip": True, "refine_channels": (4, 3)}],
)
def test_constant_map_equals_scalar(extra, torch_gen):
    torch.manual_seed(1)
    net = MSLNet(tiny_cfg(**extra)).eval()
    batch, g, s = make_batch(("ct", "t1"), torch_gen, torch.device("cpu"))
    f = net.encode(measurements(batch, ("ct", "t1")), build_operators(batch, {"ct": g, **s}))
    for lam in (0.0, 0.3, 0.77, 1.0):
        y_s = net.decode(f, lam)
        y_m = net.decode(f, torch.full((2, 1, N, N), lam))
        y_m_low = net.decode(f, torch.full((2, 1, 5, 7), lam))  # any map size is resized
        assert torch.equal(y_s, y_m) and torch.equal(y_s, y_m_low)
    # λ matters: MSL-CT and MSL-MRI differ, and a half/half map differs from both
    y0, y1 = net.decode(f, 0.0), net.decode(f, 1.0)
    assert (y0 - y1).abs().max() > 1e-4
    half = torch.zeros(2, 1, N, N)
    half[..., N // 2 :] = 1.0
    yh = net.decode(f, half)
    assert (yh - y0).abs().max() > 1e-5 and (yh - y1).abs().max() > 1e-5


def test_three_modality_lambda_is_checked():
    net = MSLNet(tiny_cfg(("ct", "t1", "t2")))
    f = torch.zeros(2, net.cfg.enc_channels[-1], N // 4, N // 4)
    with pytest.raises(ValueError, match="simplex"):
        net.decoder(f, torch.tensor([0.5, 0.5, 0.5]))
    with pytest.raises(ValueError, match="simplex point"):
        net.decoder(f, 0.5)
    assert net.decoder(f, torch.tensor([0.2, 0.3, 0.5])).shape == (2, 1, N, N)


def test_enhanced_features_eqs_3_to_6():
    t = {k: torch.full((1, 2, 3), float(v)) for k, v in {"a": 1, "b": 10, "c": 100}.items()}
    u = {k: torch.full((1, 2, 3), float(v)) for k, v in {"a": 2, "b": 20, "c": 200}.items()}
    both = enhanced_features({"a": t["a"], "b": t["b"]}, {"a": u["a"], "b": u["b"]}, ("a", "b"))
    assert float(both["a"][0, 0, 0]) == 1 + 20  # eq. 3: intra_a + inter_b→a
    assert float(both["b"][0, 0, 0]) == 10 + 2  # eq. 4
    only_b = enhanced_features({"b": t["b"]}, {"b": u["b"]}, ("a", "b"))
    assert float(only_b["a"][0, 0, 0]) == 20  # eq. 5: missing = the present one's inter
    assert float(only_b["b"][0, 0, 0]) == 10  # eq. 6
    three = enhanced_features(t, u, ("a", "b", "c"))
    assert float(three["a"][0, 0, 0]) == 1 + (20 + 200) / 2  # mean of the others' inter


@pytest.mark.parametrize("only", ["ct", "t1"])
def test_single_modality_inference(only, torch_gen):
    torch.manual_seed(2)
    net = MSLNet(tiny_cfg()).eval()
    batch, g, s = make_batch(("ct", "t1"), torch_gen, torch.device("cpu"))
    o = build_operators(batch, {"ct": g, **s})
    f1 = net.encode(measurements(batch, (only,)), {only: o[only]})
    assert f1.present == (only,)
    assert set(f1.intra) == {only}
    y_ct, y_mr = net.decode(f1, 0.0), net.decode(f1, 1.0)
    assert y_ct.shape == y_mr.shape == (2, 1, N, N)
    assert torch.isfinite(y_ct).all() and torch.isfinite(y_mr).all()
    # the joint representation differs from the single-modality one (eqs. 3–4 vs 5–6)
    f2 = net.encode(measurements(batch, ("ct", "t1")), o)
    assert (f2.fused - f1.fused).abs().max() > 1e-4


def test_other_modality_data_flows_through_interaction(torch_gen):
    torch.manual_seed(3)
    net = MSLNet(tiny_cfg()).eval()
    batch, g, s = make_batch(("ct", "t1"), torch_gen, torch.device("cpu"))
    o = build_operators(batch, {"ct": g, **s})
    meas = measurements(batch, ("ct", "t1"))
    y = net(meas, o, 0.0)
    meas2 = dict(meas, t1=meas["t1"] * 0.5)
    y2 = net(meas2, o, 0.0)  # MSL-CT changes when only the MRI data changes
    assert (y - y2).abs().max() > 1e-5


def test_transfer_to_other_views_and_acceleration(torch_gen):
    """A model built/used at 64 views + R=4 runs at 32 views + R=8 with per-batch operators."""
    torch.manual_seed(4)
    net = MSLNet(tiny_cfg()).eval()
    cpu = torch.device("cpu")
    b64, g64, s64 = make_batch(("ct", "t1"), torch_gen, cpu, n_views=64, acceleration=4)
    o64 = build_operators(b64, {"ct": g64, **s64})
    y64 = net(measurements(b64, ("ct", "t1")), o64, 0.0)
    gen2 = torch.Generator().manual_seed(1234)
    b32, g32, s32 = make_batch(("ct", "t1"), gen2, cpu, n_views=32, acceleration=8)
    assert b32["ct_sino"].shape == (2, 32, 48)
    assert b32["t1_mask"][0].any(0).float().mean() < 0.2
    o32 = build_operators(b32, {"ct": g32, **s32})
    f32 = net.encode(measurements(b32, ("ct", "t1")), o32)
    y32 = net.decode(f32, 0.0)
    assert y32.shape == y64.shape and torch.isfinite(y32).all()
    # the encoder really back-transformed the 32-view sinogram: FBP close to the ground truth
    err = (f32.x0["ct"] - b32["ct"]).abs().mean() / b32["ct"].abs().mean()
    assert err < 0.5, float(err)
    # and the 64-view operator would refuse the 32-view data
    with pytest.raises(ValueError):
        net.encode({"ct": b32["ct_sino"]}, {"ct": o64["ct"]})


def test_radial_mri_via_nufft(torch_gen):
    torch.manual_seed(5)
    net = MSLNet(tiny_cfg(("t1",))).eval()
    x = images(2, torch_gen, torch.device("cpu"))
    traj = geo.RadialTrajectory(n_spokes=24, n_samples=2 * N)
    k = ops.NUFFT(traj, image_shape=(N, N))(x[:, 0].to(torch.complex64))
    batch = {"t1": x, "t1_kspace": k}
    o = build_operators(batch, {"t1": traj})
    assert isinstance(o["t1"], ops.NUFFT)
    f = net.encode({"t1": k}, o)
    err = (f.x0["t1"] - x).abs().mean() / x.abs().mean()
    assert err < 0.6, float(err)
    assert net.decode(f, 0.0).shape == (2, 1, N, N)


def test_wrong_image_size_is_reported(torch_gen):
    net = MSLNet(tiny_cfg(image_size=48))
    batch, g, s = make_batch(("ct",), torch_gen, torch.device("cpu"))
    with pytest.raises(ValueError, match="expects"):
        net.encode({"ct": batch["ct_sino"]}, build_operators(batch, {"ct": g, **s}))


def test_residual_decoder_starts_from_the_lambda_blend(torch_gen):
    torch.manual_seed(6)
    net = MSLNet(tiny_cfg(residual=True)).eval()
    batch, g, s = make_batch(("ct", "t1"), torch_gen, torch.device("cpu"))
    f = net.encode(measurements(batch, ("ct", "t1")), build_operators(batch, {"ct": g, **s}))
    with torch.no_grad():
        net.decoder.out.weight.zero_()
        net.decoder.out.bias.zero_()
    lo, hi = 1e-3, 1 - 1e-3
    a, b = f.x0["ct"].clamp(lo, hi), f.x0["t1"].clamp(lo, hi)
    assert torch.allclose(net.decode(f, 0.0), a, atol=1e-5)
    assert torch.allclose(net.decode(f, 1.0), b, atol=1e-5)
    assert torch.allclose(
        net.decode(f, 0.25), (0.75 * f.x0["ct"] + 0.25 * f.x0["t1"]).clamp(lo, hi), atol=1e-5
    )
    # an absent modality's base is the present modalities' image, not zeros (no logit(1e-3)
    # start): with MRI only, every λ starts from the zero-filled MRI; the skip input stays 0
    only_mr = net.features_from(f.sensor, f.x0, subset=["t1"])
    for lam in (0.0, 0.5, 1.0):
        assert torch.allclose(net.decode(only_mr, lam), b, atol=1e-5)
    assert float(only_mr.skip_images()[:, 0].abs().max()) == 0.0
    only_ct = net.features_from(f.sensor, f.x0, subset=["ct"])
    assert torch.allclose(net.decode(only_ct, 1.0), a, atol=1e-5)
    # the training losses see the same base (aux scenarios with one modality absent)
    assert torch.equal(only_mr.base_images()[:, 0], only_mr.x0["t1"][:, 0])
