"""Multi-coil MRI: SENSE forward model and simulated birdcage coil sensitivities."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from geometries import CartesianMask, RadialTrajectory

from .base import DerivedOperator, LinearOperator
from .registry import register_example

__all__ = ["SENSE", "SENSEPseudoInverse", "birdcage_maps"]


def birdcage_maps(
    shape: Sequence[int],
    n_coils: int = 8,
    *,
    relative_radius: float = 1.5,
    normalize: bool = True,
    dtype: torch.dtype = torch.complex64,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Simulated receive sensitivities of a birdcage-like array of ``n_coils`` straight rungs.

    Each coil is modelled as an infinite straight wire parallel to z at azimuth
    ``θ_c = 2π c / n_coils`` on a circle of radius ``relative_radius`` (in units of the half
    field of view). By Biot–Savart the transverse field of a wire at in-plane offset ``r`` has
    magnitude ``∝ 1/|r|`` and direction perpendicular to ``r``; the complex sensitivity is that
    field written as ``B_x + i B_y``, times the rung's phase ``exp(i θ_c)`` (the birdcage mode):
    ``S_c = i exp(i (arg r + θ_c)) / |r|``.

    Parameters
    ----------
    shape : (int, int)
        Image shape ``(H, W)``. Rows map to y, columns to x, both scaled to [-1, 1].
    n_coils : int
        Number of coils C ≥ 1.
    relative_radius : float
        Radius of the coil circle relative to the half field of view; > 1 keeps the coils outside
        the image (no singularity).
    normalize : bool
        Divide by the root-sum-of-squares so that ``Σ_c |S_c|² = 1`` at every pixel.
    dtype : torch.dtype
        Complex dtype of the result.
    device : torch.device or str, optional

    Returns
    -------
    torch.Tensor
        Coil maps, shape ``(C, H, W)``, complex.
    """
    shp = tuple(int(s) for s in shape)
    if len(shp) != 2 or min(shp) <= 0:
        raise ValueError(f"birdcage_maps: shape must be two positive ints (H, W), got {shape!r}")
    if not (isinstance(n_coils, (int, np.integer)) and n_coils >= 1):
        raise ValueError(f"birdcage_maps: n_coils must be a positive int, got {n_coils!r}")
    if not relative_radius > 1.0:
        raise ValueError(
            "birdcage_maps: relative_radius must be > 1 (coils outside the image), "
            f"got {relative_radius!r}"
        )
    if not dtype.is_complex:
        raise ValueError(f"birdcage_maps: dtype must be complex, got {dtype}")
    h, w = shp
    yy = (torch.arange(h, dtype=torch.float64) - (h - 1) / 2) / (h / 2)
    xx = (torch.arange(w, dtype=torch.float64) - (w - 1) / 2) / (w / 2)
    y, x = torch.meshgrid(yy, xx, indexing="ij")
    theta = 2 * math.pi * torch.arange(n_coils, dtype=torch.float64) / n_coils
    rx = x[None] - relative_radius * torch.cos(theta)[:, None, None]
    ry = y[None] - relative_radius * torch.sin(theta)[:, None, None]
    r = torch.complex(rx, ry)
    maps = 1j * torch.exp(1j * (torch.angle(r) + theta[:, None, None])) / torch.abs(r)
    if normalize:
        maps = maps / torch.sqrt(torch.sum(torch.abs(maps) ** 2, dim=0, keepdim=True))
    return maps.to(dtype=dtype, device=device)


def _cdtype(t: torch.Tensor) -> torch.dtype:
    return torch.complex128 if t.dtype in (torch.float64, torch.complex128) else torch.complex64


class SENSE(LinearOperator):
    """Multi-coil forward model ``y_c = A (S_c ⊙ x)`` for coils ``c = 1..C``.

    Parameters
    ----------
    coil_maps : torch.Tensor or ndarray, shape ``(C, H, W)`` or ``(B, C, H, W)``
        Complex coil sensitivities (e.g. :func:`birdcage_maps`); a leading axis gives each sample
        of a batch ``(B, H, W)`` its own maps (e.g. maps estimated per slice).
    inner : LinearOperator
        Single-coil operator with domain ``(H, W)``, e.g. :class:`CartesianFourier` or
        :class:`NUFFT`.

    Notes
    -----
    Domain ``(H, W)`` complex (real accepted), range ``(C, *inner.range_shape)``. The coil axis
    becomes a batch axis of ``inner``: per-sample Cartesian masks ``(B, H, W)`` apply to
    ``(B, C, H, W)`` as documented in :class:`CartesianFourier`. The adjoint is the Euclidean
    transpose ``Σ_c conj(S_c) ⊙ A^H y_c``.
    """

    def __init__(self, coil_maps: torch.Tensor | np.ndarray, inner: LinearOperator) -> None:
        maps = (
            coil_maps.detach()
            if isinstance(coil_maps, torch.Tensor)
            else torch.as_tensor(np.asarray(coil_maps))
        )
        if maps.ndim not in (3, 4):
            raise ValueError(
                f"SENSE: coil_maps must have shape (C, H, W) or per-sample (B, C, H, W), got "
                f"{tuple(maps.shape)}"
            )
        if tuple(maps.shape[-2:]) != inner.domain_shape:
            raise ValueError(
                f"SENSE: coil_maps shape {tuple(maps.shape)} does not match the domain "
                f"{inner.domain_shape} of {inner.name}"
            )
        if not maps.is_complex():
            maps = maps.to(torch.complex128 if maps.dtype == torch.float64 else torch.complex64)
        self.n_coils = int(maps.shape[-3])
        super().__init__(
            inner.domain_shape,
            (self.n_coils, *inner.range_shape),
            domain_is_complex=True,
            range_is_complex=True,
        )
        self.coil_maps = maps
        self.inner = inner
        self._maps: dict[tuple[torch.device, torch.dtype], torch.Tensor] = {}

    def _maps_for(self, t: torch.Tensor) -> torch.Tensor:
        key = (t.device, _cdtype(t))
        m = self._maps.get(key)
        if m is None:
            m = self.coil_maps.to(device=t.device, dtype=key[1])
            self._maps[key] = m
        return m

    def _apply(self, x: torch.Tensor) -> torch.Tensor:
        s = self._maps_for(x)
        return self.inner._apply(x.unsqueeze(-3) * s)

    def _adjoint(self, y: torch.Tensor) -> torch.Tensor:
        z = self.inner._adjoint(y)
        return torch.sum(torch.conj(self._maps_for(z)) * z, dim=-3)

    def pseudo_inverse(self) -> SENSEPseudoInverse:
        """Coil-combined back-transform ``Σ_c conj(S_c) ⊙ inner⁺ y_c``."""
        return SENSEPseudoInverse(self)


class SENSEPseudoInverse(DerivedOperator):
    """``y ↦ Σ_c conj(S_c) ⊙ inner⁺ y_c`` (exact inverse for unit-RSS maps and invertible inner).

    Domain ``(C, *inner.range_shape)``, range ``(H, W)``, both complex.
    """

    def __init__(self, op: SENSE) -> None:
        pinv = op.inner.pseudo_inverse()
        if not isinstance(pinv, LinearOperator):
            raise TypeError(f"SENSE: the pseudo-inverse of {op.inner.name} is not a LinearOperator")
        super().__init__(op, "adjoint", f"{op.name}.pinv")
        self.op: SENSE = op
        self.pinv = pinv

    def _apply(self, y: torch.Tensor) -> torch.Tensor:
        z = self.pinv._apply(y)
        return torch.sum(torch.conj(self.op._maps_for(z)) * z, dim=-3)

    def _adjoint(self, x: torch.Tensor) -> torch.Tensor:
        return self.pinv._adjoint(x.unsqueeze(-3) * self.op._maps_for(x))


# --------------------------------------------------------------------------- examples
@register_example("sense-cartesian")
def _ex_sense_cartesian(device: torch.device) -> LinearOperator:
    from .mri import CartesianFourier

    mask = CartesianMask(shape=(8, 8), acceleration=2, center_fraction=0.25, seed=5)
    return SENSE(birdcage_maps((8, 8), 3, device=device), CartesianFourier(mask))


@register_example("sense-nufft")
def _ex_sense_nufft(device: torch.device) -> LinearOperator:
    from .mri import NUFFT

    nufft = NUFFT(RadialTrajectory(n_spokes=3, n_samples=8), (8, 8))
    return SENSE(birdcage_maps((8, 8), 2, device=device), nufft)
