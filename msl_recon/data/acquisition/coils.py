"""Receive-coil sensitivities: a Biot–Savart loop-coil array, estimation from the k-space centre,
and the coil-combined back-transforms that feed the MRI encoder and baselines.

True maps (:func:`loop_coil_maps`)
---------------------------------
``C`` circular surface loops of radius ``a`` sit on a cylinder of radius ``R`` around the head
(axis = z, the slice normal), evenly spread in azimuth, each loop's plane tangent to the
cylinder. The field of loop ``c`` at a point ``r`` of the slice is the Biot–Savart integral
``B_c(r) ∝ ∮ dl × (r − l) / |r − l|³`` (32 straight segments, distances softened by 5 mm so
that the square FOV's corners, which can reach beyond the coil ring, stay finite); its receive
sensitivity is the counter-rotating transverse component ``S_c = B_x − i B_y`` (Hoult, Concepts
Magn. Reson. 12:173, 2000), times a random cable phase. What varies per subject (``seed``):
array radius, rotation of the array, per-coil azimuth and z jitter, loop radius, cable phases;
the slice position ``z_mm`` moves the slice through the array. The maps are normalised to unit
root-sum-of-squares (``Σ_c |S_c|² = 1`` at every pixel), so coil combination does not shade the
image and the SNR definition of :mod:`.mri` holds everywhere.

Estimated maps (:func:`estimate_coil_maps`)
------------------------------------------
The encoder and the baselines never see the true maps. They use maps estimated from the fully
sampled k-space centre (the ``calib_width × calib_width`` auto-calibration block):

* ``"lowres"`` (default, batched torch, fast): Hann-windowed calibration block → zero-filled
  inverse FFT → low-resolution coil images ``c_k`` → ``Ŝ_k = c_k / sqrt(Σ_k |c_k|²)``, set to 0
  where the RSS is below ``threshold`` times its maximum (outside the head). The object's own
  low-resolution phase enters ``Ŝ``; it cancels in the combined magnitude.
* ``"espirit"``: ESPIRiT (Uecker et al., Magn. Reson. Med. 71:990, 2014) as implemented by
  ``sigpy.mri.app.EspiritCalib`` (slower; per slice on the CPU).

For radial data the calibration region is the disc ``|k| < π · calib_width / N`` (Hann taper),
regridded with the density-compensated NUFFT adjoint.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ...errors import InputError

__all__ = [
    "acs_width",
    "coil_pinv",
    "estimate_coil_maps",
    "loop_coil_maps",
    "rss_adjoint",
    "sense_combine_adjoint",
]

_N_SEG = 32
_SOFT_MM = 5.0  # softening of the wire singularity (only the FOV corners come close)
_MAX_EVAL = 96


def loop_coil_maps(
    shape: tuple[int, int],
    n_coils: int,
    *,
    fov_mm: float,
    seed: int = 0,
    z_mm: float = 0.0,
    array_radius_mm: tuple[float, float] = (115.0, 130.0),
    loop_radius_mm: tuple[float, float] = (0.45, 0.6),
    z_jitter_mm: float = 15.0,
    azimuth_jitter: float = 0.15,
    normalize: bool = True,
) -> torch.Tensor:
    """Complex sensitivities of a ring of ``n_coils`` loop coils on the slice grid.

    Parameters
    ----------
    shape : (H, W)
        Pixel grid covering ``fov_mm`` (square pixels, row 0 anterior, column 0 patient right).
    n_coils : int
        Number of coils C ≥ 1.
    fov_mm : float
        Field of view along the longer side, mm.
    seed : int
        Per-subject seed of the array variations.
    z_mm : float
        Slice position along the array axis relative to the array centre, mm.
    array_radius_mm : (float, float)
        Range of the cylinder radius R.
    loop_radius_mm : (float, float)
        Range of the loop radius as a fraction of the azimuthal spacing ``2πR / C`` (0.5 makes
        adjacent loops touch; clipped to ≤ 0.45 R).
    z_jitter_mm, azimuth_jitter : float
        Standard deviations of the per-coil z offset (mm) and azimuth offset (fraction of the
        spacing).
    normalize : bool
        Scale to unit root-sum-of-squares at every pixel.

    Returns
    -------
    Tensor, ``(C, H, W)`` complex64
        The same physical maps for any grid of the same field of view (evaluated on at most a
        96² grid of pixel centres and interpolated bicubically).
    """
    if not (isinstance(n_coils, int) and n_coils >= 1):
        raise InputError(f"n_coils must be an integer >= 1, got {n_coils!r}")
    h, w = (int(s) for s in shape)
    rng = np.random.default_rng([int(seed), 0xC011])
    big_r = rng.uniform(*array_radius_mm)
    spacing = 2 * math.pi / n_coils
    rot = rng.uniform(0, 2 * math.pi)
    theta = rot + spacing * (np.arange(n_coils) + azimuth_jitter * rng.standard_normal(n_coils))
    a = min(rng.uniform(*loop_radius_mm) * spacing * big_r, 0.45 * big_r)
    zc = z_jitter_mm * rng.standard_normal(n_coils)
    cable = rng.uniform(-math.pi, math.pi, n_coils)

    scale = max(h, w) / float(fov_mm)  # pixels per mm on the target grid
    f = min(1.0, _MAX_EVAL / max(h, w))
    he, we = max(2, round(h * f)), max(2, round(w * f))
    pe = (h / he) / scale  # mm per evaluation pixel (rows)
    qe = (w / we) / scale
    y = ((he - 1) / 2.0 - np.arange(he)) * pe
    x = ((we - 1) / 2.0 - np.arange(we)) * qe
    yy, xx = np.meshgrid(y, x, indexing="ij")
    pts = np.stack([xx, yy, np.full_like(xx, z_mm)], axis=-1).reshape(-1, 1, 3)
    t = np.linspace(0, 2 * math.pi, _N_SEG, endpoint=False) + math.pi / _N_SEG
    maps = np.empty((n_coils, he * we), np.complex128)
    for c in range(n_coils):
        n_hat = np.array([math.cos(theta[c]), math.sin(theta[c]), 0.0])
        e1 = np.array([-math.sin(theta[c]), math.cos(theta[c]), 0.0])
        e2 = np.array([0.0, 0.0, 1.0])
        ctr = big_r * n_hat + zc[c] * e2
        seg = ctr + a * (np.cos(t)[:, None] * e1 + np.sin(t)[:, None] * e2)  # (M, 3)
        dl = a * (2 * math.pi / _N_SEG) * (-np.sin(t)[:, None] * e1 + np.cos(t)[:, None] * e2)
        rx, ry, rz = (pts[..., i] - seg[None, :, i] for i in range(3))  # (P, M) each
        inv3 = (rx * rx + ry * ry + rz * rz + _SOFT_MM**2) ** -1.5
        bx = ((dl[:, 1] * rz - dl[:, 2] * ry) * inv3).sum(1)  # (dl × r)_x / |r|³
        by = ((dl[:, 2] * rx - dl[:, 0] * rz) * inv3).sum(1)
        maps[c] = (bx - 1j * by) * np.exp(1j * cable[c])
    m = torch.from_numpy(maps.reshape(n_coils, he, we))
    if (he, we) != (h, w):
        ri = F.interpolate(
            torch.view_as_real(m).permute(0, 3, 1, 2).float(),
            size=(h, w),
            mode="bicubic",
            align_corners=False,
        )
        m = torch.complex(ri[:, 0], ri[:, 1]).to(torch.complex128)
    if normalize:
        m = m / m.abs().pow(2).sum(0, keepdim=True).sqrt().clamp_min(1e-30)
    else:
        m = m / m.abs().amax()
    return m.to(torch.complex64)


def acs_width(mask: Any) -> int:
    """Number of contiguous fully sampled columns around the k-space centre ``W // 2``.

    ``mask`` is a ``geometries.CartesianMask`` or a bool array ``(H, W)`` (a column counts when
    every row is sampled). Use ``min(preset.calib_width, acs_width(mask))`` as ``calib_width``.
    """
    m = np.asarray(mask.mask if hasattr(mask, "mask") else mask, dtype=bool)
    cols = m.all(axis=0) if m.ndim == 2 else m
    c = cols.shape[-1] // 2
    if not cols[c]:
        return 0
    lo, hi = c, c
    while lo - 1 >= 0 and cols[lo - 1]:
        lo -= 1
    while hi + 1 < cols.shape[-1] and cols[hi + 1]:
        hi += 1
    return int(hi - lo + 1)


def _hann(n: int, width: int, device: torch.device) -> torch.Tensor:
    """Length-n window: Hann of ``width`` centred at ``n//2``, zero elsewhere."""
    win = torch.zeros(n, dtype=torch.float64, device=device)
    i = torch.arange(width, dtype=torch.float64, device=device)
    start = n // 2 - width // 2
    win[start : start + width] = torch.sin(math.pi * (i + 0.5) / width) ** 2
    return win


def _normalise_maps(coil_imgs: torch.Tensor, threshold: float) -> torch.Tensor:
    rss = coil_imgs.abs().pow(2).sum(-3, keepdim=True).sqrt()
    peak = rss.flatten(-3).amax(-1)[..., None, None, None]
    keep = rss >= threshold * peak
    return torch.where(keep, coil_imgs / rss.clamp_min(1e-30), torch.zeros_like(coil_imgs))


def estimate_coil_maps(
    kspace: torch.Tensor,
    calib_width: int = 24,
    *,
    method: str = "lowres",
    trajectory: Any = None,
    image_shape: tuple[int, int] | None = None,
    threshold: float = 0.05,
) -> torch.Tensor:
    """Coil sensitivities estimated from the fully sampled k-space centre.

    Parameters
    ----------
    kspace : Tensor or ndarray, complex ``(C, H, W)`` / ``(B, C, H, W)`` (Cartesian, zeros where
        not sampled) or ``(C, P)`` / ``(B, C, P)`` (radial, with ``trajectory``)
    calib_width : int
        Side of the calibration block in k-space lines (must be fully sampled: the Cartesian
        mask's ``center_fraction · W`` columns; for radial the disc radius is
        ``π · calib_width / N`` rad/pixel).
    method : {"lowres", "espirit"}
        See the module notes. ``"espirit"`` is Cartesian only.
    trajectory : geometries.RadialTrajectory, optional
        For radial k-space.
    image_shape : (H, W), optional
        Required with ``trajectory``.
    threshold : float
        Relative RSS below which ``"lowres"`` maps are 0 (background).

    Returns
    -------
    Tensor, complex64, ``(C, H, W)`` or ``(B, C, H, W)`` like the input
        Unit-RSS maps on the object, 0 outside.
    """
    k = torch.as_tensor(kspace)
    if not k.is_complex():
        raise InputError("estimate_coil_maps: kspace must be complex")
    radial = trajectory is not None
    single = k.ndim == (2 if radial else 3)
    if single:
        k = k[None]
    if k.ndim != (3 if radial else 4):
        raise InputError(f"estimate_coil_maps: unexpected kspace shape {tuple(kspace.shape)}")
    if method not in ("lowres", "espirit"):
        raise InputError(f"method must be 'lowres' or 'espirit', got {method!r}")
    if radial:
        if method != "lowres":
            raise InputError("radial k-space supports method='lowres' only")
        if image_shape is None:
            raise InputError("radial k-space needs image_shape")
        out = _lowres_radial(k, calib_width, trajectory, image_shape, threshold)
    elif method == "lowres":
        h, w = k.shape[-2:]
        win = _hann(h, calib_width, k.device)[:, None] * _hann(w, calib_width, k.device)[None, :]
        from operators.mri import centered_ifft2

        imgs = centered_ifft2(k.to(torch.complex128) * win)
        out = _normalise_maps(imgs, threshold)
    else:
        out = _espirit(k, calib_width)
    out = out.to(torch.complex64)
    return out[0] if single else out


def _lowres_radial(
    k: torch.Tensor, calib_width: int, trajectory: Any, image_shape: Any, threshold: float
) -> torch.Tensor:
    from geometries import RadialTrajectory
    from operators import NUFFT

    dcf = "ramp" if isinstance(trajectory, RadialTrajectory) else "pipe"
    op = NUFFT(trajectory, image_shape, dcf=dcf)
    kt = op.ktraj
    kr = torch.sqrt(kt[0] ** 2 + kt[1] ** 2)
    kmax = math.pi * calib_width / max(image_shape)
    taper = torch.where(kr < kmax, torch.cos(0.5 * math.pi * kr / kmax) ** 2, torch.zeros_like(kr))
    imgs = op.pseudo_inverse()(k.to(torch.complex128) * taper.to(k.device))
    return _normalise_maps(imgs, threshold)


def _espirit(k: torch.Tensor, calib_width: int) -> torch.Tensor:
    from sigpy.mri.app import EspiritCalib

    arr = k.detach().cpu().numpy().astype(np.complex64)
    maps = [
        EspiritCalib(a, calib_width=calib_width, thresh=0.02, crop=0.9, show_pbar=False).run()
        for a in arr
    ]
    return torch.from_numpy(np.stack(maps)).to(k.device)


def coil_pinv(kspace: torch.Tensor, sampling: Any = None) -> torch.Tensor:
    """Per-coil back-transforms: zero-filled inverse FFT (Cartesian, ``sampling`` None or a mask;
    unsampled entries must already be 0) or the density-compensated NUFFT adjoint (``sampling`` a
    ``RadialTrajectory`` or a prebuilt ``operators.NUFFT``; then ``image_shape`` is taken from
    it). Returns complex ``(..., C, H, W)``."""
    from geometries import RadialTrajectory
    from operators import NUFFT
    from operators.mri import centered_ifft2

    k = torch.as_tensor(kspace)
    if isinstance(sampling, RadialTrajectory):
        raise InputError("pass operators.NUFFT(trajectory, (H, W)) for radial data")
    if isinstance(sampling, NUFFT):
        return sampling.pseudo_inverse()(k)
    if sampling is not None:
        mask = torch.as_tensor(np.asarray(sampling.mask) if hasattr(sampling, "mask") else sampling)
        mask = mask.to(k.device)
        if mask.ndim == 3:  # (B, H, W) -> (B, 1, H, W)
            mask = mask[:, None]
        k = k * mask
    return centered_ifft2(k)


def sense_combine_adjoint(kspace: torch.Tensor, sampling: Any, maps: torch.Tensor) -> torch.Tensor:
    """Sensitivity-combined back-transform ``Σ_c conj(Ŝ_c) ⊙ pinv(y_c)``.

    Parameters
    ----------
    kspace : Tensor, complex ``(B, C, H, W)`` (Cartesian) or ``(B, C, P)`` (radial)
    sampling : None, mask ``(H, W)`` / ``(B, H, W)`` / ``CartesianMask``, or ``operators.NUFFT``
        See :func:`coil_pinv`.
    maps : Tensor, complex ``(B, C, H, W)`` or ``(C, H, W)``
        Estimated (unit-RSS) maps, e.g. from :func:`estimate_coil_maps`.

    Returns
    -------
    Tensor, complex ``(B, H, W)``; its magnitude is the MRI encoder input.
    """
    z = coil_pinv(kspace, sampling)
    m = torch.as_tensor(maps).to(z.device, z.dtype)
    return (m.conj() * z).sum(-3)


def rss_adjoint(kspace: torch.Tensor, sampling: Any = None) -> torch.Tensor:
    """Root-sum-of-squares of the per-coil back-transforms, real ``(B, H, W)`` (fastMRI style)."""
    z = coil_pinv(kspace, sampling)
    return z.abs().pow(2).sum(-3).sqrt()
