"""MSLConfig: named configs, (de)serialisation, files, and the paper model's parameter count."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from msl_recon.model import MSLConfig, MSLNet, count_parameters, load_config, named_configs


def test_named_configs():
    assert {"paper", "small"} <= set(named_configs())
    p = MSLConfig.named("paper")
    assert (p.image_size, p.width, p.depth, p.heads, p.head_dim, p.mlp_dim) == (
        384,
        1024,
        2,
        8,
        64,
        3072,
    )
    assert p.enc_channels == (64, 128, 256) and p.enc_res_blocks == 3 and p.patch_size == 4
    assert p.token_grid == 24 and p.attn_dim == 512
    assert (p.phi_fusion, p.phi_aux, p.phi_aux_feat) == (1.0, 1.0, 0.5)
    assert (p.lr, p.betas, p.weight_decay) == (2e-4, (0.5, 0.99), 1e-4)
    assert (p.lr_step, p.lr_gamma, p.iterations, p.batch_size) == (10_000, 0.5, 100_000, 4)
    s = MSLConfig.named("small", modalities=("ct", "t1", "t2"))
    assert s.image_size == 128 and s.n_modalities == 3 and s.lambda_dim == 3
    with pytest.raises(ValueError, match="available"):
        MSLConfig.named("huge")


def test_dict_roundtrip_and_validation():
    c = MSLConfig.named("small")
    d = c.to_dict()
    assert isinstance(d["modalities"], list)
    assert MSLConfig.from_dict(d) == c
    with pytest.raises(ValueError, match="unknown MSLConfig keys"):
        MSLConfig.from_dict({**d, "wdith": 3})
    with pytest.raises(ValueError, match="unknown modality"):
        MSLConfig(modalities=("ct", "spect"))
    with pytest.raises(ValueError, match="divisible"):
        MSLConfig(image_size=100)
    with pytest.raises(ValueError, match="up_channels"):
        MSLConfig(up_channels=(512, 128))
    with pytest.raises(ValueError, match="refine_channels"):
        MSLConfig(refine_channels=(16, 0))
    with pytest.raises(ValueError, match="ssim_weight"):
        MSLConfig(ssim_weight=-1.0)
    with pytest.raises(ValueError, match="aux must be"):
        MSLConfig(aux="some")


def test_load_toml_and_yaml(tmp_path):
    t = tmp_path / "a.toml"
    t.write_text('base = "small"\nwidth = 128\nmodalities = ["ct", "t2"]\n')
    c = load_config(t)
    assert c.width == 128 and c.modalities == ("ct", "t2") and c.image_size == 128
    y = tmp_path / "b.yaml"
    y.write_text("model:\n  image_size: 64\n  enc_channels: [8, 16, 32]\n  up_channels: [16, 32]\n")
    c2 = load_config(y)
    assert c2.image_size == 64 and c2.enc_channels == (8, 16, 32) and c2.width == 1024
    bad = tmp_path / "x.ini"
    bad.write_text("width = 3\n")
    with pytest.raises(ValueError, match="toml"):
        load_config(bad)


def closed_form_parameters(c: MSLConfig) -> int:
    """Parameter count from the spec of paper §2.6 / docs/architecture.md (biases included).

    Encoder (per modality): c7s1-k0, d k1 (4×4), d k2 (4×4), R k2 × n_res (two 3×3 convs);
    instance norms without affine parameters. Interaction: per-modality patch projection
    (p²·k2 → w), class token, position embedding over 1 + 2nT tokens, per block
    LN + qkv (no bias) + out-proj + LN + MLP, final LN, up-sampling 3×3 transposed convs.
    Decoder: λ embedding (d → e), R × conv pairs, two 3×3 transposed convs, c7s1-1 (+ skip
    channels), and γ/β linear layers (e → C) for every conditional instance norm.
    """

    def conv(cin: int, cout: int, k: int) -> int:
        return cin * cout * k * k + cout

    def lin(cin: int, cout: int, bias: bool = True) -> int:
        return cin * cout + (cout if bias else 0)

    k0, k1, k2 = c.enc_channels
    n, w, e = c.n_modalities, c.width, c.lambda_embed
    enc = (
        conv(1, k0, 7) + conv(k0, k1, 4) + conv(k1, k2, 4) + c.enc_res_blocks * 2 * conv(k2, k2, 3)
    )
    t = (c.image_size // 4 // c.patch_size) ** 2
    block = (2 * w) + lin(w, 3 * c.attn_dim, bias=False) + lin(c.attn_dim, w)
    block += (2 * w) + lin(w, c.mlp_dim) + lin(c.mlp_dim, w)
    widths = (w, *c.up_channels)
    up = sum(conv(a, b, 3) for a, b in itertools.pairwise(widths))
    inter = (
        n * lin(c.patch_size**2 * k2, w) + w + (1 + 2 * n * t) * w + c.depth * block + 2 * w + up
    )
    d0, d1 = c.dec_channels
    cin = 2 * lin(e, 1)  # γ and β per unit of channels
    dec = lin(c.lambda_dim, e)
    dec += c.dec_res_blocks * (2 * conv(k2, k2, 3) + 2 * k2 * cin)
    dec += conv(k2, d0, 3) + d0 * cin + conv(d0, d1, 3) + d1 * cin
    c_last = d1 + (n if c.input_skip else 0)
    for r in c.refine_channels:  # full-resolution conditional conv blocks (ours, not the paper's)
        dec += conv(c_last, r, 3) + r * cin
        c_last = r
    dec += conv(c_last, 1, 7)
    return n * enc + inter + dec


@pytest.mark.parametrize("name", ["paper", "small", "small-refine2"])
def test_parameter_count_matches_closed_form(name):
    if name == "small-refine2":
        cfg = MSLConfig.named("small", refine_channels=(8, 12))
    else:
        cfg = MSLConfig.named(name)
    with torch.device("meta"):  # no memory for the ~44 M parameters
        net = MSLNet(cfg)
    got = count_parameters(net)
    want = closed_form_parameters(cfg)
    print(f"{name}: {got:,} parameters (closed form {want:,})")
    assert got == want
    if name == "paper":
        # hand-evaluated spec for (CT, MRI) at 384²: 43.76 M
        enc = 3200 + 131_200 + 524_544 + 3 * 1_180_160
        inter = 2 * 4_195_328 + 1024 + 2305 * 1024 + 2 * 8_397_824 + 2048 + 4_719_104 + 1_179_904
        dec = 512 + 1_180_160 + 263_168 + 295_040 + 65_792 + 73_792 + 32_896 + 3137
        assert got == 2 * enc + inter + dec == 43_762_049
        assert math.isclose(got / 1e6, 43.76, abs_tol=0.01)
