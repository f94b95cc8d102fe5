"""Registry examples of derived operators (sums, differences, negation, scaling).

Registered here, once every operator module is importable, so that the shared registry suite
(``tests/operators/test_registry.py``) dot-tests and gradchecks the derived adjoints too.
"""

from __future__ import annotations

import torch

from geometries import CartesianMask, ParallelBeam2D

from .base import LinearOperator
from .fbp import FBP
from .mri import CartesianFourier
from .ray import RayTransform
from .registry import register_example

__all__: list[str] = []


def _parallel() -> ParallelBeam2D:
    return ParallelBeam2D(image_size=8, pixel_size=0.75, n_views=5, det_count=12, det_spacing=0.8)


@register_example("sum-ray-line-strip")
def _ex_sum(device: torch.device) -> LinearOperator:
    g = _parallel()
    return RayTransform(g, projector="line") + 0.5 * RayTransform(g, projector="strip")


@register_example("difference-cartesian")
def _ex_difference(device: torch.device) -> LinearOperator:
    a = CartesianFourier(CartesianMask(shape=(8, 8), acceleration=2, center_fraction=0.25, seed=1))
    b = CartesianFourier(CartesianMask(shape=(8, 8), acceleration=4, center_fraction=0.25, seed=2))
    return a - b


@register_example("negation-fbp")
def _ex_negation(device: torch.device) -> LinearOperator:
    return -FBP(_parallel(), filter="hann")
