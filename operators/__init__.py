"""Differentiable linear operators for CT and MRI, built from :mod:`geometries`.

Every operator is a :class:`LinearOperator`: it acts on the trailing axes of a torch tensor,
broadcasts over leading batch axes, keeps dtype and device, and its backward is its Euclidean
adjoint ``A.H`` (exact gradients, double backward).

Examples
--------
>>> import torch, geometries as geo, operators as ops
>>> g = geo.ParallelBeam2D(image_size=32, n_views=20)
>>> A = ops.RayTransform(g)
>>> A(torch.ones(2, 32, 32)).shape
torch.Size([2, 20, 46])
"""

from . import (
    _algebra_examples,  # noqa: F401  (registers the derived-operator examples)
    phantoms,
)
from .base import (
    ComposedOperator,
    DerivedOperator,
    LinearOperator,
    ScaledOperator,
    SumOperator,
)
from .fbp import FBP
from .gradient import Gradient2D
from .mri import NUFFT, CartesianFourier
from .pet import AttenuatedRayTransform, GaussianBlur, attenuation_factors
from .ray import RayTransform
from .registry import examples, register_example
from .sense import SENSE, birdcage_maps

__all__ = [
    "FBP",
    "NUFFT",
    "SENSE",
    "AttenuatedRayTransform",
    "CartesianFourier",
    "ComposedOperator",
    "DerivedOperator",
    "GaussianBlur",
    "Gradient2D",
    "LinearOperator",
    "RayTransform",
    "ScaledOperator",
    "SumOperator",
    "attenuation_factors",
    "birdcage_maps",
    "examples",
    "phantoms",
    "register_example",
]
