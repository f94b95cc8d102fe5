"""Run-time helpers of the PDHG baselines: cached operator norms, threads of small CPU solves.

* :func:`operator_norm` caches ``‖A‖`` (a 100-step power iteration) per operator and device: a
  weight search solves many problems with one operator.
* :func:`solver_threads` runs a PDHG solve of a small problem with one intra-op thread. The
  tensors of a 96² problem (≤ 2.2·10⁵ complex entries for 12-coil k-space) take 0.02–0.2 ms per
  operation; splitting them over two threads saves little on an idle machine, and on a busy one
  every operation waits for the thread that was descheduled. Measured on the 2-core shared
  machine (load ≈ 2): 200 iterations of 12-coil SENSE-TV on 2 slices of 96² took 1.9 s with one
  thread and 12–29 s with two.
"""

from __future__ import annotations

import contextlib
import functools
import math
import weakref
from collections.abc import Iterator, Sequence

import torch

from operators import Gradient2D, LinearOperator

__all__ = ["SMALL_PROBLEM", "gradient_norm", "operator_norm", "solver_threads"]

#: Largest tensor (elements) of a problem that :func:`solver_threads` runs on one thread.
SMALL_PROBLEM = 2**21

_NORMS: weakref.WeakKeyDictionary[LinearOperator, dict[str, float]] = weakref.WeakKeyDictionary()


def operator_norm(op: LinearOperator, device: torch.device | str | None = None) -> float:
    """``‖op‖`` from ``op.opnorm(n_iter=100)``, computed once per operator and device.

    A small operator on the CPU is iterated on one thread (as :func:`solver_threads`).

    Operators do not change after construction, so the cached value stays valid; it is dropped
    with the operator.
    """
    key = str(torch.device(device)) if device is not None else "cpu"
    per_op = _NORMS.setdefault(op, {})
    if key not in per_op:
        small = key == "cpu" and math.prod(op.range_shape) <= SMALL_PROBLEM
        with solver_threads(1 if small else 0, []):
            per_op[key] = float(op.opnorm(n_iter=100, device=device))
    return per_op[key]


@functools.lru_cache(maxsize=32)
def gradient_norm(shape: tuple[int, ...], spacing: float | tuple[float, ...]) -> float:
    """``‖∇‖`` of :class:`operators.Gradient2D` (power iteration, once per shape and spacing)."""
    return float(Gradient2D(shape, spacing=spacing).opnorm(n_iter=100))


@contextlib.contextmanager
def solver_threads(threads: int | None, tensors: Sequence[torch.Tensor]) -> Iterator[int]:
    """Run the block with ``threads`` torch intra-op threads (restored afterwards).

    Parameters
    ----------
    threads : int or None
        Thread count; ``None`` chooses: 1 for a CPU problem whose largest tensor has at most
        :data:`SMALL_PROBLEM` elements, else the current setting. ``0``: the current setting.
    tensors : sequence of Tensor
        The problem's iterates (primal blocks and dual variables).

    Yields
    ------
    int
        The thread count in effect.
    """
    old = torch.get_num_threads()
    n = old
    if threads is None:
        on_cpu = all(t.device.type == "cpu" for t in tensors)
        if on_cpu and max((t.numel() for t in tensors), default=0) <= SMALL_PROBLEM:
            n = 1
    elif threads > 0:
        n = int(threads)
    if n == old:
        yield n
        return
    torch.set_num_threads(n)
    try:
        yield n
    finally:
        torch.set_num_threads(old)
