"""Per-batch physics: the operators that the PI-encoders back-transform with.

:func:`build_operators` turns a collated :class:`msl_recon.data.dataset.MSLDataset` batch and the
dataset's geometry/sampling into ``{modality: LinearOperator}``:

- ``"ct"`` → :class:`operators.RayTransform` for the geometry, cached per geometry fingerprint.
  Its ASTRA system matrix is built lazily on the first forward/adjoint call, so the encoder, which
  only calls ``pseudo_inverse()`` (an :class:`operators.FBP`, cached internally), never pays for it.
- ``"t1"``/``"t2"`` Cartesian → :class:`operators.CartesianFourier` with the batch's per-sample
  masks ``batch["<m>_mask"]`` ``(B, H, W)`` (or the dataset's :class:`geometries.CartesianMask`).
- radial → :class:`operators.NUFFT` for the trajectory, cached per trajectory fingerprint.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any

import torch

from .config import modality_kind

__all__ = ["build_operators", "ct_operator", "measurement_key", "measurements_from_batch"]

_CACHE_SIZE = 16
_ct_cache: OrderedDict[str, Any] = OrderedDict()
_nufft_cache: OrderedDict[tuple[str, tuple[int, int]], Any] = OrderedDict()


def _lru_get(cache: OrderedDict, key: Any, make: Any) -> Any:
    if key in cache:
        cache.move_to_end(key)
        return cache[key]
    value = make()
    cache[key] = value
    while len(cache) > _CACHE_SIZE:
        cache.popitem(last=False)
    return value


def measurement_key(modality: str) -> str:
    """Batch key of a modality's raw data: ``"ct_sino"`` or ``"<m>_kspace"``."""
    return "ct_sino" if modality_kind(modality) == "ct" else f"{modality}_kspace"


def measurements_from_batch(
    batch: Mapping[str, Any],
    modalities: Iterable[str],
    *,
    device: torch.device | str | None = None,
) -> dict[str, torch.Tensor]:
    """The raw measurements of ``modalities`` that the batch holds (others are skipped)."""
    out = {}
    for m in modalities:
        key = measurement_key(m)
        if key in batch:
            out[m] = torch.as_tensor(batch[key]).to(device)
    return out


def ct_operator(geometry: Any) -> Any:
    """Cached :class:`operators.RayTransform` for ``geometry`` (system matrix built lazily)."""
    from operators import RayTransform

    return _lru_get(_ct_cache, geometry.fingerprint(), lambda: RayTransform(geometry))


def _mri_operator(
    modality: str,
    batch: Mapping[str, Any],
    sampling: Mapping[str, Any] | None,
    image_shape: tuple[int, int] | None,
    device: torch.device | str | None,
) -> Any:
    from geometries import CartesianMask, RadialTrajectory
    from operators import NUFFT, CartesianFourier

    s = (sampling or {}).get(modality)
    mask_key = f"{modality}_mask"
    if mask_key in batch:
        return CartesianFourier(
            torch.as_tensor(batch[mask_key]).to(device=device, dtype=torch.bool)
        )
    if isinstance(s, CartesianMask):
        return CartesianFourier(s)
    if isinstance(s, RadialTrajectory):
        if image_shape is None:
            raise ValueError(f"build_operators: radial {modality} needs the image shape")
        shape = (int(image_shape[0]), int(image_shape[1]))
        return _lru_get(_nufft_cache, (s.fingerprint(), shape), lambda: NUFFT(s, image_shape=shape))
    raise ValueError(
        f"build_operators: no sampling for {modality!r}: the batch has no {mask_key!r} and "
        f"sampling[{modality!r}] is {type(s).__name__}"
    )


def build_operators(
    batch: Mapping[str, Any],
    geometry: Any,
    sampling: Mapping[str, Any] | None,
    device: torch.device | str | None = None,
    *,
    modalities: Iterable[str] | None = None,
    image_shape: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """Operators of the batch's physics, one per modality whose measurement the batch holds.

    Parameters
    ----------
    batch : dict
        Collated dataset batch (``"ct_sino"``, ``"<m>_kspace"``, ``"<m>_mask"``, ``"<m>"``).
    geometry : geometries.CTGeometry or None
        CT geometry of the batch (after any view reduction). Needed if the batch has CT data.
    sampling : dict modality -> CartesianMask | RadialTrajectory, optional
        MRI sampling; per-sample masks in the batch take precedence for Cartesian data.
    device : torch.device or str, optional
        Device of the masks (operators follow their inputs' device otherwise).
    modalities : iterable of str, optional
        Restrict to these modalities (default: every modality found in the batch).
    image_shape : (int, int), optional
        Image shape for radial MRI (default: the geometry's, else a ground-truth image's).

    Returns
    -------
    dict modality -> LinearOperator
    """
    if modalities is None:
        names = ["ct", "t1", "t2"]
        names += [k[: -len("_kspace")] for k in batch if str(k).endswith("_kspace")]
        modalities = list(dict.fromkeys(names))
    if image_shape is None:
        if geometry is not None:
            image_shape = tuple(geometry.image_shape)
        else:
            for m in ("ct", "t1", "t2"):
                if m in batch:
                    image_shape = tuple(torch.as_tensor(batch[m]).shape[-2:])
                    break
    ops: dict[str, Any] = {}
    for m in modalities:
        if measurement_key(m) not in batch:
            continue
        if modality_kind(m) == "ct":
            if geometry is None:
                raise ValueError("build_operators: the batch has CT data but no geometry was given")
            ops[m] = ct_operator(geometry)
        else:
            ops[m] = _mri_operator(m, batch, sampling, image_shape, device)
    return ops
