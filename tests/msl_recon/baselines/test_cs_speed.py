"""The fast paths of the PDHG baselines: reduced k-space data terms, cached norms, threads.

The reduced form ``K = U R E`` of a masked Cartesian (SENSE) operator must give the same normal
operator, back-projected data and objective as ``E``, hence the same PDHG image iterates.
"""

from __future__ import annotations

import pytest
import torch

import geometries as geo
import operators as ops
from msl_recon.baselines import _kspace, _speed, l2_data_term, pdhg, tv_term

C64 = torch.complex128


def _sense(n: int, batch: int, coils: int, seed: int, columns: bool = True) -> ops.SENSE:
    """SENSE over per-sample masks (columns or random entries), equal counts per sample."""
    g = torch.Generator().manual_seed(seed)
    mask = torch.zeros(batch, n, n, dtype=torch.bool)
    for b in range(batch):
        if columns:
            mask[b][:, torch.randperm(n, generator=g)[: n // 3]] = True
        else:
            mask[b].view(-1)[torch.randperm(n * n, generator=g)[: n * n // 3]] = True
    maps = torch.randn(batch, coils, n, n, dtype=C64, generator=g)
    maps = maps / (maps.abs() ** 2).sum(-3, keepdim=True).sqrt()
    return ops.SENSE(maps, ops.CartesianFourier(mask))


def _check_same_term(op: ops.LinearOperator, y: torch.Tensor, x: torch.Tensor, real: bool):
    """Full and reduced data terms: same KᴴK x, Kᴴ ỹ, objective and dual-scale estimate."""
    full = l2_data_term(op, y, weight=0.3, norm=1.0, real_image=real, compress_kspace=False)
    fast = l2_data_term(op, y, weight=0.3, norm=1.0, real_image=real)
    zf, zr = full.forward([x]), fast.forward([x])
    assert zr.numel() * 2 < zf.numel()  # only the sampled entries (1/3 here)
    torch.testing.assert_close(fast.adjoint(zr)[0], full.adjoint(zf)[0], rtol=1e-12, atol=1e-12)
    py_f = full.prox_conj(torch.zeros_like(zf), 1.0)  # = −ỹ/2
    py_r = fast.prox_conj(torch.zeros_like(zr), 1.0)
    torch.testing.assert_close(fast.adjoint(py_r)[0], full.adjoint(py_f)[0], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(fast.value(zr), full.value(zf), rtol=1e-12, atol=1e-12)
    assert fast.dual_scale(zr) == full.dual_scale(zf)
    assert fast.norm == full.norm


def test_reduced_sense_columns_and_random_masks() -> None:
    for columns, n in ((True, 12), (False, 12), (True, 9)):  # even and odd sizes
        op = _sense(n, 2, 3, seed=n + columns, columns=columns)
        g = torch.Generator().manual_seed(1)
        x = torch.randn(2, n, n, dtype=C64, generator=g)
        y = op(torch.randn(2, n, n, dtype=C64, generator=g))
        y = y + 0.1 * op(op.H(torch.randn(y.shape, dtype=C64, generator=g)))  # noisy, on mask
        _check_same_term(op, y, x, real=False)


def test_reduced_single_coil_real_image_and_off_mask_data() -> None:
    """Shared mask over a batch, real image, and data that are non-zero off the mask (the
    objective then carries the constant ½‖(I − R) ỹ‖², which the reduced term adds)."""
    op = ops.CartesianFourier(geo.CartesianMask(shape=(11, 11), acceleration=3, seed=2))
    g = torch.Generator().manual_seed(3)
    x = torch.rand(4, 11, 11, dtype=torch.float64, generator=g)
    y = op(x) + 0.05 * torch.randn(4, 11, 11, dtype=C64, generator=g)
    _check_same_term(op, y, x, real=True)
    fast = _kspace.compress(op, y)
    assert fast is not None and bool((fast.off_mask > 0).all())


def test_reduced_form_not_used_where_it_does_not_apply(tiny_fan) -> None:
    ray = ops.RayTransform(tiny_fan)
    assert _kspace.compress(ray, torch.zeros(ray.range_shape)) is None
    mask = torch.zeros(2, 8, 8, dtype=torch.bool)
    mask[0, :, :2] = True
    mask[1, :, :3] = True  # different counts per sample: no batched gather
    op = ops.CartesianFourier(mask)
    assert _kspace.compress(op, torch.zeros(2, 8, 8, dtype=C64)) is None
    # the data term then keeps the full operator and still works
    term = l2_data_term(op, torch.zeros(2, 8, 8, dtype=C64), norm=1.0)
    assert term.forward([torch.zeros(2, 8, 8)]).shape == (2, 8, 8)


def test_pdhg_iterates_identical_with_reduced_kspace() -> None:
    """SENSE-TV: the same image after 60 iterations (float64), full vs reduced dual space."""
    op = _sense(16, 2, 4, seed=7)
    g = torch.Generator().manual_seed(8)
    truth = torch.zeros(2, 16, 16, dtype=C64)
    truth[:, 4:12, 5:11] = 1.0
    y = op(truth) + 0.02 * torch.randn(2, 4, 16, 16, dtype=C64, generator=g)
    y = y * op.inner.mask[:, None]
    x0 = op.pseudo_inverse()(y)
    out = []
    for comp in (False, True):
        terms = [
            l2_data_term(op, y, norm=1.0, real_image=False, compress_kspace=comp),
            tv_term((16, 16), 0.02, complex_image=True),
        ]
        out.append(pdhg([x0], terms, n_iter=60, history_every=10))
    a, b = out
    assert float((a.x[0] - b.x[0]).norm() / a.x[0].norm()) < 1e-10
    torch.testing.assert_close(a.history, b.history, rtol=1e-10, atol=1e-12)
    assert float((a.x[0] - x0).norm()) > 1e-3  # the iterations did move the image


def test_operator_norm_cached_once_per_operator(tiny_fan) -> None:
    ray = ops.RayTransform(tiny_fan)
    calls = []
    orig = ray.opnorm

    def counting(*a, **k):
        calls.append(1)
        return orig(*a, **k)

    ray.opnorm = counting  # type: ignore[method-assign]
    n1 = _speed.operator_norm(ray)
    n2 = _speed.operator_norm(ray, "cpu")
    assert n1 == n2 and len(calls) == 1
    assn = orig(n_iter=100)
    assert abs(n1 - assn) <= 1e-9 * assn
    other = ops.RayTransform(tiny_fan)  # another operator object: its own estimate
    assert _speed.operator_norm(other) > 0
    assert len(calls) == 1


def test_solver_threads_small_problem_one_thread_and_restored() -> None:
    old = torch.get_num_threads()
    small = [torch.zeros(4, 4)]
    big = [torch.zeros(_speed.SMALL_PROBLEM + 1, dtype=torch.bool)]
    with _speed.solver_threads(None, small) as n:
        assert n == 1 and torch.get_num_threads() == 1
    assert torch.get_num_threads() == old
    with _speed.solver_threads(None, big) as n:
        assert n == old
    with _speed.solver_threads(0, small) as n:
        assert n == old == torch.get_num_threads()
    with pytest.raises(RuntimeError, match="inside"), _speed.solver_threads(None, small):
        raise RuntimeError("inside")
    assert torch.get_num_threads() == old
