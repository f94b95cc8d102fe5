"""Real CT/MRI ingest: readers, dataset layouts, registration, slicing and intensity scaling.

Layouts (:mod:`msl_recon.data.layouts`; ``docs/data-layouts.md`` has a folder tree of each)
--------------------------------------------------------------------------------------------
``rire``      ``<input>/patient_XXX/{ct, mr_T1, mr_T2}/`` each holding one image file (``.mhd``,
              ``.mha``, ``.nii[.gz]``, ``.nrrd``) or a DICOM series.
``synthrad``  ``<input>/<case>/{ct, mr, mask}.nii.gz`` (SynthRAD2023 brain; ``mr`` is T1-weighted).
``csv``       ``<input>`` is a CSV file with columns ``ct``, ``t1`` [, ``t2``] [, ``mask``]
              [, ``subject``]; relative paths are relative to the CSV's folder.
``single``    ``<input>`` is one image (a DICOM file, NIfTI, …; 2D or 3D) of one modality, or a
              folder of such files (one subject each), for CT-only or MRI-only simulation.
``auto``      detected from the input (:func:`msl_recon.data.checks.detect_layout`).

Processing of a paired subject: read (SimpleITK; truncated files refused, DICOM Modality checked
against the role), bring the CT to the canonical LPS orientation
(:mod:`msl_recon.data.orientation`), register each MR to the CT
(:func:`msl_recon.data.registration.register_affine`, paper settings) or take it as registered
(``register=False``), resample onto the canonical CT grid, optional head mask (given, or
CT > −500 HU, largest component, filled), CT window ``intensity.hu_to_unit`` and MR
``intensity.normalize_mr`` (robust 0.5–99.5 percentile min–max per volume), then axial slices
that contain enough head, resampled to ``N × N`` pixels of the requested physical pixel size,
centred on the head (cut with a warning when the head does not fit). The returned provenance
holds the source geometry, the grid and the registration of every MR.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from .layouts import IMAGE_SUFFIXES, LAYOUTS, SubjectFiles, _has_suffix, discover

__all__ = [
    "IMAGE_SUFFIXES",
    "LAYOUTS",
    "SubjectFiles",
    "discover",
    "fit_dataset_pixel_size",
    "format_registration",
    "load_paired",
    "load_single",
    "read_image",
]

AIR_HU = -1000.0
log = logging.getLogger(__name__)


# ---------------------------------------------------------------------- reading
MODALITY_KEY = "0008|0060"  # DICOM Modality, kept in the SimpleITK image's metadata


def read_image(path: str | os.PathLike) -> Any:
    """Read a volume or slice with SimpleITK (pydicom for single DICOM files).

    Parameters
    ----------
    path : path-like
        An image file (NIfTI, MHA/MHD, NRRD, DICOM) or a folder holding one image file or one
        DICOM series.

    Returns
    -------
    SimpleITK.Image
        Float32 image with its spacing (mm), origin and direction. DICOM CT values are HU; a
        DICOM input carries its Modality tag in the metadata key ``0008|0060``.

    Raises
    ------
    InputError
        Missing, unreadable, truncated (fewer voxels than the header announces) or multi-channel.
    """
    import SimpleITK as sitk

    from .checks import check_file_complete

    p = Path(path)
    if not p.exists():
        raise InputError(f"{p} does not exist")
    if p.is_dir():
        files = sorted(
            f
            for f in p.iterdir()
            if f.is_file() and _has_suffix(f) and not f.name.lower().endswith((".raw", ".zraw"))
        )
        non_dcm = [f for f in files if not f.name.lower().endswith(".dcm")]
        if len(non_dcm) == 1:
            return read_image(non_dcm[0])
        if len(non_dcm) > 1:
            raise InputError(
                f"{p} holds several images ({', '.join(f.name for f in non_dcm)}); expected one"
            )
        ids = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(p))
        if not ids:
            raise InputError(f"{p} contains no readable image or DICOM series")
        names = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(p), ids[0])
        if len(names) == 1:
            return _read_dicom_file(Path(names[0]))
        reader = sitk.ImageSeriesReader()
        reader.SetFileNames(names)
        try:
            img = reader.Execute()
        except RuntimeError as exc:
            raise InputError(f"cannot read the DICOM series in {p}: {_first_line(exc)}") from None
        out = sitk.Cast(img, sitk.sitkFloat32)
        tag = _dicom_modality(Path(names[0]))
        if tag:
            out.SetMetaData(MODALITY_KEY, tag)
        return out
    if p.name.lower().endswith(".dcm"):
        return _read_dicom_file(p)
    check_file_complete(p)
    try:
        img = sitk.ReadImage(str(p))
    except RuntimeError as exc:
        raise InputError(f"cannot read {p}: {_first_line(exc)}") from None
    if img.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(
            f"{p} has {img.GetNumberOfComponentsPerPixel()} channels; expected a scalar image"
        )
    return sitk.Cast(img, sitk.sitkFloat32)


def _first_line(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return (lines[-1] if lines else type(exc).__name__)[:200]


def _dicom_modality(p: Path) -> str | None:
    import pydicom

    try:
        return str(pydicom.dcmread(str(p), stop_before_pixels=True).get("Modality", "")) or None
    except Exception:  # an unreadable header: the pixel reader reports it
        return None


def _read_dicom_file(p: Path) -> Any:
    """One DICOM file via pydicom (decodes JPEG 2000 with pillow), rescaled (HU for CT).

    The slice keeps its physical geometry: pixel spacing, ImagePositionPatient as origin and
    ImageOrientationPatient as direction (a 3D image of one slice, LPS patient coordinates).
    """
    import pydicom
    import SimpleITK as sitk

    try:
        ds = pydicom.dcmread(str(p))
        arr = ds.pixel_array.astype(np.float32)
    except Exception as exc:  # pydicom raises many types for bad files
        raise InputError(f"cannot read DICOM {p}: {_first_line(exc)}") from None
    if getattr(ds, "SamplesPerPixel", 1) != 1:
        raise InputError(f"{p} is a colour image; expected a scalar CT/MR image")
    slope = float(getattr(ds, "RescaleSlope", 1.0) or 1.0)
    inter = float(getattr(ds, "RescaleIntercept", 0.0) or 0.0)
    arr = arr * slope + inter
    if arr.ndim == 3:  # multi-frame
        img = sitk.GetImageFromArray(arr)
    else:
        img = sitk.GetImageFromArray(arr[None])
    ps = [float(v) for v in getattr(ds, "PixelSpacing", [1.0, 1.0])]
    dz = float(
        getattr(ds, "SpacingBetweenSlices", None) or getattr(ds, "SliceThickness", 1.0) or 1.0
    )
    img.SetSpacing((ps[1], ps[0], dz))
    iop = getattr(ds, "ImageOrientationPatient", None)
    if iop is not None and len(iop) == 6:
        r, c = np.asarray(iop[:3], float), np.asarray(iop[3:], float)
        n = np.cross(r, c)
        img.SetDirection(np.stack([r, c, n], axis=1).ravel().tolist())
    ipp = getattr(ds, "ImagePositionPatient", None)
    if ipp is not None and len(ipp) == 3:
        img.SetOrigin([float(v) for v in ipp])
    if getattr(ds, "Modality", None):
        img.SetMetaData(MODALITY_KEY, str(ds.Modality))
    return img


def _modality_tag(img: Any) -> str | None:
    return img.GetMetaData(MODALITY_KEY) if img.HasMetaDataKey(MODALITY_KEY) else None


def _array(img: Any, what: str) -> np.ndarray:
    import SimpleITK as sitk

    arr = sitk.GetArrayFromImage(img).astype(np.float32)
    if not np.all(np.isfinite(arr)):
        bad = int((~np.isfinite(arr)).sum())
        raise InputError(f"{what} contains {bad} NaN/inf voxel(s)")
    return arr


def _require_3d(img: Any, what: str) -> None:
    if img.GetDimension() == 3 and img.GetSize()[2] == 1:
        raise InputError(
            f"{what} is a single slice {img.GetSize()[:2]}; paired CT/MR ingest needs volumes "
            "(a DICOM series of ≥ 2 slices, or a 3D file); use --layout single for one slice"
        )
    if img.GetDimension() != 3 or min(img.GetSize()) < 2:
        raise InputError(
            f"{what} is {img.GetDimension()}D with size {img.GetSize()}; paired CT/MR ingest "
            "needs 3D volumes (use --layout single for one slice)"
        )


def _head_mask(ct_hu: np.ndarray) -> np.ndarray:
    from scipy import ndimage

    m = ct_hu > -500.0
    lab, n = ndimage.label(m)
    if n > 1:
        sizes = ndimage.sum(m, lab, index=np.arange(1, n + 1))
        m = lab == (1 + int(np.argmax(sizes)))
    for z in range(m.shape[0]):
        m[z] = ndimage.binary_fill_holes(m[z])
    return m


def _pick_slices(cover: np.ndarray, n_slices: int | None, min_cover: float = 0.05) -> np.ndarray:
    ok = np.flatnonzero(cover >= min_cover)
    if ok.size == 0:
        ok = np.arange(cover.size)
    if n_slices is None or n_slices >= ok.size:
        return ok
    return ok[np.round(np.linspace(0, ok.size - 1, n_slices)).astype(int)]


# ---------------------------------------------------------------------- loading
def _source_info(img: Any, path: Path, role: str, what: str) -> dict[str, Any]:
    from .checks import check_modality_tag
    from .orientation import geometry_info

    info = {"path": str(path), **geometry_info(img)}
    info["dicom_modality"] = check_modality_tag(_modality_tag(img), role, what)
    return info


def _resolve_pixel_size(pixel_size: float | str | None, img: Any, mask: np.ndarray, size: int):
    from .orientation import fit_pixel_size

    if pixel_size is None or pixel_size == "fit":
        return fit_pixel_size(img, mask, size), "fit"
    px = float(pixel_size)
    if px <= 0:
        raise InputError(f"pixel size must be > 0 mm, got {pixel_size}")
    return px, "given"


def _select(img: Any, idx: np.ndarray) -> Any:
    """The axial slices ``idx`` of a canonical volume (in-plane geometry kept)."""
    import SimpleITK as sitk

    sub = sitk.JoinSeries([img[:, :, int(z)] for z in idx])
    sub.SetSpacing((*img.GetSpacing()[:2], float(img.GetSpacing()[2])))
    sub.SetOrigin((*img.GetOrigin()[:2], float(img.GetOrigin()[2])))
    return sub


def _slices(
    vols: dict[str, Any],
    fills: dict[str, float],
    mask_img: Any,
    mask: np.ndarray,
    idx: np.ndarray,
    *,
    pixel_size: float,
    size: int,
    what: str,
) -> tuple[dict[str, np.ndarray], np.ndarray, Any]:
    """Resample the slices ``idx`` of every canonical volume onto one physical grid."""
    from .orientation import physical_slices

    grid = None
    out: dict[str, np.ndarray] = {}
    for m, img in vols.items():
        out[m], grid = physical_slices(
            _select(img, idx),
            mask,
            pixel_size=pixel_size,
            size=size,
            fill=fills[m],
            what=what,
            grid=grid,
        )
    mk, _ = physical_slices(
        _select(mask_img, idx), mask, pixel_size=pixel_size, size=size, fill=0.0, grid=grid
    )
    return out, mk > 0.5, grid


def load_paired(
    subject: SubjectFiles,
    *,
    size: int,
    pixel_size: float | str | None = None,
    n_slices: int | None = None,
    register: bool = True,
    head_mask: bool = True,
    seed: int = 0,
    strict: bool = False,
) -> tuple[dict[str, np.ndarray], np.ndarray, dict[str, Any]]:
    """Load, orient, register and slice one paired subject at a physical pixel size.

    Parameters
    ----------
    subject : SubjectFiles
        Must contain ``ct``; MR modalities are registered to it.
    size : int
        Output image side N.
    pixel_size : float or 'fit', optional
        Output pixel size in mm (pass the CT geometry's ``pixel_size``); ``'fit'`` or None
        derives it from the head's extent (5 % margin). The head keeps its physical size; what
        falls outside ``N × pixel_size`` is cut with a warning.
    n_slices : int, optional
        Axial slices to keep, evenly spread over the slices with ≥ 5 % head (all when None).
    register : bool
        Affine MI registration (paper settings); ``False`` takes the volumes as registered in
        physical space and only resamples the MR onto the CT grid.
    head_mask : bool
        Zero everything outside the head (given mask, or CT > −500 HU filled).
    seed : int
        Seed of the registration's random metric sampling.
    strict : bool
        A registration that ends with a worse metric than it started raises instead of warning.

    Returns
    -------
    images : dict
        ``{m: (Z, N, N) float32 in [0, 1]}``, axial slices in the canonical LPS orientation
        (anterior at the top, patient right on the left).
    slice_indices : ndarray, ``(Z,)`` int64
        Axial indices into the canonical (LPS) CT volume, inferior → superior.
    provenance : dict
        ``canonical_orientation``, ``pixel_size_mm`` (and whether given or fitted), ``grid``
        (origin of pixel [0, 0] in LPS mm, cut), ``slice_positions_mm`` (S coordinate of every
        slice), ``slice_spacing_mm``, ``sources`` (per modality: path, size, spacing, origin,
        direction, orientation code, obliquity, DICOM Modality), ``register`` and
        ``registration`` (per MR: :meth:`RegistrationResult.to_dict`).
    """
    from .. import modalities
    from .orientation import CANONICAL, to_canonical
    from .registration import register_affine, resample_like

    sid = subject.subject_id
    if "ct" not in subject.paths:
        raise InputError(f"{sid}: paired ingest needs a CT")
    ct_raw = read_image(subject.paths["ct"])
    _require_3d(ct_raw, f"{sid} CT ({subject.paths['ct']})")
    _array(ct_raw, f"{sid} CT")
    sources = {"ct": _source_info(ct_raw, subject.paths["ct"], "ct", f"{sid} CT")}
    ct_img, orient = to_canonical(ct_raw, default=AIR_HU)
    sources["ct"].update(obliquity_deg=orient["obliquity_deg"], resampled=orient["resampled"])
    # every volume is mapped to [0, 1] as a whole (its plug-in's volume_to_unit), then sliced
    vols: dict[str, Any] = {
        "ct": _from_array(modalities.get("ct").volume_to_unit(_array(ct_img, f"{sid} CT")), ct_img)
    }
    reg_info: dict[str, Any] = {}
    for m, path in subject.paths.items():
        if m == "ct":
            continue
        mr_img = read_image(path)
        _require_3d(mr_img, f"{sid} {m} ({path})")
        _array(mr_img, f"{sid} {m}")
        sources[m] = _source_info(mr_img, path, m, f"{sid} {m}")
        tx = None
        if register:
            res = register_affine(ct_img, mr_img, seed=seed)
            tx = res.transform
            reg_info[m] = res.to_dict()
            log.debug(format_registration(sid, m, reg_info[m]))
            if res.worsened:
                msg = (
                    f"{sid}: registration of {m} to the CT ended worse than it started (MI "
                    f"{res.initial_metric:.4f} → {res.metric:.4f}, {res.stop_condition})"
                )
                if strict:
                    raise InputError(msg)
                warnings.warn(msg, stacklevel=2)
        mr = resample_like(mr_img, ct_img, tx, default=0.0)
        arr = _array(mr, f"{sid} {m}")
        if float(np.abs(arr).max()) == 0.0:
            raise InputError(
                f"{sid}: {m} does not overlap the CT in physical space "
                "(mismatched geometry; check origins/directions or drop --no-register)"
            )
        vols[m] = _from_array(modalities.get(m).volume_to_unit(arr), ct_img)
    ct = _array(ct_img, f"{sid} CT")
    if subject.mask is not None:
        mimg = read_image(subject.mask)
        if mimg.GetSize() != ct_raw.GetSize():
            raise InputError(
                f"{sid}: mask size {mimg.GetSize()} differs from the "
                f"CT size {ct_raw.GetSize()} (mismatched geometry)"
            )
        mimg.CopyInformation(ct_raw)
        mask = _array(resample_like(mimg, ct_img, interpolator="nearest"), f"{sid} mask") > 0.5
    else:
        mask = _head_mask(ct)
    cover = mask.reshape(mask.shape[0], -1).mean(1)
    idx = _pick_slices(cover, n_slices)
    px, px_source = _resolve_pixel_size(pixel_size, ct_img, mask, size)
    fills = {m: 0.0 for m in vols}  # air is 0 on every modality's [0, 1] scale
    raw, mk, grid = _slices(
        vols,
        fills,
        _from_array(mask.astype(np.float32), ct_img),
        mask,
        idx,
        pixel_size=px,
        size=size,
        what=sid,
    )
    out: dict[str, np.ndarray] = {}
    for m, u in raw.items():
        if head_mask:
            u = u * mk
        out[m] = np.clip(u, 0.0, 1.0).astype(np.float32)
    prov = {
        "canonical_orientation": CANONICAL,
        "pixel_size_mm": px,
        "pixel_size_source": px_source,
        "grid": grid.to_dict(),
        "slice_positions_mm": [
            float(ct_img.TransformIndexToPhysicalPoint((0, 0, int(z)))[2]) for z in idx
        ],
        "slice_indices": [int(z) for z in idx],
        "slice_spacing_mm": float(ct_img.GetSpacing()[2]),
        "sources": sources,
        "register": bool(register),
        "registration": reg_info,
    }
    return out, idx.astype(np.int64), prov


def _from_array(arr: np.ndarray, like: Any) -> Any:
    import SimpleITK as sitk

    img = sitk.GetImageFromArray(np.ascontiguousarray(arr, dtype=np.float32))
    img.CopyInformation(like)
    return img


def format_registration(subject_id: str, modality: str, reg: dict[str, Any]) -> str:
    """One summary line of a registration (:meth:`RegistrationResult.to_dict`)."""
    flag = "  WORSE" if reg.get("worsened") else ""
    return (
        f"{subject_id} {modality}: MI {reg['metric_initial']:.4f} → {reg['metric_final']:.4f} "
        f"({reg['iterations']} it, init {reg['initializer']}; {reg['stop_condition']}){flag}"
    )


def load_single(
    path: str | os.PathLike,
    modality: str,
    *,
    size: int,
    pixel_size: float | str | None = None,
    n_slices: int | None = None,
) -> tuple[dict[str, np.ndarray], np.ndarray, dict[str, Any]]:
    """Load one real image (2D slice or 3D volume) of one modality for single-modality simulation.

    The image is brought to the canonical LPS orientation and resampled to ``pixel_size`` mm
    (``'fit'``/None: derived from the anatomy) as in :func:`load_paired`. CT values are taken as
    HU and windowed by ``intensity.hu_to_unit``; MR images are scaled by
    ``intensity.normalize_mr``. Returns ``({modality: (Z, N, N)}, slice_indices, provenance)``
    (provenance as for :func:`load_paired`, without registration; ``register`` is None).
    """
    from .. import modalities
    from .orientation import CANONICAL, to_canonical

    p = Path(path)
    raw = read_image(p)
    _array(raw, str(p))
    sources = {modality: _source_info(raw, p, modality, str(p))}
    spec = modalities.get(modality)
    fill = spec.air_value
    img, orient = to_canonical(raw, default=fill)
    sources[modality].update(obliquity_deg=orient["obliquity_deg"], resampled=orient["resampled"])
    arr = _array(img, str(p))
    mask = spec.body_mask(arr)
    # normalised as a whole volume, then sliced in [0, 1] (fill: its unit value of air)
    vol = _from_array(spec.volume_to_unit(arr), img)
    fill = 0.0  # air on the [0, 1] scale
    cover = mask.reshape(arr.shape[0], -1).mean(1)
    idx = _pick_slices(cover, n_slices) if arr.shape[0] > 1 else np.array([0])
    px, px_source = _resolve_pixel_size(pixel_size, img, mask, size)
    sl, _, grid = _slices(
        {modality: vol},
        {modality: fill},
        _from_array(mask.astype(np.float32), img),
        mask,
        idx,
        pixel_size=px,
        size=size,
        what=str(p),
    )
    u = sl[modality]
    prov = {
        "canonical_orientation": CANONICAL,
        "pixel_size_mm": px,
        "pixel_size_source": px_source,
        "grid": grid.to_dict(),
        "slice_positions_mm": [
            float(img.TransformIndexToPhysicalPoint((0, 0, int(z)))[2]) for z in idx
        ],
        "slice_indices": [int(z) for z in idx],
        "slice_spacing_mm": float(img.GetSpacing()[2]),
        "sources": sources,
        "register": None,
        "registration": {},
    }
    return {modality: np.clip(u, 0.0, 1.0).astype(np.float32)}, idx.astype(np.int64), prov


def fit_dataset_pixel_size(subjects: list[SubjectFiles], size: int) -> float:
    """Pixel size (mm) that fits the head of every subject in ``size`` pixels (5 % margin).

    Reads the CT of each subject (the only image of a ``single`` subject), brings it to the
    canonical orientation and takes the largest :func:`orientation.fit_pixel_size`. Used for
    ``msl-recon simulate --pixel-size fit``.
    """
    from .. import modalities
    from .orientation import fit_pixel_size, to_canonical

    best = 0.0
    for s in subjects:
        m = "ct" if "ct" in s.paths else next(iter(s.paths))  # the CT is the reference image
        spec = modalities.get(m)
        img, _ = to_canonical(read_image(s.paths[m]), default=spec.air_value)
        arr = _array(img, s.subject_id)
        mask = spec.body_mask(arr)
        best = max(best, fit_pixel_size(img, mask, size))
    if best <= 0:
        raise InputError("no subjects to fit the pixel size to")
    return best
