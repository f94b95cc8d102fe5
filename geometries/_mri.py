"""MRI k-space sampling patterns: Cartesian phase-encoding masks and radial trajectories."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

__all__ = ["CartesianMask", "RadialTrajectory", "sampling_from_dict"]

GOLDEN_ANGLE = math.pi / ((1.0 + math.sqrt(5.0)) / 2.0)
"""Golden angle for radial MRI, π/φ ≈ 111.246° (Winkelmann et al., IEEE TMI 2007)."""


class _Serialisable:
    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible dict with ``type`` naming the class."""
        d: dict[str, Any] = {"type": type(self).__name__}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            v = getattr(self, f.name)
            d[f.name] = list(v) if isinstance(v, tuple) else v
        return d

    def fingerprint(self) -> str:
        """Stable SHA-256 digest of :meth:`to_dict`."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True, kw_only=True)
class CartesianMask(_Serialisable):
    """Cartesian under-sampling of whole phase-encoding columns (axis W), fastMRI style.

    A fully sampled block of ``round(W * center_fraction)`` central columns is kept; the
    remaining columns are chosen at random (``pattern='random'``) or equispaced
    (``pattern='equispaced'``, random offset) so that exactly ``round(W / acceleration)`` columns
    are sampled in total. When the acceleration leaves fewer columns than the centre block, the
    centre block shrinks to the ``round(W / acceleration)`` most central columns: the
    acceleration is met (up to the rounding of ``W / acceleration``), not the centre fraction.
    :attr:`achieved_acceleration` reports the result.

    Parameters
    ----------
    shape : (int, int)
        k-space shape ``(H, W)``; rows are read out, columns are phase encodes.
    acceleration : float
        Target under-sampling factor R ≥ 1 (1/4 sampling ⇔ R = 4).
    center_fraction : float
        Fraction of columns in the fully sampled centre, in [0, 1].
    pattern : {'random', 'equispaced'}
    seed : int
        Seed of the column choice; the same seed gives the same mask.
    """

    shape: tuple[int, int]
    acceleration: float = 4.0
    center_fraction: float = 0.08
    pattern: str = "random"
    seed: int = 0

    def __post_init__(self) -> None:
        shp = tuple(int(s) for s in self.shape)
        if len(shp) != 2 or min(shp) <= 0:
            raise ValueError(f"shape must be two positive ints (H, W), got {self.shape!r}")
        object.__setattr__(self, "shape", shp)
        if not (isinstance(self.acceleration, (int, float)) and self.acceleration >= 1):
            raise ValueError(f"acceleration must be a number ≥ 1, got {self.acceleration!r}")
        if not (0.0 <= float(self.center_fraction) <= 1.0):
            raise ValueError(f"center_fraction must lie in [0, 1], got {self.center_fraction!r}")
        if self.pattern not in ("random", "equispaced"):
            raise ValueError(f"pattern must be 'random' or 'equispaced', got {self.pattern!r}")
        object.__setattr__(self, "acceleration", float(self.acceleration))
        object.__setattr__(self, "center_fraction", float(self.center_fraction))
        object.__setattr__(self, "seed", int(self.seed))

    @cached_property
    def columns(self) -> np.ndarray:
        """Boolean vector of sampled columns, shape ``(W,)``."""
        w = self.shape[1]
        n_total = self._n_total
        n_center = min(int(round(w * self.center_fraction)), n_total)
        cols = np.zeros(w, dtype=bool)
        start = (w - n_center + 1) // 2
        cols[start : start + n_center] = True
        rest = n_total - n_center
        if rest > 0:
            rng = np.random.default_rng(self.seed)
            free = np.flatnonzero(~cols)
            if self.pattern == "random":
                pick = rng.choice(free, size=rest, replace=False)
            else:
                # evenly spaced among the free columns, random offset
                step = free.size / rest
                offset = rng.uniform(0, step)
                pick = free[np.floor(offset + step * np.arange(rest)).astype(int) % free.size]
            cols[pick] = True
        return cols

    @property
    def mask(self) -> np.ndarray:
        """Boolean sampling mask, shape ``(H, W)``."""
        return np.broadcast_to(self.columns[None, :], self.shape).copy()

    @property
    def achieved_acceleration(self) -> float:
        """``W / (number of sampled columns)``."""
        return self.shape[1] / int(self.columns.sum())

    @property
    def _n_total(self) -> int:
        w = self.shape[1]
        return max(min(w, int(round(w / self.acceleration))), 1)

    @property
    def center_slice(self) -> slice:
        """Column slice of the fully sampled centre block (shrunk to the column budget)."""
        w = self.shape[1]
        n_center = min(int(round(w * self.center_fraction)), self._n_total)
        start = (w - n_center + 1) // 2
        return slice(start, start + n_center)

    def with_acceleration(self, acceleration: float) -> CartesianMask:
        """The same mask family at another acceleration."""
        return dataclasses.replace(self, acceleration=acceleration)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CartesianMask:
        """Inverse of :meth:`to_dict`."""
        d = {k: v for k, v in d.items() if k != "type"}
        d["shape"] = tuple(d["shape"])
        return cls(**d)


@dataclass(frozen=True, kw_only=True)
class RadialTrajectory(_Serialisable):
    """2D radial k-space trajectory (spokes through the k-space centre).

    Parameters
    ----------
    n_spokes : int
        Number of spokes (readouts).
    n_samples : int
        Samples per spoke, centred on k = 0 (use 2× the image side for 2× readout oversampling).
    ordering : {'uniform', 'golden'}
        ``'uniform'``: spokes evenly spaced over [0, π); ``'golden'``: successive spokes advance
        by the golden angle π/φ ≈ 111.25°.
    rotation : float
        Angle of the first spoke in radians.

    Notes
    -----
    :attr:`ktraj` is in radians per pixel, ``[-π, π)``, shape ``(2, n_spokes * n_samples)``,
    ordered ``(k_row, k_col)`` as torchkbnufft expects for an image ``[..., row, col]``.
    """

    n_spokes: int
    n_samples: int
    ordering: str = "uniform"
    rotation: float = 0.0

    def __post_init__(self) -> None:
        for name in ("n_spokes", "n_samples"):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or v <= 0:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if self.ordering not in ("uniform", "golden"):
            raise ValueError(f"ordering must be 'uniform' or 'golden', got {self.ordering!r}")
        object.__setattr__(self, "n_spokes", int(self.n_spokes))
        object.__setattr__(self, "n_samples", int(self.n_samples))
        object.__setattr__(self, "rotation", float(self.rotation))

    @property
    def spoke_angles(self) -> np.ndarray:
        """Spoke angles in radians, shape ``(n_spokes,)``."""
        i = np.arange(self.n_spokes)
        if self.ordering == "uniform":
            return self.rotation + i * (math.pi / self.n_spokes)
        return np.mod(self.rotation + i * GOLDEN_ANGLE, 2 * math.pi)

    @property
    def ktraj(self) -> np.ndarray:
        """k-space coordinates in rad/pixel, shape ``(2, n_spokes * n_samples)``, float64."""
        r = (np.arange(self.n_samples) - self.n_samples / 2) * (2 * math.pi / self.n_samples)
        a = self.spoke_angles
        kr = np.outer(np.cos(a), r)  # along rows
        kc = np.outer(np.sin(a), r)  # along cols
        return np.stack([kr.reshape(-1), kc.reshape(-1)])

    @property
    def n_points(self) -> int:
        """Total number of k-space samples."""
        return self.n_spokes * self.n_samples

    def with_spokes(self, n_spokes: int) -> RadialTrajectory:
        """The same trajectory with another spoke count."""
        return dataclasses.replace(self, n_spokes=n_spokes)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RadialTrajectory:
        """Inverse of :meth:`to_dict`."""
        return cls(**{k: v for k, v in d.items() if k != "type"})


def sampling_from_dict(d: dict[str, Any]) -> CartesianMask | RadialTrajectory:
    """Rebuild a sampling pattern from :meth:`to_dict` output."""
    typ = d.get("type")
    if typ == "CartesianMask":
        return CartesianMask.from_dict(d)
    if typ == "RadialTrajectory":
        return RadialTrajectory.from_dict(d)
    raise ValueError(f"unknown sampling type {typ!r}; expected CartesianMask or RadialTrajectory")
