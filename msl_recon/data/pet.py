"""PET physics of the digital head phantom: FDG-like activity, 511 keV attenuation, [0, 1] scale.

Activity (:func:`pet_activity`)
    Piecewise constant per tissue label of :mod:`msl_recon.data.tissues`, in kBq/mL, with a
    per-subject uptake factor, a small per-tissue jitter and a mild smooth texture. The absolute
    scale is that of a static FDG brain scan about 60 min after injecting ~250 MBq into a 70 kg
    adult (injected dose per body weight ≈ 3.6 kBq/g, ≈ 2.4 kBq/g after 60 min of decay): grey
    matter SUV ≈ 8 → 20 kBq/mL, white matter SUV ≈ 2 → 5 kBq/mL (GM:WM ≈ 4, the usual FDG
    contrast), CSF ≈ 0 (0.2 kBq/mL, blood-pool-free water), scalp/muscle SUV ≈ 0.8, fat ≈ 0.4,
    bone ≈ 0.4 (cortical) and ≈ 1 (marrow), vasogenic edema hypometabolic (0.7 × WM). Tumours
    are either *hot* (high-grade glioma / metastasis, 1.5 × GM) or *cold* (necrotic or low-grade,
    0.6 × WM). Reference ranges: Zasadny & Wahl, Radiology 189:847 (1993) (SUVs of normal
    tissues); Delbeke et al., J. Nucl. Med. 47:885 (2006) and the EANM brain FDG guideline
    (Guedj et al., EJNMMI 49:632, 2022) for protocol and GM/WM contrast.

Attenuation (:func:`hu_to_mu511`)
    The bilinear CT-to-511 keV conversion of Carney et al., "Method for transforming CT images
    for attenuation correction in PET/CT imaging", Med. Phys. 33:976 (2006) (the scheme of
    Burger et al., Eur. J. Nucl. Med. 29:922 (2002) with kVp-dependent bone slopes):
    ``μ = 9.6e-5 · (HU + 1000)`` 1/cm below the break-point (water 0.096 1/cm, air 0) and
    ``μ = a · (HU + 1000) + b`` above it, with ``(a, b, break-point)`` per tube voltage, e.g.
    120 kVp: ``a = 5.10e-5``, ``b = 4.71e-2`` 1/cm, break-point 47 HU. Returned in 1/mm.

Intensity (:func:`pet_to_unit`, :func:`unit_to_pet`)
    A fixed linear map ``activity / PET_REF_KBQ_ML`` clipped to [0, 1] with
    ``PET_REF_KBQ_ML = 40`` kBq/mL (twice grey matter; hot tumours stay below 1), the same for
    every subject so that the [0, 1] images stay quantitative.
"""

from __future__ import annotations

from typing import Any, TypeVar

import numpy as np
import torch
from scipy import ndimage

from ..errors import InputError
from . import tissues as T

__all__ = [
    "ACTIVITY_KBQ_ML",
    "CARNEY_BILINEAR",
    "LESION_COLD_KBQ_ML",
    "LESION_HOT_KBQ_ML",
    "MU_WATER_511_PER_MM",
    "PET_REF_KBQ_ML",
    "hu_to_mu511",
    "pet_activity",
    "pet_to_unit",
    "unit_to_pet",
]

ArrayT = TypeVar("ArrayT", np.ndarray, torch.Tensor)

#: Mean FDG activity per tissue label, kBq/mL (index = label id); the lesion entry is the hot
#: value (see :data:`LESION_HOT_KBQ_ML`, :data:`LESION_COLD_KBQ_ML`).
ACTIVITY_KBQ_ML: np.ndarray = np.zeros(len(T.TISSUES))
ACTIVITY_KBQ_ML[T.AIR] = 0.0
ACTIVITY_KBQ_ML[T.SCALP] = 2.0
ACTIVITY_KBQ_ML[T.FAT] = 1.0
ACTIVITY_KBQ_ML[T.CORTICAL_BONE] = 1.0
ACTIVITY_KBQ_ML[T.CANCELLOUS_BONE] = 2.5
ACTIVITY_KBQ_ML[T.SINUS] = 0.0
ACTIVITY_KBQ_ML[T.CSF] = 0.2
ACTIVITY_KBQ_ML[T.GREY_MATTER] = 20.0
ACTIVITY_KBQ_ML[T.WHITE_MATTER] = 5.0
ACTIVITY_KBQ_ML[T.VENTRICLES] = 0.2
ACTIVITY_KBQ_ML[T.LESION] = 30.0
ACTIVITY_KBQ_ML[T.EDEMA] = 3.5
ACTIVITY_KBQ_ML.setflags(write=False)

#: Hot tumour (1.5 × grey matter) and cold tumour (0.6 × white matter), kBq/mL.
LESION_HOT_KBQ_ML = 30.0
LESION_COLD_KBQ_ML = 3.0

#: Activity that maps to 1 in the [0, 1] intensity scale, kBq/mL.
PET_REF_KBQ_ML = 40.0

#: μ of water at 511 keV, 1/mm (0.096 1/cm).
MU_WATER_511_PER_MM = 0.0096

#: Carney et al. (2006), Table 1: tube voltage (kVp) -> (a 1/cm per HU, b 1/cm, break-point HU)
#: of ``μ = a (HU + 1000) + b`` above the break-point; below it ``μ = 9.6e-5 (HU + 1000)``.
CARNEY_BILINEAR: dict[int, tuple[float, float, float]] = {
    80: (3.64e-5, 6.26e-2, 50.0),
    100: (4.43e-5, 5.44e-2, 52.0),
    110: (4.92e-5, 4.88e-2, 43.0),
    120: (5.10e-5, 4.71e-2, 47.0),
    130: (5.51e-5, 4.24e-2, 37.0),
    140: (5.64e-5, 4.08e-2, 30.0),
}
_SOFT_SLOPE = 9.6e-5  # 1/cm per HU below the break-point


def hu_to_mu511(hu: ArrayT, kvp: int = 120) -> ArrayT:
    """Linear attenuation coefficient at 511 keV from CT numbers (bilinear, Carney et al. 2006).

    Parameters
    ----------
    hu : ndarray or Tensor, any shape
        CT numbers, HU.
    kvp : int
        Tube voltage of the CT, one of :data:`CARNEY_BILINEAR` (80, 100, 110, 120, 130, 140).

    Returns
    -------
    ndarray or Tensor, same shape, float
        μ in 1/mm, ``>= 0``: air (−1000 HU) → 0, water (0 HU) → 0.0096, above the break-point
        the bone slope ``a / 10`` per HU (120 kVp: cortical bone 1600 HU → 0.0180 1/mm).
    """
    if kvp not in CARNEY_BILINEAR:
        raise InputError(f"hu_to_mu511: kvp must be one of {sorted(CARNEY_BILINEAR)}, got {kvp}")
    a, b, bp = CARNEY_BILINEAR[kvp]
    if isinstance(hu, torch.Tensor):
        h = hu if hu.is_floating_point() else hu.to(torch.float32)
        mu = torch.where(h <= bp, _SOFT_SLOPE * (h + 1000.0), a * (h + 1000.0) + b)
        return mu.clamp_min(0.0) / 10.0
    h = np.asarray(hu)
    if not np.issubdtype(h.dtype, np.floating):
        h = h.astype(np.float32)
    mu = np.where(h <= bp, _SOFT_SLOPE * (h + 1000.0), a * (h + 1000.0) + b)
    return (np.clip(mu, 0.0, None) / 10.0).astype(h.dtype, copy=False)


def pet_activity(
    subject_or_labels: Any,
    rng: np.random.Generator | int | None = None,
    *,
    lesion: str = "random",
    hot_probability: float = 0.7,
    uptake_jitter: float = 0.15,
    tissue_jitter: float = 0.03,
    texture: float = 0.05,
    texture_mm: float = 4.0,
    pixel_mm: float | None = None,
) -> np.ndarray:
    """FDG-like activity of a phantom subject from its tissue labels.

    Parameters
    ----------
    subject_or_labels : Subject or ndarray of int, shape ``(Z, N, N)`` or ``(N, N)``
        A :class:`~msl_recon.data.phantom.Subject` (its ``labels`` and in-plane spacing are used)
        or a label map of :mod:`msl_recon.data.tissues` ids.
    rng : numpy.random.Generator or int, optional
        Source of the subject's random variation (an int seeds a new generator; None means 0).
    lesion : {"random", "hot", "cold"}
        Tumour uptake: hot (:data:`LESION_HOT_KBQ_ML`), cold (:data:`LESION_COLD_KBQ_ML`) or
        drawn per subject (hot with ``hot_probability``).
    hot_probability : float
        Probability of a hot tumour when ``lesion="random"``.
    uptake_jitter : float
        Log-normal σ of the per-subject global uptake factor (inter-subject SUV variation).
    tissue_jitter : float
        Log-normal σ of independent per-tissue factors, truncated at ±2σ (with the default the
        GM:WM ratio stays within 4·exp(±0.12), i.e. 3.55 … 4.5).
    texture : float
        Relative standard deviation of a smooth multiplicative texture within tissues.
    texture_mm : float
        Correlation length (Gaussian σ) of the texture, mm.
    pixel_mm : float, optional
        In-plane pixel size, mm (default: the subject's spacing, else 220 mm / N).

    Returns
    -------
    ndarray, float32, same shape as the labels
        Activity concentration in kBq/mL, ``>= 0`` (exactly 0 in air and sinuses).
    """
    labels = getattr(subject_or_labels, "labels", subject_or_labels)
    labels = np.asarray(labels)
    if labels.ndim not in (2, 3) or not np.issubdtype(labels.dtype, np.integer):
        raise InputError(
            f"pet_activity: labels must be an integer (Z, N, N) or (N, N) map, got "
            f"{labels.dtype} {labels.shape}"
        )
    if labels.size and (labels.min() < 0 or labels.max() >= len(T.TISSUES)):
        raise InputError(f"pet_activity: label ids must lie in [0, {len(T.TISSUES)})")
    if lesion not in {"random", "hot", "cold"}:
        raise InputError(f"pet_activity: lesion must be 'random', 'hot' or 'cold', got {lesion!r}")
    if pixel_mm is None:
        spacing = getattr(subject_or_labels, "spacing_mm", None)
        pixel_mm = float(spacing[-1]) if spacing is not None else 220.0 / labels.shape[-1]
    if not pixel_mm > 0:
        raise InputError(f"pet_activity: pixel_mm must be > 0, got {pixel_mm}")
    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng or 0)

    # draws in a fixed order, independent of the image size
    uptake = float(np.exp(uptake_jitter * gen.standard_normal()))
    per_tissue = np.exp(tissue_jitter * np.clip(gen.standard_normal(len(T.TISSUES)), -2, 2))
    hot = lesion == "hot" or (lesion == "random" and gen.random() < hot_probability)
    lut = np.array(ACTIVITY_KBQ_ML, dtype=np.float64)
    lut[T.LESION] = LESION_HOT_KBQ_ML if hot else LESION_COLD_KBQ_ML
    # fluids share one value (ventricles are CSF)
    per_tissue[T.VENTRICLES] = per_tissue[T.CSF]
    act = (uptake * lut * per_tissue)[labels]

    if texture > 0:
        noise = gen.standard_normal(labels.shape)
        sig = texture_mm / pixel_mm
        axes = (0.0, sig, sig) if labels.ndim == 3 else (sig, sig)
        noise = ndimage.gaussian_filter(noise, sigma=axes)
        noise /= max(float(noise.std()), 1e-12)
        act = act * np.clip(1.0 + texture * noise, 0.0, None)
    return act.astype(np.float32)


def pet_to_unit(activity: ArrayT) -> ArrayT:
    """Map activity (kBq/mL) to the model's [0, 1] range: ``clip(activity / 40, 0, 1)``.

    Parameters
    ----------
    activity : ndarray or Tensor, any shape
        Activity concentration, kBq/mL.

    Returns
    -------
    ndarray or Tensor, same shape, float
        ``activity / PET_REF_KBQ_ML`` clipped to [0, 1].
    """
    if isinstance(activity, torch.Tensor):
        x = activity if activity.is_floating_point() else activity.to(torch.float32)
        return (x / PET_REF_KBQ_ML).clamp(0.0, 1.0)
    x = np.asarray(activity)
    x = x if np.issubdtype(x.dtype, np.floating) else x.astype(np.float32)
    return np.clip(x / PET_REF_KBQ_ML, 0.0, 1.0).astype(x.dtype, copy=False)


def unit_to_pet(u: ArrayT) -> ArrayT:
    """Inverse of :func:`pet_to_unit` on [0, 1]: activity ``u · 40`` kBq/mL (not clipped)."""
    if isinstance(u, torch.Tensor):
        x = u if u.is_floating_point() else u.to(torch.float32)
        return x * PET_REF_KBQ_ML
    x = np.asarray(u)
    x = x if np.issubdtype(x.dtype, np.floating) else x.astype(np.float32)
    return (x * PET_REF_KBQ_ML).astype(x.dtype, copy=False)
