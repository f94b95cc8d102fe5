"""2D CT scan geometries (parallel beam and flat-detector fan beam) in physical units.

All lengths are in millimetres and all angles in radians. The conventions are ASTRA's, exactly:
an image ``x[..., row, col]`` is ASTRA's volume ``[row, col]`` on the square
``[-N p / 2, N p / 2]²`` centred on the isocentre, and a sinogram is ``[..., view, detector]``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import warnings
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

__all__ = ["CTGeometry", "FanBeam2D", "ParallelBeam2D", "geometry_from_dict"]


def _positive(name: str, value: float, *, integer: bool = False) -> None:
    if integer and (not isinstance(value, (int, np.integer)) or isinstance(value, bool)):
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if not isinstance(value, (int, float, np.integer, np.floating)) or isinstance(value, bool):
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    if not math.isfinite(float(value)) or value <= 0:
        raise ValueError(f"{name} must be positive and finite, got {value!r}")


def _normalise_angles(angles: Any, n_views: int | None, full_arc: float) -> tuple[float, ...]:
    if angles is None:
        if n_views is None:
            raise ValueError("give either n_views or angles")
        _positive("n_views", n_views, integer=True)
        return tuple(float(a) for a in np.arange(n_views) * (full_arc / n_views))
    arr = np.asarray(angles, dtype=np.float64).reshape(-1)
    if arr.size == 0:
        raise ValueError("angles must hold at least one view")
    if not np.all(np.isfinite(arr)):
        raise ValueError("angles must be finite (radians)")
    if n_views is not None and n_views != arr.size:
        raise ValueError(f"n_views={n_views} disagrees with len(angles)={arr.size}")
    return tuple(float(a) for a in arr)


@dataclass(frozen=True, kw_only=True)
class CTGeometry:
    """Common part of the 2D CT geometries.

    Parameters
    ----------
    image_size : int
        Number of pixels N along each side of the square image.
    pixel_size : float
        Pixel side length p in mm. The image covers ``[-N p/2, N p/2]`` mm on both axes.
    det_count : int
        Number of detector bins.
    det_spacing : float
        Detector bin width in mm (on the detector itself, not at the isocentre).
    n_views : int, optional
        Number of projection angles, evenly spaced over a full scan, when ``angles`` is not given.
    angles : sequence of float, optional
        Projection angles in radians (ASTRA's convention). Any array is allowed: short scans,
        sparse or irregular subsets.
    """

    kind: ClassVar[str] = "ct"
    #: ``"parallel"`` or ``"fan"``: how :meth:`to_vec` reads its first two columns.
    beam: ClassVar[str] = "ct"
    full_arc: ClassVar[float] = 2 * math.pi

    image_size: int
    pixel_size: float = 1.0
    det_count: int
    det_spacing: float = 1.0
    n_views: int | None = None
    angles: tuple[float, ...] | None = field(default=None)

    def __post_init__(self) -> None:
        _positive("image_size", self.image_size, integer=True)
        _positive("pixel_size", self.pixel_size)
        _positive("det_count", self.det_count, integer=True)
        _positive("det_spacing", self.det_spacing)
        angles = _normalise_angles(self.angles, self.n_views, self.full_arc)
        object.__setattr__(self, "angles", angles)
        object.__setattr__(self, "n_views", len(angles))
        object.__setattr__(self, "image_size", int(self.image_size))
        object.__setattr__(self, "det_count", int(self.det_count))
        object.__setattr__(self, "pixel_size", float(self.pixel_size))
        object.__setattr__(self, "det_spacing", float(self.det_spacing))

    # ------------------------------------------------------------------ shapes and units
    @property
    def image_shape(self) -> tuple[int, int]:
        """Image shape ``(N, N)`` (rows, cols)."""
        return (self.image_size, self.image_size)

    @property
    def sino_shape(self) -> tuple[int, int]:
        """Sinogram shape ``(n_views, det_count)``."""
        return (int(self.n_views), self.det_count)  # type: ignore[arg-type]

    @property
    def angles_array(self) -> np.ndarray:
        """Projection angles in radians, shape ``(n_views,)``, float64."""
        return np.asarray(self.angles, dtype=np.float64)

    @property
    def fov_radius(self) -> float:
        """Radius in mm of the circle that circumscribes the image square."""
        return self.image_size * self.pixel_size / math.sqrt(2.0)

    def is_uniform(self) -> bool:
        """Whether the views are evenly spaced (constant step)."""
        a = self.angles_array
        if a.size < 3:
            return True
        d = np.diff(a)
        return bool(np.allclose(d, d[0], rtol=1e-9, atol=1e-12))

    # ------------------------------------------------------------------ derived scans
    def with_views(self, n_views: int) -> CTGeometry:
        """The same scan arc sampled by ``n_views`` evenly spaced views.

        The first angle is kept; when ``n_views`` divides the current count the new views are a
        subset of the current ones. Only defined for evenly spaced views (use :meth:`subset`).
        """
        _positive("n_views", n_views, integer=True)
        if not self.is_uniform():
            raise ValueError("with_views needs evenly spaced angles; use subset(indices) instead")
        a = self.angles_array
        step = (a[1] - a[0]) if a.size > 1 else self.full_arc
        span = step * a.size
        new = a[0] + np.arange(n_views) * (span / n_views)
        return dataclasses.replace(self, angles=tuple(new.tolist()), n_views=None)

    def subset(self, indices: Any) -> CTGeometry:
        """The scan restricted to the views at ``indices`` (int array or boolean mask)."""
        idx = np.asarray(indices)
        a = self.angles_array
        if idx.dtype == bool:
            if idx.shape != a.shape:
                raise ValueError(f"boolean view mask has shape {idx.shape}, expected {a.shape}")
            idx = np.flatnonzero(idx)
        idx = idx.astype(np.int64).reshape(-1)
        if idx.size == 0:
            raise ValueError("subset needs at least one view index")
        if idx.min() < -a.size or idx.max() >= a.size:
            raise ValueError(
                f"view indices must lie in [0, {a.size}), got {idx.min()}..{idx.max()}"
            )
        return dataclasses.replace(self, angles=tuple(a[idx].tolist()), n_views=None)

    # ------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible dict, with ``type`` naming the class (for HDF5 attributes)."""
        d: dict[str, Any] = {"type": type(self).__name__}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            d[f.name] = list(v) if isinstance(v, tuple) else v
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CTGeometry:
        """Inverse of :meth:`to_dict`; dispatches on ``d['type']`` when called on the base."""
        d = dict(d)
        typ = d.pop("type", cls.__name__)
        target = _GEOMETRY_TYPES.get(typ)
        if target is None:
            raise ValueError(f"unknown geometry type {typ!r}; known: {sorted(_GEOMETRY_TYPES)}")
        if cls is not CTGeometry and target is not cls:
            raise ValueError(f"dict describes a {typ}, not a {cls.__name__}")
        names = {f.name for f in dataclasses.fields(target)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown {typ} fields: {sorted(unknown)}")
        d["n_views"] = None
        return target(**d)

    def fingerprint(self) -> str:
        """Stable SHA-256 hex digest of the geometry (angles rounded to 1e-12 rad)."""
        d = self.to_dict()
        d["angles"] = [round(a, 12) for a in d["angles"]]
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()

    # ------------------------------------------------------------------ canonical vectors
    def to_vec(self) -> np.ndarray:
        """Canonical per-view vectors in mm, shape ``(n_views, 6)``, float64 (ASTRA ``*_vec``).

        Row ``v`` is ``(sx, sy, dx, dy, ux, uy)``: the source position ``s`` (for a parallel beam,
        :attr:`beam` ``== "parallel"``, the unit ray direction instead), the detector centre
        ``d`` and the vector ``u`` from one detector bin to the next (length ``det_spacing``).
        Bin ``k`` has its centre at ``d + (k - (D - 1) / 2) u``. Operators and phantoms read the
        scan from this form only, so they do not depend on the geometry class.
        """
        a = self.angles_array
        es = np.stack([np.sin(a), -np.cos(a)], axis=1)  # isocentre -> source
        u = self.det_spacing * np.stack([np.cos(a), np.sin(a)], axis=1)
        src, det = self._vec_source_detector(es)
        return np.concatenate([src, det, u], axis=1)

    def _vec_source_detector(self, es: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raise TypeError(f"{type(self).__name__} has no vector form")  # pragma: no cover

    def to_astra(self) -> tuple[dict, dict]:
        """ASTRA ``(vol_geom, proj_geom)`` in physical units (mm)."""
        import astra

        h = self.image_size * self.pixel_size / 2.0
        vol = astra.create_vol_geom(self.image_size, self.image_size, -h, h, -h, h)
        return vol, self._astra_proj_geom()

    def _astra_proj_geom(self) -> dict:  # pragma: no cover - overridden
        raise TypeError(f"{type(self).__name__} has no ASTRA projection geometry")


@dataclass(frozen=True, kw_only=True)
class ParallelBeam2D(CTGeometry):
    """2D parallel-beam geometry (ASTRA ``'parallel'``).

    Views default to ``n_views`` evenly spaced angles over ``[0, π)``: for parallel beams a
    half rotation is a complete data set (the second half repeats every ray reversed). Pass
    ``angles`` for anything else, including a full ``[0, 2π)`` rotation.

    Examples
    --------
    >>> g = ParallelBeam2D(image_size=128, pixel_size=1.0, det_count=184, n_views=90)
    >>> g.sino_shape
    (90, 184)
    """

    full_arc: ClassVar[float] = math.pi
    beam: ClassVar[str] = "parallel"
    det_count: int = 0

    def __post_init__(self) -> None:
        if self.det_count == 0:
            _positive("image_size", self.image_size, integer=True)
            _positive("pixel_size", self.pixel_size)
            _positive("det_spacing", self.det_spacing)
            # default: cover the image diagonal at the given spacing
            n = math.ceil(self.image_size * math.sqrt(2) * self.pixel_size / self.det_spacing)
            object.__setattr__(self, "det_count", int(n + (n % 2)))
        super().__post_init__()
        width = self.det_count * self.det_spacing
        if width < self.image_size * self.pixel_size:
            warnings.warn(
                f"detector width {width:.1f} mm is narrower than the image "
                f"({self.image_size * self.pixel_size:.1f} mm): the field of view is truncated",
                stacklevel=3,
            )

    def _vec_source_detector(self, es: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return es.copy(), np.zeros_like(es)  # ASTRA's ray direction (sin θ, -cos θ)

    def _astra_proj_geom(self) -> dict:
        import astra

        return astra.create_proj_geom(
            "parallel", self.det_spacing, self.det_count, self.angles_array
        )


@dataclass(frozen=True, kw_only=True)
class FanBeam2D(CTGeometry):
    """2D fan-beam geometry with a flat detector (ASTRA ``'fanflat'``).

    Parameters
    ----------
    source_origin : float
        Source to isocentre distance in mm.
    origin_detector : float
        Isocentre to detector distance in mm.

    Views default to ``n_views`` evenly spaced angles over a full rotation ``[0, 2π)``.

    Examples
    --------
    >>> g = FanBeam2D(image_size=256, pixel_size=1.0, n_views=64, det_count=384,
    ...               det_spacing=2.0, source_origin=500.0, origin_detector=500.0)
    >>> round(g.magnification, 3)
    2.0
    """

    beam: ClassVar[str] = "fan"
    source_origin: float
    origin_detector: float

    def __post_init__(self) -> None:
        super().__post_init__()
        _positive("source_origin", self.source_origin)
        _positive("origin_detector", self.origin_detector)
        object.__setattr__(self, "source_origin", float(self.source_origin))
        object.__setattr__(self, "origin_detector", float(self.origin_detector))
        if self.source_origin <= self.fov_radius:
            raise ValueError(
                f"source_origin={self.source_origin:g} mm lies inside the image "
                f"(its corners are {self.fov_radius:.1f} mm from the isocentre)"
            )
        covered = self.source_origin * math.sin(self.fan_half_angle)
        inscribed = self.image_size * self.pixel_size / 2.0
        if covered < inscribed * (1 - 1e-9):
            warnings.warn(
                f"the fan covers a circle of radius {covered:.1f} mm, less than the "
                f"{inscribed:.1f} mm disk inscribed in the image: the field of view is truncated",
                stacklevel=3,
            )

    @property
    def source_detector(self) -> float:
        """Source to detector distance in mm."""
        return self.source_origin + self.origin_detector

    @property
    def magnification(self) -> float:
        """Geometric magnification of the isocentre onto the detector."""
        return self.source_detector / self.source_origin

    @property
    def fan_half_angle(self) -> float:
        """Half opening angle of the fan in radians."""
        return math.atan(self.det_count * self.det_spacing / 2.0 / self.source_detector)

    def _vec_source_detector(self, es: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.source_origin * es, -self.origin_detector * es

    def _astra_proj_geom(self) -> dict:
        import astra

        return astra.create_proj_geom(
            "fanflat",
            self.det_spacing,
            self.det_count,
            self.angles_array,
            self.source_origin,
            self.origin_detector,
        )


_GEOMETRY_TYPES: dict[str, type[CTGeometry]] = {
    "ParallelBeam2D": ParallelBeam2D,
    "FanBeam2D": FanBeam2D,
}


def geometry_from_dict(d: dict[str, Any]) -> CTGeometry:
    """Build a CT geometry from :meth:`CTGeometry.to_dict` output (any subclass)."""
    return CTGeometry.from_dict(d)
