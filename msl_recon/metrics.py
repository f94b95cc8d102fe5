"""Image-quality metrics of the paper, computed as the common tools do.

See docs/architecture.md, Conventions.

Torch versions (batched over leading axes, any device, usable in training/validation):

- :func:`mae` — mean absolute error on [0, 1] images;
- :func:`psnr` — PSNR with ``data_range`` (default 1);
- :func:`ssim` — equal to ``skimage.metrics.structural_similarity(a, b, data_range=1.0)`` with its
  defaults: 7×7 uniform window, sample covariance (N/(N−1)), K1 = 0.01, K2 = 0.03, mean over the
  image cropped by 3 pixels per side (the crop removes exactly the pixels whose window would
  touch the padding, so a "valid" 7×7 average pool reproduces it);
- :func:`nmi` — equal to ``skimage.metrics.normalized_mutual_information(a, b, bins=100)``:
  ``(H(A) + H(B)) / H(A, B)`` from a joint histogram with ``bins`` equal bins spanning each image's
  own [min, max] (range 1–2).

:func:`soft_nmi` / :func:`soft_mutual_information` are differentiable Parzen-window (Gaussian
soft-histogram) versions for optimising λ maps; they approximate, not equal, :func:`nmi`.

Numpy convenience wrappers: :func:`mae_np`, :func:`psnr_np`, :func:`ssim_np`, :func:`nmi_np`,
and :func:`all_metrics_np` returning a dict.

All torch functions take ``a, b`` of shape ``(..., H, W)`` and return a tensor of shape ``(...)``
(one value per image).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "all_metrics_np",
    "mae",
    "mae_np",
    "nmi",
    "nmi_np",
    "psnr",
    "psnr_np",
    "soft_mutual_information",
    "soft_nmi",
    "ssim",
    "ssim_np",
]


def _pair(a: torch.Tensor, b: torch.Tensor, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    a, b = torch.as_tensor(a), torch.as_tensor(b)
    if a.shape != b.shape:
        raise ValueError(
            f"{name}: images must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    if a.ndim < 2:
        raise ValueError(f"{name}: images need at least 2 dimensions (..., H, W), got {a.ndim}")
    if not a.is_floating_point():
        a = a.float()
    if not b.is_floating_point():
        b = b.to(a.dtype)
    dt = torch.promote_types(a.dtype, b.dtype)
    return a.to(dt), b.to(dt)


def mae(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean absolute error per image: ``(..., H, W) -> (...)``."""
    a, b = _pair(a, b, "mae")
    return (a - b).abs().mean(dim=(-2, -1))


def psnr(a: torch.Tensor, b: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB per image, ``10·log10(R² / MSE)`` (inf if equal)."""
    a, b = _pair(a, b, "psnr")
    mse = ((a - b) ** 2).mean(dim=(-2, -1))
    return 10.0 * torch.log10(data_range**2 / mse)


def ssim(
    a: torch.Tensor,
    b: torch.Tensor,
    data_range: float = 1.0,
    *,
    win_size: int = 7,
    k1: float = 0.01,
    k2: float = 0.03,
) -> torch.Tensor:
    """Mean SSIM per image, equal to skimage's ``structural_similarity`` defaults.

    Parameters
    ----------
    a, b : Tensor ``(..., H, W)``
        Images (H, W ≥ ``win_size``).
    data_range : float
        Dynamic range R (C1 = (k1 R)², C2 = (k2 R)²).
    win_size : int
        Side of the uniform window (odd).

    Returns
    -------
    Tensor ``(...)``
    """
    a, b = _pair(a, b, "ssim")
    h, w = a.shape[-2:]
    if min(h, w) < win_size or win_size % 2 == 0:
        raise ValueError(
            f"ssim: win_size must be odd and ≤ the image size, got {win_size} for {(h, w)}"
        )
    lead = a.shape[:-2]
    x = a.reshape(-1, 1, h, w)
    y = b.reshape(-1, 1, h, w)
    stack = torch.cat([x, y, x * x, y * y, x * y], dim=1)
    mu = F.avg_pool2d(stack, win_size, stride=1)  # valid: the cropped region of skimage
    ux, uy, uxx, uyy, uxy = mu.unbind(1)
    npix = win_size * win_size
    cov = npix / (npix - 1.0)
    vx = cov * (uxx - ux * ux)
    vy = cov * (uyy - uy * uy)
    vxy = cov * (uxy - ux * uy)
    c1 = (k1 * data_range) ** 2
    c2 = (k2 * data_range) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    return s.mean(dim=(-2, -1)).reshape(lead)


def _entropy(p: torch.Tensor, dim: tuple[int, ...]) -> torch.Tensor:
    p = p / p.sum(dim=dim, keepdim=True)
    return -(torch.where(p > 0, p * torch.log(p), torch.zeros_like(p))).sum(dim=dim)


def _bin_index(x: torch.Tensor, bins: int) -> torch.Tensor:
    """numpy.histogramdd's bin of each value, per image: x ``(M, P)`` → long ``(M, P)``."""
    lo = x.amin(dim=1)
    hi = x.amax(dim=1)
    same = lo == hi
    lo = torch.where(same, lo - 0.5, lo)
    hi = torch.where(same, hi + 0.5, hi)
    idx = torch.empty(x.shape, dtype=torch.long, device=x.device)
    steps = torch.linspace(0.0, 1.0, bins + 1, dtype=torch.float64, device=x.device)
    for i in range(x.shape[0]):
        edges = (lo[i].double() + (hi[i].double() - lo[i].double()) * steps).to(x.dtype)
        j = torch.bucketize(x[i], edges, right=True)  # searchsorted(side='right')
        j = torch.where(x[i] == edges[-1], j - 1, j)  # right edge belongs to the last bin
        idx[i] = (j - 1).clamp_(0, bins - 1)
    return idx


def nmi(a: torch.Tensor, b: torch.Tensor, bins: int = 100) -> torch.Tensor:
    """Normalised mutual information ``(H(A) + H(B)) / H(A, B)`` per image pair (range 1–2).

    Equal to ``skimage.metrics.normalized_mutual_information(a, b, bins=bins)``. Not
    differentiable (see :func:`soft_nmi`).
    """
    a, b = _pair(a, b, "nmi")
    lead = a.shape[:-2]
    x = a.detach().reshape(-1, a.shape[-2] * a.shape[-1])
    y = b.detach().reshape(-1, b.shape[-2] * b.shape[-1])
    ix, iy = _bin_index(x, bins), _bin_index(y, bins)
    m = x.shape[0]
    flat = (torch.arange(m, device=x.device)[:, None] * bins * bins + ix * bins + iy).reshape(-1)
    joint = torch.bincount(flat, minlength=m * bins * bins).reshape(m, bins, bins).double()
    h0 = _entropy(joint.sum(2), (1,))
    h1 = _entropy(joint.sum(1), (1,))
    h01 = _entropy(joint, (1, 2))
    return ((h0 + h1) / h01).to(a.dtype).reshape(lead)


def _soft_weights(
    x: torch.Tensor, bins: int, value_range: tuple[float, float], sigma: float | None
) -> torch.Tensor:
    lo, hi = value_range
    width = (hi - lo) / bins
    centers = lo + width * (torch.arange(bins, device=x.device, dtype=x.dtype) + 0.5)
    s = width * (0.5 if sigma is None else sigma)
    wts = torch.exp(-0.5 * ((x[..., None] - centers) / s) ** 2)  # (M, P, bins)
    return wts / (wts.sum(-1, keepdim=True) + 1e-12)


def _soft_joint(
    a: torch.Tensor,
    b: torch.Tensor,
    bins: int,
    value_range: tuple[float, float],
    sigma: float | None,
) -> tuple[torch.Tensor, tuple[int, ...]]:
    if a.shape != b.shape:
        raise ValueError(f"soft MI: shapes differ, {tuple(a.shape)} and {tuple(b.shape)}")
    lead = a.shape[:-2]
    x = a.reshape(-1, a.shape[-2] * a.shape[-1])
    y = b.reshape(-1, b.shape[-2] * b.shape[-1])
    wx = _soft_weights(x, bins, value_range, sigma)
    wy = _soft_weights(y, bins, value_range, sigma)
    joint = wx.transpose(1, 2) @ wy / x.shape[1]  # (M, bins, bins), sums to 1
    return joint, tuple(lead)


def soft_mutual_information(
    a: torch.Tensor,
    b: torch.Tensor,
    *,
    bins: int = 32,
    value_range: tuple[float, float] = (0.0, 1.0),
    sigma: float | None = None,
) -> torch.Tensor:
    """Differentiable mutual information I(A; B) in nats per image pair ``(..., H, W) -> (...)``.

    Each pixel value is spread over ``bins`` fixed bins on ``value_range`` with Gaussian weights
    of standard deviation ``sigma`` bin widths (default 0.5), normalised per pixel (Parzen window).
    """
    joint, lead = _soft_joint(a, b, bins, value_range, sigma)
    eps = 1e-10
    pa = joint.sum(2, keepdim=True)
    pb = joint.sum(1, keepdim=True)
    mi = (joint * (torch.log(joint + eps) - torch.log(pa * pb + eps))).sum(dim=(1, 2))
    return mi.reshape(lead)


def soft_nmi(
    a: torch.Tensor,
    b: torch.Tensor,
    *,
    bins: int = 32,
    value_range: tuple[float, float] = (0.0, 1.0),
    sigma: float | None = None,
) -> torch.Tensor:
    """Differentiable normalised MI ``(H(A) + H(B)) / H(A, B)`` (soft histogram, range 1–2)."""
    joint, lead = _soft_joint(a, b, bins, value_range, sigma)
    eps = 1e-10

    def ent(p: torch.Tensor, dim: tuple[int, ...]) -> torch.Tensor:
        return -(p * torch.log(p + eps)).sum(dim=dim)

    h = ent(joint.sum(2), (1,)) + ent(joint.sum(1), (1,))
    return (h / ent(joint, (1, 2))).reshape(lead)


# ---------------------------------------------------------------------------- numpy wrappers
def _np(fn: Any, a: np.ndarray, b: np.ndarray, **kw: Any) -> float | np.ndarray:
    ta = torch.from_numpy(np.ascontiguousarray(a, dtype=np.float64))
    tb = torch.from_numpy(np.ascontiguousarray(b, dtype=np.float64))
    r = fn(ta, tb, **kw).numpy()
    return float(r) if r.ndim == 0 else r


def mae_np(a: np.ndarray, b: np.ndarray) -> float | np.ndarray:
    """:func:`mae` on numpy arrays (float64); a float for one image pair."""
    return _np(mae, a, b)


def psnr_np(a: np.ndarray, b: np.ndarray, data_range: float = 1.0) -> float | np.ndarray:
    """:func:`psnr` on numpy arrays (float64)."""
    return _np(psnr, a, b, data_range=data_range)


def ssim_np(a: np.ndarray, b: np.ndarray, data_range: float = 1.0) -> float | np.ndarray:
    """:func:`ssim` on numpy arrays (float64)."""
    return _np(ssim, a, b, data_range=data_range)


def nmi_np(a: np.ndarray, b: np.ndarray, bins: int = 100) -> float | np.ndarray:
    """:func:`nmi` on numpy arrays (float64)."""
    return _np(nmi, a, b, bins=bins)


def all_metrics_np(pred: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    """MAE, SSIM, MI (normalised, 100 bins) and PSNR of one 2D image against a reference."""
    pred = np.asarray(pred)
    ref = np.asarray(ref)
    if pred.ndim != 2:
        raise ValueError(f"all_metrics_np expects one 2D image, got shape {pred.shape}")
    out = {
        "mae": mae_np(pred, ref),
        "ssim": ssim_np(pred, ref),
        "mi": nmi_np(pred, ref),
        "psnr": psnr_np(pred, ref),
    }
    return {k: float(v) for k, v in out.items()}
