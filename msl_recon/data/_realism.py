"""Realism helpers of the phantom: lesion contrast kinds, per-tissue correlated texture, and
block averaging from the supersampled grid (see :mod:`msl_recon.data.phantom`)."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage

from . import tissues as T

#: Tissue groups that share one texture field (each group has its own correlation length).
TEXTURE_GROUPS = (
    (T.GREY_MATTER,),
    (T.WHITE_MATTER,),
    (T.CSF, T.VENTRICLES),
    (T.CORTICAL_BONE, T.CANCELLOUS_BONE),
    (T.SCALP, T.FAT),
    (T.LESION, T.EDEMA),
    (T.AIR, T.SINUS),
)


def correlated_noise(
    rng: np.random.Generator, shape: tuple[int, ...], sigma_px: float
) -> np.ndarray:
    """In-plane correlated Gaussian noise of unit standard deviation."""
    n = rng.standard_normal(shape).astype(np.float32)
    if sigma_px > 0.3:
        n = ndimage.gaussian_filter(n, sigma=(0.0, sigma_px, sigma_px))
        n /= max(float(n.std()), 1e-12)
    return n


def lesion_contrast(
    labels: np.ndarray,
    hu: np.ndarray,
    pd: np.ndarray,
    t1: np.ndarray,
    t2: np.ndarray,
    kind: str,
    c: float,
    rim_mm: float,
    pix: float,
) -> dict[str, Any]:
    """Change the tumour's properties in place by ``kind`` at strength ``c`` ∈ [0, 1].

    ``hyper``: +25c HU, T1 ×(1 − 0.35c), T2 ×(1 − 0.3c). ``hypo``: −25c HU, T1 ×(1 + 0.6c),
    T2 ×(1 + c). ``rim``: an in-plane shell of ``rim_mm`` at the tumour border enhances
    (+20c HU, T1 ×(1 − 0.5c), as after contrast agent) around a necrotic core (15 HU, T1 2500 ms,
    T2 300 ms, PD 0.95). ``classic`` keeps the table values.
    """
    les = labels == T.LESION
    if kind == "hyper":
        hu[les] += 25.0 * c
        t1[les] *= 1.0 - 0.35 * c
        t2[les] *= 1.0 - 0.3 * c
    elif kind == "hypo":
        hu[les] -= 25.0 * c
        t1[les] *= 1.0 + 0.6 * c
        t2[les] *= 1.0 + c
    elif kind == "rim":
        rim = np.zeros_like(les)
        for z in np.nonzero(les.any(axis=(1, 2)))[0]:
            d = ndimage.distance_transform_edt(les[z]) * pix
            rim[z] = les[z] & (d <= rim_mm)
        core = les & ~rim
        hu[rim] += 20.0 * c
        t1[rim] *= 1.0 - 0.5 * c
        hu[core], t1[core], t2[core], pd[core] = 15.0, 2500.0, 300.0, 0.95
    return {"kind": kind, "contrast": float(c), "rim_mm": float(rim_mm) if kind == "rim" else 0.0}


def tissue_texture(
    rng: np.random.Generator,
    labels: np.ndarray,
    pix: float,
    corr_mm: tuple[float, float],
    scale: tuple[float, float],
) -> tuple[np.ndarray, dict[str, Any]]:
    """Unit-scaled texture map: per tissue group a correlated Gaussian field with its own
    per-subject correlation σ (mm) and amplitude multiplier (``texture_scale``)."""
    out = np.zeros(labels.shape, np.float32)
    meta: dict[str, Any] = {}
    for group in TEXTURE_GROUPS:
        sigma_mm = float(rng.uniform(*corr_mm))
        amp = float(rng.uniform(*scale))
        sub = np.random.default_rng(rng.integers(2**63))
        inside = np.isin(labels, group)
        name = T.TISSUES[group[0]].name
        meta[name] = {"corr_sigma_mm": sigma_mm, "scale": amp}
        if not inside.any():
            continue
        out[inside] = amp * correlated_noise(sub, labels.shape, sigma_mm / pix)[inside]
    return out, meta


def block_mean(x: np.ndarray, f: int) -> np.ndarray:
    """Mean over ``f × f`` in-plane blocks of ``(Z, fH, fW)``."""
    z, h, w = x.shape
    return x.reshape(z, h // f, f, w // f, f).mean(axis=(2, 4), dtype=np.float64).astype(x.dtype)


def block_majority(labels: np.ndarray, f: int, n_labels: int) -> np.ndarray:
    """Most frequent label of each ``f × f`` block (ties: the lower label id)."""
    z, h, w = labels.shape
    blk = labels.reshape(z, h // f, f, w // f, f)
    counts = np.stack([(blk == k).sum(axis=(2, 4)) for k in range(n_labels)])
    return np.argmax(counts, axis=0).astype(labels.dtype)
