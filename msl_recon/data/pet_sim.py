"""Simulated PET acquisitions of 2D slices, and the corrected FBP back-transform.

Expected prompts of one slice (all per sinogram bin, shape ``(V, D)``)::

    ȳ = s · a ⊙ A(B x)  +  S  +  R          trues + scatter + randoms

with ``x`` the activity (kBq/mL), ``B`` the resolution blur, ``A`` the ray transform, ``a`` the
attenuation factors ``exp(-∫μ dl)`` (:class:`operators.AttenuatedRayTransform`) and ``s`` the
count scale (counts per kBq/mL·mm) chosen so that the expected trues of the slice sum to
``counts``. The measured prompts are ``Poisson(ȳ)``.

Count level
    Default ``counts = 1e6`` expected trues per slice. A 10-min static FDG brain scan on a
    Biograph-mCT-class scanner records of the order of 50–100 M trues (sensitivity
    ≈ 9.7 cps/kBq, Jakoby et al. 2011, ~20 MBq in the field of view, ~100 planes of 2 mm after
    rebinning), i.e. ~0.5–1 M per 2 mm plane; the phantom's thicker slices hold more. Use
    ``1e5`` for a low-count (short or low-dose) scan.
Background
    ``S + R`` is ``scatter_fraction + randoms_fraction`` of the prompts (default 25 % + 10 % =
    35 %). 3D brain FDG acquisitions have scatter fractions of ~25–35 % (the NEMA NU 2 scatter
    fraction of the mCT is ≈ 33 %, Jakoby et al. 2011) and randoms of ~10–20 % of the prompts at
    clinical brain activities. Randoms are uniform over the LORs (a singles-rate product
    varies slowly); scatter is the attenuated trues sinogram blurred along the detector with a
    Gaussian of ``scatter_fwhm_mm`` (default 100 mm) — smooth, low-frequency and extending
    beyond the head, the shape of single-scatter estimates.

:func:`pet_fbp` inverts the model analytically, ``x = FBP((y − r) / a) / s`` with a Hann
filter; MLEM is :func:`msl_recon.baselines.mlem.mlem` with :func:`pet_system_operator`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

import operators as ops
from geometries import CTGeometry

from ..errors import InputError

__all__ = [
    "DEFAULT_COUNTS",
    "DEFAULT_FWHM_MM",
    "pet_fbp",
    "pet_system_operator",
    "simulate_pet",
]

#: Default expected true counts per slice.
DEFAULT_COUNTS = 1e6
#: Default system resolution (FWHM, mm), the mCT's transaxial resolution near the centre
#: (NEMA 4.4 mm at 1 cm, Jakoby et al. 2011) rounded up for a clinical reconstruction.
DEFAULT_FWHM_MM = 4.5


def _as_batch(x: Any, name: str, shape: tuple[int, ...]) -> torch.Tensor:
    t = x.detach() if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    if not t.is_floating_point():
        t = t.to(torch.float32)
    if t.ndim == len(shape):
        t = t[None]
    if t.ndim != len(shape) + 1 or tuple(t.shape[1:]) != shape:
        want = ", ".join(map(str, shape))
        raise InputError(f"{name} must have shape (B, {want}), got {tuple(t.shape)}")
    return t.to(torch.float64)


def _blur_detector(s: torch.Tensor, sigma_bins: float) -> torch.Tensor:
    """Gaussian blur along the last (detector) axis, zero padding, ``(..., D)``."""
    r = int(math.ceil(4.0 * sigma_bins))
    k = torch.arange(-r, r + 1, dtype=s.dtype)
    w = torch.exp(-0.5 * (k / sigma_bins) ** 2)
    w = (w / w.sum()).reshape(1, 1, -1)
    flat = s.reshape(-1, 1, s.shape[-1])
    return torch.nn.functional.conv1d(flat, w, padding=r).reshape(s.shape)


def simulate_pet(
    activity: torch.Tensor | np.ndarray,
    mu: torch.Tensor | np.ndarray,
    geometry: CTGeometry,
    *,
    counts: float | torch.Tensor | np.ndarray = DEFAULT_COUNTS,
    generator: torch.Generator | None = None,
    fwhm_mm: float = DEFAULT_FWHM_MM,
    scatter_fraction: float = 0.25,
    randoms_fraction: float = 0.10,
    scatter_fwhm_mm: float = 100.0,
    noise: bool = True,
    projector: str = "strip",
) -> dict[str, torch.Tensor]:
    """Simulate the prompt sinograms of PET slices.

    Parameters
    ----------
    activity : tensor or array, shape ``(B, N, N)`` or ``(N, N)``
        Activity concentration, kBq/mL (``>= 0``).
    mu : tensor or array, same shape
        Attenuation at 511 keV, 1/mm (e.g. :func:`msl_recon.data.pet.hu_to_mu511` of the CT).
    geometry : geometries.CTGeometry
        The PET plane, e.g. ``geometries.preset("pet-biograph-mct", image_size=N)``.
    counts : float or ``(B,)``
        Expected true (unscattered) coincidences per slice.
    generator : torch.Generator, optional
        CPU generator of the Poisson noise (the result is a deterministic function of its state).
    fwhm_mm : float
        Resolution blur of the system model, mm.
    scatter_fraction, randoms_fraction : float
        Expected scatter and randoms as fractions of the expected prompts (sum < 1).
    scatter_fwhm_mm : float
        Width of the scatter kernel along the detector, mm.
    noise : bool
        Draw Poisson prompts (True) or return the expected prompts as ``prompts``.
    projector : {"strip", "line"}
        ASTRA projector of the emission and attenuation line integrals.

    Returns
    -------
    dict of str to torch.Tensor
        ``prompts`` ``(B, V, D)`` float32 counts; ``expected`` ``(B, V, D)`` float32 expected
        prompts; ``attenuation`` ``(B, V, D)`` float32 factors ``a`` in (0, 1];
        ``background`` ``(B, V, D)`` float32 expected scatter + randoms ``r``; ``scatter`` and
        ``randoms`` ``(B, V, D)`` float32; ``scale`` ``(B,)`` float64 counts per kBq/mL·mm, so
        that ``expected = scale · a ⊙ A(B x) + background``.
    """
    n = geometry.image_size
    x = _as_batch(activity, "activity", (n, n))
    m = _as_batch(mu, "mu", (n, n))
    if x.shape != m.shape:
        raise InputError(f"activity {tuple(x.shape)} and mu {tuple(m.shape)} differ in shape")
    if bool((x < 0).any()) or bool((m < 0).any()):
        raise InputError("activity and mu must be >= 0")
    fractions_ok = scatter_fraction >= 0 and randoms_fraction >= 0
    if not (fractions_ok and scatter_fraction + randoms_fraction < 1):
        raise InputError(
            "scatter_fraction and randoms_fraction must be >= 0 with a sum below 1, got "
            f"{scatter_fraction} and {randoms_fraction}"
        )
    c = torch.as_tensor(np.asarray(counts, dtype=np.float64)).reshape(-1)
    if c.numel() == 1:
        c = c.expand(x.shape[0])
    if c.numel() != x.shape[0] or not bool((c > 0).all()) or not bool(torch.isfinite(c).all()):
        raise InputError(f"counts must be positive, one value or one per slice, got {counts!r}")

    a = ops.attenuation_factors(m, geometry, projector=projector)
    op = ops.AttenuatedRayTransform(geometry, a, fwhm_mm=fwhm_mm, projector=projector)
    trues_unit = op(x)  # kBq/mL·mm, attenuated
    total = trues_unit.sum(dim=(-2, -1))
    if bool((total <= 0).any()):
        bad = torch.nonzero(total <= 0).flatten().tolist()
        raise InputError(f"slices {bad} have no activity inside the field of view")
    scale = c / total
    trues = scale[:, None, None] * trues_unit

    prompts_total = c / (1.0 - scatter_fraction - randoms_fraction)
    v, d = geometry.sino_shape
    randoms = (randoms_fraction * prompts_total / (v * d))[:, None, None].expand(-1, v, d)
    sig = scatter_fwhm_mm / (2.0 * math.sqrt(2.0 * math.log(2.0))) / geometry.det_spacing
    shape = _blur_detector(trues, sig)
    scatter = shape * (scatter_fraction * prompts_total / shape.sum(dim=(-2, -1)))[:, None, None]
    background = scatter + randoms
    expected = trues + background
    prompts = torch.poisson(expected, generator=generator) if noise else expected
    f32 = torch.float32
    return {
        "prompts": prompts.to(f32),
        "expected": expected.to(f32),
        "attenuation": a.to(f32),
        "background": background.to(f32),
        "scatter": scatter.to(f32),
        "randoms": randoms.contiguous().to(f32),
        "scale": scale,
    }


def pet_system_operator(
    geometry: CTGeometry,
    attenuation: torch.Tensor | np.ndarray,
    scale: torch.Tensor | np.ndarray | float = 1.0,
    *,
    fwhm_mm: float = DEFAULT_FWHM_MM,
    projector: str = "strip",
) -> ops.AttenuatedRayTransform:
    """The system model ``x ↦ s · a ⊙ A(B x)`` mapping activity (kBq/mL) to expected trues.

    Parameters
    ----------
    geometry : geometries.CTGeometry
    attenuation : ``(B, V, D)`` or ``(V, D)``
        Attenuation factors ``a`` (from :func:`simulate_pet` or
        :func:`operators.attenuation_factors`).
    scale : float or ``(B,)``
        Counts per kBq/mL·mm (``simulate_pet(...)["scale"]``).
    fwhm_mm, projector
        As in :func:`simulate_pet`.

    Returns
    -------
    operators.AttenuatedRayTransform
        With per-sample factors ``s_b a_b`` aligned with the leading batch axis.
    """
    if isinstance(attenuation, torch.Tensor):
        a = attenuation.detach().to(torch.float64)
    else:
        a = torch.as_tensor(np.asarray(attenuation, dtype=np.float64))
    s = torch.as_tensor(np.asarray(scale, dtype=np.float64)).reshape(-1)
    if a.ndim == 2 and s.numel() > 1:
        a = a.expand(s.numel(), *a.shape)
    if a.ndim == 3:
        if s.numel() not in (1, a.shape[0]):
            raise InputError(f"scale has {s.numel()} values for {a.shape[0]} slices")
        a = a * s.reshape(-1, 1, 1)
    else:
        a = a * s
    return ops.AttenuatedRayTransform(geometry, a, fwhm_mm=fwhm_mm, projector=projector)


def pet_fbp(
    y: torch.Tensor | np.ndarray,
    a: torch.Tensor | np.ndarray,
    r: torch.Tensor | np.ndarray | float,
    geometry: CTGeometry,
    *,
    scale: torch.Tensor | np.ndarray | float = 1.0,
    filter: str = "hann",
    frequency_scaling: float = 1.0,
    min_factor: float = 1e-3,
) -> torch.Tensor:
    """Attenuation- and background-corrected FBP, in activity units.

    ``x = FBP((y − r) / a) / scale``: subtract the expected scatter + randoms, divide by the
    attenuation factors (clamped below at ``min_factor``), reconstruct the line integrals with
    :class:`operators.FBP`, and divide by the count scale.

    Parameters
    ----------
    y : ``(B, V, D)`` or ``(V, D)``
        Prompts (counts).
    a : same shape or broadcastable
        Attenuation factors.
    r : same shape, broadcastable, or float
        Expected background (scatter + randoms), counts.
    geometry : geometries.CTGeometry
    scale : float or ``(B,)``
        Counts per kBq/mL·mm (1 gives the FBP of the corrected data itself).
    filter : str
        Apodisation of the ramp (:class:`operators.FBP`), Hann by default.
    frequency_scaling : float
        Fraction of the Nyquist band kept.
    min_factor : float
        Lower clamp of ``a`` (guards against division by ~0 on extremely attenuated LORs).

    Returns
    -------
    torch.Tensor, ``(B, N, N)`` (or ``(N, N)``), float32 or the dtype of ``y`` if float64
        Activity, kBq/mL when ``scale`` is the simulation's. Not clipped (FBP has negative
        values where the data are noisy).
    """
    yt = y.detach() if isinstance(y, torch.Tensor) else torch.as_tensor(np.asarray(y))
    dt = torch.float64 if yt.dtype == torch.float64 else torch.float32
    yt = yt.to(dt)
    at = torch.as_tensor(a.detach() if isinstance(a, torch.Tensor) else np.asarray(a)).to(dt)
    rt = torch.as_tensor(r.detach() if isinstance(r, torch.Tensor) else np.asarray(r)).to(dt)
    corrected = (yt - rt) / at.clamp_min(min_factor)
    img = ops.FBP(geometry, filter=filter, frequency_scaling=frequency_scaling)(corrected)
    s = torch.as_tensor(np.asarray(scale, dtype=np.float64)).to(dt).reshape(-1)
    if s.numel() > 1:
        if img.ndim != 3 or img.shape[0] != s.numel():
            raise InputError(f"scale has {s.numel()} values for images {tuple(img.shape)}")
        return img / s[:, None, None]
    return img / s
