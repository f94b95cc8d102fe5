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

CT windows (:func:`window_metrics`, :func:`head_mask`): MAE (HU and window units), PSNR and SSIM
of CT images after clipping to a HU window and scaling it to [0, 1], optionally restricted to a
mask (SSIM: the mean of skimage's SSIM map over the masked pixels of its cropped region).
:data:`CT_WINDOWS` holds the paper's full window [−1000, 2125] HU and a brain window [0, 80] HU.

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
    "CT_WINDOWS",
    "all_metrics_np",
    "head_mask",
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
    "window_metrics",
]

#: CT display/metric windows in HU: the paper's [0, 1] range and a brain window.
CT_WINDOWS: dict[str, tuple[float, float]] = {"paper": (-1000.0, 2125.0), "brain": (0.0, 80.0)}


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
    return _ssim_map(a, b, data_range, win_size, k1, k2).mean(dim=(-2, -1))


def _ssim_map(
    a: torch.Tensor, b: torch.Tensor, data_range: float, win_size: int, k1: float, k2: float
) -> torch.Tensor:
    """SSIM map on the valid region ``(..., H − win + 1, W − win + 1)`` (skimage's crop)."""
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
    return s.reshape(*lead, *s.shape[-2:])


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


def head_mask(ct_hu: np.ndarray | torch.Tensor, threshold_hu: float = -500.0) -> np.ndarray:
    """Head mask of CT slices ``(..., H, W)``: pixels above ``threshold_hu`` with holes filled
    (sinuses and air cells inside the head count as head). Returns bool numpy."""
    from scipy import ndimage

    arr = np.asarray(ct_hu.detach().cpu() if isinstance(ct_hu, torch.Tensor) else ct_hu)
    fg = arr > threshold_hu
    flat = fg.reshape(-1, *fg.shape[-2:])
    out = np.stack([ndimage.binary_fill_holes(m) for m in flat]) if flat.size else flat
    return out.reshape(fg.shape)


def window_metrics(
    pred_hu: np.ndarray | torch.Tensor,
    gt_hu: np.ndarray | torch.Tensor,
    window: tuple[float, float] | str,
    mask: np.ndarray | torch.Tensor | None = None,
    *,
    win_size: int = 7,
) -> dict[str, float | np.ndarray]:
    """CT metrics inside a HU window, optionally within a mask.

    Both images are clipped to ``window = (lo, hi)`` HU and mapped to ``(x − lo) / (hi − lo)``
    in [0, 1] (data range 1).

    Parameters
    ----------
    pred_hu, gt_hu : array or Tensor, ``(..., H, W)``
        CT numbers, HU.
    window : (float, float) or str
        HU window or a name in :data:`CT_WINDOWS` (``"paper"``, ``"brain"``).
    mask : bool array ``(..., H, W)`` or ``(H, W)``, optional
        Pixels that count (e.g. :func:`head_mask` of the ground truth); all if None.
    win_size : int
        SSIM window.

    Returns
    -------
    dict
        ``mae_hu`` (mean |Δ| of the clipped images, HU), ``mae`` (the same in window units),
        ``psnr`` (dB, from the masked MSE) and ``ssim`` (mean SSIM map over masked pixels of the
        cropped region; equals ``skimage.metrics.structural_similarity(..., data_range=1)``
        without a mask). Floats for one image, arrays ``(...)`` for a batch.
    """
    lo, hi = CT_WINDOWS[window] if isinstance(window, str) else (float(window[0]), float(window[1]))
    if not hi > lo:
        raise ValueError(f"window must be (low, high) with low < high, got {window!r}")
    a = torch.as_tensor(np.asarray(pred_hu), dtype=torch.float64)
    b = torch.as_tensor(np.asarray(gt_hu), dtype=torch.float64)
    if a.shape != b.shape or a.ndim < 2:
        raise ValueError(f"window_metrics: shapes {tuple(a.shape)} and {tuple(b.shape)} differ")
    a = (a.clamp(lo, hi) - lo) / (hi - lo)
    b = (b.clamp(lo, hi) - lo) / (hi - lo)
    m = torch.ones_like(a) if mask is None else torch.as_tensor(np.asarray(mask)).to(a.dtype)
    m = m.expand_as(a)
    n = m.sum(dim=(-2, -1)).clamp_min(1.0)
    err = (a - b) * m
    mae_u = err.abs().sum(dim=(-2, -1)) / n
    mse = (err**2).sum(dim=(-2, -1)) / n
    smap = _ssim_map(a, b, 1.0, win_size, 0.01, 0.03)
    r = win_size // 2
    mc = m[..., r : a.shape[-2] - r, r : a.shape[-1] - r]
    ssim_v = (smap * mc).sum(dim=(-2, -1)) / mc.sum(dim=(-2, -1)).clamp_min(1.0)
    out = {
        "mae_hu": mae_u * (hi - lo),
        "mae": mae_u,
        "psnr": 10.0 * torch.log10(1.0 / mse),
        "ssim": ssim_v,
    }
    return {k: (float(v) if v.ndim == 0 else v.numpy()) for k, v in out.items()}
