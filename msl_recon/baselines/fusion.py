"""FUSION: pixel-wise weighted fusion of CT and MRI images, and image translation for
misalignment experiments.

``fuse(ct, mri, λ) = (1 − λ)·CT + λ·MRI`` (λ = 0 gives CT, λ = 1 gives MRI, the project's
convention), with λ a number, one value per sample or a spatial map. The inputs are
*reconstructed* images (FBP / zero-filled, CS or network reconstructions of the measured data),
never the ground truth. No registration is done: misaligned inputs are fused as they are, which
is the point of the baseline.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

__all__ = ["fuse", "fuse_many", "fuse_sweep", "shift_image"]


def _as_lambda(lam: float | torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    t = torch.as_tensor(lam, dtype=like.dtype, device=like.device)
    if t.numel() and (bool((t < 0).any()) or bool((t > 1).any())):
        raise ValueError("fusion weights λ must lie in [0, 1]")
    if t.ndim == 1:  # one value per sample: (B,) -> (B, 1, ..., 1)
        t = t.reshape(t.shape[0], *([1] * (like.ndim - 1)))
    return t


def fuse(ct: torch.Tensor, mri: torch.Tensor, lam: float | torch.Tensor) -> torch.Tensor:
    """Pixel-wise weighted fusion ``(1 − λ)·ct + λ·mri``.

    Parameters
    ----------
    ct, mri : Tensor, shape ``(B, C, H, W)`` (or any common shape)
        Images in [0, 1], possibly misaligned.
    lam : float or Tensor
        λ ∈ [0, 1]: a number, a ``(B,)`` tensor (one value per sample) or a map broadcastable to
        the images, e.g. ``(B, 1, H, W)``.

    Returns
    -------
    Tensor, the broadcast shape of the inputs.

    Examples
    --------
    >>> import torch
    >>> a, b = torch.zeros(1, 1, 2, 2), torch.ones(1, 1, 2, 2)
    >>> fuse(a, b, 0.25).mean().item()
    0.25
    """
    if ct.shape != mri.shape:
        raise ValueError(
            f"fuse: CT and MRI must have one shape, got {tuple(ct.shape)} and {tuple(mri.shape)}"
        )
    w = _as_lambda(lam, ct)
    return (1 - w) * ct + w * mri


def fuse_sweep(ct: torch.Tensor, mri: torch.Tensor, lams: Sequence[float]) -> torch.Tensor:
    """Fusion for several global λ values: ``(L, *ct.shape)``."""
    return torch.stack([fuse(ct, mri, float(lam)) for lam in lams])


def fuse_many(images: Sequence[torch.Tensor], weights: torch.Tensor) -> torch.Tensor:
    """Weighted fusion of ``n`` modalities with weights on the simplex.

    Parameters
    ----------
    images : sequence of n Tensors, each ``(B, C, H, W)``
    weights : Tensor, shape ``(B, n)`` or ``(B, n, H, W)``
        Non-negative weights summing to 1 over axis 1.

    Returns
    -------
    Tensor, shape ``(B, C, H, W)``.
    """
    n = len(images)
    if n == 0:
        raise ValueError("fuse_many needs at least one image")
    if weights.shape[1] != n:
        raise ValueError(f"weights axis 1 must have {n} entries, got shape {tuple(weights.shape)}")
    if bool((weights < 0).any()) or not torch.allclose(
        weights.sum(dim=1), torch.ones((), dtype=weights.dtype, device=weights.device), atol=1e-5
    ):
        raise ValueError("fusion weights must be non-negative and sum to 1 over the modalities")
    out = torch.zeros_like(images[0])
    for i, img in enumerate(images):
        w = weights[:, i]
        w = w.reshape(w.shape[0], 1, 1, 1) if w.ndim == 1 else w.unsqueeze(1)
        out = out + w * img
    return out


def shift_image(img: torch.Tensor, shift_px: tuple[float, float]) -> torch.Tensor:
    """Translate images by ``(rows, cols)`` pixels (sub-pixel by bilinear interpolation).

    Content moves towards larger indices for positive shifts; pixels that enter from outside
    are zero. Used to simulate a misregistered CT.

    Parameters
    ----------
    img : Tensor, shape ``(B, C, H, W)``
    shift_px : (float, float)
        Shift along rows and columns, in pixels.
    """
    b, _, h, w = img.shape
    dy, dx = float(shift_px[0]), float(shift_px[1])
    if dy.is_integer() and dx.is_integer():
        out = torch.zeros_like(img)
        iy, ix = int(dy), int(dx)
        src_y = slice(max(-iy, 0), h - max(iy, 0))
        dst_y = slice(max(iy, 0), h - max(-iy, 0))
        src_x = slice(max(-ix, 0), w - max(ix, 0))
        dst_x = slice(max(ix, 0), w - max(-ix, 0))
        if src_y.start < src_y.stop and src_x.start < src_x.stop:
            out[..., dst_y, dst_x] = img[..., src_y, src_x]
        return out
    theta = torch.zeros(b, 2, 3, dtype=img.dtype, device=img.device)
    theta[:, 0, 0] = 1
    theta[:, 1, 1] = 1
    theta[:, 0, 2] = -2 * dx / w
    theta[:, 1, 2] = -2 * dy / h
    grid = F.affine_grid(theta, list(img.shape), align_corners=False)
    return F.grid_sample(img, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
