"""Checks that every registered operator example passes.

See docs/architecture.md, Operators ("Adjoint truth").

The suite parametrises over :func:`operators.examples`, so an operator registered anywhere in
``operators`` is picked up here without touching this file. Also tests the algebra of the
:class:`operators.LinearOperator` base class on small dense matrices.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import operators
from operators import LinearOperator
from operators.testing import dot_test, gradient_matches_normal

EXAMPLES = operators.examples()
NAMES = sorted(EXAMPLES)
# full gradcheck (one perturbation per input) up to this many real inputs, above it torch's
# random-projection "fast" mode (gradgradcheck always uses fast mode: its full mode perturbs
# inputs and output gradients alike and takes tens of seconds for some operators)
_FULL_GRADCHECK_MAX = 64


def _build(name: str, device: torch.device | str = "cpu") -> tuple[LinearOperator, float]:
    factory, tol = EXAMPLES[name]
    return factory(torch.device(device)), tol


def _element(op: LinearOperator, dtype: torch.dtype, batch: tuple[int, ...], gen, *, adjoint=False):
    shape = op.range_shape if adjoint else op.domain_shape
    is_complex = op.range_is_complex if adjoint else op.domain_is_complex
    x = torch.randn((*batch, *shape), generator=gen, dtype=dtype.to_real())
    if is_complex and dtype.is_complex:
        x = torch.complex(x, torch.randn((*batch, *shape), generator=gen, dtype=dtype.to_real()))
    return x


def _dtype_ok(in_dtype: torch.dtype, out: torch.dtype, out_complex: bool) -> bool:
    """Precision is kept; complex input gives complex output, a real range gives real output.

    Real input to a complex-domain operator is promoted; the output may stay real when the
    operator maps real to real (e.g. finite differences), or be complex of the same precision.
    """
    if out.to_real() != in_dtype.to_real():
        return False
    if not out_complex:
        return not out.is_complex
    return out.is_complex or not in_dtype.is_complex


def test_registry_is_populated() -> None:
    # the built-in ray transforms (this engineer's) are always there; others join by themselves
    assert {"ray-parallel-line", "ray-parallel-strip", "ray-fan-line", "ray-fan-strip"} <= set(
        NAMES
    )
    for name, (factory, tol) in EXAMPLES.items():
        assert callable(factory) and 0 < tol < 1, name


def test_duplicate_registration_fails() -> None:
    with pytest.raises(ValueError, match="registered twice"):
        operators.register_example(NAMES[0])(lambda device: None)  # type: ignore[arg-type,return-value]


@pytest.mark.parametrize("name", NAMES)
def test_dot_test(name: str) -> None:
    op, tol = _build(name)
    res = dot_test(op, seed=3)
    assert res.rel_error <= tol, f"{name}: dot test rel. error {res.rel_error:.3g} > {tol:g}"
    assert abs(res.scale - 1.0) <= max(1e-6, 1e3 * tol), f"{name}: fitted scale {res.scale!r}"
    # the adjoint's adjoint is the operator itself, and its dot test passes too
    assert op.H.H is op
    assert dot_test(op.H, seed=4).rel_error <= tol


@pytest.mark.parametrize("name", NAMES)
def test_gradient_is_normal_operator(name: str) -> None:
    op, tol = _build(name)
    err = gradient_matches_normal(op, seed=5, batch=(2,))
    assert err <= max(1e-9, 10 * tol), f"{name}: |grad - A^H A x| / |A^H A x| = {err:.3g}"


@pytest.mark.parametrize("name", NAMES)
def test_gradcheck(name: str, torch_gen: torch.Generator) -> None:
    op, tol = _build(name)
    dtype = torch.complex128 if op.domain_is_complex else torch.float64
    x = _element(op, dtype, (), torch_gen).requires_grad_(True)
    n_real = math.prod(op.domain_shape) * (2 if op.domain_is_complex else 1)
    fast = n_real > _FULL_GRADCHECK_MAX
    # linear maps: central differences are exact for any step, so a float32-internal operator
    # (looser registered tolerance) can use a large step that keeps its round-off small
    eps, atol = (1e-6, 1e-5) if tol <= 1e-6 else (1e-2, 1e-3)
    kw = {"eps": eps, "atol": atol, "rtol": 1e-3}
    assert torch.autograd.gradcheck(op, (x,), fast_mode=fast, **kw)
    assert torch.autograd.gradgradcheck(op, (x,), fast_mode=True, **kw)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("complex_input", [False, True], ids=["real", "complex"])
def test_dtype_device_batch_preserved(
    name: str, complex_input: bool, dtype: torch.dtype, device: torch.device, torch_gen
) -> None:
    op, _ = _build(name, device)
    if complex_input and not op.domain_is_complex:
        pytest.skip("real domain: complex input is rejected (tested below)")
    in_dtype = dtype.to_complex() if complex_input else dtype
    # per-sample masks align with the *leading* batch axis (operators/mri.py), so slices are
    # taken along the last batch axis
    batch = (2, 3)
    for adjoint, A in ((False, op), (True, op.H)):
        x = _element(op, in_dtype, batch, torch_gen, adjoint=adjoint).to(device)
        y = A(x)
        out_shape = op.domain_shape if adjoint else op.range_shape
        out_complex = op.domain_is_complex if adjoint else op.range_is_complex
        assert y.shape == (*batch, *out_shape), f"{A.name}: {tuple(y.shape)}"
        assert _dtype_ok(in_dtype, y.dtype, out_complex), f"{A.name}: {in_dtype} -> {y.dtype}"
        assert y.device.type == device.type
        # leading axes are independent: applying to one slice gives that slice of the result
        scale = float(y.abs().max()) + 1e-30
        rtol = 1e-10 if dtype == torch.float64 else 1e-4
        for j in range(batch[1]):
            yj = A(x[:, j])
            assert yj.shape == y[:, j].shape
            assert float((yj - y[:, j]).abs().max()) <= rtol * scale, f"{A.name}: slice {j}"


@pytest.mark.parametrize("name", NAMES)
def test_wrong_shape_names_operator(name: str) -> None:
    op, _ = _build(name)
    for A, shape in ((op, op.domain_shape), (op.H, op.range_shape)):
        bad = (*shape[:-1], shape[-1] + 1)
        with pytest.raises(ValueError) as info:
            A(torch.zeros(bad, dtype=torch.complex128 if A.domain_is_complex else torch.float64))
        msg = str(info.value)
        assert A.name in msg and str(shape) in msg and str(bad) in msg, msg
    if not op.domain_is_complex:
        with pytest.raises(TypeError, match="complex"):
            op(torch.zeros(op.domain_shape, dtype=torch.complex128))


# ------------------------------------------------------------------ base class algebra
class _Dense(LinearOperator):
    """A matrix ``M`` acting on flattened trailing axes (for testing the base class)."""

    def __init__(self, m: torch.Tensor, dom: tuple[int, ...], rng_: tuple[int, ...]) -> None:
        super().__init__(
            dom, rng_, domain_is_complex=m.is_complex(), range_is_complex=m.is_complex()
        )
        self.m = m

    def _apply(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[: x.ndim - len(self.domain_shape)]
        out = x.reshape(-1, math.prod(self.domain_shape)).to(self.m.dtype) @ self.m.T
        return out.reshape(*b, *self.range_shape)

    def _adjoint(self, y: torch.Tensor) -> torch.Tensor:
        b = y.shape[: y.ndim - len(self.range_shape)]
        out = y.reshape(-1, math.prod(self.range_shape)).to(self.m.dtype) @ self.m.conj()
        return out.reshape(*b, *self.domain_shape)


def _dense(rng: np.random.Generator, rows: int, cols: int, complex_: bool = False) -> torch.Tensor:
    m = rng.standard_normal((rows, cols))
    if complex_:
        m = m + 1j * rng.standard_normal((rows, cols))
    return torch.from_numpy(m)


def test_adjoint_is_cached_and_involutive(rng: np.random.Generator) -> None:
    A = _Dense(_dense(rng, 6, 12), (3, 4), (6,))
    assert A.H is A.H and A.H.H is A and A.adjoint() is A.H
    assert A.H.domain_shape == (6,) and A.H.range_shape == (3, 4)
    y = torch.from_numpy(rng.standard_normal(6))
    torch.testing.assert_close(A.H(y), (A.m.T @ y).reshape(3, 4))


@pytest.mark.parametrize("complex_", [False, True])
def test_composition_and_scaling(rng: np.random.Generator, complex_: bool) -> None:
    ma, mb = _dense(rng, 5, 7, complex_), _dense(rng, 7, 4, complex_)
    A, B = _Dense(ma, (7,), (5,)), _Dense(mb, (4,), (7,))
    AB = A @ B
    assert AB.domain_shape == (4,) and AB.range_shape == (5,)
    dense = ma @ mb
    x = _dense(rng, 1, 4, complex_)[0]
    y = _dense(rng, 1, 5, complex_)[0]
    torch.testing.assert_close(AB(x), dense @ x)
    # the adjoint of a composition follows algebraically: (AB)^H = B^H A^H
    torch.testing.assert_close(AB.H(y), dense.conj().T @ y)
    torch.testing.assert_close(AB.H(y), B.H(A.H(y)))
    torch.testing.assert_close((2.5 * A)(B(x)), 2.5 * (dense @ x))
    torch.testing.assert_close((A * -1.0).H(y), -(ma.conj().T @ y))
    N = A.normal()
    torch.testing.assert_close(N(x := _dense(rng, 1, 7, complex_)[0]), ma.conj().T @ (ma @ x))
    with pytest.raises(ValueError, match="cannot compose"):
        B @ A


@pytest.mark.parametrize("complex_", [False, True])
def test_sum_difference_negation(rng: np.random.Generator, complex_: bool) -> None:
    ma, mb = _dense(rng, 5, 6, complex_), _dense(rng, 5, 6, complex_)
    A, B = _Dense(ma, (2, 3), (5,)), _Dense(mb, (2, 3), (5,))
    x = _dense(rng, 1, 6, complex_)[0]
    y = _dense(rng, 1, 5, complex_)[0]
    xs = x.reshape(2, 3)
    cases = ((A + B, ma + mb), (A - B, ma - mb), (-A, -ma), (A - 2.0 * B, ma - 2 * mb))
    for op, dense in cases:
        assert op.domain_shape == (2, 3) and op.range_shape == (5,)
        torch.testing.assert_close(op(xs), dense @ x)
        # the adjoint follows algebraically: (A ± B)^H = A^H ± B^H
        torch.testing.assert_close(op.H(y), (dense.conj().T @ y).reshape(2, 3))
        assert dot_test(op).rel_error < 1e-12
    assert (A - B).name == "(_Dense - _Dense)" and (-A).name == "-_Dense"
    with pytest.raises(ValueError, match="shapes differ"):
        A + _Dense(_dense(rng, 5, 6, complex_), (6,), (5,))


def test_sum_of_real_and_complex_range(rng: np.random.Generator) -> None:
    # real domain; one real range and one complex range: the sum's range is complex and its
    # adjoint is the one of the real inner product Re <(A + B) x, y>
    ma, mb = _dense(rng, 4, 3), _dense(rng, 4, 3, True)
    A = _Dense(ma, (3,), (4,))
    B = _Dense(mb, (3,), (4,))
    B.domain_is_complex = False  # a real-domain operator with a complex range
    S = A + B
    assert S.range_is_complex and not S.domain_is_complex
    y = _dense(rng, 1, 4, True)[0]
    torch.testing.assert_close(S.H(y), ma.T @ y.real + (mb.conj().T @ y).real)
    with pytest.raises(ValueError, match="complex"):
        A + _Dense(_dense(rng, 4, 3, True), (3,), (4,))


@pytest.mark.parametrize("complex_", [False, True])
def test_opnorm_matches_svd(rng: np.random.Generator, complex_: bool) -> None:
    m = _dense(rng, 9, 6, complex_)
    A = _Dense(m, (2, 3), (9,))
    sigma = float(torch.linalg.svdvals(m)[0])
    est = A.opnorm(n_iter=500, rtol=1e-12)
    assert abs(est - sigma) <= 1e-6 * sigma, (est, sigma)
    # and it is not trivially the Frobenius norm
    assert abs(float(torch.linalg.norm(m)) - sigma) > 1e-3


def test_ray_opnorm_matches_svd() -> None:
    op, _ = _build("ray-fan-line")
    sigma = float(np.linalg.svd(op.system_matrix().toarray(), compute_uv=False)[0])
    assert abs(op.opnorm(n_iter=500, rtol=1e-12) - sigma) <= 1e-5 * sigma


def test_dot_test_detects_a_wrong_adjoint(rng: np.random.Generator) -> None:
    class _Wrong(_Dense):
        def _adjoint(self, y: torch.Tensor) -> torch.Tensor:
            return 2.0 * super()._adjoint(y)

    res = dot_test(_Wrong(_dense(rng, 5, 5), (5,), (5,)))
    assert res.rel_error > 1e-3 and abs(res.scale - 2.0) < 1e-9
