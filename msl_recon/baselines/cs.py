"""Single-modality compressed-sensing reconstruction: TV-regularised least squares by PDHG.

CT:  ``min_x  (w/2)‖A x − y‖² + μ TV(x)``, ``A`` a ``RayTransform`` (line integrals in mm),
``y`` the sinogram ``(V, D)``.

MRI: ``min_x  (w/2)‖M F x − k‖² + μ TV(x)``, ``M F`` a ``CartesianFourier`` (or any Fourier
operator such as ``NUFFT``), ``k`` the complex k-space. By default the image is **real** (our
ground-truth MR images are real magnitudes in [0, 1], and the data term is then the exact
least squares over real images: the adjoint keeps ``Re(Fᴴ ·)``); ``complex_image=True``
reconstructs a complex image (for data with phase) and drops the box constraint.

TV is isotropic with per-pixel differences (:class:`operators.Gradient2D`). ``constraint``
selects ``G``: ``"box"`` = [0, 1] (our intensity convention), ``"nonneg"`` = x ≥ 0, ``None``.
With ``normalize_data=True`` the data weight is ``w = 1/‖A‖²`` so that ``μ`` is comparable
across geometries and modalities (the joint solver uses the same convention).
"""

from __future__ import annotations

from typing import Any

import torch

from operators import LinearOperator

from .pdhg import PDHGResult, box_prox, l2_data_term, pdhg, tv_term

__all__ = ["constraint_prox", "tv_ct", "tv_mri", "tv_reconstruct"]


def constraint_prox(constraint: str | None) -> Any:
    """Primal prox for ``constraint`` in ``{"box", "nonneg", None}``."""
    if constraint is None or constraint == "none":
        return None
    if constraint == "box":
        return box_prox(0.0, 1.0)
    if constraint == "nonneg":
        return box_prox(0.0, None)
    raise ValueError(f"constraint must be 'box', 'nonneg' or None, got {constraint!r}")


def _initial(
    x0: torch.Tensor | str | None,
    op: LinearOperator,
    y: torch.Tensor,
    complex_image: bool,
) -> torch.Tensor:
    batch = y.shape[: y.ndim - len(op.range_shape)]
    rdtype = y.real.dtype if y.is_complex() else y.dtype
    if isinstance(x0, torch.Tensor):
        return x0.to(y.device)
    if x0 in (None, "zeros"):
        dt = (
            (torch.complex128 if rdtype == torch.float64 else torch.complex64)
            if complex_image
            else rdtype
        )
        return torch.zeros((*batch, *op.domain_shape), dtype=dt, device=y.device)
    if x0 == "pinv":
        with torch.no_grad():
            x = op.pseudo_inverse()(y)
        if x.is_complex() and not complex_image:
            x = x.real
        return x.to(device=y.device)
    raise ValueError(f"x0 must be a tensor, 'zeros' or 'pinv', got {x0!r}")


def tv_reconstruct(
    y: torch.Tensor,
    op: LinearOperator,
    mu: float,
    *,
    n_iter: int = 200,
    constraint: str | None = "box",
    complex_image: bool = False,
    data_weight: float = 1.0,
    normalize_data: bool = False,
    x0: torch.Tensor | str | None = None,
    rho: float = 1.0,
    op_norm: float | None = None,
    history_every: int = 1,
    progress: bool = False,
) -> PDHGResult:
    """TV-regularised least squares ``min (w/2)‖op(x) − y‖² + μ TV(x)`` by PDHG.

    Parameters
    ----------
    y : Tensor, shape ``(*batch, *op.range_shape)``
        Data (sinogram in mm, or complex k-space).
    op : LinearOperator
        Forward model with domain ``(H, W)``.
    mu : float
        TV weight ``μ``.
    n_iter : int
        PDHG iterations.
    constraint : {"box", "nonneg", None}
        Primal constraint (ignored for complex images).
    complex_image : bool
        Reconstruct a complex image (MRI with phase); default real.
    data_weight : float
        ``w`` (multiplied by ``1/‖op‖²`` when ``normalize_data``).
    x0 : Tensor, "zeros", "pinv" or None
        Start point: zeros (default), or the operator's ``pseudo_inverse()`` (FBP / zero-filled).
    rho : float
        Primal–dual step balance (see :mod:`.pdhg`).
    op_norm : float, optional
        ``‖op‖`` if known (saves a power iteration).
    history_every, progress
        Passed to :func:`.pdhg.pdhg`.

    Returns
    -------
    PDHGResult
        ``result.x[0]`` is the image ``(*batch, H, W)``; ``result.history`` the objective.
    """
    if complex_image and not op.domain_is_complex:
        raise ValueError(f"complex_image=True needs a complex-domain operator, got {op.name}")
    norm = op.opnorm(n_iter=100, device=y.device) if op_norm is None else float(op_norm)
    w = data_weight / norm**2 if normalize_data else data_weight
    data = l2_data_term(op, y, weight=w, real_image=not complex_image, norm=norm)
    tv = tv_term(op.domain_shape, mu, complex_image=complex_image)
    x_init = _initial(x0, op, y, complex_image)
    return pdhg(
        [x_init],
        [data, tv],
        prox_primal=None if complex_image else constraint_prox(constraint),
        n_iter=n_iter,
        rho=rho,
        history_every=history_every,
        progress=progress,
    )


def tv_ct(
    sinogram: torch.Tensor,
    ray: LinearOperator | Any,
    mu: float,
    **kwargs: Any,
) -> torch.Tensor:
    """TV reconstruction of CT images from sinograms.

    Parameters
    ----------
    sinogram : Tensor, shape ``(*batch, V, D)``
        Line integrals in mm.
    ray : LinearOperator or geometries.CTGeometry
        A ``RayTransform``, or a geometry from which one is built.
    mu : float
        TV weight.
    **kwargs
        Passed to :func:`tv_reconstruct`.

    Returns
    -------
    Tensor, shape ``(*batch, N, N)``
    """
    if not isinstance(ray, LinearOperator):
        from operators import RayTransform  # type: ignore[attr-defined]

        ray = RayTransform(ray)
    return tv_reconstruct(sinogram, ray, mu, **kwargs).x[0]


def tv_mri(
    kspace: torch.Tensor,
    fourier: LinearOperator | Any,
    mu: float,
    **kwargs: Any,
) -> torch.Tensor:
    """TV reconstruction of MR images from under-sampled k-space.

    Parameters
    ----------
    kspace : Tensor, complex, shape ``(*batch, H, W)`` (or ``(*batch, P)`` for NUFFT)
    fourier : LinearOperator, geometries.CartesianMask or bool mask
        A Fourier operator, or a mask from which a ``CartesianFourier`` is built.
    mu : float
        TV weight.
    **kwargs
        Passed to :func:`tv_reconstruct` (``complex_image=True`` for a complex image).

    Returns
    -------
    Tensor, shape ``(*batch, H, W)``, real unless ``complex_image``.
    """
    if not isinstance(fourier, LinearOperator):
        from operators import CartesianFourier  # type: ignore[attr-defined]

        fourier = CartesianFourier(fourier)
    return tv_reconstruct(kspace, fourier, mu, **kwargs).x[0]
