"""Canonical orientation and physical pixel size of real volumes before slicing.

Canonical orientation
---------------------
Every volume is brought to **LPS** storage (the DICOM patient frame), with
``SimpleITK.DICOMOrient``: array axes ``(z, y, x)`` run inferior→superior, anterior→posterior
and right→left. An axial slice ``vol[z]`` is therefore shown in the radiological convention:
anterior at the top, the patient's right on the image's left. The same anatomy stored as LPS,
RAS (NIfTI's usual storage), PIR (a sagittal acquisition) or any other permutation/flip of the
axes gives the same voxels, so the same slices. A volume whose direction cosines are oblique
(not a permutation of the axes) is resampled (linear) onto an axis-aligned LPS grid with its
own spacing; a single oblique slice (2D, e.g. a tilted-gantry CT) is only permuted in-plane and
its obliquity is recorded.

Physical pixel size
-------------------
:func:`physical_slices` resamples axial slices onto a square ``N × N`` grid of a given pixel size
(mm) centred on the anatomy (Gaussian anti-aliasing when the grid is coarser than the source),
so a 200 mm head stays 200 mm wide. What does not fit in ``N × pixel_size`` is cut, with a
warning giving the cut in mm. :func:`fit_pixel_size` derives the pixel size that fits the
anatomy (for ``--pixel-size fit``).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "CANONICAL",
    "PhysicalGrid",
    "fit_pixel_size",
    "geometry_info",
    "geometry_with_pixel_size",
    "orientation_code",
    "physical_slices",
    "to_canonical",
]

CANONICAL = "LPS"
_OBLIQUE_TOL = 1e-4


def orientation_code(img: Any) -> str:
    """Three-letter orientation of an image's axes (``'LPS'``, ``'RAS'``, ``'PIR'`` …).

    The letters name where each array axis (x, y, z in SimpleITK order) points to, the ITK
    convention used by ``DICOMOrient``; oblique axes get their closest letter.
    """
    import SimpleITK as sitk

    d = img.GetDirection()
    if img.GetDimension() == 2:
        d = (d[0], d[1], 0.0, d[2], d[3], 0.0, 0.0, 0.0, 1.0)
    return sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(d)


def geometry_info(img: Any) -> dict[str, Any]:
    """Size, spacing (mm), origin (mm), direction cosines, orientation code and obliquity (°)."""
    n = img.GetDimension()
    return {
        "size": [int(v) for v in img.GetSize()],
        "spacing_mm": [float(v) for v in img.GetSpacing()],
        "origin_mm": [float(v) for v in img.GetOrigin()],
        "direction": [float(v) for v in img.GetDirection()],
        "orientation": orientation_code(img),
        "obliquity_deg": _obliquity_deg(np.asarray(img.GetDirection()).reshape(n, n)),
    }


def _obliquity_deg(direction: np.ndarray) -> float:
    """Largest angle (degrees) between an axis and its nearest coordinate axis."""
    cos = np.clip(np.abs(direction).max(axis=0), 0.0, 1.0)
    return float(np.degrees(np.arccos(cos)).max())


def to_canonical(img: Any, *, default: float = 0.0) -> tuple[Any, dict[str, Any]]:
    """Bring a 2D or 3D image to the canonical LPS storage.

    Parameters
    ----------
    img : SimpleITK.Image
        Scalar 2D slice or 3D volume with spacing, origin and direction.
    default : float
        Value outside the source when an oblique volume is resampled (−1000 for CT in HU).

    Returns
    -------
    image : SimpleITK.Image
        3D (a 2D input becomes one slice), axes L, P, S.
    info : dict
        The source geometry (:func:`geometry_info`), ``obliquity_deg`` and ``resampled``.
    """
    import SimpleITK as sitk

    info = geometry_info(img)
    if img.GetDimension() == 2:
        img = sitk.JoinSeries(img)  # z spacing 1, direction identity in z
    d = np.asarray(img.GetDirection()).reshape(3, 3)
    oblique = _obliquity_deg(d)
    out = sitk.DICOMOrient(img, CANONICAL)
    info["obliquity_deg"] = oblique
    info["resampled"] = False
    if out.GetSize()[2] == 1:
        # one slice: keep its own plane (a tilted slice stays a slice); the tilt is recorded
        out.SetDirection(np.eye(3).ravel().tolist())
    elif oblique > np.degrees(_OBLIQUE_TOL):
        out = _axis_aligned(out, default)
        info["resampled"] = True
    return out, info


def _axis_aligned(img: Any, default: float) -> Any:
    """Resample an (oblique) image onto an identity-direction grid covering its extent."""
    import SimpleITK as sitk

    size = np.asarray(img.GetSize())
    corners = np.array(
        [
            img.TransformContinuousIndexToPhysicalPoint(
                [float(c) * (s - 1) for c, s in zip(corner, size, strict=True)]
            )
            for corner in np.ndindex(2, 2, 2)
        ]
    )
    spacing = np.asarray(img.GetSpacing())
    lo, hi = corners.min(0), corners.max(0)
    new_size = np.maximum(np.round((hi - lo) / spacing).astype(int) + 1, 1)
    ref = sitk.Image([int(v) for v in new_size], img.GetPixelID())
    ref.SetSpacing(spacing.tolist())
    ref.SetOrigin(lo.tolist())
    return sitk.Resample(img, ref, sitk.Transform(), sitk.sitkLinear, float(default))


@dataclass
class PhysicalGrid:
    """The square in-plane grid of :func:`physical_slices` (physical LPS mm).

    Attributes
    ----------
    pixel_size : float
        mm per pixel, rows and columns.
    origin_xy : (float, float)
        Physical (x, y) of the centre of pixel ``[0, 0]`` (x: right→left, y: anterior→posterior).
    size : int
    cut_mm : float
        Largest extent of anatomy (mm) that falls outside the grid on any side (0: nothing cut).
    """

    pixel_size: float
    origin_xy: tuple[float, float]
    size: int
    cut_mm: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        return {
            "pixel_size_mm": self.pixel_size,
            "origin_xy_mm": list(self.origin_xy),
            "size": self.size,
            "cut_mm": self.cut_mm,
        }


def _anatomy_box(img: Any, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Physical (x, y) bounding box of a ``(z, y, x)`` mask on an identity-direction image."""
    if not mask.any():
        return None
    ys = np.flatnonzero(mask.any(axis=(0, 2)))
    xs = np.flatnonzero(mask.any(axis=(0, 1)))
    sx, sy = img.GetSpacing()[:2]
    ox, oy = img.GetOrigin()[:2]
    lo = np.array([ox + (xs[0] - 0.5) * sx, oy + (ys[0] - 0.5) * sy])
    hi = np.array([ox + (xs[-1] + 0.5) * sx, oy + (ys[-1] + 0.5) * sy])
    return lo, hi


def fit_pixel_size(img: Any, mask: np.ndarray, size: int, margin: float = 0.05) -> float:
    """Pixel size (mm) such that the anatomy of ``mask`` fits ``size`` pixels with a margin.

    Parameters
    ----------
    img : SimpleITK.Image
        Canonical (LPS, identity direction) 3D image.
    mask : ndarray of bool, ``(z, y, x)``
        Anatomy.
    size : int
    margin : float
        Fraction of the anatomy's larger in-plane extent added on each side.
    """
    box = _anatomy_box(img, mask)
    if box is None:
        sx, sy = img.GetSpacing()[:2]
        nx, ny = img.GetSize()[:2]
        return float(max(nx * sx, ny * sy) / size)
    ext = float((box[1] - box[0]).max())
    return ext * (1.0 + 2.0 * margin) / size


def physical_slices(
    img: Any,
    mask: np.ndarray,
    *,
    pixel_size: float,
    size: int,
    fill: float,
    what: str = "image",
    grid: PhysicalGrid | None = None,
) -> tuple[np.ndarray, PhysicalGrid]:
    """Resample every axial slice of a canonical volume onto a square physical grid.

    Parameters
    ----------
    img : SimpleITK.Image
        Canonical 3D image (:func:`to_canonical`), ``Z`` slices.
    mask : ndarray of bool, ``(Z, Y, X)``
        Anatomy on ``img``'s grid: the grid is centred on its in-plane bounding box (the image
        centre when empty) and a warning says when it does not fit.
    pixel_size : float
        Output pixel size in mm.
    size : int
        Output side ``N``.
    fill : float
        Value outside the source (air: −1000 HU for CT, 0 for MR).
    what : str
        Name used in the warning.
    grid : PhysicalGrid, optional
        Reuse the grid of another modality of the same subject (same slices, same pixels).

    Returns
    -------
    slices : ndarray, ``(Z, N, N)`` float32
    grid : PhysicalGrid
    """
    import SimpleITK as sitk

    if pixel_size <= 0:
        raise ValueError(f"pixel_size must be > 0, got {pixel_size}")
    sp = np.asarray(img.GetSpacing(), dtype=float)
    if grid is None:
        box = _anatomy_box(img, mask)
        if box is None:
            n = np.asarray(img.GetSize()[:2], dtype=float)
            o = np.asarray(img.GetOrigin()[:2], dtype=float)
            box = (o - 0.5 * sp[:2], o + (n - 0.5) * sp[:2])
        centre = (box[0] + box[1]) / 2.0
        half = size * pixel_size / 2.0
        cut = float(max(0.0, np.max(box[1] - box[0]) / 2.0 - half))
        origin_xy = centre - half + pixel_size / 2.0
        grid = PhysicalGrid(
            float(pixel_size), (float(origin_xy[0]), float(origin_xy[1])), size, cut
        )
        if cut > 0.0:
            warnings.warn(
                f"{what}: the anatomy is {np.max(box[1] - box[0]):.0f} mm wide but the field of "
                f"view is {size * pixel_size:.0f} mm ({size} × {pixel_size:.3f} mm): "
                f"{cut:.0f} mm cut on each side (use a larger pixel size, or pixel size 'fit')",
                stacklevel=2,
            )
    var = [max(pixel_size**2 - s**2, 0.0) / 4.0 for s in sp[:2]] + [0.0]
    src = img
    if max(var) > 0:
        src = sitk.DiscreteGaussian(sitk.Cast(img, sitk.sitkFloat32), variance=var)
    ref = sitk.Image([size, size, img.GetSize()[2]], sitk.sitkFloat32)
    ref.SetSpacing((pixel_size, pixel_size, float(sp[2])))
    ref.SetOrigin((grid.origin_xy[0], grid.origin_xy[1], float(img.GetOrigin()[2])))
    out = sitk.Resample(
        sitk.Cast(src, sitk.sitkFloat32), ref, sitk.Transform(), sitk.sitkLinear, float(fill)
    )
    return sitk.GetArrayFromImage(out).astype(np.float32), grid


def geometry_with_pixel_size(geometry: Any, pixel_size: float) -> Any:
    """The same CT system scaled so that its pixels are ``pixel_size`` mm.

    Every length (pixel size, detector spacing, source and detector distances of a fan beam)
    is multiplied by ``pixel_size / geometry.pixel_size``: in pixel units nothing changes, the
    field of view becomes ``image_size × pixel_size``.
    """
    import dataclasses

    if pixel_size <= 0:
        raise ValueError(f"pixel_size must be > 0 mm, got {pixel_size}")
    k = float(pixel_size) / float(geometry.pixel_size)
    names = {f.name for f in dataclasses.fields(geometry)}
    lengths = [
        n for n in ("pixel_size", "det_spacing", "source_origin", "origin_detector") if n in names
    ]
    changes = {n: getattr(geometry, n) * k for n in lengths}
    changes["pixel_size"] = float(pixel_size)
    return dataclasses.replace(geometry, **changes)
