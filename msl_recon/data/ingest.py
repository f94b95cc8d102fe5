"""Real CT/MRI ingest: readers, dataset layouts, registration, slicing and intensity scaling.

Layouts
-------
``rire``      ``<input>/patient_XXX/{ct, mr_T1, mr_T2}/`` each holding one image file (``.mhd``,
              ``.mha``, ``.nii[.gz]``, ``.nrrd``) or a DICOM series.
``synthrad``  ``<input>/<case>/{ct, mr, mask}.nii.gz`` (SynthRAD2023 brain; ``mr`` is T1-weighted).
``csv``       ``<input>`` is a CSV file with columns ``ct``, ``t1`` [, ``t2``] [, ``mask``]
              [, ``subject``]; relative paths are relative to the CSV's folder.
``single``    ``<input>`` is one image (a DICOM file, NIfTI, …; 2D or 3D) of one modality, or a
              folder of such files (one subject each), for CT-only or MRI-only simulation.

Processing of a paired subject: read (SimpleITK), check 3D and finite, register each MR to the CT
(:func:`msl_recon.data.registration.register_affine`, paper settings) or take it as registered
(``register=False``), resample onto the CT grid, optional head mask (given, or CT > −500 HU,
largest component, filled), CT window ``intensity.hu_to_unit`` and MR ``intensity.normalize_mr``
(robust 0.5–99.5 percentile min–max per volume), then axial slices that contain enough head, each
padded to a square field of view (air) and resized to ``N × N`` (anti-aliased).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError

__all__ = [
    "IMAGE_SUFFIXES",
    "SubjectFiles",
    "discover",
    "load_paired",
    "load_single",
    "read_image",
    "slice_to_square",
]

IMAGE_SUFFIXES = (".nii", ".nii.gz", ".mha", ".mhd", ".nrrd", ".nhdr", ".dcm")
_RIRE_DIRS = {"ct": "ct", "t1": "mr_T1", "t2": "mr_T2"}
AIR_HU = -1000.0


@dataclass
class SubjectFiles:
    """Files of one subject.

    Attributes
    ----------
    subject_id : str
    paths : dict
        ``{modality: path}`` (file or DICOM folder) for every modality found.
    mask : Path or None
        Head/body mask volume on the CT grid, if the layout has one.
    layout : str
    """

    subject_id: str
    paths: dict[str, Path]
    mask: Path | None = None
    layout: str = "csv"
    extra: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------- reading
def _has_suffix(p: Path) -> bool:
    name = p.name.lower()
    return any(name.endswith(s) for s in IMAGE_SUFFIXES)


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
        Float32 image with its spacing (mm), origin and direction. DICOM CT values are HU.
    """
    import SimpleITK as sitk

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
        reader = sitk.ImageSeriesReader()
        reader.SetFileNames(names)
        try:
            img = reader.Execute()
        except RuntimeError as exc:
            raise InputError(f"cannot read the DICOM series in {p}: {_first_line(exc)}") from None
        return sitk.Cast(img, sitk.sitkFloat32)
    if p.name.lower().endswith(".dcm"):
        return _read_dicom_file(p)
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


def _read_dicom_file(p: Path) -> Any:
    """One DICOM file via pydicom (decodes JPEG 2000 with pillow), rescaled (HU for CT)."""
    import pydicom
    import SimpleITK as sitk

    try:
        ds = pydicom.dcmread(str(p))
        arr = ds.pixel_array.astype(np.float32)
    except Exception as exc:  # pydicom raises many types for bad files
        raise InputError(f"cannot read DICOM {p}: {_first_line(exc)}") from None
    slope = float(getattr(ds, "RescaleSlope", 1.0) or 1.0)
    inter = float(getattr(ds, "RescaleIntercept", 0.0) or 0.0)
    arr = arr * slope + inter
    if arr.ndim == 3 and getattr(ds, "SamplesPerPixel", 1) != 1:
        raise InputError(f"{p} is a colour image; expected a scalar CT/MR image")
    img = sitk.GetImageFromArray(arr)
    ps = [float(v) for v in getattr(ds, "PixelSpacing", [1.0, 1.0])]
    if arr.ndim == 2:
        img.SetSpacing((ps[1], ps[0]))
    else:
        dz = float(getattr(ds, "SliceThickness", 1.0) or 1.0)
        img.SetSpacing((ps[1], ps[0], dz))
    return img


def _array(img: Any, what: str) -> np.ndarray:
    import SimpleITK as sitk

    arr = sitk.GetArrayFromImage(img).astype(np.float32)
    if not np.all(np.isfinite(arr)):
        bad = int((~np.isfinite(arr)).sum())
        raise InputError(f"{what} contains {bad} NaN/inf voxel(s)")
    return arr


def _require_3d(img: Any, what: str) -> None:
    if img.GetDimension() != 3 or min(img.GetSize()) < 2:
        raise InputError(
            f"{what} is {img.GetDimension()}D with size {img.GetSize()}; paired CT/MR ingest "
            "needs 3D volumes (use --layout single for one slice)"
        )


# ---------------------------------------------------------------------- layouts
def _find_image(folder: Path, stem: str) -> Path | None:
    for suffix in (".nii.gz", ".nii", ".mha", ".mhd", ".nrrd"):
        cand = folder / f"{stem}{suffix}"
        if cand.is_file():
            return cand
    return None


def discover(
    input_path: str | os.PathLike, layout: str, modalities: Sequence[str] = ("ct", "t1", "t2")
) -> list[SubjectFiles]:
    """Find the subjects of a dataset folder (or CSV / single file).

    Parameters
    ----------
    input_path : path-like
    layout : {'rire', 'synthrad', 'csv', 'single'}
    modalities : sequence of str
        Modalities wanted; a paired subject lacking one of them is an error (a CT without its MR).

    Raises
    ------
    InputError
        Missing input, empty dataset, a subject missing a requested modality.
    """
    p = Path(input_path)
    if not p.exists():
        raise InputError(f"input {p} does not exist")
    want = list(dict.fromkeys(modalities))
    if layout == "rire":
        out = _discover_rire(p, want)
    elif layout == "synthrad":
        out = _discover_synthrad(p, want)
    elif layout == "csv":
        out = _discover_csv(p, want)
    elif layout == "single":
        if len(want) != 1:
            raise InputError("--layout single takes exactly one modality (e.g. --modalities ct)")
        files = [p] if p.is_file() else sorted(f for f in p.iterdir() if _has_suffix(f))
        if not files:
            raise InputError(f"{p} holds no image files ({', '.join(IMAGE_SUFFIXES)})")
        out = [SubjectFiles(f.name.split(".")[0], {want[0]: f}, layout="single") for f in files]
    else:
        raise InputError(f"unknown layout {layout!r}; choose rire, synthrad, csv or single")
    if not out:
        raise InputError(f"no subjects found in {p} for layout {layout}")
    ids = [s.subject_id for s in out]
    if len(set(ids)) != len(ids):
        raise InputError(f"duplicate subject ids in {p}")
    return out


def _discover_rire(root: Path, want: list[str]) -> list[SubjectFiles]:
    if not root.is_dir():
        raise InputError(f"RIRE input {root} must be a folder of patient_XXX folders")
    out = []
    for d in sorted(root.iterdir()):
        if not (d.is_dir() and d.name.startswith("patient")):
            continue
        paths: dict[str, Path] = {}
        for m in want:
            sub = d / _RIRE_DIRS.get(m, m)
            if sub.is_dir():
                paths[m] = sub
        missing = [m for m in want if m not in paths]
        if missing:
            have = ", ".join(sorted(paths)) or "nothing"
            raise InputError(
                f"{d.name}: missing {', '.join(_RIRE_DIRS.get(m, m) for m in missing)}"
                f" (found {have}); a CT needs its MR (or choose --modalities)"
            )
        out.append(SubjectFiles(d.name, paths, layout="rire"))
    return out


def _discover_synthrad(root: Path, want: list[str]) -> list[SubjectFiles]:
    if not root.is_dir():
        raise InputError(f"SynthRAD2023 input {root} must be a folder of case folders")
    if "t2" in want:
        raise InputError("SynthRAD2023 has no T2 images; use --modalities ct,t1")
    out = []
    for d in sorted(root.iterdir()):
        if not d.is_dir():
            continue
        ct, mr = _find_image(d, "ct"), _find_image(d, "mr")
        if ct is None and mr is None:
            continue
        paths = {}
        if "ct" in want:
            if ct is None:
                raise InputError(f"{d.name}: mr found but ct.nii.gz is missing")
            paths["ct"] = ct
        if "t1" in want:
            if mr is None:
                raise InputError(f"{d.name}: ct found but its MR (mr.nii.gz) is missing")
            paths["t1"] = mr
        out.append(SubjectFiles(d.name, paths, mask=_find_image(d, "mask"), layout="synthrad"))
    return out


def _discover_csv(path: Path, want: list[str]) -> list[SubjectFiles]:
    if not path.is_file():
        raise InputError(f"CSV input {path} must be a file")
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        raise InputError(f"{path} has no rows")
    cols = {c.strip().lower() for c in (rows[0].keys() if rows else [])}
    missing_cols = [m for m in want if m not in cols]
    if missing_cols:
        raise InputError(f"{path} lacks column(s) {', '.join(missing_cols)} (has {sorted(cols)})")
    out = []
    for i, row in enumerate(rows):
        row = {k.strip().lower(): (v or "").strip() for k, v in row.items() if k}
        paths = {}
        for m in want:
            if not row.get(m):
                raise InputError(f"{path} row {i + 2}: empty {m} path (a CT needs its MR)")
            q = Path(row[m])
            paths[m] = q if q.is_absolute() else path.parent / q
        mask = row.get("mask") or None
        mpath = None
        if mask:
            mpath = Path(mask) if Path(mask).is_absolute() else path.parent / mask
        sid = row.get("subject") or f"{path.stem}-{i:04d}"
        out.append(SubjectFiles(sid, paths, mask=mpath, layout="csv"))
    return out


# ---------------------------------------------------------------------- geometry of slices
def slice_to_square(
    slices: np.ndarray, spacing_yx: tuple[float, float], size: int, fill: float
) -> np.ndarray:
    """Pad axial slices to a square physical field of view, then resize to ``size × size``.

    Parameters
    ----------
    slices : ndarray, ``(Z, H, W)``
    spacing_yx : (float, float)
        Pixel spacing in mm along rows and columns.
    size : int
        Output side N.
    fill : float
        Value of the padding (air).

    Returns
    -------
    ndarray, ``(Z, size, size)`` float32
    """
    from skimage.transform import resize

    z, h, w = slices.shape
    sy, sx = spacing_yx
    ext = max(h * sy, w * sx)
    th, tw = round(ext / sy), round(ext / sx)
    py, px = max(th - h, 0), max(tw - w, 0)
    padded = np.pad(
        slices,
        ((0, 0), (py // 2, py - py // 2), (px // 2, px - px // 2)),
        constant_values=fill,
    )
    if padded.shape[1:] == (size, size):
        return padded.astype(np.float32)
    out = resize(
        padded, (z, size, size), order=1, mode="edge", anti_aliasing=True, preserve_range=True
    )
    return out.astype(np.float32)


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
def load_paired(
    subject: SubjectFiles,
    *,
    size: int,
    n_slices: int | None = None,
    register: bool = True,
    head_mask: bool = True,
    seed: int = 0,
) -> tuple[dict[str, np.ndarray], np.ndarray, dict[str, Any]]:
    """Load, register and slice one paired subject.

    Parameters
    ----------
    subject : SubjectFiles
        Must contain ``ct``; MR modalities are registered to it.
    size : int
        Output image side N.
    n_slices : int, optional
        Axial slices to keep, evenly spread over the slices with ≥ 5 % head (all when None).
    register : bool
        Affine MI registration (paper settings); ``False`` takes the volumes as registered in
        physical space and only resamples the MR onto the CT grid.
    head_mask : bool
        Zero everything outside the head (given mask, or CT > −500 HU filled).
    seed : int
        Seed of the registration's random metric sampling.

    Returns
    -------
    images : dict
        ``{m: (Z, N, N) float32 in [0, 1]}``.
    slice_indices : ndarray, ``(Z,)`` int64
        Axial indices into the CT volume.
    info : dict
        Registration details (final metric and transform parameters per MR modality).
    """
    from .intensity import hu_to_unit, normalize_mr
    from .registration import register_affine, resample_like

    if "ct" not in subject.paths:
        raise InputError(f"{subject.subject_id}: paired ingest needs a CT")
    ct_img = read_image(subject.paths["ct"])
    _require_3d(ct_img, f"{subject.subject_id} CT ({subject.paths['ct']})")
    ct = _array(ct_img, f"{subject.subject_id} CT")
    vols: dict[str, np.ndarray] = {}
    info: dict[str, Any] = {}
    for m, path in subject.paths.items():
        if m == "ct":
            continue
        mr_img = read_image(path)
        _require_3d(mr_img, f"{subject.subject_id} {m} ({path})")
        _array(mr_img, f"{subject.subject_id} {m}")
        if register:
            res = register_affine(ct_img, mr_img, seed=seed)
            tx = res.transform
            info[m] = {
                "metric": res.metric,
                "iterations": res.iterations,
                "parameters": list(tx.GetParameters()),
            }
        else:
            tx = None
        mr = _array(resample_like(mr_img, ct_img, tx, default=0.0), f"{subject.subject_id} {m}")
        if float(np.abs(mr).max()) == 0.0:
            raise InputError(
                f"{subject.subject_id}: {m} does not overlap the CT in physical space "
                "(mismatched geometry; check origins/directions or drop --no-register)"
            )
        vols[m] = mr
    if subject.mask is not None:
        mimg = read_image(subject.mask)
        if mimg.GetSize() != ct_img.GetSize():
            raise InputError(
                f"{subject.subject_id}: mask size {mimg.GetSize()} differs from the "
                f"CT size {ct_img.GetSize()} (mismatched geometry)"
            )
        mask = _array(mimg, f"{subject.subject_id} mask") > 0.5
    else:
        mask = _head_mask(ct)
    images: dict[str, np.ndarray] = {}
    ct_u = np.asarray(hu_to_unit(ct), dtype=np.float32)
    if "ct" in subject.paths:
        images["ct"] = ct_u
    for m, v in vols.items():
        images[m] = np.asarray(normalize_mr(v), dtype=np.float32)
    if head_mask:
        for m in images:
            images[m] = images[m] * mask
    cover = mask.reshape(mask.shape[0], -1).mean(1)
    idx = _pick_slices(cover, n_slices)
    sp = ct_img.GetSpacing()  # (x, y, z)
    out = {
        m: np.clip(slice_to_square(v[idx], (sp[1], sp[0]), size, 0.0), 0.0, 1.0)
        for m, v in images.items()
    }
    return out, idx.astype(np.int64), info


def load_single(
    path: str | os.PathLike, modality: str, *, size: int, n_slices: int | None = None
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Load one real image (2D slice or 3D volume) of one modality for single-modality simulation.

    CT values are taken as HU and windowed by ``intensity.hu_to_unit``; MR images are scaled by
    ``intensity.normalize_mr``. Returns ``({modality: (Z, N, N)}, slice_indices)``.
    """
    from .intensity import hu_to_unit, normalize_mr

    img = read_image(path)
    arr = _array(img, str(path))
    sp = img.GetSpacing()
    if arr.ndim == 2:
        arr = arr[None]
    elif arr.ndim != 3:
        raise InputError(f"{path} is {arr.ndim}D; expected a 2D slice or a 3D volume")
    if modality == "ct":
        vol = np.asarray(hu_to_unit(arr), dtype=np.float32)
        cover = (arr > -500).reshape(arr.shape[0], -1).mean(1)
    else:
        vol = np.asarray(normalize_mr(arr), dtype=np.float32)
        cover = (vol > 0.05).reshape(arr.shape[0], -1).mean(1)
    idx = _pick_slices(cover, n_slices) if arr.shape[0] > 1 else np.array([0])
    out = np.clip(slice_to_square(vol[idx], (sp[1], sp[0]), size, 0.0), 0.0, 1.0)
    return {modality: out}, idx.astype(np.int64)
