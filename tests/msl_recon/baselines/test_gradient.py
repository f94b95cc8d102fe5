"""Gradient2D: forward differences, exact adjoint (−div), registry checks."""

from __future__ import annotations

import math

import pytest
import torch

import operators
from operators import Gradient2D
from operators.testing import dot_test, gradient_matches_normal


def test_registered_examples_pass_the_shared_checks() -> None:
    names = [n for n in operators.examples() if n.startswith("gradient2d")]
    assert names == ["gradient2d", "gradient2d-complex"]
    for name in names:
        factory, tol = operators.examples()[name]
        op = factory(torch.device("cpu"))
        res = dot_test(op)
        assert res.rel_error < tol
        assert abs(res.scale - 1.0) < 1e-10
        assert gradient_matches_normal(op) < 1e-12


def test_values_and_boundary(device: torch.device) -> None:
    x = torch.tensor([[1.0, 2.0, 4.0], [0.0, 5.0, 5.0]], device=device)
    g = Gradient2D((2, 3), spacing=(1.0, 0.5))(x)
    assert g.shape == (2, 2, 3)
    expected_rows = torch.tensor([[-1.0, 3.0, 1.0], [0.0, 0.0, 0.0]], device=device)
    expected_cols = torch.tensor([[2.0, 4.0, 0.0], [10.0, 0.0, 0.0]], device=device)
    torch.testing.assert_close(g[0], expected_rows)
    torch.testing.assert_close(g[1], expected_cols)


def test_adjoint_is_negative_divergence_and_batches(
    torch_gen: torch.Generator, dtype: torch.dtype
) -> None:
    op = Gradient2D((5, 6))
    x = torch.randn(3, 2, 5, 6, generator=torch_gen, dtype=dtype)
    y = torch.randn(3, 2, 2, 5, 6, generator=torch_gen, dtype=dtype)
    assert op(x).dtype == dtype
    lhs = (op(x) * y).sum()
    rhs = (x * op.H(y)).sum()
    assert abs(float(lhs - rhs)) < (1e-4 if dtype == torch.float32 else 1e-10) * float(
        lhs.abs() + 1
    )
    torch.testing.assert_close(op.divergence(y), -op.H(y))
    # constants have zero gradient
    assert float(op(torch.ones(5, 6, dtype=dtype)).abs().max()) == 0.0


def test_norm_bound_and_gradcheck(torch_gen: torch.Generator) -> None:
    op = Gradient2D((16, 16))
    assert op.opnorm(200) <= math.sqrt(8.0) + 1e-9
    assert op.opnorm(200) > 2.7  # the bound is nearly reached on a 16² grid
    small = Gradient2D((3, 4))
    x = torch.randn(3, 4, generator=torch_gen, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(small, (x,))


def test_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="shape"):
        Gradient2D((4,))
    with pytest.raises(ValueError, match="spacing"):
        Gradient2D((4, 4), spacing=0.0)
    with pytest.raises(ValueError, match="Gradient2D"):
        Gradient2D((4, 4))(torch.zeros(4, 5))
