"""Input checks of real data: truncated files, DICOM Modality tags, dataset layouts.

* :func:`check_file_complete`: a NIfTI (``.nii``/``.nii.gz``), MetaImage (``.mhd`` + raw) or
  NRRD file must hold every voxel its header announces. SimpleITK reads the first kilobyte of a
  truncated ``.nii.gz`` as a volume of zeros without complaint; nibabel's header gives the
  expected byte count and the file (decompressed as a stream) is compared against it.
* :func:`check_modality_tag`: a DICOM ``Modality`` (0008,0060) that contradicts the role of the
  image (an ``MR`` file given as the CT) gives a warning.
* :func:`detect_layout` and :data:`LAYOUT_HELP`: which layout a folder looks like, and an error
  text that names every layout and what it expects.
"""

from __future__ import annotations

import gzip
import os
import warnings
from pathlib import Path

from ..errors import InputError

__all__ = ["LAYOUT_HELP", "check_file_complete", "check_modality_tag", "detect_layout"]

LAYOUT_HELP = (
    "layouts: rire = <input>/patient_XXX/{ct,mr_T1,mr_T2}/ (one image or DICOM series each); "
    "synthrad = <input>/<case>/{ct,mr[,mask]}.nii.gz; csv = a .csv file with columns ct,t1"
    "[,t2][,mask][,subject]; single = one image file or a folder of image files of one modality"
)

_DICOM_MODALITY = {"ct": ("CT",), "t1": ("MR",), "t2": ("MR",), "mr": ("MR",)}


def _expected_nifti_bytes(path: Path) -> int:
    import nibabel as nib

    try:
        hdr = nib.load(str(path)).header
    except Exception as exc:  # nibabel raises several types for bad headers
        raise InputError(f"cannot read {path}: not a valid NIfTI header ({exc})") from None
    n = 1
    for d in hdr.get_data_shape():
        n *= int(d)
    return int(hdr.get_data_offset()) + n * hdr.get_data_dtype().itemsize


def _gzip_length(path: Path) -> int:
    total = 0
    try:
        with gzip.open(path, "rb") as fh:
            while True:
                chunk = fh.read(1 << 22)
                if not chunk:
                    break
                total += len(chunk)
    except (EOFError, OSError, gzip.BadGzipFile) as exc:
        raise InputError(f"{path} is truncated or corrupt ({exc})") from None
    return total


def check_file_complete(path: str | os.PathLike) -> None:
    """Raise :class:`InputError` if an image file holds fewer bytes than its header announces.

    NIfTI (``.nii``, ``.nii.gz``) and MetaImage (``.mhd`` with an uncompressed raw file, and
    ``.mha``) are checked; other formats pass through (their readers fail on truncation).
    """
    p = Path(path)
    name = p.name.lower()
    if name.endswith((".nii", ".nii.gz")):
        expected = _expected_nifti_bytes(p)
        actual = _gzip_length(p) if name.endswith(".gz") else p.stat().st_size
        if actual < expected:
            raise InputError(
                f"{p} is truncated: {actual} bytes of image data, the header announces {expected}"
            )
    elif name.endswith((".mhd", ".mha")):
        _check_metaimage(p)


def _check_metaimage(p: Path) -> None:
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(p))
    try:
        reader.ReadImageInformation()
    except RuntimeError as exc:
        raise InputError(f"cannot read {p}: {str(exc).strip().splitlines()[-1][:200]}") from None
    header = {}
    with p.open("rb") as fh:
        for raw in fh:
            line = raw.decode("latin-1").strip()
            if "=" in line:
                k, v = line.split("=", 1)
                header[k.strip()] = v.strip()
            if line.startswith("ElementDataFile"):
                break
    if header.get("CompressedData", "False").lower() == "true":
        return
    itemsize = sitk.Image(1, 1, reader.GetPixelID()).GetSizeOfPixelComponent()
    n = itemsize * reader.GetNumberOfComponents()
    for s in reader.GetSize():
        n *= int(s)
    data = header.get("ElementDataFile", "")
    if data == "LOCAL":
        with p.open("rb") as fh:
            content = fh.read()
        idx = content.find(b"ElementDataFile")
        start = content.find(b"\n", idx) + 1
        actual = len(content) - start
    elif data and not data.startswith("LIST") and "%" not in data:
        raw = p.parent / data
        actual = raw.stat().st_size if raw.is_file() else 0
    else:
        return
    if actual < n:
        raise InputError(f"{p} is truncated: {actual} bytes of image data, the header needs {n}")


def check_modality_tag(tag: str | None, role: str, what: str) -> str | None:
    """Warn when a DICOM Modality tag contradicts the role of the image; return the tag.

    Parameters
    ----------
    tag : str or None
        The file's (0008,0060) value (None for non-DICOM inputs: nothing to check).
    role : str
        ``'ct'``, ``'t1'`` or ``'t2'``.
    what : str
        Name of the image in the warning.
    """
    if not tag:
        return None
    tag = tag.strip().upper()
    allowed = _DICOM_MODALITY.get(role)
    if allowed and tag not in allowed:
        warnings.warn(
            f"{what}: its DICOM Modality is {tag!r} but it is used as {role.upper()} "
            f"(expected {'/'.join(allowed)}); check the input (CT values are read as HU)",
            stacklevel=2,
        )
    return tag


def detect_layout(path: str | os.PathLike) -> str | None:
    """Guess the layout of an input: ``'csv'``, ``'single'``, ``'rire'``, ``'synthrad'`` or None."""
    p = Path(path)
    if p.is_file():
        return "csv" if p.suffix.lower() == ".csv" else "single"
    if not p.is_dir():
        return None
    subs = [d for d in p.iterdir() if d.is_dir()]
    if any(d.name.startswith("patient") and (d / "ct").is_dir() for d in subs):
        return "rire"
    for d in subs:
        names = {f.name.lower() for f in d.iterdir() if f.is_file()}
        if any(n.startswith(("ct.", "mr.")) for n in names):
            return "synthrad"
    from .layouts import IMAGE_SUFFIXES

    if any(f.is_file() and f.name.lower().endswith(IMAGE_SUFFIXES) for f in p.iterdir()):
        return "single"
    return None
