"""Coil noise of the MRI acquisition (model in :mod:`.mri`, section *Noise and SNR*).

Per coil ``n_c = σ (L z)_c``, ``z`` i.i.d. circular complex standard normal, ``L L^H = Ψ``;
``σ`` per slice from the image SNR (:func:`noise_sigma`).
"""

from __future__ import annotations

import math

import torch

from ...errors import InputError

__all__ = ["add_coil_noise", "coil_noise_covariance", "noise_sigma"]


def coil_noise_covariance(
    n_coils: int, correlation: float = 0.0, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Coil noise correlation matrix ``Ψ`` (Hermitian positive definite, unit diagonal).

    Neighbouring coils on the ring couple most: ``Ψ_ij = ρ^{d(i, j)} e^{iθ_ij}`` with ``d`` the
    ring distance, ``ρ = correlation`` and a small random phase ``θ_ij`` (anti-symmetric) when a
    generator is given; then projected to positive definite and renormalised to unit diagonal.

    Parameters
    ----------
    n_coils : int
    correlation : float
        Correlation coefficient of adjacent coils, in [0, 1).
    generator : torch.Generator, optional

    Returns
    -------
    Tensor, ``(C, C)`` complex128
    """
    if not 0.0 <= correlation < 1.0:
        raise InputError(f"correlation must be in [0, 1), got {correlation}")
    i = torch.arange(n_coils)
    d = (i[:, None] - i[None, :]).abs()
    d = torch.minimum(d, n_coils - d).double()
    psi = (correlation**d).to(torch.complex128)
    if correlation > 0:
        psi = psi * (d > 0)
        psi = psi + torch.eye(n_coils, dtype=torch.complex128)
        if generator is not None:
            th = torch.randn(n_coils, n_coils, generator=generator, dtype=torch.float64) * 0.3
            th = torch.triu(th, 1)
            psi = psi * torch.exp(1j * (th - th.T))
        ev, vec = torch.linalg.eigh(psi)
        psi = (vec * ev.clamp_min(0.05).to(psi.dtype)) @ vec.conj().T
        dg = psi.diagonal().real.sqrt()
        psi = psi / (dg[:, None] * dg[None, :])
    return psi


def noise_sigma(magnitude: torch.Tensor, snr: float) -> torch.Tensor:
    """Per-slice k-space noise σ for an image SNR: ``mean(m on the object) / snr``.

    Parameters
    ----------
    magnitude : Tensor, ``(B, H, W)``
        Ground-truth magnitude (any grid; the object is ``m ≥ 0.1 · max m`` per slice).
    snr : float
        Target SNR (linear, not dB) of the fully sampled combined image, > 0.

    Returns
    -------
    Tensor, ``(B,)`` float64
    """
    if not snr > 0:
        raise InputError(f"snr must be > 0, got {snr}")
    m = magnitude.detach().abs().double().flatten(1).cpu()
    obj = m >= 0.1 * m.amax(1, keepdim=True).clamp_min(1e-30)
    mean = (m * obj).sum(1) / obj.sum(1).clamp_min(1)
    return mean / snr


def _noise_factor(covariance: torch.Tensor | None, n_coils: int) -> torch.Tensor | None:
    """Cholesky factor ``L`` (``L L^H = Ψ``, complex128) of the coil noise correlation, or None."""
    if covariance is None:
        return None
    psi = torch.as_tensor(covariance).to(torch.complex128)
    if psi.shape != (n_coils, n_coils):
        raise InputError(f"covariance must be ({n_coils}, {n_coils}), got {tuple(psi.shape)}")
    return torch.linalg.cholesky(psi)


def _coil_noise(
    shape: tuple[int, ...],
    sigma: float,
    generator: torch.Generator,
    lmat: torch.Tensor | None,
    dtype: torch.dtype,
) -> torch.Tensor:
    """``σ L z`` for ``z`` of ``shape = (C, *rest)`` i.i.d. circular complex standard normal.

    Drawn on the CPU in ``dtype`` (``torch.randn`` of a complex dtype: variance ½ per real and
    imaginary part); the coil mixing is one ``(C × C) @ (C × P)`` product.
    """
    c = int(shape[0])
    z = torch.randn((c, math.prod(shape[1:])), generator=generator, dtype=dtype)
    if lmat is not None:
        z = lmat.to(dtype) @ z
    return z.mul_(sigma).reshape(shape)


def _column_pattern(sel: torch.Tensor) -> torch.Tensor | None:
    """``(B, W)`` sampled columns if the bool support ``(B, H, W)`` samples whole columns."""
    if sel.ndim != 3 or sel.shape[-2] == 0:
        return None
    cols = sel[:, 0, :]
    return cols if bool((sel == cols[:, None, :]).all()) else None


def add_coil_noise(
    kspace: torch.Tensor,
    sigma: torch.Tensor | float,
    generator: torch.Generator,
    covariance: torch.Tensor | None = None,
    support: torch.Tensor | None = None,
) -> torch.Tensor:
    """Add correlated complex Gaussian noise ``σ L z`` to multi-coil k-space.

    Parameters
    ----------
    kspace : Tensor, complex ``(B, C, ...)``
    sigma : Tensor ``(B,)`` or float
        Per-slice noise standard deviation (``E|n|² = σ²`` per sample and coil).
    generator : torch.Generator
        CPU generator; noise is drawn on the CPU in the precision of ``kspace`` (float32 parts
        for complex64, float64 for complex128), slice by slice, only for the sampled entries.
    covariance : Tensor ``(C, C)``, optional
        Coil noise correlation ``Ψ`` (unit diagonal); identity if None.
    support : bool Tensor ``(*rest)``, ``(B, *rest)`` or ``(B, 1, *rest)``, optional
        Where samples exist (Cartesian mask), the same for every coil; other entries are left
        unchanged (exactly zero for masked k-space). Noise is drawn only for those samples.

    Returns
    -------
    Tensor, same shape, dtype and device as ``kspace``
    """
    b, c = kspace.shape[:2]
    sig = torch.as_tensor(sigma, dtype=torch.float64).reshape(-1)
    sig = sig.expand(b) if sig.numel() == 1 else sig
    lmat = _noise_factor(covariance, c)
    rest = tuple(kspace.shape[2:])
    cdt = kspace.dtype if kspace.is_complex() else torch.complex64
    out = kspace.clone()
    if support is None:
        for i in range(b):
            out[i] += _coil_noise((c, *rest), float(sig[i]), generator, lmat, cdt).to(out.device)
        return out
    sup = torch.as_tensor(support).to("cpu", torch.bool)
    if sup.ndim == kspace.ndim:  # (B or 1, 1, *rest): the same support for every coil
        sup = sup[:, 0]
    sel = torch.broadcast_to(sup, (b, *rest))
    cols = _column_pattern(sel)
    for i in range(b):
        if cols is not None:  # whole columns: (C, H, K) block, added by column index
            idx = torch.nonzero(cols[i])[:, 0]
            nz = _coil_noise((c, rest[0], idx.numel()), float(sig[i]), generator, lmat, cdt)
            out[i].index_add_(-1, idx.to(out.device), nz.to(out.device, out.dtype))
        else:
            sel_i = sel[i].to(out.device)
            nz = _coil_noise((c, int(sel_i.sum())), float(sig[i]), generator, lmat, cdt)
            out[i][:, sel_i] += nz.to(out.device, out.dtype)
    return out
