"""Solver form of masked Cartesian MRI operators: only the sampled k-space, no FFT shifts.

A masked centred FFT ``E = M F S`` (:class:`operators.CartesianFourier`, or
:class:`operators.SENSE` over it with coil maps ``S``) returns exact zeros off the mask, so in a
least-squares data term ``½‖E x − y‖²`` only the sampled entries matter. :func:`compress` builds
an operator ``K = U R E`` where ``R`` keeps the sampled entries (a ``1/R`` fraction of k-space for
acceleration ``R``) and ``U`` is a unitary diagonal (a phase per entry), together with
``ỹ = U R y``. Then ``Kᴴ K = Eᴴ E``, ``Kᴴ ỹ = Eᴴ y`` and
``½‖K x − ỹ‖² = ½‖E x − y‖² − ½‖(I − R) y‖²`` (the constant is zero for data measured on the
mask), so PDHG on ``(K, ỹ)`` produces the same image iterates as on ``(E, y)`` — the dual
variable is ``U R`` times the original one — while every dual-space operation works on the
sampled entries only.

The phases remove the FFT shifts. With ``c = N // 2`` the centred orthonormal DFT of
:func:`operators.mri.centered_fft2` is, per axis,

    ``(F x)[k] = e^{2πi (k−c) c / N} · N^{-1/2} Σ_n (x[n] e^{2πi c n / N}) e^{-2πi k n / N}``,

so ``F = P_out · fft · P_in`` with unit-modulus diagonals: ``P_in`` is folded into the coil maps,
``P_out`` (restricted to the sampled entries) into ``U = P_outᴴ``.

Column (phase-encode) masks — every sample's mask constant along the rows, as
:class:`geometries.CartesianMask` draws them — use a 1-D FFT along the rows, selection of the
sampled columns, then the 1-D FFT along the columns on the reduced array; other masks a 2-D FFT
and a gather of the sampled entries. All samples of a batch must sample the same number of
entries (otherwise :func:`compress` returns ``None`` and the caller keeps ``E``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from operators import LinearOperator

__all__ = ["CompressedKSpace", "compress"]


def _in_phase(n: int, device: torch.device) -> torch.Tensor:
    """``e^{2πi c m / n}``, ``m = 0..n−1``, ``c = n // 2`` (float64 angles)."""
    m = torch.arange(n, dtype=torch.float64, device=device)
    return torch.polar(torch.ones_like(m), 2 * math.pi * (n // 2) * m / n)


def _out_phase(n: int, device: torch.device) -> torch.Tensor:
    """``e^{2πi (k−c) c / n}``, ``k = 0..n−1``, ``c = n // 2``."""
    k = torch.arange(n, dtype=torch.float64, device=device)
    c = n // 2
    return torch.polar(torch.ones_like(k), 2 * math.pi * ((k - c) * c % n) / n)


@dataclass
class CompressedKSpace:
    """``K = U R E`` of a masked Cartesian operator ``E`` (module docstring).

    Attributes
    ----------
    forward : callable
        Image ``(*batch, H, W)`` (real or complex) -> reduced k-space ``(*batch, C, L)``
        (``C = 1`` for a single-coil operator; ``L`` sampled entries per coil).
    adjoint : callable
        Reduced k-space -> complex image ``(*batch, H, W)``.
    y : Tensor
        ``U R y`` (scaled data), shape ``(*batch, C, L)``.
    off_mask : Tensor
        ``½‖(I − R) y‖²`` (scaled data) per batch sample, shape ``(*batch,)``; zero for data
        measured on the mask.
    """

    forward: Callable[[torch.Tensor], torch.Tensor]
    adjoint: Callable[[torch.Tensor], torch.Tensor]
    y: torch.Tensor
    off_mask: torch.Tensor


def _parts(op: LinearOperator) -> tuple[torch.Tensor, torch.Tensor | None] | None:
    """``(mask (*mb, H, W) bool, coil maps (*sb, C, H, W) or None)`` of a supported operator."""
    from operators import SENSE, CartesianFourier  # type: ignore[attr-defined]

    if isinstance(op, CartesianFourier):
        return op.mask, None
    if isinstance(op, SENSE) and isinstance(op.inner, CartesianFourier):
        return op.inner.mask, op.coil_maps
    return None


def compress(op: LinearOperator, y: torch.Tensor, scale: float = 1.0) -> CompressedKSpace | None:
    """The reduced, shift-free form of ``scale · op`` for data ``scale · y``, or ``None``.

    Parameters
    ----------
    op : LinearOperator
        A :class:`operators.CartesianFourier` or a :class:`operators.SENSE` over one; any other
        operator gives ``None``.
    y : Tensor, complex, shape ``(*batch, *op.range_shape)``
        The measured k-space. Sets the device and the precision (complex64 or complex128).
    scale : float
        A factor folded into the coil maps (the data term's ``√w``); ``y`` is scaled too.

    Returns
    -------
    CompressedKSpace or None
        ``None`` when the operator is not a masked Cartesian FFT, the mask's batch axes do not
        match ``y``'s, or the samples of the batch sample different numbers of entries.
    """
    parts = _parts(op)
    if parts is None or not y.is_complex():
        return None
    mask, maps = parts
    h, w = op.domain_shape
    coil = maps is not None
    batch = tuple(y.shape[: y.ndim - len(op.range_shape)])
    nb = len(batch)
    mb = mask.ndim - 2
    if mb > nb or tuple(mask.shape[:mb]) != batch[:mb]:
        return None
    dev, cdt = y.device, y.dtype
    mask = mask.to(dev)
    # mask over the full batch (*batch, H, W), flattened to (n, H, W)
    full = mask.reshape(mask.shape[:mb] + (1,) * (nb - mb) + (h, w)).expand(*batch, h, w)
    flat = full.reshape(-1, h, w)
    counts = flat.sum(dim=(-2, -1))
    if flat.shape[0] == 0 or bool((counts != counts[0]).any()) or int(counts[0]) == 0:
        return None
    cols = flat.any(dim=-2)  # (n, W)
    columnar = bool((flat == cols[:, None, :]).all())  # equal counts: equal column counts
    p_in = (_in_phase(h, dev)[:, None] * _in_phase(w, dev)[None, :]).to(cdt)
    p_out = (_out_phase(h, dev)[:, None] * _out_phase(w, dev)[None, :]).to(cdt)
    s = maps.to(device=dev, dtype=cdt) if coil else torch.ones((1, h, w), dtype=cdt, device=dev)
    s = s * (p_in * scale)  # (*sb, C, H, W)
    s_conj = s.conj()
    n_c = s.shape[-3]
    yk = scale * (y if coil else y.unsqueeze(-3))  # (*batch, C, H, W)
    off = 0.5 * ((yk * ~full.unsqueeze(-3)).abs() ** 2).sum(dim=(-3, -2, -1))

    if columnar:
        m = int(cols[0].sum())
        idx = torch.nonzero(cols)[:, 1].reshape(*batch, 1, 1, m)  # (*batch, 1, 1, m)
        # U: the output phase of the sampled columns (rows all sampled), conjugated
        u = torch.gather(p_out.expand(*batch, 1, h, w), -1, idx.expand(*batch, 1, h, m)).conj()

        def select(k: torch.Tensor) -> torch.Tensor:
            return torch.gather(k, -1, idx.expand(*k.shape[:-1], m))

        def forward(x: torch.Tensor) -> torch.Tensor:
            z = torch.fft.fft(x.unsqueeze(-3) * s, dim=-1, norm="ortho")
            return torch.fft.fft(select(z), dim=-2, norm="ortho").reshape(*z.shape[:-2], h * m)

        def adjoint(p: torch.Tensor) -> torch.Tensor:
            q = torch.fft.ifft(p.reshape(*p.shape[:-1], h, m), dim=-2, norm="ortho")
            z = q.new_zeros((*q.shape[:-1], w)).scatter_(-1, idx.expand(*q.shape), q)
            return (torch.fft.ifft(z, dim=-1, norm="ortho") * s_conj).sum(dim=-3)

        y_red = (select(yk) * u).reshape(*batch, n_c, h * m)
        return CompressedKSpace(forward, adjoint, y_red, off)

    n_s = int(counts[0])
    pos = torch.nonzero(flat.reshape(flat.shape[0], -1))[:, 1].reshape(*batch, 1, n_s)
    u = torch.gather(p_out.reshape(1, h * w).expand(*batch, 1, h * w), -1, pos).conj()

    def forward_2d(x: torch.Tensor) -> torch.Tensor:
        z = torch.fft.fft2(x.unsqueeze(-3) * s, norm="ortho")
        z = z.reshape(*z.shape[:-2], h * w)
        return torch.gather(z, -1, pos.expand(*z.shape[:-1], n_s))

    def adjoint_2d(p: torch.Tensor) -> torch.Tensor:
        z = p.new_zeros((*p.shape[:-1], h * w)).scatter_(-1, pos.expand(*p.shape), p)
        z = torch.fft.ifft2(z.reshape(*z.shape[:-1], h, w), norm="ortho")
        return (z * s_conj).sum(dim=-3)

    yf = yk.reshape(*yk.shape[:-2], h * w)
    y_red = torch.gather(yf, -1, pos.expand(*yf.shape[:-1], n_s)) * u
    return CompressedKSpace(forward_2d, adjoint_2d, y_red, off)
