"""Registry of small example instances of every operator, for the shared test helper.

Each operator module registers a factory that builds a *tiny* instance (a few hundred unknowns)
so that dot tests, gradient checks and ``gradcheck`` run in milliseconds::

    @register_example("ray-parallel-line")
    def _example(device):
        return RayTransform(ParallelBeam2D(image_size=8, det_count=12, n_views=5))

The test suite parametrises over :func:`examples`, so a new operator is checked by itself.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .base import LinearOperator

__all__ = ["examples", "register_example"]

ExampleFactory = Callable[[torch.device], LinearOperator]
_EXAMPLES: dict[str, ExampleFactory] = {}
_TOLERANCES: dict[str, float] = {}


def register_example(
    name: str, *, dot_rtol: float = 1e-6
) -> Callable[[ExampleFactory], ExampleFactory]:
    """Register ``factory(device) -> LinearOperator`` under ``name``.

    Parameters
    ----------
    name : str
        Unique name of the example.
    dot_rtol : float
        Tolerance of the float64 dot test for this operator (1e-6 for matrix backends; an
        approximate adjoint, such as a non-uniform FFT, may need more).
    """

    def deco(factory: ExampleFactory) -> ExampleFactory:
        if name in _EXAMPLES:
            raise ValueError(f"operator example {name!r} registered twice")
        _EXAMPLES[name] = factory
        _TOLERANCES[name] = dot_rtol
        return factory

    return deco


def examples() -> dict[str, tuple[ExampleFactory, float]]:
    """All registered examples: ``name -> (factory, dot_rtol)``.

    Importing :mod:`operators` registers the built-in operators' examples.
    """
    import operators  # noqa: F401  (registers the built-in examples)

    return {k: (f, _TOLERANCES[k]) for k, f in sorted(_EXAMPLES.items())}
