"""Exact ASTRA ray transforms (parallel and flat fan beam) as differentiable torch operators.

Two backends compute the same numbers as ASTRA's CPU projectors for the physical-unit geometry
of :meth:`geometries.CTGeometry.to_astra` (docs/architecture.md, Conventions):

``"astra"`` (default)
    ASTRA's system matrix, exported once with ``astra.projector.matrix``, held as a torch
    sparse CSR matrix (and its transpose as a second CSR matrix). Forward and adjoint of a whole
    batch are one sparse × dense multiply each; it runs on any device (CUDA included) and in
    float32 or float64. The matrix is cached on disk (keyed by the geometry fingerprint, the
    projector and the ASTRA version) and in memory, so building the same operator again is free.
``"astra-direct"``
    ASTRA's ``FP``/``BP`` algorithms called per image, for sizes whose matrix does not fit in
    memory. On a CUDA tensor with a CUDA-enabled ASTRA it uses ``FP_CUDA``/``BP_CUDA`` (ASTRA's
    GPU projector model, close to but not identical with ``line``/``strip``).

The adjoint ``A.H`` is the Euclidean transpose of the system matrix (what autograd needs), not a
continuous-domain backprojection with angular weights.

Examples
--------
>>> import torch, geometries as geo
>>> A = RayTransform(geo.ParallelBeam2D(image_size=16, pixel_size=0.5, det_spacing=0.5, n_views=8))
>>> y = A(torch.ones(16, 16))
>>> y.shape
torch.Size([8, 24])
>>> 7.5 < float(y[0, 12]) < 8.5  # a central ray through 16 pixels of 0.5 mm
True
"""

from __future__ import annotations

import math
import os
from typing import Any

import torch

from geometries import CTGeometry

from . import _astra, _matrix_cache
from ._sparse import SparseMatrixPair as _SystemMatrix
from ._sparse import spmm
from .base import LinearOperator
from .registry import register_example

__all__ = ["BACKENDS", "RayTransform"]

#: Supported backends.
BACKENDS = ("astra", "astra-direct")


def _matrix_key(geometry: CTGeometry, projector: str) -> str:
    return f"ray|{geometry.fingerprint()}|{projector}|astra-{_astra.astra_version()}"


class RayTransform(LinearOperator):
    """Ray transform (forward projection) with ASTRA's exact projectors.

    Maps an image ``(*batch, N, N)`` (attenuation in 1/mm, ``x[..., row, col]`` = ASTRA volume
    ``[row, col]``) to line integrals ``(*batch, n_views, det_count)`` (dimensionless: 1/mm × mm).
    With μ in the unit-less [0, 1] convention the values are in mm.

    Parameters
    ----------
    geometry : geometries.ParallelBeam2D or geometries.FanBeam2D
        Scan geometry in mm.
    backend : {"astra", "astra-direct"}
        ``"astra"``: sparse system matrix (fast, batched, any device). ``"astra-direct"``:
        ASTRA's algorithms per image (no matrix in memory).
    projector : {"line", "strip"}
        ASTRA projector model: ``line`` (``line``/``line_fanflat``: length of the ray in each
        pixel) or ``strip`` (``strip``/``strip_fanflat``: area of the beam strip in each pixel).
    cache_dir : path-like, optional
        Directory of the on-disk matrix cache; defaults to ``$MSL_RECON_CACHE``, else
        ``~/.cache/msl-recon``.
    astra_gpu : bool
        ``astra-direct`` only: for CUDA tensors, use ASTRA's GPU algorithms when ASTRA sees a
        GPU (default). Their projector model is close to, but not, the CPU line/strip model,
        so forward and adjoint are not exact transposes; ``False`` always uses the exact CPU
        projectors (inputs are copied to the CPU and back).

    Notes
    -----
    Float32 and float64 inputs keep their dtype (other floating types are computed in float32);
    the output lives on the input's device. The matrix is built (or loaded) on first use and
    shared by all operators with the same geometry and projector in the process.
    """

    def __init__(
        self,
        geometry: CTGeometry,
        *,
        backend: str = "astra",
        projector: str = "line",
        cache_dir: str | os.PathLike | None = None,
        astra_gpu: bool = True,
    ) -> None:
        if not isinstance(geometry, CTGeometry):
            raise ValueError(
                "geometry must be a geometries.ParallelBeam2D or geometries.FanBeam2D, "
                f"got {type(geometry).__name__}"
            )
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {list(BACKENDS)}, got {backend!r}")
        if not isinstance(projector, str):
            raise ValueError(f"projector must be a string ('line' or 'strip'), got {projector!r}")
        self.astra_projector = _astra.astra_projector_type(geometry, projector)
        if cache_dir is not None and not isinstance(cache_dir, (str, os.PathLike)):
            raise ValueError(f"cache_dir must be a path or None, got {type(cache_dir).__name__}")
        super().__init__(geometry.image_shape, geometry.sino_shape, name="RayTransform")
        self.geometry = geometry
        self.backend = backend
        self.projector = projector
        self.cache_dir = cache_dir
        self.astra_gpu = bool(astra_gpu)
        self._sm: _SystemMatrix | None = None
        self._direct: dict[bool, _astra.AstraDirect] = {}

    # ------------------------------------------------------------------ system matrix
    @property
    def matrix_key(self) -> str:
        """Cache key of the system matrix (geometry fingerprint, projector, ASTRA version)."""
        return _matrix_key(self.geometry, self.projector)

    def _system(self) -> _SystemMatrix:
        if self._sm is None:
            key = self.matrix_key
            cache_file = _matrix_cache.cache_path(key, self.cache_dir, prefix="ray")

            def make() -> _SystemMatrix:
                mat, source = _matrix_cache.load_or_build(
                    key,
                    lambda: _astra.build_system_matrix(self.geometry, self.projector),
                    cache_dir=self.cache_dir,
                    prefix="ray",
                )
                return _SystemMatrix(mat, source)

            self._sm = _matrix_cache.memory_cached(f"{cache_file}|{key}", make)
        return self._sm

    def system_matrix(self) -> Any:
        """ASTRA's system matrix, ``scipy.sparse.csr_matrix`` of shape ``(V*D, N*N)``, float32.

        Builds (or loads) it if needed; also for the ``astra-direct`` backend.
        """
        return self._system().matrix

    @property
    def matrix_source(self) -> str | None:
        """Where the matrix came from: ``"built"``, ``"disk"``, or None if not loaded yet."""
        return None if self._sm is None else self._sm.source

    @property
    def matrix_nbytes(self) -> int:
        """Bytes of one CSR copy of the system matrix (builds it if needed)."""
        return self._system().matrix_nbytes

    # ------------------------------------------------------------------ application
    @staticmethod
    def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
        return dtype if dtype in (torch.float32, torch.float64) else torch.float32

    def _matmul(self, x: torch.Tensor, transpose: bool) -> torch.Tensor:
        in_shape = self.range_shape if transpose else self.domain_shape
        out_shape = self.domain_shape if transpose else self.range_shape
        batch = x.shape[: x.ndim - len(in_shape)]
        n_in = math.prod(in_shape)
        cdt = self._compute_dtype(x.dtype)
        flat = x.reshape(-1, n_in).to(cdt)
        if flat.shape[0] == 0:
            return x.new_zeros((*batch, *out_shape))
        a, at = self._system().get(x.device, cdt)
        mat = at if transpose else a
        # no torch.set_num_threads() juggling here: it is process-global, not thread-safe, and
        # slows the next parallel op (measured); callers choose their thread count.
        out = spmm(mat, flat.T).T  # (B, n_out)
        return out.reshape(*batch, *out_shape).to(x.dtype)

    def _direct_engine(self, cuda: bool) -> _astra.AstraDirect:
        eng = self._direct.get(cuda)
        if eng is None:
            eng = _astra.AstraDirect(self.geometry, self.projector, cuda=cuda)
            self._direct[cuda] = eng
        return eng

    def _loop_direct(self, x: torch.Tensor, transpose: bool) -> torch.Tensor:
        in_shape = self.range_shape if transpose else self.domain_shape
        out_shape = self.domain_shape if transpose else self.range_shape
        batch = x.shape[: x.ndim - len(in_shape)]
        eng = self._direct_engine(self.astra_gpu and x.is_cuda and _astra.cuda_available())
        fn = eng.backward if transpose else eng.forward
        arr = x.detach().to(device="cpu", dtype=torch.float32).reshape(-1, *in_shape).numpy()
        out = torch.empty((arr.shape[0], *out_shape), dtype=torch.float32)
        for i in range(arr.shape[0]):
            out[i] = torch.from_numpy(fn(arr[i]))
        return out.reshape(*batch, *out_shape).to(device=x.device, dtype=x.dtype)

    def _apply(self, x: torch.Tensor) -> torch.Tensor:
        if self.backend == "astra":
            return self._matmul(x, transpose=False)
        return self._loop_direct(x, transpose=False)

    def _adjoint(self, y: torch.Tensor) -> torch.Tensor:
        if self.backend == "astra":
            return self._matmul(y, transpose=True)
        return self._loop_direct(y, transpose=True)

    # ------------------------------------------------------------------ the rest
    def pseudo_inverse(self) -> LinearOperator:
        """Filtered back projection :class:`operators.fbp.FBP` for the same geometry."""
        from .fbp import FBP

        return FBP(self.geometry, cache_dir=self.cache_dir)

    def __getstate__(self) -> dict[str, Any]:
        # matrices and ASTRA objects are rebuilt (from the caches) in the receiving process
        state = dict(self.__dict__)
        state["_sm"] = None
        state["_direct"] = {}
        return state

    def __repr__(self) -> str:
        g = self.geometry
        return (
            f"RayTransform({type(g).__name__}, image {self.domain_shape} -> sino "
            f"{self.range_shape}, projector={self.projector!r}, backend={self.backend!r})"
        )


# ---------------------------------------------------------------------- registry examples
def _tiny_parallel() -> CTGeometry:
    from geometries import ParallelBeam2D

    return ParallelBeam2D(image_size=8, pixel_size=0.75, n_views=5, det_count=12, det_spacing=0.8)


def _tiny_fan() -> CTGeometry:
    from geometries import FanBeam2D

    return FanBeam2D(
        image_size=8,
        pixel_size=1.0,
        n_views=6,
        det_count=16,
        det_spacing=1.5,
        source_origin=20.0,
        origin_detector=10.0,
    )


@register_example("ray-parallel-line")
def _ex_parallel_line(device: torch.device) -> LinearOperator:
    return RayTransform(_tiny_parallel(), projector="line")


@register_example("ray-parallel-strip")
def _ex_parallel_strip(device: torch.device) -> LinearOperator:
    return RayTransform(_tiny_parallel(), projector="strip")


@register_example("ray-fan-line")
def _ex_fan_line(device: torch.device) -> LinearOperator:
    return RayTransform(_tiny_fan(), projector="line")


@register_example("ray-fan-strip")
def _ex_fan_strip(device: torch.device) -> LinearOperator:
    return RayTransform(_tiny_fan(), projector="strip")


# ASTRA's algorithms compute in float32: the float64 dot test sees float32 round-off
@register_example("ray-fan-direct", dot_rtol=1e-5)
def _ex_fan_direct(device: torch.device) -> LinearOperator:
    # exact CPU projectors on every device: ASTRA's GPU model would fail the dot test
    return RayTransform(_tiny_fan(), projector="line", backend="astra-direct", astra_gpu=False)
