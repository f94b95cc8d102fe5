"""Learned reconstruction baselines (FBPConvNet, Learned Primal-Dual, MoDL) and their
time-budgeted training loop, on tiny problems."""

from __future__ import annotations

import time

import pytest
import torch

import geometries as geo
import operators as ops
from msl_recon.baselines._train import train_loop
from msl_recon.baselines.fbpconvnet import reconstruct_fbpconvnet, train_fbpconvnet
from msl_recon.baselines.lpd import LearnedPrimalDual, reconstruct_lpd, train_lpd
from msl_recon.baselines.modl import MoDL, cg_solve, reconstruct_modl, train_modl
from operators.mri import centered_fft2, centered_ifft2


def _squares(gen: torch.Generator, n: int, size: int) -> torch.Tensor:
    """``(n, 1, size, size)`` images in [0, 1]: a few random rectangles."""
    img = torch.zeros(n, 1, size, size)
    for i in range(n):
        for _ in range(3):
            r, c = torch.randint(1, size - 6, (2,), generator=gen).tolist()
            h, w = torch.randint(3, 6, (2,), generator=gen).tolist()
            img[i, 0, r : r + h, c : c + w] += float(torch.rand(1, generator=gen)) * 0.5
    return img.clamp(0, 1)


def _improves(losses: list[float], k: int = 5, factor: float = 0.7) -> bool:
    first, last = sum(losses[:k]) / k, sum(losses[-k:]) / k
    print("loss", first, "->", last)
    return last < factor * first


# --------------------------------------------------------------------------- the loop
def test_train_loop_respects_budget_and_restores_best_validation() -> None:
    model = torch.nn.Linear(4, 1)
    x, y = torch.randn(16, 4), torch.randn(16, 1)
    snaps: dict[int, torch.Tensor] = {}
    scores = iter([3.0, 1.0, 2.0, 5.0])

    def loss_fn(m: torch.nn.Module, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.mean((m(a) - b) ** 2)

    def val_fn(m: torch.nn.Module) -> float:
        step = len(snaps) * 2 + 2
        snaps[step] = m.weight.detach().clone()
        return next(scores)

    res = train_loop(
        model, loss_fn, [(x, y)], time_budget_s=60, max_steps=8, val_fn=val_fn, val_every=2
    )
    assert res.steps == 8 and [s for s, _ in res.val] == [2, 4, 6, 8]
    assert res.best_step == 4
    assert torch.equal(model.weight, snaps[4])  # the best validated parameters are restored
    assert not model.training
    t0 = time.perf_counter()
    res = train_loop(model, loss_fn, [(x, y)], time_budget_s=0.3)
    assert 0.3 <= time.perf_counter() - t0 < 2.0 and res.steps > 1
    with pytest.raises(ValueError, match="no batches"):
        train_loop(model, loss_fn, [], time_budget_s=1)


# --------------------------------------------------------------------------- FBPConvNet
def test_fbpconvnet_trains_and_lowers_the_loss(torch_gen: torch.Generator) -> None:
    tgt = _squares(torch_gen, 8, 16)
    fbp = torch.nn.functional.avg_pool2d(tgt, 3, 1, 1) + 0.05 * torch.randn(
        tgt.shape, generator=torch_gen
    )
    batches = [(fbp[:4], tgt[:4]), (fbp[4:], tgt[4:])]
    model = train_fbpconvnet(
        batches, time_budget_s=60, max_steps=40, lr=3e-3, base=4, levels=2, seed=0
    )
    assert _improves(model.train_result.losses)
    out = reconstruct_fbpconvnet(model, fbp[:, 0])
    assert out.shape == (8, 16, 16) and 0 <= float(out.min()) and float(out.max()) <= 1
    # seeded: the same seed gives the same network
    again = train_fbpconvnet(batches, time_budget_s=60, max_steps=2, base=4, levels=2, seed=0)
    first = train_fbpconvnet(batches, time_budget_s=60, max_steps=2, base=4, levels=2, seed=0)
    for p, q in zip(again.parameters(), first.parameters(), strict=True):
        assert torch.equal(p, q)


# --------------------------------------------------------------------------- LPD
@pytest.fixture(scope="module")
def ray() -> ops.RayTransform:
    return ops.RayTransform(geo.ParallelBeam2D(image_size=16, n_views=8))


def test_lpd_data_path_gradient_checks_through_the_ray_transform(ray) -> None:
    torch.manual_seed(0)
    # two iterations: the second dual update sees A f, the second primal update Aᵀ h
    model = LearnedPrimalDual(ray, n_iter=2, n_primal=2, n_dual=1, width=3).double()
    for p in model.parameters():  # non-zero last layers so that every path carries gradient
        torch.nn.init.normal_(p, std=0.3)
    sino = ray(torch.rand(1, 16, 16, dtype=torch.float64)).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda s: model(s), (sino,), eps=1e-6, atol=1e-5)


def test_lpd_trains_and_lowers_the_loss(ray, torch_gen: torch.Generator) -> None:
    tgt = _squares(torch_gen, 8, 16)
    sino = ray(tgt[:, 0].double()).float()
    batches = [(sino[:4], tgt[:4]), (sino[4:], tgt[4:])]
    model = train_lpd(
        batches, ray, time_budget_s=60, max_steps=80, lr=3e-3, n_iter=2, width=8, seed=0
    )
    assert _improves(model.train_result.losses)
    assert reconstruct_lpd(model, sino).shape == (8, 16, 16)


# --------------------------------------------------------------------------- MoDL
def test_modl_cg_solves_the_normal_equations(torch_gen: torch.Generator) -> None:
    n, lam = 16, 0.05
    mask = geo.CartesianMask(shape=(n, n), acceleration=3, center_fraction=0.15, seed=2)
    E = ops.CartesianFourier(mask)
    b = torch.randn(2, n, n, generator=torch_gen, dtype=torch.float64).to(torch.complex128)

    def normal(v: torch.Tensor) -> torch.Tensor:
        return E.H(E(v)) + lam * v

    x, rel = cg_solve(normal, b, n_iter=50, tol=1e-10)
    # closed form: EᴴE + λI = Fᴴ (M + λ) F for the orthonormal centred FFT
    m = torch.as_tensor(mask.mask, dtype=torch.float64)
    exact = centered_ifft2(centered_fft2(b) / (m + lam))
    assert float((x - exact).abs().max() / exact.abs().max()) < 1e-8
    assert float(rel.max()) < 1e-10
    # SENSE normal equations (4 coils) to tolerance
    S = ops.SENSE(ops.birdcage_maps((n, n), 4, dtype=torch.complex128), E)
    x, rel = cg_solve(lambda v: S.H(S(v)) + lam * v, b, n_iter=100, tol=1e-8)
    res = S.H(S(x)) + lam * x - b
    assert float(res.abs().norm() / b.abs().norm()) < 1e-7


def test_modl_trains_and_lowers_the_loss(torch_gen: torch.Generator) -> None:
    n = 16
    tgt = _squares(torch_gen, 8, n)[:, 0]
    masks = torch.stack(
        [
            torch.from_numpy(
                geo.CartesianMask(shape=(n, n), acceleration=3, center_fraction=0.15, seed=s).mask
            )
            for s in range(8)
        ]
    )
    k = ops.CartesianFourier(masks)(tgt.to(torch.complex64))
    batches = [(k[:4], masks[:4], tgt[:4]), (k[4:], masks[4:], tgt[4:])]
    model = train_modl(batches, time_budget_s=60, max_steps=30, lr=3e-3, n_iter=2, width=8)
    assert _improves(model.train_result.losses, factor=0.85)
    out = reconstruct_modl(model, k, masks)
    assert out.shape == (8, n, n) and not out.is_complex()
    zf = ops.CartesianFourier(masks).H(k).abs()
    err = float(((out - tgt) ** 2).mean())
    assert err < float(((zf - tgt) ** 2).mean())  # better than zero-filled
    assert isinstance(model, MoDL) and float(model.lam.detach()) > 0
