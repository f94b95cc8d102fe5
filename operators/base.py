"""Linear operators on torch tensors with exact autograd.

A :class:`LinearOperator` maps tensors whose last axes have shape ``domain_shape`` to tensors whose
last axes have shape ``range_shape``; leading axes are batch axes and broadcast. Calling the
operator goes through one :class:`torch.autograd.Function` whose backward is the adjoint operator
(itself called through the same mechanism), so gradients are exact and double backward works.

The adjoint ``A.H`` is the Euclidean (conjugate) transpose: ``<A x, y> = <x, A.H y>`` with the
plain dot product over all elements, which is what autograd needs. It is *not* a weighted or
continuous-domain adjoint.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any

import torch

__all__ = [
    "ComposedOperator",
    "DerivedOperator",
    "LinearOperator",
    "ScaledOperator",
    "SumOperator",
]


class _ApplyLinear(torch.autograd.Function):
    """y = A x with backward A.H g (routed through A.H's own Function: double backward works)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, op: LinearOperator) -> torch.Tensor:  # type: ignore[override]
        ctx.op = op
        ctx.input_is_complex = x.is_complex()
        return op._apply(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, None]:  # type: ignore[override]
        op: LinearOperator = ctx.op
        if not ctx.needs_input_grad[0]:
            return None, None
        if not op.range_is_complex and grad.is_complex():
            grad = grad.real
        g = op.H(grad)
        if not ctx.input_is_complex and g.is_complex():
            # real input, complex output: the gradient w.r.t. a real x is Re(A^H g)
            g = g.real
        return g, None


class LinearOperator(abc.ABC):
    """Base class of all operators.

    Subclasses implement :meth:`_apply` and :meth:`_adjoint` on raw tensors (no autograd
    needed: these are called inside an autograd Function) and set ``domain_shape`` and
    ``range_shape``.

    Parameters
    ----------
    domain_shape, range_shape : tuple of int
        Shapes of the trailing axes of inputs and outputs.
    domain_is_complex, range_is_complex : bool
        Whether elements of domain/range are complex. A real-domain operator also accepts
        complex input only if ``domain_is_complex``; a complex-domain operator accepts real
        input (it is promoted).
    name : str, optional
        Name used in error messages (default: the class name).
    """

    domain_shape: tuple[int, ...]
    range_shape: tuple[int, ...]
    domain_is_complex: bool = False
    range_is_complex: bool = False

    def __init__(
        self,
        domain_shape: Sequence[int],
        range_shape: Sequence[int],
        *,
        domain_is_complex: bool = False,
        range_is_complex: bool = False,
        name: str | None = None,
    ) -> None:
        self.domain_shape = tuple(int(s) for s in domain_shape)
        self.range_shape = tuple(int(s) for s in range_shape)
        self.domain_is_complex = domain_is_complex
        self.range_is_complex = range_is_complex
        self.name = name or type(self).__name__
        self._adjoint_op: LinearOperator | None = None

    # ----------------------------------------------------------------- to implement
    @abc.abstractmethod
    def _apply(self, x: torch.Tensor) -> torch.Tensor:
        """Forward map on a tensor of shape ``(*batch, *domain_shape)``."""

    @abc.abstractmethod
    def _adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """Euclidean adjoint on a tensor of shape ``(*batch, *range_shape)``."""

    # ----------------------------------------------------------------- calling
    def _check(self, x: torch.Tensor, shape: tuple[int, ...], what: str) -> None:
        if not isinstance(x, torch.Tensor):
            raise TypeError(
                f"{self.name}: expected a torch.Tensor as {what}, got {type(x).__name__}"
            )
        n = len(shape)
        if x.ndim < n or tuple(x.shape[x.ndim - n :]) != shape:
            raise ValueError(
                f"{self.name}: {what} must end with shape {shape}, got {tuple(x.shape)}"
            )
        if not (x.is_floating_point() or x.is_complex()):
            raise TypeError(
                f"{self.name}: {what} must be a floating or complex tensor, got {x.dtype}"
            )

    def _prepare_input(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x, self.domain_shape, "input")
        if x.is_complex() and not self.domain_is_complex:
            raise TypeError(f"{self.name}: the domain is real, got a complex input ({x.dtype})")
        return x

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the operator (differentiable). Shape ``(*batch, *domain) -> (*batch, *range)``."""
        x = self._prepare_input(x)
        return _ApplyLinear.apply(x, self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Alias of :meth:`__call__`."""
        return self(x)

    # ----------------------------------------------------------------- algebra
    @property
    def H(self) -> LinearOperator:
        """The adjoint operator (cached; ``A.H.H is A``)."""
        if self._adjoint_op is None:
            adj = _AdjointOperator(self)
            adj._adjoint_op = self
            self._adjoint_op = adj
        return self._adjoint_op

    def adjoint(self) -> LinearOperator:
        """Same as :attr:`H`."""
        return self.H

    def __matmul__(self, other: LinearOperator) -> LinearOperator:
        if not isinstance(other, LinearOperator):
            return NotImplemented
        return ComposedOperator(self, other)

    def __mul__(self, scalar: float) -> LinearOperator:
        if isinstance(scalar, (int, float)):
            return ScaledOperator(self, float(scalar))
        return NotImplemented

    __rmul__ = __mul__

    def __add__(self, other: LinearOperator) -> LinearOperator:
        if not isinstance(other, LinearOperator):
            return NotImplemented
        return SumOperator(self, other)

    def __sub__(self, other: LinearOperator) -> LinearOperator:
        if not isinstance(other, LinearOperator):
            return NotImplemented
        return SumOperator(self, other, sign=-1)

    def __neg__(self) -> LinearOperator:
        return ScaledOperator(self, -1.0, name=f"-{self.name}")

    def normal(self) -> LinearOperator:
        """The normal operator ``A.H @ A`` (subclasses may provide faster forms)."""
        return self.H @ self

    @torch.no_grad()
    def opnorm(
        self,
        n_iter: int = 50,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float64,
        seed: int = 0,
        rtol: float = 1e-6,
    ) -> float:
        """Operator 2-norm ``‖A‖`` estimated by the power method on ``A.H A``.

        Parameters
        ----------
        n_iter : int
            Maximum iterations (stops early when the estimate changes by less than ``rtol``).
        device, dtype
            Where and in what precision to iterate (complex dtype is used for complex domains).
        seed : int
            Seed of the random start vector.
        """
        gen = torch.Generator(device="cpu").manual_seed(seed)
        x = torch.randn(self.domain_shape, generator=gen, dtype=torch.float64)
        if self.domain_is_complex:
            x = torch.complex(x, torch.randn(self.domain_shape, generator=gen, dtype=torch.float64))
            dtype = (
                torch.complex128 if dtype in (torch.float64, torch.complex128) else torch.complex64
            )
        x = x.to(device=device, dtype=dtype)
        x = x / torch.linalg.vector_norm(x)
        est = 0.0
        for _ in range(n_iter):
            z = self.H._apply(self._apply(x))
            if self.domain_is_complex is False and z.is_complex():
                z = z.real
            nz = float(torch.linalg.vector_norm(z))
            if nz == 0.0:
                return 0.0
            x = z / nz
            new = nz**0.5
            if abs(new - est) <= rtol * new:
                est = new
                break
            est = new
        return est

    def pseudo_inverse(self) -> LinearOperator | Any:
        """Analytical back-transform (FBP, zero-filled IFFT, DCF adjoint NUFFT).

        Operators that have one override this; the result maps range to domain and is callable.
        """
        raise TypeError(f"{self.name} has no analytical pseudo-inverse")

    def __repr__(self) -> str:
        return f"{self.name}({self.domain_shape} -> {self.range_shape})"


class DerivedOperator(LinearOperator):
    """An operator made from another one, ``op``, whose shapes and complexness it derives.

    ``kind`` says how: ``"same"`` (``op``'s domain and range, e.g. ``c * A``), ``"adjoint"``
    (swapped: range to domain, e.g. ``A.H`` or a pseudo-inverse) or ``"normal"`` (``op``'s
    domain to itself, e.g. ``A.H A``). Subclasses implement :meth:`_apply` and :meth:`_adjoint`
    and find the original operator as ``self.op``.
    """

    def __init__(self, op: LinearOperator, kind: str, name: str) -> None:
        if kind == "same":
            shapes = (op.domain_shape, op.range_shape)
            cplx = (op.domain_is_complex, op.range_is_complex)
        elif kind == "adjoint":
            shapes = (op.range_shape, op.domain_shape)
            cplx = (op.range_is_complex, op.domain_is_complex)
        elif kind == "normal":
            shapes = (op.domain_shape, op.domain_shape)
            cplx = (op.domain_is_complex, op.domain_is_complex)
        else:
            raise ValueError(f"kind must be 'same', 'adjoint' or 'normal', got {kind!r}")
        super().__init__(*shapes, domain_is_complex=cplx[0], range_is_complex=cplx[1], name=name)
        self.op = op


class _AdjointOperator(DerivedOperator):
    def __init__(self, op: LinearOperator) -> None:
        super().__init__(op, "adjoint", f"{op.name}.H")

    def _apply(self, x: torch.Tensor) -> torch.Tensor:
        return self.op._adjoint(x)

    def _adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return self.op._apply(y)

    def normal(self) -> LinearOperator:
        return self.op @ self


def _real_if_needed(z: torch.Tensor, op: LinearOperator) -> torch.Tensor:
    """Real part of an adjoint's result when ``op``'s domain is real."""
    return z.real if z.is_complex() and not op.domain_is_complex else z


class ComposedOperator(LinearOperator):
    """``A @ B``: apply B, then A. Its adjoint is ``B.H @ A.H``."""

    def __init__(self, a: LinearOperator, b: LinearOperator) -> None:
        if a.domain_shape != b.range_shape:
            raise ValueError(
                f"cannot compose {a.name} (domain {a.domain_shape}) with {b.name} "
                f"(range {b.range_shape})"
            )
        super().__init__(
            b.domain_shape,
            a.range_shape,
            domain_is_complex=b.domain_is_complex,
            range_is_complex=a.range_is_complex or b.range_is_complex,
            name=f"({a.name} @ {b.name})",
        )
        self.a, self.b = a, b

    def _apply(self, x: torch.Tensor) -> torch.Tensor:
        return self.a._apply(self.b._apply(x))

    def _adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return _real_if_needed(self.b._adjoint(self.a._adjoint(y)), self)


class SumOperator(LinearOperator):
    """``A + B`` (``sign=1``) or ``A - B`` (``sign=-1``); its adjoint is ``A.H ± B.H``.

    Both operators must have the same domain and range shapes and both real or both complex
    domains. The range is complex when either range is; the adjoint then reads the real part of
    its input for the operator with a real range (the real inner product ``Re <A x, y>``).
    """

    def __init__(self, a: LinearOperator, b: LinearOperator, *, sign: int = 1) -> None:
        if (a.domain_shape, a.range_shape) != (b.domain_shape, b.range_shape):
            raise ValueError(
                f"cannot add {a.name} ({a.domain_shape} -> {a.range_shape}) and {b.name} "
                f"({b.domain_shape} -> {b.range_shape}): shapes differ"
            )
        if a.domain_is_complex != b.domain_is_complex:
            raise ValueError(f"cannot add {a.name} and {b.name}: one domain is complex, one real")
        if sign not in (1, -1):
            raise ValueError(f"sign must be 1 or -1, got {sign!r}")
        super().__init__(
            a.domain_shape,
            a.range_shape,
            domain_is_complex=a.domain_is_complex,
            range_is_complex=a.range_is_complex or b.range_is_complex,
            name=f"({a.name} {'+' if sign > 0 else '-'} {b.name})",
        )
        self.a, self.b, self.sign = a, b, sign

    def _apply(self, x: torch.Tensor) -> torch.Tensor:
        ya, yb = self.a._apply(x), self.b._apply(x)
        return ya + yb if self.sign > 0 else ya - yb

    def _adjoint(self, y: torch.Tensor) -> torch.Tensor:
        ya = y.real if y.is_complex() and not self.a.range_is_complex else y
        yb = y.real if y.is_complex() and not self.b.range_is_complex else y
        za, zb = self.a._adjoint(ya), self.b._adjoint(yb)
        return _real_if_needed(za + zb if self.sign > 0 else za - zb, self)


class ScaledOperator(DerivedOperator):
    """``c * A`` for a real scalar c."""

    def __init__(self, op: LinearOperator, c: float, *, name: str | None = None) -> None:
        super().__init__(op, "same", name or f"{c:g}*{op.name}")
        self.c = c

    def _apply(self, x: torch.Tensor) -> torch.Tensor:
        return self.c * self.op._apply(x)

    def _adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return self.c * self.op._adjoint(y)
