"""The analytic "sparse" images: FBP for CT, zero-filled / DCF-adjoint images for MRI.

All of them are the operators' :meth:`~operators.LinearOperator.pseudo_inverse`: ``FBP`` for a
``RayTransform``, the zero-filled inverse FFT for a ``CartesianFourier`` and the
density-compensated adjoint for a ``NUFFT``. MRI images are returned as magnitudes (as in the
MSL physics-informed encoder); pass ``magnitude=False`` to keep the complex image.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from operators import LinearOperator

__all__ = ["fbp_image", "sparse_image", "sparse_images", "zero_filled_image"]


def sparse_image(
    data: torch.Tensor,
    op: LinearOperator,
    *,
    magnitude: bool = True,
    clip: bool = False,
) -> torch.Tensor:
    """Back-transform ``op.pseudo_inverse()(data)``.

    Parameters
    ----------
    data : Tensor, shape ``(*batch, *op.range_shape)``
        Sinogram (mm) or k-space (complex).
    op : LinearOperator
        Forward operator with an analytical pseudo-inverse.
    magnitude : bool
        Return ``|x|`` for a complex result (MRI); otherwise the complex image.
    clip : bool
        Clip a real result to [0, 1] (the intensity range of ground truth).

    Returns
    -------
    Tensor, shape ``(*batch, *op.domain_shape)``, real unless ``magnitude=False`` for complex data.
    """
    with torch.no_grad():
        x = op.pseudo_inverse()(data)
    if x.is_complex() and magnitude:
        x = x.abs()
    if clip and not x.is_complex():
        x = x.clamp(0.0, 1.0)
    return x


def fbp_image(
    sinogram: torch.Tensor,
    geometry: Any,
    *,
    filter: str = "ram-lak",
    frequency_scaling: float = 1.0,
    clip: bool = False,
) -> torch.Tensor:
    """Fan- or parallel-beam FBP of sinograms.

    Parameters
    ----------
    sinogram : Tensor, shape ``(*batch, V, D)``
        Line integrals in mm.
    geometry : geometries.CTGeometry
        The scan geometry.
    filter, frequency_scaling
        Passed to :class:`operators.FBP`.
    clip : bool
        Clip to [0, 1].

    Returns
    -------
    Tensor, shape ``(*batch, N, N)``
    """
    from operators import FBP

    with torch.no_grad():
        x = FBP(geometry, filter=filter, frequency_scaling=frequency_scaling)(sinogram)
    return x.clamp(0.0, 1.0) if clip else x


def zero_filled_image(kspace: torch.Tensor, mask: Any, *, magnitude: bool = True) -> torch.Tensor:
    """Zero-filled inverse FFT of Cartesian k-space.

    Parameters
    ----------
    kspace : Tensor, complex, shape ``(*batch, H, W)``
    mask : geometries.CartesianMask, bool array/tensor ``(*mb, H, W)`` or CartesianFourier
    magnitude : bool
        Return the magnitude image (default) or the complex image.
    """
    from operators import CartesianFourier

    op = mask if isinstance(mask, LinearOperator) else CartesianFourier(mask)
    return sparse_image(kspace, op, magnitude=magnitude)


def sparse_images(
    batch: Mapping[str, torch.Tensor],
    ops: Mapping[str, LinearOperator],
    *,
    clip: bool = False,
) -> dict[str, torch.Tensor]:
    """Sparse images of every modality of an :class:`~msl_recon.data.dataset.MSLDataset` batch.

    Parameters
    ----------
    batch : mapping
        A collated batch holding each modality's raw data under its plug-in's ``raw_key``.
    ops : mapping of str -> LinearOperator
        Modality -> forward operator (e.g. from ``msl_recon.model.build_operators``).
    clip : bool
        Clip to [0, 1].

    Returns
    -------
    dict of str -> Tensor
        Modality -> float32 image ``(B, 1, H, W)`` on the data's device.
    """
    out: dict[str, torch.Tensor] = {}
    from .. import modalities

    for m, op in ops.items():
        spec = modalities.get(m)
        if spec.raw_key not in batch:
            continue
        with torch.no_grad():  # the plug-in's back-transform (e.g. PET: corrected FBP)
            x = spec.back_transform(spec.measurement(batch), op)
        if clip:
            x = x.clamp(0.0, 1.0)
        out[m] = x.to(torch.float32).unsqueeze(-3)
    return out
