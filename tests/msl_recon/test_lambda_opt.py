"""MI-optimised λ maps (eq. 12) on a tiny MSL model."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent / "model"))
from test_network import make_batch, tiny_cfg

from msl_recon.lambda_opt import lambda_objective, optimize_lambda, total_variation
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


class _BlendFeatures:
    """Stand-in for MSLFeatures: two fixed images."""

    def __init__(self, a: torch.Tensor, b: torch.Tensor) -> None:
        self.a, self.b = a, b
        self.fused = a  # device / dtype carrier
        self.batch_size = a.shape[0]

    def detach(self) -> _BlendFeatures:
        return self


class _BlendNet(torch.nn.Module):
    """A decoder whose image is the pixel-wise blend ``(1 − λ)·A + λ·B`` (λ a map)."""

    modalities = ("ct", "t1")

    def __init__(self, n: int) -> None:
        super().__init__()
        self.cfg = type("Cfg", (), {"feature_size": n, "image_size": n, "n_modalities": 2})()

    def vertex(self, m: str) -> torch.Tensor:
        return torch.tensor(float(self.modalities.index(m)))

    def decode(self, f: _BlendFeatures, lam) -> torch.Tensor:
        lam = torch.as_tensor(lam, dtype=f.a.dtype)
        if lam.ndim == 4 and lam.shape[-2:] != f.a.shape[-2:]:
            lam = torch.nn.functional.interpolate(lam, size=f.a.shape[-2:], mode="bilinear")
        return (1 - lam) * f.a + lam * f.b

    def decode_many(self, f: _BlendFeatures, lams) -> torch.Tensor:
        return torch.stack([self.decode(f, lam) for lam in lams])


def test_mi_map_is_interior_where_both_references_matter():
    """Two independent binary references: an image blending them at λ ≈ 1/3 or 2/3 determines
    both (MI = 2 ln 2), while either reference alone carries only its own bit (ln 2). MI is
    maximised away from the vertices; NMI (= 2 for an image equal to one reference) is not."""
    gen = torch.Generator().manual_seed(0)
    n = 32
    a = (torch.rand(1, 1, n, n, generator=gen) > 0.5).float()
    b = (torch.rand(1, 1, n, n, generator=gen) > 0.5).float()
    net, feats = _BlendNet(n), _BlendFeatures(a, b)
    lam, hist = optimize_lambda(net, feats, init=0.01, steps=60, lr=0.2, alpha=0.0)
    mean = float(lam.mean())
    print("MI: mean λ", mean, "objective", hist["objective"][0], "->", max(hist["objective"]))
    # where the references differ, λ left the vertex (where a = b the image ignores λ)
    moved = (lam - 0.5).abs().lt(0.45)[a != b].float().mean()
    assert 0.1 < mean < 0.9 and float(moved) > 0.9, float(moved)
    assert max(hist["objective"]) > 1.8 * math.log(2)  # close to 2 ln 2: both bits carried
    # at a vertex the MI sum is only ln 2
    x0 = net.decode(feats, 0.0)
    _, mi_vertex, _ = lambda_objective(x0, torch.stack([a, b]), torch.zeros(1, 1, n, n), 0.0)
    assert float(mi_vertex) < 1.1 * math.log(2)
    # NMI cannot prefer the informative blend: the vertex (image = reference A, NMI = 2) scores
    # at least as high as the blend that determines both references
    refs = torch.stack([a, b])
    third = torch.full((1, 1, n, n), 1 / 3)
    nmi_vertex = lambda_objective(x0, refs, third, 0.0, measure="nmi")[1]
    nmi_blend = lambda_objective(net.decode(feats, third), refs, third, 0.0, measure="nmi")[1]
    mi_blend = lambda_objective(net.decode(feats, third), refs, third, 0.0)[1]
    print("NMI vertex", float(nmi_vertex), "blend", float(nmi_blend), "MI blend", float(mi_blend))
    assert float(nmi_vertex) >= float(nmi_blend) - 1e-3
    assert float(mi_blend) > float(mi_vertex) + 0.5 * math.log(2)
