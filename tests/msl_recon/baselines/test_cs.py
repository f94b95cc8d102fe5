"""PDHG, single-modality TV and joint CT–MRI compressed sensing on tiny phantoms.

The paired phantom: ellipses with the same geometry in CT and MRI but different values (shared
edges, different contrasts), 32², fan beam with 16 views, 4× Cartesian MRI, 1 % noise.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

import geometries as geo
import operators as ops
from msl_recon.baselines import (
    choose_weights,
    dtv_reconstruct,
    fbp_image,
    guide_field,
    joint_tv_reconstruct,
    l2_data_term,
    pdhg,
    select_weights,
    tv_reconstruct,
    tv_term,
    zero_filled_image,
)
from operators import LinearOperator, phantoms

N = 32


class _Identity(LinearOperator):
    def __init__(self, shape: tuple[int, int]) -> None:
        super().__init__(shape, shape, name="Identity")

    def _apply(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def _adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return y


def paired_images(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """CT and MR images in [0, 1] with shared edges and different contrasts."""
    rng = np.random.default_rng(seed)
    fov = float(n)
    outer = [
        phantoms.Ellipse(value=0.8, center=(0.0, 0.0), axes=(0.42 * fov, 0.36 * fov), angle=0.0),
        phantoms.Ellipse(value=-0.5, center=(0.0, 0.0), axes=(0.38 * fov, 0.32 * fov), angle=0.0),
    ]
    inner = phantoms.random_ellipses(rng, fov * 0.7, n=5, value_range=(0.1, 0.4))
    mr_vals = rng.uniform(-0.25, 0.45, size=len(inner))
    mr_ell = [dataclasses.replace(outer[0], value=0.3), dataclasses.replace(outer[1], value=0.2)]
    mr_ell += [dataclasses.replace(e, value=float(v)) for e, v in zip(inner, mr_vals, strict=True)]
    ct = np.clip(phantoms.ellipse_image(outer + inner, (n, 1.0)), 0, 1)
    mr = np.clip(phantoms.ellipse_image(mr_ell, (n, 1.0)), 0, 1)
    return ct, mr


@pytest.fixture(scope="module")
def problem() -> dict:
    g = geo.FanBeam2D(
        image_size=N,
        pixel_size=1.0,
        n_views=16,
        det_count=48,
        det_spacing=2.0,
        source_origin=64.0,
        origin_detector=64.0,
    )
    A = ops.RayTransform(g)
    F = ops.CartesianFourier(geo.CartesianMask(shape=(N, N), acceleration=4, seed=0))
    ct, mr = paired_images(N, 3)
    x, z = torch.from_numpy(ct), torch.from_numpy(mr)
    gen = torch.Generator().manual_seed(0)
    y = A(x)
    y = y + 0.01 * float(y.abs().max()) * torch.randn(y.shape, generator=gen, dtype=y.dtype)
    k = F(z)
    noise = torch.complex(
        torch.randn(k.shape, generator=gen, dtype=torch.float64),
        torch.randn(k.shape, generator=gen, dtype=torch.float64),
    )
    k = k + 0.01 * noise * F.mask
    return {
        "g": g,
        "A": A,
        "F": F,
        "ct": x,
        "mr": z,
        "y": y,
        "k": k,
        "norms": (A.opnorm(100), F.opnorm(100)),
    }


def rmse(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.sqrt(torch.mean((a.double() - b.double()) ** 2)))


# --------------------------------------------------------------------------- the solver
def test_pdhg_tv_denoising_of_a_constant_converges_to_the_mean(torch_gen: torch.Generator) -> None:
    # for μ large enough the TV-denoised image is the constant mean of the data
    y = 0.5 + 0.1 * torch.randn(8, 8, generator=torch_gen, dtype=torch.float64)
    op = _Identity((8, 8))
    res = pdhg(
        [torch.zeros(8, 8, dtype=torch.float64)],
        [l2_data_term(op, y, norm=1.0), tv_term((8, 8), 10.0)],
        n_iter=1500,
    )
    x = res.x[0]
    assert float((x - y.mean()).abs().max()) < 1e-3
    # the objective decreased to its known optimum: ½‖mean − y‖²
    opt = 0.5 * float(((y - y.mean()) ** 2).sum())
    assert res.history[0].item() > 10 * opt
    assert abs(res.history[-1].item() - opt) < 1e-3 * opt


def test_pdhg_step_sizes_satisfy_the_convergence_condition(problem: dict) -> None:
    terms = [
        l2_data_term(problem["A"], problem["y"], norm=problem["norms"][0]),
        tv_term((N, N), 0.1),
    ]
    res = pdhg([torch.zeros(N, N, dtype=torch.float64)], terms, n_iter=2, history_every=1)
    cond = res.tau * sum(s * t.norm**2 for s, t in zip(res.sigma, terms, strict=True))
    assert 0.9 < cond < 1.0
    assert res.iterations == [0, 1, 2]
    assert res.history.shape == (3,)


def test_pdhg_is_batched(problem: dict, device: torch.device) -> None:
    A, y = problem["A"], problem["y"].to(device)
    yb = torch.stack([y, 0.5 * y])

    def solve(data: torch.Tensor) -> object:
        terms = [l2_data_term(A, data, norm=problem["norms"][0]), tv_term((N, N), 0.05)]
        x0 = torch.zeros((*data.shape[:-2], N, N), dtype=data.dtype, device=device)
        # explicit steps: a batch shares one step size, so compare like with like
        return pdhg([x0], terms, n_iter=40, tau=0.05, sigma=[0.01, 0.3])

    rb = solve(yb)
    assert rb.x[0].shape == (2, N, N) and rb.x[0].device.type == device.type
    assert rb.history.shape == (41, 2)
    r1 = solve(yb[1])
    torch.testing.assert_close(rb.x[0][1], r1.x[0], rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(rb.history[:, 1], r1.history, rtol=1e-9, atol=1e-9)
    assert float(rb.history[-1, 0]) < 0.05 * float(rb.history[0, 0])


# --------------------------------------------------------------------------- single modality
def test_tv_ct_decreases_objective_and_beats_fbp(problem: dict) -> None:
    x, y = problem["ct"], problem["y"]
    res = tv_reconstruct(
        y,
        problem["A"],
        1e-4,
        n_iter=150,
        tol=None,
        x0="zeros",
        normalize_data=True,
        op_norm=problem["norms"][0],
    )
    h = res.history
    assert h[-1] < 1e-2 * h[0]
    assert h[-1] <= h[len(h) // 2] * 1.001  # still decreasing (or flat) in the second half
    tv_err = rmse(res.x[0], x)
    fbp_err = rmse(fbp_image(y, problem["g"], clip=True), x)
    assert tv_err < 0.5 * fbp_err, (tv_err, fbp_err)
    assert 0.0 <= float(res.x[0].min()) and float(res.x[0].max()) <= 1.0  # box constraint


def test_tv_mri_beats_zero_filled(problem: dict) -> None:
    z, k = problem["mr"], problem["k"]
    res = tv_reconstruct(
        k, problem["F"], 1e-3, n_iter=150, tol=None, x0="zeros", normalize_data=True, op_norm=1.0
    )
    assert not res.x[0].is_complex()
    assert res.history[-1] < 0.1 * res.history[0]
    tv_err, zf_err = rmse(res.x[0], z), rmse(zero_filled_image(k, problem["F"]), z)
    assert tv_err < 0.8 * zf_err, (tv_err, zf_err)


def test_tv_mri_complex_image(problem: dict) -> None:
    k = problem["k"] * torch.exp(torch.tensor(0.7j))  # a global phase: only a complex image fits
    res = tv_reconstruct(k, problem["F"], 1e-3, n_iter=100, complex_image=True, normalize_data=True)
    x = res.x[0]
    assert x.is_complex()
    assert rmse(x.abs(), problem["mr"]) < 0.8 * rmse(
        zero_filled_image(k, problem["F"]), problem["mr"]
    )
    phase = torch.angle((x * problem["mr"]).sum())
    assert abs(float(phase) - 0.7) < 0.05
    with pytest.raises(ValueError, match="complex"):
        tv_reconstruct(problem["y"], problem["A"], 1e-3, complex_image=True)


# --------------------------------------------------------------------------- joint CT–MRI
def test_joint_tv_beats_single_modality_tv(problem: dict) -> None:
    x, z, y, k = problem["ct"], problem["mr"], problem["y"], problem["k"]
    n_ct, n_mr = problem["norms"]
    kw = {"n_iter": 150, "normalize_data": True}
    tv_ct = tv_reconstruct(y, problem["A"], 1e-4, op_norm=n_ct, **kw).x[0]
    tv_mr = tv_reconstruct(k, problem["F"], 1e-3, op_norm=n_mr, **kw).x[0]
    jr = joint_tv_reconstruct(
        y,
        problem["A"],
        k,
        problem["F"],
        mu=3e-4,
        beta=1.0,
        n_iter=150,
        tol=None,
        x0="zeros",
        norms=(n_ct, n_mr),
    )
    assert jr.history[-1] < 1e-2 * jr.history[0]
    single = rmse(tv_ct, x) + rmse(tv_mr, z)
    joint = rmse(jr.ct, x) + rmse(jr.mr, z)
    assert joint < 0.85 * single, (joint, single)
    # the MRI, the under-determined one, gains most
    assert rmse(jr.mr, z) < 0.75 * rmse(tv_mr, z)


def test_directional_tv_beats_single_modality_tv(problem: dict) -> None:
    x, z, y, k = problem["ct"], problem["mr"], problem["y"], problem["k"]
    n_ct, n_mr = problem["norms"]
    dr = dtv_reconstruct(
        y,
        problem["A"],
        k,
        problem["F"],
        mu_ct=3e-4,
        mu_mr=1e-3,
        eta=0.05,
        n_iter=80,
        n_outer=1,
        norms=(n_ct, n_mr),
    )
    assert set(dr.histories) == {"ct_init", "mr_init", "ct_0", "mr_0"}
    kw = {"n_iter": 80, "normalize_data": True}
    tv_ct = tv_reconstruct(y, problem["A"], 3e-4, op_norm=n_ct, **kw).x[0]
    tv_mr = tv_reconstruct(k, problem["F"], 1e-3, op_norm=n_mr, **kw).x[0]
    assert rmse(dr.mr, z) < 0.75 * rmse(tv_mr, z)
    assert rmse(dr.ct, x) + rmse(dr.mr, z) < 0.85 * (rmse(tv_ct, x) + rmse(tv_mr, z))


def test_guide_field_is_normalised(torch_gen: torch.Generator) -> None:
    v = torch.rand(2, 16, 16, generator=torch_gen)
    xi = guide_field(v, eta=0.01, gamma=0.9)
    assert xi.shape == (2, 2, 16, 16)
    mag = xi.pow(2).sum(dim=-3).sqrt()
    assert float(mag.max()) < 0.9 and float(mag.max()) > 0.8
    assert float(guide_field(torch.ones(16, 16)).abs().max()) == 0.0
    with pytest.raises(ValueError):
        guide_field(v, eta=0.0)


def test_choose_weights_grid_search(problem: dict) -> None:
    n_ct, n_mr = problem["norms"]
    sample = {"y": problem["y"], "k": problem["k"], "ct": problem["ct"], "mr": problem["mr"]}
    calls = []

    def recon(s: dict, mu: float, beta: float) -> tuple[torch.Tensor, torch.Tensor]:
        calls.append((mu, beta))
        r = joint_tv_reconstruct(
            s["y"],
            problem["A"],
            s["k"],
            problem["F"],
            mu=mu,
            beta=beta,
            n_iter=60,
            norms=(n_ct, n_mr),
            history_every=0,
        )
        return r.ct, r.mr

    best, table = choose_weights(recon, [sample], {"mu": [3e-4, 3e-2], "beta": [1.0]})
    assert len(table) == 2 and len(calls) == 2
    assert best == min(table, key=lambda t: t[1])[0]
    assert best["mu"] == 3e-4  # 3e-2 washes the images out
    assert all(math.isfinite(s) for _, s in table)
    with pytest.raises(ValueError):
        choose_weights(recon, [], {"mu": [1.0]})


@pytest.mark.slow
def test_benchmark_protocol_64px_weights_from_validation() -> None:
    """64², 32 fan-beam views, 4× MRI: weights chosen on one phantom, scored on another."""
    n = 64
    g = geo.FanBeam2D(
        image_size=n,
        pixel_size=1.0,
        n_views=32,
        det_count=96,
        det_spacing=2.0,
        source_origin=128.0,
        origin_detector=128.0,
    )
    A = ops.RayTransform(g)
    F = ops.CartesianFourier(geo.CartesianMask(shape=(n, n), acceleration=4, seed=0))
    norms = (A.opnorm(100), 1.0)

    def make(seed: int) -> dict:
        ct, mr = paired_images(n, seed)
        x, z = torch.from_numpy(ct), torch.from_numpy(mr)
        gen = torch.Generator().manual_seed(seed)
        y = A(x)
        y = y + 0.01 * float(y.abs().max()) * torch.randn(y.shape, generator=gen, dtype=y.dtype)
        k = F(z)
        noise = torch.complex(
            torch.randn(k.shape, generator=gen, dtype=torch.float64),
            torch.randn(k.shape, generator=gen, dtype=torch.float64),
        )
        return {"y": y, "k": k + 0.01 * noise * F.mask, "ct": x, "mr": z}

    it = 200

    def tv(s: dict, mu_ct: float, mu_mr: float) -> tuple[torch.Tensor, torch.Tensor]:
        kw = {"n_iter": it, "normalize_data": True, "history_every": 0}
        return (
            tv_reconstruct(s["y"], A, mu_ct, op_norm=norms[0], **kw).x[0],
            tv_reconstruct(s["k"], F, mu_mr, op_norm=norms[1], **kw).x[0],
        )

    def jtv(s: dict, mu: float, beta: float) -> tuple[torch.Tensor, torch.Tensor]:
        r = joint_tv_reconstruct(
            s["y"], A, s["k"], F, mu=mu, beta=beta, n_iter=it, norms=norms, history_every=0
        )
        return r.ct, r.mr

    def dtv(s: dict, mu: float, eta: float) -> tuple[torch.Tensor, torch.Tensor]:
        r = dtv_reconstruct(
            s["y"],
            A,
            s["k"],
            F,
            mu_ct=mu,
            mu_mr=mu,
            eta=eta,
            n_iter=it // 2,
            norms=norms,
            history_every=0,
        )
        return r.ct, r.mr

    val, test = make(3), make(5)
    grids = {
        "tv": (tv, {"mu_ct": [1e-4, 3e-4, 1e-3], "mu_mr": [3e-4, 1e-3, 3e-3]}),
        "jtv": (jtv, {"mu": [3e-4, 1e-3], "beta": [0.5, 1.0, 2.0]}),
        "dtv": (dtv, {"mu": [3e-4, 1e-3], "eta": [0.05]}),
    }
    scores = {
        "fbp/zf": (
            rmse(fbp_image(test["y"], g, clip=True), test["ct"]),
            rmse(zero_filled_image(test["k"], F), test["mr"]),
        )
    }
    for name, (fn, grid) in grids.items():
        sel = select_weights(fn, [val], grid)
        assert sel.interior, (name, sel.best, sel.grid)
        ct, mr = fn(test, **sel.best)
        scores[name] = (rmse(ct, test["ct"]), rmse(mr, test["mr"]))
    for name, (e_ct, e_mr) in scores.items():
        print(
            f"{name:7s} CT RMSE {e_ct:.4f} ({-20 * math.log10(e_ct):.2f} dB)  "
            f"MR RMSE {e_mr:.4f} ({-20 * math.log10(e_mr):.2f} dB)"
        )
    assert scores["tv"][0] < 0.5 * scores["fbp/zf"][0]
    assert scores["tv"][1] < scores["fbp/zf"][1]
    for joint in ("jtv", "dtv"):
        assert sum(scores[joint]) < sum(scores["tv"])
        assert scores[joint][1] < scores["tv"][1]
