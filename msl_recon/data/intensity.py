"""Intensity mappings to the [0, 1] range the model trains on (docs/architecture.md, Conventions).

* CT: the official MSL code maps Hounsfield units to a linear attenuation coefficient
  ``μ = HU/1000·0.192 + 0.192`` (μ in 1/cm of water at ~70 keV is 0.192), clips μ to [0, 0.6] and
  divides by 0.6, so HU −1000 … 2125 map linearly onto 0 … 1. :func:`hu_to_unit` does exactly that
  and :func:`unit_to_hu` inverts it (on the unclipped range).
* MRI: magnitude images are min–max scaled per volume between robust percentiles
  (default the 0.5th and 99.5th), then clipped to [0, 1]: :func:`normalize_mr`.

All functions accept numpy arrays (returning numpy) and torch tensors (returning torch on the same
device, keeping a floating dtype).
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch

__all__ = [
    "HU_MAX",
    "HU_MIN",
    "MU_CLIP",
    "MU_WATER",
    "hu_to_unit",
    "normalize_mr",
    "unit_to_hu",
]

#: Attenuation of water used by the MSL code, 1/cm.
MU_WATER = 0.192
#: Upper clip of μ (1/cm); μ/MU_CLIP is the [0, 1] intensity.
MU_CLIP = 0.6
#: HU that map to 0 and 1.
HU_MIN = -1000.0
HU_MAX = (MU_CLIP / MU_WATER - 1.0) * 1000.0  # 2125.0

ArrayT = TypeVar("ArrayT", np.ndarray, torch.Tensor)


def _as_float(x: ArrayT) -> ArrayT:
    if isinstance(x, torch.Tensor):
        return x if x.is_floating_point() else x.to(torch.float32)
    arr = np.asarray(x)
    return arr if np.issubdtype(arr.dtype, np.floating) else arr.astype(np.float32)


def hu_to_unit(hu: ArrayT) -> ArrayT:
    """Map Hounsfield units to the [0, 1] CT intensity of the MSL code.

    Parameters
    ----------
    hu : ndarray or Tensor, any shape
        CT numbers in HU.

    Returns
    -------
    ndarray or Tensor, same shape
        ``clip(HU/1000·0.192 + 0.192, 0, 0.6) / 0.6``; −1000 HU → 0, 0 HU → 0.32, 2125 HU → 1.
        Values outside −1000 … 2125 HU are clipped.
    """
    hu = _as_float(hu)
    mu = hu / 1000.0 * MU_WATER + MU_WATER
    if isinstance(mu, torch.Tensor):
        return mu.clamp(0.0, MU_CLIP) / MU_CLIP
    return (np.clip(mu, 0.0, MU_CLIP) / MU_CLIP).astype(mu.dtype, copy=False)


def unit_to_hu(u: ArrayT) -> ArrayT:
    """Inverse of :func:`hu_to_unit` on its unclipped range.

    Parameters
    ----------
    u : ndarray or Tensor, any shape
        CT intensities in [0, 1] (values outside are extrapolated linearly, not clipped).

    Returns
    -------
    ndarray or Tensor, same shape
        HU ``= (u·0.6/0.192 − 1)·1000``; 0 → −1000 HU, 1 → 2125 HU.
    """
    u = _as_float(u)
    return (u * MU_CLIP / MU_WATER - 1.0) * 1000.0


def normalize_mr(vol: ArrayT, low: float = 0.5, high: float = 99.5) -> ArrayT:
    """Robust per-volume min–max scaling of an MR magnitude volume to [0, 1].

    Parameters
    ----------
    vol : ndarray or Tensor, any shape
        One volume (all its voxels share one scaling). Complex input uses its magnitude.
    low, high : float
        Percentiles (0–100) mapped to 0 and 1; defaults 0.5 and 99.5. Values outside are clipped.

    Returns
    -------
    ndarray or Tensor, same shape, float
        ``clip((vol − P_low) / (P_high − P_low), 0, 1)``. A constant volume maps to zeros.
    """
    if not 0.0 <= low < high <= 100.0:
        raise ValueError(f"normalize_mr: need 0 <= low < high <= 100, got low={low}, high={high}")
    if isinstance(vol, torch.Tensor):
        v = vol.abs() if vol.is_complex() else vol
        v = v if v.is_floating_point() else v.to(torch.float32)
        # torch.quantile is limited to 16M elements; use kthvalue-based quantiles on a flat copy.
        flat = v.detach().reshape(-1).to(torch.float64)
        lo, hi = (_torch_percentile(flat, q) for q in (low, high))
        if hi <= lo:
            return torch.zeros_like(v)
        return ((v - lo) / (hi - lo)).clamp(0.0, 1.0)
    arr = np.asarray(vol)
    if np.iscomplexobj(arr):
        arr = np.abs(arr)
    arr = _as_float(arr)
    lo, hi = np.percentile(arr, [low, high])
    if hi <= lo:
        return np.zeros_like(arr)
    return np.clip((arr - lo) / (hi - lo), 0.0, 1.0).astype(arr.dtype, copy=False)


def _torch_percentile(flat: torch.Tensor, q: float) -> float:
    """Percentile with numpy's default linear interpolation, for a 1-D float64 tensor."""
    n = flat.numel()
    pos = q / 100.0 * (n - 1)
    k0 = int(np.floor(pos))
    k1 = min(k0 + 1, n - 1)
    v0 = flat.kthvalue(k0 + 1).values.item()
    v1 = flat.kthvalue(k1 + 1).values.item() if k1 != k0 else v0
    return v0 + (pos - k0) * (v1 - v0)
