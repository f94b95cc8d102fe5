"""MI-optimised λ maps (eq. 12) on a tiny MSL model."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent / "model"))
from test_network import make_batch, tiny_cfg

from msl_recon.lambda_opt import optimize_lambda, total_variation
from msl_recon.model import MSLNet, build_operators


def _features(torch_gen: torch.Generator, mods: tuple[str, ...] = ("ct", "t1")):
    torch.manual_seed(0)
    net = MSLNet(tiny_cfg(mods))
    batch, g, s = make_batch(mods, torch_gen, torch.device("cpu"))
    meas = {m: batch["ct_sino" if m == "ct" else f"{m}_kspace"] for m in mods}
    return net, net.encode(meas, build_operators(batch, {"ct": g, **s}))


def test_total_variation():
    lam = torch.zeros(1, 1, 8, 8)
    assert float(total_variation(lam)) < 1e-2
    lam[..., 4:] = 1.0  # one vertical edge of length 7 (the last row/col is not differenced)
    assert abs(float(total_variation(lam)) - 7.0) < 1e-2


def test_optimize_lambda_increases_objective(torch_gen):
    net, f = _features(torch_gen)
    # an untrained decoder barely depends on λ; strengthen its λ → γ/β maps so that, as in a
    # trained model, λ=0 and λ=1 give clearly different images
    with torch.no_grad():
        for mod in net.decoder.modules():
            if isinstance(mod, torch.nn.Linear) and mod is not net.decoder.embed:
                mod.weight.mul_(50)
    net.train()
    lam, hist = optimize_lambda(net, f, init=0.5, steps=20, lr=0.2)
    assert net.training  # mode restored
    assert lam.shape == (2, 1, 32, 32) and float(lam.min()) >= 0 and float(lam.max()) <= 1
    assert len(hist["objective"]) == 21
    before, after = hist["objective"][0], max(hist["objective"])
    print("objective", before, "->", after, "nmi", hist["nmi_before"], "->", hist["nmi_after"])
    assert after > before + 0.01
    assert sum(hist["objective_after"]) > sum(hist["objective_before"])
    assert sum(hist["nmi_after"]) > sum(hist["nmi_before"])  # the exact NMI agrees
    assert float(lam.std()) > 1e-3  # the map became spatially varying
    assert net.decode(f, lam).shape == (2, 1, 32, 32)
    # no gradient leaked into the network's parameters
    assert all(p.grad is None for p in net.parameters())


def test_optimize_lambda_three_modalities(torch_gen):
    net, f = _features(torch_gen, ("ct", "t1", "t2"))
    lam, hist = optimize_lambda(net, f, steps=4, lr=0.2, size=(16, 16), init=torch.ones(3) / 3)
    assert lam.shape == (2, 3, 32, 32)
    assert torch.allclose(lam.sum(1), torch.ones(2, 32, 32), atol=1e-5)
    assert max(hist["objective"]) >= hist["objective"][0]
