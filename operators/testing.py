"""Numerical checks shared by every operator's tests (and usable by other projects).

All checks run in float64 / complex128.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .base import LinearOperator

__all__ = ["DotTestResult", "dot_test", "gradient_matches_normal", "random_element"]


def random_element(
    shape: tuple[int, ...],
    *,
    complex_: bool,
    generator: torch.Generator,
    device: torch.device | str = "cpu",
    batch: tuple[int, ...] = (),
) -> torch.Tensor:
    """Standard normal float64 (or complex128) tensor of shape ``batch + shape``."""
    full = tuple(batch) + tuple(shape)
    x = torch.randn(full, generator=generator, dtype=torch.float64)
    if complex_:
        x = torch.complex(x, torch.randn(full, generator=generator, dtype=torch.float64))
    return x.to(device)


@dataclass(frozen=True)
class DotTestResult:
    """Outcome of :func:`dot_test`.

    Attributes
    ----------
    rel_error : float
        ``|<Ax, y> - <x, A.H y>| / (‖A‖ ‖x‖ ‖y‖)``.
    scale : float
        Fitted ratio ``<x, A.H y> / <Ax, y>`` (real part); 1 for a true adjoint, anything else
        reveals a missing normalisation.
    """

    rel_error: float
    scale: float


def _inner(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.sum(torch.conj(a) * b) if (a.is_complex() or b.is_complex()) else torch.sum(a * b)


@torch.no_grad()
def dot_test(
    op: LinearOperator, *, seed: int = 0, device: torch.device | str = "cpu"
) -> DotTestResult:
    """Check that ``op.H`` is the Euclidean adjoint of ``op`` in float64.

    Complex-domain operators are tested with complex inputs, so the test also covers the
    conjugation.
    """
    gen = torch.Generator().manual_seed(seed)
    x = random_element(op.domain_shape, complex_=op.domain_is_complex, generator=gen, device=device)
    y = random_element(op.range_shape, complex_=op.range_is_complex, generator=gen, device=device)
    ax = op(x)
    ahy = op.H(y)
    lhs = _inner(ax, y)
    rhs = _inner(x, ahy)
    norm = op.opnorm(n_iter=30, device=device)
    denom = (
        max(norm, 1e-300) * float(torch.linalg.vector_norm(x)) * float(torch.linalg.vector_norm(y))
    )
    rel = float(torch.abs(lhs - rhs)) / denom
    scale = float((rhs / lhs).real) if abs(complex(lhs)) > 0 else float("nan")
    return DotTestResult(rel_error=rel, scale=scale)


def gradient_matches_normal(
    op: LinearOperator,
    *,
    seed: int = 0,
    device: torch.device | str = "cpu",
    batch: tuple[int, ...] = (2,),
) -> float:
    """Relative difference between autograd's gradient of ½‖Ax‖² and ``A.H A x``."""
    gen = torch.Generator().manual_seed(seed)
    x = random_element(
        op.domain_shape, complex_=op.domain_is_complex, generator=gen, device=device, batch=batch
    )
    x.requires_grad_(True)
    y = op(x)
    loss = 0.5 * torch.sum(torch.abs(y) ** 2)
    (g,) = torch.autograd.grad(loss, x)
    with torch.no_grad():
        ref = op.H(op(x.detach()))
        if not x.is_complex() and ref.is_complex():
            ref = ref.real
    # torch's convention for complex inputs: grad = conj-Wirtinger derivative * 2 / 2 = A^H A x
    return float(torch.linalg.vector_norm(g - ref) / torch.linalg.vector_norm(ref))
