"""A scipy CSR matrix with its transpose and per-(device, dtype) torch copies (private).

Shared by :class:`operators.RayTransform` (ASTRA's system matrix) and :class:`operators.FBP`
(the weighted back-projection): forward and adjoint of a whole batch are then one sparse × dense
product each, with the batch in the columns, on any device.
"""

from __future__ import annotations

import threading
import warnings
from typing import Any

import torch

__all__ = ["SparseMatrixPair", "spmm", "to_torch_csr"]


def to_torch_csr(mat: Any, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """scipy CSR -> torch sparse CSR on ``device`` in ``dtype`` (shares memory when possible)."""
    crow = torch.from_numpy(mat.indptr)
    col = torch.from_numpy(mat.indices)
    val = torch.from_numpy(mat.data)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Ss]parse CSR tensor support is in beta.*")
        out = torch.sparse_csr_tensor(
            crow.to(device),
            col.to(device),
            val.to(device=device, dtype=dtype),
            size=mat.shape,
            check_invariants=False,
        )
    return out


class SparseMatrixPair:
    """A scipy CSR matrix, its transpose, and lazily made torch copies per (device, dtype)."""

    def __init__(self, mat: Any, source: str) -> None:
        self.matrix = mat
        self.source = source
        self._transpose: Any | None = None
        self._copies: dict[tuple[str, torch.dtype, bool], torch.Tensor] = {}
        self._lock = threading.Lock()

    @property
    def transpose(self) -> Any:
        if self._transpose is None:
            t = self.matrix.T.tocsr()
            t.sort_indices()
            t.indices = t.indices.astype(self.matrix.indices.dtype, copy=False)
            t.indptr = t.indptr.astype(self.matrix.indptr.dtype, copy=False)
            self._transpose = t
        return self._transpose

    @property
    def matrix_nbytes(self) -> int:
        """Bytes of the CSR arrays of the matrix (one copy, without its transpose)."""
        m = self.matrix
        return int(m.data.nbytes + m.indices.nbytes + m.indptr.nbytes)

    @property
    def nbytes(self) -> int:
        """Bytes held in memory: matrix, transpose and every torch copy not sharing them."""
        total = self.matrix_nbytes * (1 if self._transpose is None else 2)
        for (device, dtype, _), a in list(self._copies.items()):
            if device != "cpu" or dtype != torch.float32:
                per = a.values().element_size() * a.values().numel()
                total += per + (a.col_indices().numel() + a.crow_indices().numel()) * 4
        return total

    def one(self, device: torch.device, dtype: torch.dtype, transpose: bool) -> torch.Tensor:
        """Torch CSR copy of the matrix (or of its transpose) on ``device`` in ``dtype``."""
        key = (str(device), dtype, bool(transpose))
        with self._lock:
            t = self._copies.get(key)
            if t is None:
                t = to_torch_csr(self.transpose if transpose else self.matrix, device, dtype)
                self._copies[key] = t
        return t

    def get(self, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """Torch CSR copies of the matrix and of its transpose."""
        return self.one(device, dtype, False), self.one(device, dtype, True)


def spmm(mat: torch.Tensor, dense: torch.Tensor) -> torch.Tensor:
    """``mat @ dense`` for a sparse CSR ``mat`` and a dense ``(K, B)`` right-hand side.

    One or two columns go through the sparse matrix-vector product, which torch runs about
    2.5 times faster than the matrix-matrix product on one column (measured on CPU: 384² fan
    FBP, 12 ms vs 33 ms per column); from three columns on, the matrix-matrix product wins.
    """
    if dense.shape[1] <= 2:
        return torch.stack([mat @ col for col in dense.T.contiguous()], dim=1)
    return mat @ dense.contiguous()
