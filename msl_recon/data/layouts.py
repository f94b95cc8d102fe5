"""Dataset layouts of real data: finding the subjects of a folder, CSV file or image.

``rire``      ``<input>/patient_XXX/{ct, mr_T1, mr_T2}/`` each holding one image file (``.mhd``,
              ``.mha``, ``.nii[.gz]``, ``.nrrd``) or a DICOM series.
``synthrad``  ``<input>/<case>/{ct, mr, mask}.nii.gz`` (SynthRAD2023 brain; ``mr`` is T1-weighted).
``csv``       ``<input>`` is a CSV file with columns ``ct``, ``t1`` [, ``t2``] [, ``mask``]
              [, ``subject``]; relative paths are relative to the CSV's folder.
``single``    ``<input>`` is one image (a DICOM file, NIfTI, …; 2D or 3D) of one modality, or a
              folder of such files (one subject each), for CT-only or MRI-only simulation.
``auto``      detected from the input (:func:`msl_recon.data.checks.detect_layout`).

``docs/data-layouts.md`` shows a folder tree of each.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError

__all__ = ["IMAGE_SUFFIXES", "LAYOUTS", "SubjectFiles", "discover"]

IMAGE_SUFFIXES = (".nii", ".nii.gz", ".mha", ".mhd", ".nrrd", ".nhdr", ".dcm")
LAYOUTS = ("rire", "synthrad", "csv", "single")
_RIRE_DIRS = {"ct": "ct", "t1": "mr_T1", "t2": "mr_T2"}


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


def _has_suffix(p: Path) -> bool:
    name = p.name.lower()
    return any(name.endswith(s) for s in IMAGE_SUFFIXES)


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
    layout : {'rire', 'synthrad', 'csv', 'single', 'auto'}
        ``'auto'`` detects the layout from the input.
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
    from .checks import LAYOUT_HELP, detect_layout

    want = list(dict.fromkeys(modalities))
    detected = detect_layout(p)
    if layout == "auto":
        if detected is None:
            raise InputError(f"cannot tell the layout of {p}; {LAYOUT_HELP}")
        layout = detected
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
        raise InputError(f"unknown layout {layout!r}; {LAYOUT_HELP}")
    if not out:
        hint = (
            f"; it looks like the {detected} layout (--layout {detected})"
            if detected not in (None, layout)
            else ""
        )
        raise InputError(f"no subjects found in {p} for layout {layout}{hint}; {LAYOUT_HELP}")
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
