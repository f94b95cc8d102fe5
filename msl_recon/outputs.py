"""Reconstruction outputs in physical units: NIfTI volumes and the metadata of ``recon.h5``.

Conventions (``docs/data-layouts.md`` § Outputs)
-------------------------------------------------
* Image stacks are ``(S, N, N)`` axial slices in the canonical orientation of
  :mod:`msl_recon.data.orientation`: row index runs anterior → posterior, column index runs the
  patient's right → left (LPS), slices inferior → superior.
* NIfTI files hold the stack as ``data[i, j, k] = stack[k, j, i]`` with an affine (sform and
  qform, code 1 "scanner") mapping voxel indices to **RAS mm**: column ``i`` steps
  ``−pixel_size`` along R, row ``j`` steps ``−pixel_size`` along A, slice ``k`` steps the slice
  spacing along S; the translation is the physical position of voxel ``[0, 0, 0]``;
  ``xyzt_units`` are mm and s.
* CT stacks are written in **Hounsfield units** (int16, via
  :func:`msl_recon.data.intensity.unit_to_hu`: 0 → −1000 HU, 1 → 2125 HU).
* MRI stacks stay on the [0, 1] scale of :func:`msl_recon.data.intensity.normalize_mr`
  (robust 0.5–99.5 percentile min–max of each source volume), float32; the NIfTI ``descrip``
  says so. λ maps are float32 in [0, 1] (0 = first modality, e.g. CT).
* ``recon.h5`` gets ``meta/subject_id``, ``meta/slice_index`` (slice of the subject's
  canonical volume), ``meta/row`` (row in the input file) and ``meta/slice_position_mm``, and
  root attributes ``geometry``, ``intensity``, ``provenance`` (JSON) with the source file, the
  checkpoint's SHA-256 and the per-subject source geometry.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "INTENSITY_CONVENTIONS",
    "SliceGeometry",
    "file_sha256",
    "intensity_conventions",
    "intensity_kind",
    "read_nifti_stack",
    "slice_geometry_from_dataset",
    "write_nifti",
    "write_nifti_outputs",
    "write_recon_metadata",
]

#: Conventions of the outputs that belong to no single modality; each modality's own comes from
#: its plug-in (:func:`intensity_conventions`).
INTENSITY_CONVENTIONS = {
    "mixed": "[0, 1] MSL output between modalities (λ = 0: first modality, λ = 1: second)",
    "lambda": "λ in [0, 1] (0: first modality, e.g. CT; 1: second, e.g. MRI)",
}


def intensity_conventions(modalities: Sequence[str]) -> dict[str, str]:
    """Intensity convention of every output kind: one per modality (its plug-in's physical units
    and [0, 1] mapping) plus ``mixed`` and ``lambda``."""
    from . import modalities as registry

    out = {}
    for m in modalities:
        spec = registry.get(m)
        out[m] = f"{spec.label} in {spec.units}; stored [0, 1] by {spec.intensity}"
    return {**out, **INTENSITY_CONVENTIONS}


@dataclass
class SliceGeometry:
    """Physical geometry of a ``(S, N, N)`` stack of canonical axial slices.

    Attributes
    ----------
    pixel_size_mm : float
        In-plane pixel size (rows and columns), mm.
    size : int
        ``N``.
    origin_xy_mm : (float, float) or None
        LPS (x, y) of the centre of pixel ``[0, 0]``; None centres the grid on (0, 0).
    slice_positions_mm : list of float or None
        LPS z (superior) of every slice; None: slices ``slice_spacing_mm`` apart from 0.
    slice_spacing_mm : float or None
        Spacing of the slices (None and no positions: unknown; the NIfTI then uses the pixel
        size and says so in ``descrip``, recon.h5 in ``provenance.slice_positions_exact``).
    source : dict
        Free-form provenance (source file, orientation …) copied into the HDF5 metadata.
    """

    pixel_size_mm: float
    size: int
    origin_xy_mm: tuple[float, float] | None = None
    slice_positions_mm: list[float] | None = None
    slice_spacing_mm: float | None = None
    source: dict[str, Any] = field(default_factory=dict)

    def origin(self) -> tuple[float, float]:
        """LPS (x, y) of pixel ``[0, 0]``."""
        if self.origin_xy_mm is not None:
            return (float(self.origin_xy_mm[0]), float(self.origin_xy_mm[1]))
        c = -(self.size - 1) / 2.0 * self.pixel_size_mm
        return (c, c)

    def z_axis(self, n_slices: int) -> tuple[float, float, bool]:
        """``(z0, dz, exact)``: first slice position, spacing and whether the positions are
        known and uniform (non-uniform positions give their mean spacing and ``exact=False``)."""
        pos = self.slice_positions_mm
        if pos is not None and len(pos) == n_slices and n_slices > 0:
            z = np.asarray(pos, dtype=float)
            if n_slices == 1:
                dz = float(self.slice_spacing_mm or self.pixel_size_mm)
                return float(z[0]), dz, self.slice_spacing_mm is not None
            d = np.diff(z)
            dz = float(d.mean())
            uniform = bool(np.allclose(d, dz, rtol=1e-3, atol=1e-3)) and dz > 0
            return float(z[0]), dz if dz > 0 else 1.0, uniform
        if self.slice_spacing_mm:
            return 0.0, float(self.slice_spacing_mm), True
        return 0.0, float(self.pixel_size_mm), False

    def affine_ras(self, n_slices: int) -> np.ndarray:
        """4×4 voxel → RAS mm affine of the NIfTI layout ``data[i, j, k] = stack[k, j, i]``."""
        x0, y0 = self.origin()
        z0, dz, _ = self.z_axis(n_slices)
        p = self.pixel_size_mm
        # LPS → RAS: x and y change sign
        return np.array(
            [
                [-p, 0.0, 0.0, -x0],
                [0.0, -p, 0.0, -y0],
                [0.0, 0.0, dz, z0],
                [0.0, 0.0, 0.0, 1.0],
            ]
        )

    def to_dict(self, n_slices: int | None = None) -> dict[str, Any]:
        """JSON-serialisable form (with the RAS affine when ``n_slices`` is given)."""
        d = asdict(self)
        d["orientation"] = "LPS axial (rows anterior→posterior, columns right→left)"
        if n_slices is not None:
            d["affine_ras"] = self.affine_ras(n_slices).tolist()
            d["slice_spacing_exact"] = self.z_axis(n_slices)[2]
        return d


def intensity_kind(key: str, modalities: Sequence[str]) -> str:
    """Intensity convention of a reconstruction output key: a modality name (``'ct'``,
    ``'t1'`` …), ``'mixed'`` or ``'lambda'``.

    ``input_<m>``, ``gt_<m>`` and ``msl_<m>`` take modality ``m``; a global-λ output
    ``msl_lam<λ>`` of a two-modality model is the first modality at λ = 0, the second at λ = 1,
    else mixed; ``lambda_*`` keys are λ maps.
    """
    if key.startswith("lambda"):
        return "lambda"
    for prefix in ("input_", "gt_", "msl_"):
        if key.startswith(prefix) and key[len(prefix) :] in modalities:
            return key[len(prefix) :]
    if key.startswith("msl_lam") and len(modalities) == 2:
        try:
            lam = float(key[7:])
        except ValueError:
            return "mixed"
        if lam in (0.0, 1.0):
            return modalities[int(lam)]
    return "mixed"


def write_nifti(
    path: str | os.PathLike,
    stack: np.ndarray,
    geometry: SliceGeometry,
    *,
    kind: str = "mixed",
) -> Path:
    """Write a ``(S, N, N)`` stack as a NIfTI-1 file in physical units (atomically).

    Parameters
    ----------
    path : path-like
        ``.nii`` or ``.nii.gz``.
    stack : ndarray, ``(S, N, N)``
        Canonical axial slices on the [0, 1] scale.
    geometry : SliceGeometry
    kind : str
        A modality name (written in its plug-in's physical units, e.g. CT as int16 HU, PET as
        float32 kBq/mL, MRI on its [0, 1] scale), ``'mixed'`` or ``'lambda'`` (float32 [0, 1]);
        the convention goes into ``descrip``.
    """
    import nibabel as nib

    from . import modalities as registry
    from ._io import atomic_path

    spec = registry.get(kind) if kind not in INTENSITY_CONVENTIONS else None
    a = np.asarray(stack, dtype=np.float32)
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3 or a.shape[1] != a.shape[2] or a.shape[1] != geometry.size:
        raise ValueError(f"expected a (S, {geometry.size}, {geometry.size}) stack, got {a.shape}")
    _, _, exact = geometry.z_axis(a.shape[0])
    if not exact and a.shape[0] > 1 and geometry.slice_positions_mm is not None:
        warnings.warn(
            f"{Path(path).name}: the slices are not evenly spaced; the NIfTI z spacing is their "
            "mean (recon.h5 meta/slice_position_mm has the positions)",
            stacklevel=2,
        )
    data = np.ascontiguousarray(a.transpose(2, 1, 0))
    if spec is not None:
        data = np.asarray(spec.from_unit(data), dtype=np.float32)
        if spec.nifti_dtype == "int16":
            data = np.round(np.clip(data, -32768, 32767)).astype(np.int16)
    img = nib.Nifti1Image(data, geometry.affine_ras(a.shape[0]))
    hdr = img.header
    hdr.set_xyzt_units("mm", "sec")
    img.set_sform(img.affine, code=1)
    img.set_qform(img.affine, code=1)
    descr = {"mixed": "MSL [0,1]", "lambda": "lambda [0,1]"}
    text = f"{spec.label} in {spec.units}" if spec is not None else descr[kind]
    text += "" if exact else "; z spacing unknown/approx"
    hdr["descrip"] = text.encode()
    if spec is not None:
        hdr.set_slope_inter(1.0, 0.0)
    target = Path(path)
    suffix = ".nii.gz" if target.name.endswith(".gz") else ".nii"
    with atomic_path(target) as tmp:
        tmp_n = Path(str(tmp) + suffix)
        nib.save(img, str(tmp_n))
        tmp_n.replace(tmp)
    return target


def read_nifti_stack(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read a stack written by :func:`write_nifti`: ``((S, N, N) values, 4×4 RAS affine)``.

    Values are as stored (HU for CT).
    """
    import nibabel as nib

    img = nib.load(str(path))
    return np.asarray(img.get_fdata(), dtype=np.float32).transpose(2, 1, 0), img.affine


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file (checkpoint identity)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while True:
            b = fh.read(chunk)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def slice_geometry_from_dataset(path: str | os.PathLike, rows: Sequence[int]) -> SliceGeometry:
    """Physical geometry of rows ``rows`` of an msl-recon dataset file.

    The pixel size comes from the CT geometry attribute; for real data written by
    ``msl-recon simulate`` the slice positions come from ``meta/slice_position_mm`` and the grid
    origin from the subject's provenance JSON (``meta/provenance``, on the subject's first
    slice). Rows of several subjects, or phantom data, give a grid centred on 0 with unknown
    slice spacing.
    """
    import h5py

    from .data.hdf5 import read_attrs

    attrs = read_attrs(path)
    g = attrs.get("geometry") or {}
    rows = [int(r) for r in rows]
    with h5py.File(path, "r") as f:
        size = int(g.get("image_size", 0)) or int(f[f"images/{next(iter(f['images']))}"].shape[-1])
        all_ids = [v.decode() if isinstance(v, bytes) else str(v) for v in f["meta/subject_id"][:]]
        sids = {all_ids[r] for r in rows}
        pos = None
        if "meta/slice_position_mm" in f and len(sids) == 1:
            pos = [float(v) for v in f["meta/slice_position_mm"][rows]]
        subj: dict[str, Any] = {}
        if "meta/provenance" in f and len(sids) == 1:
            (sid,) = sids
            for r in (i for i, s in enumerate(all_ids) if s == sid):
                t = f["meta/provenance"][r]
                t = t.decode() if isinstance(t, bytes) else str(t)
                if t:
                    subj = json.loads(t)
                    break
    grid = subj.get("grid") or {}
    return SliceGeometry(
        pixel_size_mm=float(subj.get("pixel_size_mm", g.get("pixel_size", 1.0))),
        size=size,
        origin_xy_mm=tuple(grid["origin_xy_mm"]) if "origin_xy_mm" in grid else None,
        slice_positions_mm=pos,
        slice_spacing_mm=subj.get("slice_spacing_mm"),
        source={"subject_id": next(iter(sids)), "sources": subj.get("sources")}
        if len(sids) == 1
        else {},
    )


def write_recon_metadata(
    h5: Any,
    *,
    geometry: SliceGeometry,
    n_slices: int,
    keys: Sequence[str],
    modalities: Sequence[str],
    source_file: str | os.PathLike | None,
    checkpoint: str | os.PathLike | None,
    subject_ids: Sequence[str] | None = None,
    slice_indices: Sequence[int] | None = None,
    rows: Sequence[int] | None = None,
    extra: dict[str, Any] | None = None,
) -> None:
    """Store geometry, intensity conventions and provenance in an open ``recon.h5``.

    Parameters
    ----------
    h5 : h5py.File
        Open for writing.
    geometry : SliceGeometry
    n_slices : int
    keys : sequence of str
        Output datasets in the file (their conventions go into the ``intensity`` attribute).
    modalities : sequence of str
        The model's modalities (for :func:`intensity_kind`).
    source_file, checkpoint : path-like or None
        Input data file and the checkpoint (hashed).
    subject_ids, slice_indices, rows : sequences of length ``n_slices``, optional
        Subject of every output slice, its slice index in that subject, its row in the input.
    extra : dict, optional
        More provenance (JSON-serialisable).
    """
    z0, dz, exact = geometry.z_axis(n_slices)
    pos = (
        list(geometry.slice_positions_mm)
        if geometry.slice_positions_mm is not None
        else [z0 + k * dz for k in range(n_slices)]
    )
    h5["meta/slice_position_mm"] = np.asarray(pos, dtype=np.float64)
    if subject_ids is not None:
        import h5py

        h5.create_dataset(
            "meta/subject_id",
            data=np.asarray([str(v) for v in subject_ids], dtype=object),
            dtype=h5py.string_dtype(),
        )
    if slice_indices is not None:
        h5["meta/slice_index"] = np.asarray(slice_indices, dtype=np.int64)
    if rows is not None:
        h5["meta/row"] = np.asarray(rows, dtype=np.int64)
    kinds = {k: intensity_kind(k, modalities) for k in keys}
    h5.attrs["geometry"] = json.dumps(geometry.to_dict(n_slices))
    h5.attrs["intensity"] = json.dumps(
        {
            "datasets": kinds,
            "conventions": intensity_conventions(modalities),
            "stored_scale": "[0, 1]",
        }
    )
    prov: dict[str, Any] = {
        "source_file": None if source_file is None else str(source_file),
        "checkpoint": None if checkpoint is None else str(checkpoint),
        "checkpoint_sha256": None
        if checkpoint is None or not Path(checkpoint).is_file()
        else file_sha256(checkpoint),
        "slice_positions_exact": exact,
        **(extra or {}),
    }
    h5.attrs["provenance"] = json.dumps(prov, default=str)


def write_nifti_outputs(
    nii_dir: str | os.PathLike,
    arrays: dict[str, np.ndarray],
    *,
    modalities: Sequence[str],
    rows: Sequence[int],
    size: int,
    dataset_path: str | os.PathLike | None = None,
    pixel_size: float | None = None,
) -> list[Path]:
    """Write every ``(S, N, N)`` output stack as NIfTI in physical units.

    Parameters
    ----------
    nii_dir : path-like
        Folder (created). One subject: ``<key>.nii.gz``; several: ``<subject>/<key>.nii.gz``
        (one affine cannot place slices of different heads).
    arrays : dict
        Output key → ``(S, N, N)`` stack on the [0, 1] scale (row ``s`` is input row
        ``rows[s]``).
    modalities : sequence of str
        The model's modalities (intensity convention of each key, :func:`intensity_kind`).
    rows : sequence of int
        Input-file row of every output slice.
    size : int
        ``N``.
    dataset_path : path-like, optional
        The msl-recon HDF5 input: subjects and geometry from
        :func:`slice_geometry_from_dataset`. Without it (raw inputs) one group with a grid of
        ``pixel_size`` mm centred on 0 and unknown slice spacing.
    pixel_size : float, optional
        mm, for raw inputs (the CT geometry's pixel size).
    """
    import h5py

    out_dir = Path(nii_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = [int(r) for r in rows]
    groups: dict[str, list[int]] = {}
    if dataset_path is not None:
        with h5py.File(dataset_path, "r") as f:
            sids = f["meta/subject_id"][rows] if rows else []
        for j, s in enumerate(sids):
            groups.setdefault(s.decode() if isinstance(s, bytes) else str(s), []).append(j)
    else:
        groups["all"] = list(range(len(rows)))
    written: list[Path] = []
    for sid, js in groups.items():
        if dataset_path is not None:
            geom = slice_geometry_from_dataset(dataset_path, [rows[j] for j in js])
        else:
            geom = SliceGeometry(pixel_size_mm=float(pixel_size or 1.0), size=size)
        folder = out_dir if len(groups) == 1 else out_dir / sid.replace("/", "_")
        folder.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for key, v in arrays.items():
                path = folder / f"{key}.nii.gz"
                write_nifti(path, np.asarray(v)[js], geom, kind=intensity_kind(key, modalities))
                written.append(path)
        if caught:
            warnings.warn(f"{sid}: {caught[0].message}", stacklevel=2)
    return written
