"""Complex multi-coil MRI acquisition without the inverse crime.

Signal model
------------
For one slice the object is the complex image ``x = m · exp(iφ)`` on a grid ``factor`` times
finer than the reconstruction grid (same field of view): ``m`` the magnitude (the phantom's
spin-echo signal rendered at ``factor·N``) and ``φ`` a smooth random phase
(:func:`random_phase`). Coil ``c`` sees ``S_c ⊙ x`` (:mod:`.coils`). Its k-space is

* Cartesian (:func:`fine_cartesian_kspace`): the centred orthonormal FFT of the fine image,
  keeping the central ``N × N`` block of frequencies, times ``1/factor`` (so the block equals the
  orthonormal ``N``-point FFT convention of :class:`operators.CartesianFourier`: a constant image
  has the same DC value on both grids) and times a half-fine-pixel phase ramp (the centre of the
  coarse pixel ``N//2`` is the corner between fine pixels, see :func:`fine_cartesian_kspace`).
  For masks of whole phase-encode columns (:class:`geometries.CartesianMask`) only the sampled
  columns are computed (:func:`fine_cartesian_columns`, a pruned FFT; the same numbers).
* Radial (:func:`fine_radial_kspace`): :class:`operators.NUFFT` of the fine image at the *same
  physical* k locations, i.e. the trajectory in rad/pixel divided by ``factor`` on the fine grid,
  with the same ``1/factor`` scale and phase ramp.

The ground truth is the ``factor × factor`` block average of ``m``; the stored k-space is
therefore not ``F(gt)`` (no inverse crime).

Noise and SNR
-------------
Complex Gaussian noise is added to every stored sample: per coil ``n_c = σ (L z)_c`` with ``z``
i.i.d. circular complex standard normal (``E|z|² = 1``, variance ½ per real/imaginary part) and
``L L^H = Ψ`` the coil noise correlation matrix (unit diagonal; identity for uncorrelated coils,
:func:`coil_noise_covariance`). So ``E|n_c|² = σ²`` per sample and ``E[n n^H] = σ² Ψ``.
The SNR is defined on the image: with the orthonormal FFT, per-pixel image noise equals the
per-sample k-space noise σ; with unit root-sum-of-squares coil maps the optimally combined fully
sampled image has noise σ as well. We set ``σ = mean(m_gt on the object) / snr`` where the object
is the pixels with ``m_gt ≥ 0.1 · max m_gt`` (:func:`noise_sigma`). The noise is drawn on the CPU
in the k-space precision (float32 parts for the complex64 simulation), only for sampled entries
(:mod:`.mri_noise`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from ...errors import InputError
from .mri_noise import (
    _coil_noise,
    _column_pattern,
    _noise_factor,
    add_coil_noise,
    coil_noise_covariance,
    noise_sigma,
)

__all__ = [
    "add_coil_noise",
    "coil_noise_covariance",
    "fine_cartesian_columns",
    "fine_cartesian_kspace",
    "fine_nufft",
    "fine_radial_kspace",
    "noise_sigma",
    "random_phase",
    "simulate_mri_kspace",
]


def random_phase(
    shape: tuple[int, int],
    generator: torch.Generator,
    *,
    batch: int = 1,
    poly_rad: float = math.pi,
    n_bumps: int = 3,
    bump_rad: float = 1.5,
    bump_width: tuple[float, float] = (0.08, 0.25),
) -> torch.Tensor:
    """Smooth random phase maps ``φ`` (rad) of MR slices, independent of the pixel grid.

    ``φ(u, v) = Σ_{i+j≤2} a_ij u^i v^j + Σ_k b_k exp(−|r − r_k|² / (2 w_k²))`` on normalised
    coordinates ``u, v ∈ [−1, 1]`` (rows, columns, pixel centres): a second-order polynomial
    (constant, linear and quadratic terms: receiver phase, off-centre shifts, B0 curvature) plus
    ``n_bumps`` Gaussian bumps imitating local off-resonance (e.g. near sinuses and air cells).
    Being an analytic function of the position, the same draw on the fine and on the coarse grid
    describes the same phase.

    Parameters
    ----------
    shape : (H, W)
    generator : torch.Generator
        CPU generator (seeded per slice by the caller).
    batch : int
        Number of independent maps B.
    poly_rad : float
        Standard deviation of each polynomial coefficient, rad (the constant term is uniform in
        ``[−π, π)``).
    n_bumps : int
        Number of local off-resonance bumps.
    bump_rad : float
        Standard deviation of the bump amplitudes, rad.
    bump_width : (float, float)
        Range of the bump widths ``w_k`` in normalised units.

    Returns
    -------
    Tensor, ``(B, H, W)`` float32
    """
    h, w = (int(s) for s in shape)
    g = generator
    u = (torch.arange(h, dtype=torch.float64) + 0.5) / h * 2 - 1  # rows
    v = (torch.arange(w, dtype=torch.float64) + 0.5) / w * 2 - 1  # columns
    out = torch.empty(batch, h, w, dtype=torch.float32)
    for b in range(batch):
        c0 = (torch.rand(1, generator=g, dtype=torch.float64) * 2 - 1) * math.pi
        a = torch.randn(5, generator=g, dtype=torch.float64) * poly_rad
        # every term is a rank-1 outer product of an axis function: phi = U @ V^T (one GEMM)
        cols_u = [c0 + a[0] * u + 0.5 * a[2] * u**2, torch.ones_like(u), u]
        cols_v = [torch.ones_like(v), a[1] * v + 0.5 * a[3] * v**2, 0.5 * a[4] * v]
        if n_bumps > 0:
            ctr = torch.rand(n_bumps, 2, generator=g, dtype=torch.float64) * 1.4 - 0.7
            wid = bump_width[0] + torch.rand(n_bumps, generator=g, dtype=torch.float64) * (
                bump_width[1] - bump_width[0]
            )
            amp = torch.randn(n_bumps, generator=g, dtype=torch.float64) * bump_rad
            for k in range(n_bumps):  # separable Gaussian bumps
                cols_u.append(amp[k] * torch.exp(-((u - ctr[k, 0]) ** 2) / (2 * wid[k] ** 2)))
                cols_v.append(torch.exp(-((v - ctr[k, 1]) ** 2) / (2 * wid[k] ** 2)))
        torch.mm(torch.stack(cols_u, 1).float(), torch.stack(cols_v, 0).float(), out=out[b])
    return out


def _half_pixel_ramp(k_fine_row: torch.Tensor, k_fine_col: torch.Tensor, factor: int) -> Any:
    """``exp(i (k_r + k_c) (factor − 1) / 2)``: moves the FFT origin from fine pixel ``factor·N/2``
    to the centre of coarse pixel ``N/2`` (``(factor − 1)/2`` fine pixels further)."""
    s = (factor - 1) / 2.0
    return torch.exp(1j * s * (k_fine_row + k_fine_col))


def fine_cartesian_kspace(
    x_fine: torch.Tensor, factor: int = 2, maps: torch.Tensor | None = None
) -> torch.Tensor:
    """Central ``N × N`` k-space block of a ``factor``× finer image, in the coarse FFT convention.

    Parameters
    ----------
    x_fine : Tensor, ``(..., factor·N, factor·N)``, real or complex
    factor : int
    maps : Tensor, ``(C, fN, fN)`` or ``(B, C, fN, fN)`` complex, optional
        Coil maps: the result is then the k-space of ``maps · x_fine[..., None, :, :]``, shape
        ``(..., C, N, N)`` (the product is formed per polyphase component, never at full size).

    Returns
    -------
    Tensor, ``(..., N, N)`` complex
        ``K[k] = (1/factor) · e^{i s (k_r + k_c)} · F_fine(x)[k]`` for the ``N × N`` central
        frequencies ``k`` (rad per fine pixel), ``F_fine`` the centred orthonormal FFT of the
        fine grid and ``s = (factor − 1)/2``: equals :func:`operators.mri.centered_fft2` of the
        block-averaged image for band-limited objects, up to the block average's own blur.

    Notes
    -----
    Only the central block is computed: with ``n = factor·m + r`` (polyphase components
    ``x_rs = x[r::f, s::f]``), ``K[k] = f⁻² Σ_{r,s} e^{−i k_r (r − s)} e^{−i k_c (s' − s)}
    C_N(x_rs)[k]`` with ``C_N`` the ``N``-point centred orthonormal FFT, itself computed for even
    ``N`` as ``(−1)^{N/2} (−1)^j FFT((−1)^m x)[j]`` (no shift copies). Same flops as one fine FFT,
    about 3× faster on the CPU than shifting and cropping the fine spectrum.
    """
    hf, wf = x_fine.shape[-2], x_fine.shape[-1]
    if hf % factor or wf % factor:
        raise InputError(f"fine image shape {(hf, wf)} is not divisible by factor {factor}")
    h, w = hf // factor, wf // factor
    x = (
        x_fine
        if x_fine.is_complex()
        else x_fine.to(torch.complex128 if x_fine.dtype == torch.float64 else torch.complex64)
    )
    dev, cdt = x.device, x.dtype
    rdt = torch.float64 if cdt == torch.complex128 else torch.float32
    sh = (factor - 1) / 2.0

    def axis_tables(n: int, nf: int) -> tuple[torch.Tensor, list[torch.Tensor]]:
        j = torch.arange(n, dtype=torch.float64)
        kf = (j - n // 2) * (2 * math.pi / nf)  # rad per fine pixel
        if n % 2 == 0:
            sign_in = (1.0 - 2.0 * (j % 2)).to(dev, rdt)
            out_sign = (-1.0) ** (n // 2) * (1.0 - 2.0 * (j % 2))
        else:
            sign_in = None
            out_sign = torch.ones(n, dtype=torch.float64)
        d = factor * (n // 2) - nf // 2  # fine origin relative to the component origins
        tw = [torch.exp(-1j * kf * (r + d - sh)) * out_sign for r in range(factor)]
        return sign_in, [t.to(dev, cdt) for t in tw]

    sin_r, tw_r = axis_tables(h, hf)
    sin_c, tw_c = axis_tables(w, wf)
    even = sin_r is not None and sin_c is not None
    checker = (sin_r[:, None] * sin_c[None, :]) if even else None
    if maps is not None:
        maps = torch.as_tensor(maps).to(dev, cdt)
        x = x.unsqueeze(-3)
        out_shape = torch.broadcast_shapes(x.shape[:-2], maps.shape[:-2])
    else:
        out_shape = x.shape[:-2]
    out = torch.zeros(*out_shape, h, w, dtype=cdt, device=dev)
    for r in range(factor):
        for c in range(factor):
            comp = x[..., r::factor, c::factor]
            mod = checker
            if maps is not None:
                s_rc = maps[..., r::factor, c::factor]
                mod = s_rc * checker if even else s_rc
            if mod is not None:
                comp = comp * mod
            if even:
                spec = torch.fft.fft2(comp, norm="ortho")
            else:
                from operators.mri import centered_fft2

                spec = centered_fft2(comp)
            out.addcmul_(spec, tw_r[r][:, None] * tw_c[c][None, :])
    return out / (factor * factor)


def _central_bins(n: int, nf: int, factor: int) -> tuple[torch.Tensor, torch.Tensor]:
    """FFT bins ``q_j`` and phases of the ``n`` central frequencies of an ``nf``-point axis.

    ``Σ_t x[t] e^{−i k_j (t − t0)} = e^{i k_j t0} · FFT(x)[q_j]`` with ``k_j = 2π (j − n//2)/nf``
    (rad per fine pixel), ``q_j = (j − n//2) mod nf`` and ``t0 = nf//2 + (factor − 1)/2`` the
    fine-grid origin of :func:`fine_cartesian_kspace` (its half-fine-pixel ramp included).
    """
    j = torch.arange(n) - n // 2
    kf = j.double() * (2 * math.pi / nf)
    return j % nf, torch.exp(1j * kf * (nf // 2 + (factor - 1) / 2.0))


def fine_cartesian_columns(
    x_fine: torch.Tensor,
    columns: Any,
    factor: int = 2,
    maps: torch.Tensor | None = None,
    phase: torch.Tensor | None = None,
    coil_chunk: int = 4,
) -> list[torch.Tensor]:
    """Sampled columns of :func:`fine_cartesian_kspace`, slice by slice (pruned 2-D FFT).

    Parameters
    ----------
    x_fine : Tensor, ``(B, factor·N, factor·M)`` real or complex
        Fine images (magnitudes if ``phase`` is given).
    columns : sequence of B int Tensors ``(K_b,)``
        Coarse column (phase-encode, last axis) indices in ``[0, M)`` to compute per slice.
    factor : int
    maps : Tensor, ``(C, fN, fM)`` or ``(B, C, fN, fM)`` complex, optional
        Coil maps; the product with the image is formed ``coil_chunk`` coils at a time in a
        reused buffer (no full-size ``(B, C, fN, fM)`` temporary).
    phase : Tensor, ``(B, fN, fM)`` real, optional
        Phase in rad: the image is then ``x_fine · e^{i phase}`` (``x_fine`` real), formed per
        slice in a reused buffer.
    coil_chunk : int
        Coils per chunk.

    Returns
    -------
    list of B Tensors ``(C, N, K_b)`` complex (``C = 1`` without maps)
        ``fine_cartesian_kspace(x, factor, maps)[b][..., columns[b]]`` up to float rounding.

    Notes
    -----
    FFT along the last (phase-encode) axis of the whole fine image, keep the FFT bins of the
    ``K_b`` wanted columns, FFT those columns along the first axis and keep the ``N`` central
    rows; centring, half-fine-pixel ramp and ``1/factor`` are phases and a constant on the kept
    bins (:func:`_central_bins`; a row modulation ``e^{2πi t (N//2)/fN}`` makes the kept rows
    the first ``N`` bins). For ``K ≈ M/4`` this is about half the flops of the full fine FFT;
    the reused buffers also avoid the page faults of fresh full-size temporaries.
    """
    if x_fine.ndim != 3:
        raise InputError(f"x_fine must be (B, fN, fM), got {tuple(x_fine.shape)}")
    b, hf, wf = (int(v) for v in x_fine.shape)
    if hf % factor or wf % factor:
        raise InputError(f"fine image shape {(hf, wf)} is not divisible by factor {factor}")
    if len(columns) != b:
        raise InputError(f"need one column index vector per slice ({b}), got {len(columns)}")
    if phase is not None and (x_fine.is_complex() or tuple(phase.shape) != (b, hf, wf)):
        raise InputError("phase needs a real x_fine of the same shape")
    h, w = hf // factor, wf // factor
    dev = x_fine.device
    double = x_fine.dtype in (torch.float64, torch.complex128)
    cdt = torch.complex128 if double else torch.complex64
    _, ph_r = _central_bins(h, hf, factor)
    q_c, ph_c = _central_bins(w, wf, factor)
    ph_r = (ph_r / (factor * math.sqrt(hf * wf))).to(dev, cdt)
    # e^{2πi t (N//2)/fN} on fine row t moves the wanted row bins to 0..N-1 (a narrow, no
    # gather); as an angle reduced mod 2π exactly, so adding it to a phase map loses nothing
    ang = (torch.arange(hf) * (h // 2) % hf).double() * (2 * math.pi / hf)
    row_ang = ang.to(dev, torch.float64 if double else torch.float32)[:, None]
    row_mod = torch.polar(torch.ones_like(row_ang), row_ang)
    step, n_c = 1, 1
    if maps is not None:
        maps = torch.as_tensor(maps).to(dev, cdt)
        n_c = int(maps.shape[-3])
        step = min(max(int(coil_chunk), 1), n_c)
    buf = torch.empty(step, hf, wf, dtype=cdt, device=dev)
    xm = torch.empty(hf, wf, dtype=cdt, device=dev)
    out = []
    for i in range(b):
        cols = torch.as_tensor(columns[i], dtype=torch.long).reshape(-1).cpu()
        if cols.numel() and (int(cols.min()) < 0 or int(cols.max()) >= w):
            raise InputError(f"columns must lie in [0, {w})")
        scale = ph_r[:, None] * ph_c[cols].to(dev, cdt)[None, :]
        q_cols = q_c[cols].to(dev)
        if phase is not None:
            torch.polar(x_fine[i].to(row_ang.dtype), (phase[i] + row_ang).to(row_ang), out=xm)
        else:
            torch.mul(x_fine[i], row_mod, out=xm)
        parts = []
        for c0 in range(0, n_c, step):
            cc = min(step, n_c - c0)
            if maps is None:
                buf[0].copy_(xm)
            else:
                torch.mul((maps if maps.ndim == 3 else maps[i])[c0 : c0 + cc], xm, out=buf[:cc])
            spec = torch.fft.fft(buf[:cc], dim=-1)
            a = torch.gather(spec, -1, q_cols.expand(cc, hf, -1))  # (cc, fN, K): wanted bins
            parts.append(torch.fft.fft(a, dim=-2)[..., :h, :] * scale)
        out.append(torch.cat(parts, 0) if len(parts) > 1 else parts[0])
    return out


def fine_radial_kspace(
    x_fine: torch.Tensor, trajectory: Any, factor: int = 2, nufft: Any = None
) -> torch.Tensor:
    """Non-Cartesian samples of a ``factor``× finer image at the physical k of ``trajectory``.

    Parameters
    ----------
    x_fine : Tensor, ``(..., factor·N, factor·N)``, real or complex
    trajectory : geometries.RadialTrajectory or array ``(2, P)``
        Sample positions in rad per *coarse* pixel (as used with ``NUFFT(trajectory, (N, N))``).
    factor : int
    nufft : operators.NUFFT, optional
        A prebuilt fine-grid operator (from :func:`fine_nufft`) to reuse.

    Returns
    -------
    Tensor, ``(..., P)`` complex
        ``(1/factor) · e^{i s (k_r + k_c)/factor} · NUFFT_fine(x)`` with ``s = (factor − 1)/2``.
    """
    hf, wf = x_fine.shape[-2], x_fine.shape[-1]
    ktraj = _ktraj(trajectory)
    op = (
        nufft if nufft is not None else fine_nufft(trajectory, (hf // factor, wf // factor), factor)
    )
    y = op(x_fine)
    kf = torch.from_numpy(ktraj / factor)
    ramp = _half_pixel_ramp(kf[0], kf[1], factor).to(y.device, y.dtype)
    return y * ramp / factor


def _ktraj(trajectory: Any) -> np.ndarray:
    from geometries import RadialTrajectory

    if isinstance(trajectory, RadialTrajectory):
        return np.asarray(trajectory.ktraj, dtype=np.float64)
    k = np.asarray(trajectory, dtype=np.float64)
    if k.ndim != 2 or k.shape[0] != 2:
        raise InputError(f"trajectory must have shape (2, P), got {k.shape}")
    return k


def fine_nufft(trajectory: Any, image_shape: tuple[int, int], factor: int = 2) -> Any:
    """``operators.NUFFT`` on the ``factor``× finer grid at the trajectory's physical k."""
    from operators import NUFFT

    h, w = image_shape
    return NUFFT(_ktraj(trajectory) / factor, (h * factor, w * factor), dcf="pipe")


def simulate_mri_kspace(
    magnitude_fine: torch.Tensor,
    sampling: Any,
    *,
    generator: torch.Generator,
    maps_fine: torch.Tensor | None = None,
    phase_fine: torch.Tensor | None = None,
    snr: float | None = None,
    covariance: torch.Tensor | None = None,
    factor: int = 2,
    nufft: Any = None,
) -> torch.Tensor:
    """Multi-coil k-space of the reconstruction grid from a ``factor``× finer magnitude image.

    Parameters
    ----------
    magnitude_fine : Tensor, ``(B, factor·N, factor·N)`` real
        Magnitude ``m`` on the fine grid (the target is ``block_average(m)``).
    sampling : CartesianMask, bool array ``(N, N)`` / ``(B, N, N)``, or RadialTrajectory
        Cartesian mask (unsampled entries are exactly 0) or radial trajectory (rad / coarse
        pixel).
    generator : torch.Generator
        CPU generator of the noise.
    maps_fine : Tensor, ``(C, fN, fN)`` or ``(B, C, fN, fN)`` complex, optional
        True coil maps on the fine grid (:func:`.coils.loop_coil_maps`); one coil of 1 if None.
    phase_fine : Tensor, ``(B, fN, fN)``, optional
        Phase φ in rad (:func:`random_phase`); real-valued object if None.
    snr : float, optional
        Image SNR (:func:`noise_sigma` of the block-averaged magnitude); noise-free if None.
    covariance : Tensor ``(C, C)``, optional
        Coil noise correlation (:func:`coil_noise_covariance`).
    factor : int
    nufft : operators.NUFFT, optional
        Prebuilt :func:`fine_nufft` for radial sampling (reuse across batches).

    Returns
    -------
    Tensor, complex64: ``(B, C, N, N)`` Cartesian or ``(B, C, P)`` radial
    """
    from geometries import RadialTrajectory

    m = torch.as_tensor(magnitude_fine).float()
    if m.ndim != 3:
        raise InputError(f"magnitude_fine must be (B, fN, fN), got {tuple(m.shape)}")
    ph = None if phase_fine is None else torch.as_tensor(phase_fine).float()
    s = None if maps_fine is None else torch.as_tensor(maps_fine).to(torch.complex64)
    n = (m.shape[-2] // factor, m.shape[-1] // factor)
    support = None
    if isinstance(sampling, RadialTrajectory) or (
        isinstance(sampling, np.ndarray) and sampling.dtype != bool
    ):
        x = m.to(torch.complex64) if ph is None else torch.polar(m, ph)
        op = nufft if nufft is not None else fine_nufft(sampling, n, factor)
        xc = x[:, None] if s is None else x[:, None] * s
        k = fine_radial_kspace(xc, sampling, factor, nufft=op)
    else:
        mask = torch.as_tensor(np.asarray(getattr(sampling, "mask", sampling), dtype=bool))
        if tuple(mask.shape[-2:]) != n:
            raise InputError(f"mask shape {tuple(mask.shape)} does not match the grid {n}")
        cols = _column_pattern(torch.broadcast_to(mask, (m.shape[0], *n)))
        if cols is not None:  # whole phase-encode columns: pruned FFT, noise on those only
            return _cartesian_columns(m, ph, cols, s, factor, snr, generator, covariance)
        x = m.to(torch.complex64) if ph is None else torch.polar(m, ph)
        k = fine_cartesian_kspace(x[:, None], factor) if s is None else None
        k = fine_cartesian_kspace(x, factor, maps=s) if k is None else k
        support = mask[:, None] if mask.ndim == 3 else mask
        k = k * support
    if snr is not None:
        sigma = noise_sigma(_block_average(m, factor), snr)
        k = add_coil_noise(k, sigma, generator, covariance, support)
    return k.to(torch.complex64)


def _block_average(m: torch.Tensor, factor: int) -> torch.Tensor:
    """:func:`.ct.block_average` of real ``(B, fN, fM)`` (as one pooling, for the noise σ)."""
    return torch.nn.functional.avg_pool2d(m[:, None], factor)[:, 0]


def _cartesian_columns(
    magnitude: torch.Tensor,
    phase: torch.Tensor | None,
    cols: torch.Tensor,
    maps: torch.Tensor | None,
    factor: int,
    snr: float | None,
    generator: torch.Generator,
    covariance: torch.Tensor | None,
) -> torch.Tensor:
    """Cartesian branch of :func:`simulate_mri_kspace` for column masks ``cols`` ``(B, N)``:
    :func:`fine_cartesian_columns`, noise drawn in the ``(C, N, K)`` column layout (the same
    statistics as :func:`add_coil_noise`), scattered into zero-filled ``(B, C, N, N)``."""
    idx = [torch.nonzero(c)[:, 0] for c in cols]
    parts = fine_cartesian_columns(magnitude, idx, factor, maps=maps, phase=phase)
    n_c = parts[0].shape[0]
    b, h, w = magnitude.shape[0], magnitude.shape[-2] // factor, magnitude.shape[-1] // factor
    sigma = None if snr is None else noise_sigma(_block_average(magnitude, factor), snr)
    lmat = _noise_factor(covariance, n_c)
    k = torch.zeros(b, n_c, h, w, dtype=torch.complex64, device=magnitude.device)
    for i, (kc, ix) in enumerate(zip(parts, idx, strict=True)):
        if sigma is not None:
            kc = kc + _coil_noise(tuple(kc.shape), float(sigma[i]), generator, lmat, kc.dtype)
        k[i].index_copy_(-1, ix.to(k.device), kc.to(torch.complex64))
    return k
