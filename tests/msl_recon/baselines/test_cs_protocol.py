"""The CS protocol: stopping rule, warm start, complex multi-coil SENSE solves, weight widening."""

from __future__ import annotations

import math

import pytest
import torch

import geometries as geo
import operators as ops
from msl_recon.baselines import joint_tv_reconstruct, tv_mri, tv_reconstruct
from msl_recon.baselines.selection import select_weights
from msl_recon.errors import InputError

N = 32


def _rmse(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.sqrt(torch.mean((a.double() - b.double()) ** 2)))


def _phantom() -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, N), torch.linspace(-1, 1, N), indexing="ij")
    img = 0.8 * ((xx / 0.8) ** 2 + (yy / 0.7) ** 2 < 1).double()
    img -= 0.5 * (((xx - 0.2) / 0.25) ** 2 + ((yy + 0.1) / 0.3) ** 2 < 1).double()
    img += 0.3 * (((xx + 0.3) / 0.15) ** 2 + ((yy - 0.3) / 0.15) ** 2 < 1).double()
    return img.clamp(0, 1)


@pytest.fixture(scope="module")
def mc() -> dict:
    """A complex image (smooth phase) and its 4-coil, 3×-accelerated Cartesian k-space."""
    mag = _phantom()
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, N), torch.linspace(-1, 1, N), indexing="ij")
    img = mag * torch.exp(1j * (0.8 * xx + 0.4 * yy)).to(torch.complex128)
    maps = ops.birdcage_maps((N, N), 4, dtype=torch.complex128)
    mask = geo.CartesianMask(shape=(N, N), acceleration=3, center_fraction=0.12, seed=1)
    E = ops.SENSE(maps, ops.CartesianFourier(mask))
    gen = torch.Generator().manual_seed(0)
    k = E(img)
    noise = torch.complex(
        torch.randn(k.shape, generator=gen, dtype=torch.float64),
        torch.randn(k.shape, generator=gen, dtype=torch.float64),
    )
    k = k + 0.005 * noise * E.inner.mask
    return {"E": E, "k": k, "img": img, "mag": mag}


def test_stopping_rule_stops_early_near_the_long_run(mc: dict) -> None:
    F = mc["E"].inner  # single-coil Cartesian (cheap), real image
    k = F(mc["mag"])
    long = tv_reconstruct(k, F, 1e-3, n_iter=400, tol=None, history_every=0)
    short = tv_reconstruct(k, F, 1e-3, tol=1e-3, n_iter=200, history_every=0)
    assert short.converged and short.n_iter < 300 and short.rel_change < 1e-3
    assert not long.converged and long.n_iter == 400
    # the iterate at the stopping point is within 2 % (relative) of the 400-iteration solution
    diff = float((short.x[0] - long.x[0]).norm() / long.x[0].norm())
    assert diff < 2e-2, diff
    capped = tv_reconstruct(k, F, 1e-3, n_iter=20, tol=1e-12, history_every=0)
    assert capped.n_iter == 20 and not capped.converged


def test_multicoil_sense_solves_for_a_complex_image(mc: dict) -> None:
    E, k, img, mag = mc["E"], mc["k"], mc["img"], mc["mag"]
    res = tv_reconstruct(k, E, 1e-3, tol=1e-3, n_iter=200, history_every=0)
    x = res.x[0]
    assert x.is_complex()  # the default for SENSE
    zf = E.pseudo_inverse()(k)
    err, err_zf = _rmse(x.abs(), mag), _rmse(zf.abs(), mag)
    assert err < 0.7 * err_zf, (err, err_zf)
    # the phase is recovered inside the object (a real-constrained solver could not)
    inside = mag > 0.2
    dphi = torch.angle(x[inside] * torch.conj(img[inside]))
    assert float(dphi.abs().median()) < 0.1
    with pytest.raises(InputError, match="complex image"):
        tv_reconstruct(k, E, 1e-3, complex_image=False)
    m = tv_mri(k, E, 1e-3, tol=1e-3, n_iter=200, history_every=0)
    assert not m.is_complex() and _rmse(m, mag) < 0.7 * err_zf


def test_joint_tv_with_multicoil_mri(mc: dict) -> None:
    E, k, mag = mc["E"], mc["k"], mc["mag"]
    g = geo.ParallelBeam2D(image_size=N, n_views=12)
    A = ops.RayTransform(g)
    y = A(mag)
    r = joint_tv_reconstruct(y, A, k, E, mu=1e-3, tol=1e-3, n_iter=200, history_every=0)
    assert r.mr_complex is not None and r.mr_complex.is_complex()
    assert not r.mr.is_complex() and torch.allclose(r.mr, r.mr_complex.abs())
    assert r.converged["jtv"]
    assert _rmse(r.mr, mag) < 0.7 * _rmse(E.pseudo_inverse()(k).abs(), mag)
    assert _rmse(r.ct, mag) < 0.1


def test_select_weights_widens_until_interior() -> None:
    calls: list[float] = []

    def recon(sample: dict, mu: float, beta: float):
        calls.append(mu)
        # score = |log10 μ − log10 0.004| + |β − 1.0|: optimum μ = 0.004, β = 1.0
        v = torch.tensor([abs(math.log10(mu / 0.004)) + abs(beta - 1.0)])
        return v, None

    def score(sample: dict, ct: torch.Tensor, mr: None) -> float:
        return float(ct[0])

    sel = select_weights(
        recon, [{}], {"mu": [1.0, 10.0], "beta": [0.5, 1.0, 2.0]}, score=score, max_widen=8
    )
    assert sel.interior
    assert sel.best["beta"] == 1.0
    assert math.isclose(sel.best["mu"], 1e-2) or math.isclose(sel.best["mu"], 1e-3)
    assert sel.grid["mu"][0] < sel.best["mu"] < sel.grid["mu"][-1]
    assert len(calls) == len(sel.table)  # cached: every combination scored once
    # a capped search reports that the optimum is still on the edge
    capped = select_weights(
        recon, [{}], {"mu": [1.0, 10.0], "beta": [1.0]}, score=score, max_widen=1
    )
    assert not capped.interior and capped.best["mu"] == 0.1
    with pytest.raises(ValueError):
        select_weights(recon, [{}], {"mu": [0.0, 1.0], "beta": [1.0]}, score=score)


def test_select_weights_on_tv_denoising() -> None:
    """TV denoising (identity operator): widening finds an interior μ from a too-small grid."""

    class _Id(ops.LinearOperator):
        def __init__(self) -> None:
            super().__init__((N, N), (N, N), name="Identity")

        def _apply(self, x: torch.Tensor) -> torch.Tensor:
            return x

        def _adjoint(self, y: torch.Tensor) -> torch.Tensor:
            return y

    gt = _phantom()
    gen = torch.Generator().manual_seed(1)
    noisy = gt + 0.1 * torch.randn(gt.shape, generator=gen, dtype=gt.dtype)
    op = _Id()

    def recon(s: dict, mu: float):
        x = tv_reconstruct(
            s["y"], op, mu, op_norm=1.0, n_iter=300, tol=1e-3, x0="zeros", history_every=0
        )
        return x.x[0], None

    sel = select_weights(recon, [{"y": noisy, "ct": gt}], {"mu": [1e-4, 3e-4]}, max_widen=8)
    assert sel.interior and sel.best["mu"] > 3e-4
    best_err = min(s for _, s in sel.table)
    assert best_err < 0.6 * _rmse(noisy, gt)
