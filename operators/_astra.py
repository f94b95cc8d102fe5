"""Thin, private wrappers around ASTRA: projector names, system matrices, per-image FP/BP.

ASTRA is imported lazily inside the functions. All geometries are built in physical units (mm)
by :meth:`geometries.CTGeometry.to_astra`, so the results are line integrals in mm.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

import numpy as np

__all__ = [
    "PROJECTORS",
    "AstraDirect",
    "astra_projector_type",
    "astra_version",
    "build_system_matrix",
    "cuda_available",
]

#: Our projector names -> ASTRA projector types, per beam (``CTGeometry.beam``).
PROJECTORS: dict[str, dict[str, str]] = {
    "parallel": {"line": "line", "strip": "strip"},
    "fan": {"line": "line_fanflat", "strip": "strip_fanflat"},
}

# ASTRA keeps its objects in process-global registries; serialise our use of them.
_ASTRA_LOCK = threading.RLock()


def astra_version() -> str:
    """Version string of the installed ASTRA toolbox."""
    import astra

    return str(getattr(astra, "__version__", None) or astra.astra.version())


def cuda_available() -> bool:
    """Whether ASTRA was built with CUDA and sees a GPU."""
    try:
        import astra

        return bool(astra.use_cuda())
    except Exception:  # pragma: no cover - depends on the build
        return False


def astra_projector_type(geometry: Any, projector: str) -> str:
    """ASTRA projector type for ``geometry`` (by its ``beam``) and our ``projector`` name.

    Raises
    ------
    ValueError
        If the geometry class or the projector is not supported.
    """
    kinds = PROJECTORS.get(getattr(geometry, "beam", None))  # type: ignore[arg-type]
    if kinds is None:
        raise ValueError(
            "geometry must be a parallel- or fan-beam CT geometry (ParallelBeam2D, FanBeam2D), "
            f"got {type(geometry).__name__}"
        )
    if projector not in kinds:
        raise ValueError(f"projector must be one of {sorted(kinds)}, got {projector!r}")
    return kinds[projector]


def build_system_matrix(geometry: Any, projector: str) -> Any:
    """ASTRA's exact system matrix of ``geometry`` as a ``scipy.sparse.csr_matrix``.

    Parameters
    ----------
    geometry : geometries.ParallelBeam2D or geometries.FanBeam2D
    projector : {"line", "strip"}

    Returns
    -------
    scipy.sparse.csr_matrix
        Shape ``(n_views * det_count, N * N)``, float32 weights in mm (ASTRA computes them in
        float32, so nothing is lost), sorted int32 indices. Row ``v * det_count + d`` is the ray
        of view ``v``, detector ``d``; column ``r * N + c`` is pixel ``[r, c]``.
    """
    import astra

    ptype = astra_projector_type(geometry, projector)
    vol, proj = geometry.to_astra()
    with _ASTRA_LOCK:
        pid = astra.create_projector(ptype, proj, vol)
        try:
            mid = astra.projector.matrix(pid)
            try:
                mat = astra.matrix.get(mid)
            finally:
                astra.matrix.delete(mid)
        finally:
            astra.projector.delete(pid)
    mat = mat.tocsr()
    mat.sum_duplicates()
    mat.sort_indices()
    data32 = mat.data.astype(np.float32)
    mat.data = data32
    if mat.nnz < 2**31 - 1 and max(mat.shape) < 2**31 - 1:
        mat.indices = mat.indices.astype(np.int32, copy=False)
        mat.indptr = mat.indptr.astype(np.int32, copy=False)
    return mat


def _delete_ids(ids: dict[str, list[int]]) -> None:
    import astra

    with _ASTRA_LOCK:
        for i in ids.get("algorithm", []):
            astra.algorithm.delete(i)
        for i in ids.get("data", []):
            astra.data2d.delete(i)
        for i in ids.get("projector", []):
            astra.projector.delete(i)


class AstraDirect:
    """Per-image forward and back projection with ASTRA's own algorithms.

    Uses the CPU projector (``FP``/``BP``) or, with ``cuda=True``, ASTRA's GPU algorithms
    (``FP_CUDA``/``BP_CUDA``). ASTRA objects are created once and freed when this object is
    garbage collected.

    Parameters
    ----------
    geometry : geometries.ParallelBeam2D or geometries.FanBeam2D
    projector : {"line", "strip"}
        CPU projector model. The CUDA algorithms use ASTRA's GPU projector model, which is close
        to but not identical with ``line``/``strip`` (and whose BP is not the exact transpose).
    cuda : bool
        Use the GPU algorithms.
    """

    def __init__(self, geometry: Any, projector: str, *, cuda: bool = False) -> None:
        import astra

        ptype = astra_projector_type(geometry, projector)
        vol, proj = geometry.to_astra()
        self.image_shape = (geometry.image_size, geometry.image_size)
        self.sino_shape = (int(geometry.n_views), geometry.det_count)
        self.cuda = cuda
        ids: dict[str, list[int]] = {"algorithm": [], "data": [], "projector": []}
        self._finalizer = weakref.finalize(self, _delete_ids, ids)
        with _ASTRA_LOCK:
            pid = astra.create_projector("cuda" if cuda else ptype, proj, vol)
            ids["projector"].append(pid)
            self._vol_id = astra.data2d.create("-vol", vol, 0.0)
            ids["data"].append(self._vol_id)
            self._sino_id = astra.data2d.create("-sino", proj, 0.0)
            ids["data"].append(self._sino_id)
            self._fp_id = self._algorithm("FP_CUDA" if cuda else "FP", pid)
            ids["algorithm"].append(self._fp_id)
            self._bp_id = self._algorithm("BP_CUDA" if cuda else "BP", pid)
            ids["algorithm"].append(self._bp_id)

    def _algorithm(self, name: str, pid: int) -> int:
        import astra

        cfg = astra.astra_dict(name)
        cfg["ProjectorId"] = pid
        cfg["ProjectionDataId"] = self._sino_id
        if name.startswith("BP"):
            cfg["ReconstructionDataId"] = self._vol_id
        else:
            cfg["VolumeDataId"] = self._vol_id
        return astra.algorithm.create(cfg)

    def forward(self, image: np.ndarray) -> np.ndarray:
        """Sinogram ``(n_views, det_count)`` float32 of one image ``(N, N)``."""
        import astra

        with _ASTRA_LOCK:
            astra.data2d.store(self._vol_id, np.ascontiguousarray(image, dtype=np.float32))
            astra.data2d.store(self._sino_id, 0.0)
            astra.algorithm.run(self._fp_id)
            return astra.data2d.get(self._sino_id)

    def backward(self, sino: np.ndarray) -> np.ndarray:
        """Back projection ``(N, N)`` float32 of one sinogram ``(n_views, det_count)``."""
        import astra

        with _ASTRA_LOCK:
            astra.data2d.store(self._sino_id, np.ascontiguousarray(sino, dtype=np.float32))
            astra.data2d.store(self._vol_id, 0.0)
            astra.algorithm.run(self._bp_id)
            return astra.data2d.get(self._vol_id)

    def close(self) -> None:
        """Free the ASTRA objects now (also done automatically on garbage collection)."""
        self._finalizer()
