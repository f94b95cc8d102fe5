"""Forward finite differences on 2D images (the discrete gradient of total variation).

``Gradient2D`` maps an image ``(..., H, W)`` to ``(..., 2, H, W)``: component 0 is the forward
difference along rows (axis H), component 1 along columns (axis W), each divided by the pixel
spacing. Differences that would step outside the image are zero (Neumann boundary), so the adjoint
is exactly the negative divergence with the matching boundary terms.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .base import LinearOperator
from .registry import register_example

__all__ = ["Gradient2D"]


class Gradient2D(LinearOperator):
    """Forward-difference gradient, a :class:`LinearOperator` ``(H, W) -> (2, H, W)``.

    ``(∇x)[0, i, j] = (x[i+1, j] - x[i, j]) / h0`` for ``i < H-1`` and 0 on the last row;
    ``(∇x)[1, i, j] = (x[i, j+1] - x[i, j]) / h1`` for ``j < W-1`` and 0 on the last column.
    The adjoint ``.H`` is the Euclidean transpose, ``-div``. ``‖∇‖² ≤ 4/h0² + 4/h1²`` (8 for unit
    spacing).

    Parameters
    ----------
    shape : (int, int)
        Image shape ``(H, W)``.
    spacing : float or (float, float)
        Pixel spacing ``(h0, h1)`` in any length unit (default 1, i.e. differences per pixel).
    complex_ : bool
        Whether the domain (and range) are complex. A real operator applied to complex data would
        be rejected by the base class; use ``complex_=True`` for complex images.
    """

    def __init__(
        self,
        shape: Sequence[int],
        *,
        spacing: float | Sequence[float] = 1.0,
        complex_: bool = False,
    ) -> None:
        shp = tuple(int(s) for s in shape)
        if len(shp) != 2 or min(shp) < 1:
            raise ValueError(f"Gradient2D: shape must be two positive ints (H, W), got {shape!r}")
        if isinstance(spacing, (int, float)):
            sp = (float(spacing), float(spacing))
        else:
            sp = tuple(float(s) for s in spacing)
        if len(sp) != 2 or min(sp) <= 0:
            raise ValueError(
                f"Gradient2D: spacing must be positive (one or two values), got {spacing!r}"
            )
        super().__init__(
            shp, (2, *shp), domain_is_complex=complex_, range_is_complex=complex_, name="Gradient2D"
        )
        self.spacing: tuple[float, float] = (sp[0], sp[1])

    def _apply(self, x: torch.Tensor) -> torch.Tensor:
        g = x.new_zeros((*x.shape[:-2], 2, *x.shape[-2:]))
        g[..., 0, :-1, :] = (x[..., 1:, :] - x[..., :-1, :]) / self.spacing[0]
        g[..., 1, :, :-1] = (x[..., :, 1:] - x[..., :, :-1]) / self.spacing[1]
        return g

    def _adjoint(self, y: torch.Tensor) -> torch.Tensor:
        g0 = y[..., 0, :, :] / self.spacing[0]
        g1 = y[..., 1, :, :] / self.spacing[1]
        out = y.new_zeros((*y.shape[:-3], *y.shape[-2:]))
        # transpose of (x[i+1] - x[i]) for i < H-1
        out[..., :-1, :] -= g0[..., :-1, :]
        out[..., 1:, :] += g0[..., :-1, :]
        out[..., :, :-1] -= g1[..., :, :-1]
        out[..., :, 1:] += g1[..., :, :-1]
        return out

    def divergence(self, y: torch.Tensor) -> torch.Tensor:
        """Discrete divergence ``-∇ᴴ y``, shape ``(..., 2, H, W) -> (..., H, W)``."""
        return -self.H(y)


@register_example("gradient2d")
def _example(device: torch.device) -> LinearOperator:
    return Gradient2D((6, 7), spacing=(1.0, 0.5))


@register_example("gradient2d-complex")
def _example_complex(device: torch.device) -> LinearOperator:
    return Gradient2D((5, 4), complex_=True)
