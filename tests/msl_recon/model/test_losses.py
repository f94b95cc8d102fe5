"""msl_losses: parts, weights, modality randomisation, and a tiny training run."""

from __future__ import annotations

import pytest
import torch
from test_network import make_batch, tiny_cfg

from msl_recon.model import MSLNet, build_operators, choose_present, msl_losses

CPU = torch.device("cpu")


@pytest.fixture
def setup(torch_gen):
    torch.manual_seed(0)
    net = MSLNet(tiny_cfg())
    batch, g, s = make_batch(("ct", "t1"), torch_gen, CPU)
    return net, batch, build_operators(batch, {"ct": g, **s})


def test_parts_and_weights(setup):
    net, batch, o = setup
    total, parts = msl_losses(net, batch, o)
    assert set(parts) == {"rec", "fusion", "aux", "aux_feat", "total"}
    assert all(float(v) > 0 for v in parts.values())
    want = parts["rec"] + parts["fusion"] + parts["aux"] + 0.5 * parts["aux_feat"]
    assert torch.allclose(total.detach(), want)
    t2, p2 = msl_losses(net, batch, o, {"fusion": 0.0, "aux": 2.0, "aux_feat": 0.0})
    assert torch.allclose(t2.detach(), p2["rec"] + 2.0 * p2["aux"])
    _, p3 = msl_losses(net, batch, o, aux="none")
    assert float(p3["aux"]) == 0.0 and torch.allclose(p3["rec"], parts["rec"])
    with pytest.raises(ValueError, match="unknown loss weights"):
        msl_losses(net, batch, o, {"fuse": 1.0})


def test_rec_loss_matches_manual_mae(setup):
    net, batch, o = setup
    net.eval()
    _, parts = msl_losses(net, batch, o, aux="none")
    f = net.encode({"ct": batch["ct_sino"], "t1": batch["t1_kspace"]}, o)
    rec = (net.decode(f, 0.0) - batch["ct"]).abs().mean()
    rec = rec + (net.decode(f, 1.0) - batch["t1"]).abs().mean()
    x5 = net.decode(f, 0.5)
    fusion = 0.5 * ((x5 - batch["ct"]) ** 2).mean() + 0.5 * ((x5 - batch["t1"]) ** 2).mean()
    assert torch.allclose(parts["rec"], rec.detach(), atol=1e-6)
    assert torch.allclose(parts["fusion"], fusion.detach(), atol=1e-6)


def test_modality_randomisation(setup):
    net, batch, o = setup
    gen = torch.Generator().manual_seed(0)
    seen = {tuple(choose_present(["ct", "t1"], 0.5, gen)) for _ in range(50)}
    assert seen == {("ct",), ("t1",), ("ct", "t1")}
    _, p = msl_losses(net, batch, o, drop_prob=1.0, generator=gen)  # one modality left
    assert float(p["aux"]) == 0.0 and float(p["aux_feat"]) == 0.0 and float(p["rec"]) > 0
    _, p1 = msl_losses(net, batch, o, present=["t1"])  # MRI only still trains MSL-CT
    assert float(p1["rec"]) > 0


def test_tiny_training_decreases_loss(setup):
    net, batch, o = setup
    opt = torch.optim.Adam(net.parameters(), lr=5e-3, betas=(0.5, 0.99))
    losses, recs = [], []
    for _ in range(12):
        total, parts = msl_losses(net, batch, o)
        opt.zero_grad()
        total.backward()
        opt.step()
        losses.append(float(parts["total"]))
        recs.append(float(parts["rec"]))
    print("loss", losses[0], "->", losses[-1], "rec", recs[0], "->", recs[-1])
    assert min(losses[-3:]) < 0.7 * losses[0]
    assert min(recs[-3:]) < 0.9 * recs[0]


def test_three_modalities_loss(torch_gen):
    torch.manual_seed(1)
    mods = ("ct", "t1", "t2")
    net = MSLNet(tiny_cfg(mods))
    batch, g, s = make_batch(mods, torch_gen, CPU)
    total, parts = msl_losses(net, batch, build_operators(batch, {"ct": g, **s}), aux="random")
    total.backward()
    assert all(torch.isfinite(v) for v in parts.values()) and float(parts["aux"]) > 0
    grads = [p.grad for p in net.encoders["t2"].parameters()]
    assert all(gr is not None and gr.abs().sum() > 0 for gr in grads if gr is not None)


def test_ssim_term_and_aux_default_from_config(torch_gen):
    from msl_recon.metrics import ssim

    torch.manual_seed(0)
    batch, g, s = make_batch(("ct", "t1"), torch_gen, CPU)
    o = build_operators(batch, {"ct": g, **s})
    net = MSLNet(tiny_cfg(ssim_weight=0.7, aux="none")).eval()
    total, parts = msl_losses(net, batch, o)  # aux from the config: no single-modality decodes
    assert float(parts["aux"]) == 0.0
    f = net.encode({"ct": batch["ct_sino"], "t1": batch["t1_kspace"]}, o)
    mae, dissim = torch.zeros(()), torch.zeros(())
    for lam, m in ((0.0, "ct"), (1.0, "t1")):
        x = net.decode(f, lam).detach()
        mae = mae + (x - batch[m]).abs().mean()
        dissim = dissim + (1 - ssim(x[:, 0], batch[m][:, 0]).mean())
    assert float(dissim) > 0.05  # an untrained model is far from the truth
    assert torch.allclose(parts["rec"], (mae + 0.7 * dissim).detach(), atol=1e-6)
    net0 = MSLNet(tiny_cfg(aux="none"))  # same weights, MAE only
    net0.load_state_dict(net.state_dict())
    _, p0 = msl_losses(net0.eval(), batch, o)
    assert torch.allclose(p0["rec"], mae.detach(), atol=1e-6)
    total.backward()
    assert all(p.grad is not None for p in net.decoder.parameters())
