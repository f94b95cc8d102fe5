"""The msl-recon HDF5 dataset format: one file per split (``train.h5``, ``val.h5``, ``test.h5``).

Schema (version 1)
------------------
Datasets (``S`` slices, ``N`` image side, ``V`` views, ``D`` detector bins):

``images/<m>``          ``(S, N, N)`` float32, ground truth in [0, 1] for each modality ``m``
``ct/sinogram``         ``(S, V, D)`` float32, ``RayTransform(geometry)(images/ct)`` (+ noise), in
                        mm × (unit image intensity)
``mr/<m>/kspace``       ``(S, H, W)`` complex64 masked Cartesian k-space (zeros off the mask), or
                        ``(S, P)`` radial samples; ``(S, C, H, W)`` / ``(S, C, P)`` with C coils
``mr/<m>/mask``         ``(S, H, W)`` bool (Cartesian only)
``mr/<m>/mask_seed``    ``(S,)`` int64, the :class:`geometries.CartesianMask` seed of each slice
``mr/<m>/coil_maps``    ``(C, H, W)`` complex64 coil sensitivities (multi-coil only)
``meta/subject_id``     ``(S,)`` str
``meta/subject_index``  ``(S,)`` int64, global index of the subject in the run (orders merges)
``meta/slice_index``    ``(S,)`` int64, axial index of the slice in the subject's volume
``meta/source``         ``(S,)`` str, where the slice comes from (file path or phantom seed)

Root attributes, every one a JSON string: ``geometry`` (``CTGeometry.to_dict()``), ``sampling``
(``{m: CartesianMask/RadialTrajectory .to_dict()}``), ``noise``, ``intensity``, ``seed``,
``split``, ``schema_version``, ``msl_recon_version``, ``provenance``; shard files add ``shard``.

Every dataset is chunked one slice per chunk and compressed (gzip level 4 + shuffle by default).
Writers always go through :func:`msl_recon._io.atomic_path` (one file) or
:func:`msl_recon._io.staged_outputs` (the split files of a run, published together) so a killed
run leaves no partial file. Readers call :func:`validate` first: every requested modality's
groups present, consistent shapes, finite values.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError

__all__ = [
    "SCHEMA_VERSION",
    "SPLITS",
    "SplitWriter",
    "merge_shards",
    "read_attrs",
    "shard_name",
    "summarize",
    "validate",
]

SCHEMA_VERSION = 1
SPLITS: tuple[str, ...] = ("train", "val", "test")
_SHARD_RE = re.compile(r"^(?P<name>.+)\.shard-(?P<i>\d+)-of-(?P<n>\d+)\.h5$")


def shard_name(split: str, index: int, count: int) -> str:
    """File name of shard ``index`` (1-based) of ``count``: ``train.shard-1-of-4.h5``."""
    return f"{split}.shard-{index}-of-{count}.h5"


def _compression_kwargs(compression: str | None) -> dict[str, Any]:
    if compression is None or compression == "none":
        return {}
    if compression == "gzip":
        return {"compression": "gzip", "compression_opts": 4, "shuffle": True}
    if compression == "lzf":
        return {"compression": "lzf", "shuffle": True}
    raise InputError(f"unknown compression {compression!r}; choose gzip, lzf or none")


class SplitWriter:
    """Append slices to one split file (open HDF5 handle on a temporary path).

    Parameters
    ----------
    path : path-like
        File to write (normally the temporary path yielded by ``atomic_path``).
    attrs : mapping
        Root attributes; each value is stored as a JSON string.
    compression : {'gzip', 'lzf', 'none'}
        Filter of every dataset.

    Notes
    -----
    Datasets are created on the first :meth:`append` from the arrays' shapes and dtypes and are
    resizable along the slice axis. Call :meth:`close` (or use as a context manager).
    """

    def __init__(
        self, path: str | os.PathLike, attrs: Mapping[str, Any], *, compression: str = "gzip"
    ) -> None:
        import h5py

        self._comp = _compression_kwargs(compression)
        self._f = h5py.File(path, "w", track_order=True)
        for k, v in attrs.items():
            self._f.attrs[k] = json.dumps(v, sort_keys=True)
        self.n = 0

    def __enter__(self) -> SplitWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def write_static(self, name: str, array: np.ndarray) -> None:
        """Write a dataset that is not per slice (e.g. ``mr/t1/coil_maps``)."""
        self._f.create_dataset(name, data=array, **self._comp)

    def append(self, arrays: Mapping[str, np.ndarray]) -> None:
        """Append a batch of slices; every array has the same leading length ``B``.

        Strings (``meta/subject_id``, ``meta/source``) are given as object/str arrays.
        """
        import h5py

        lengths = {len(a) for a in arrays.values()}
        if len(lengths) != 1:
            raise ValueError(f"all arrays of a batch need the same length, got {sorted(lengths)}")
        (b,) = lengths
        for name, arr in arrays.items():
            arr = np.asarray(arr)
            if arr.dtype.kind in "OUS":
                dt = h5py.string_dtype()
                arr = arr.astype(object)
            else:
                dt = arr.dtype
            if name not in self._f:
                opts = dict(self._comp)
                chunks = (1, *arr.shape[1:]) if arr.ndim > 1 else (1024,)
                self._f.create_dataset(
                    name,
                    shape=(0, *arr.shape[1:]),
                    maxshape=(None, *arr.shape[1:]),
                    dtype=dt,
                    chunks=chunks,
                    **opts,
                )
            ds = self._f[name]
            if ds.shape[0] != self.n:
                raise ValueError(f"dataset {name} has {ds.shape[0]} slices, expected {self.n}")
            ds.resize(self.n + b, axis=0)
            ds[self.n : self.n + b] = arr
        self.n += b

    def close(self) -> None:
        """Flush and close the file."""
        if self._f.id.valid:
            self._f.close()


def read_attrs(path: str | os.PathLike) -> dict[str, Any]:
    """Root attributes of a dataset file, JSON-decoded.

    Raises
    ------
    InputError
        If the file is missing or not an msl-recon HDF5 file.
    """
    import h5py

    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p} does not exist")
    try:
        with h5py.File(p, "r") as f:
            raw = dict(f.attrs)
    except OSError as exc:
        raise InputError(f"{p} is not a readable HDF5 file ({exc})") from None
    if "schema_version" not in raw:
        raise InputError(f"{p} is not an msl-recon dataset (no schema_version attribute)")
    out: dict[str, Any] = {}
    for k, v in raw.items():
        if isinstance(v, bytes):
            v = v.decode()
        try:
            out[k] = json.loads(v) if isinstance(v, str) else v
        except json.JSONDecodeError:
            out[k] = v
    return out


#: slices per block of the finiteness check (bounds the memory of :func:`validate`)
_CHECK_BLOCK = 64


def _check_finite(ds: Any, path: Path, block: int) -> None:
    """Raise if any element of a float/complex dataset is NaN or ±inf (read in slice blocks)."""
    if ds.dtype.kind not in "fc":
        return
    n = ds.shape[0] if ds.ndim else 1
    for a in range(0, max(n, 1), block):
        x = ds[a : a + block] if ds.ndim else ds[()]
        ok = np.isfinite(x)
        if not ok.all():
            bad = np.argwhere(~ok)[0]
            raise InputError(
                f"{path}: {ds.name.lstrip('/')} holds non-finite values (first at slice "
                f"{a + int(bad[0]) if ds.ndim else 0}, {int((~ok).sum())} in that block); "
                "the data is damaged — re-create it"
            )


def validate(
    path: str | os.PathLike,
    modalities: Sequence[str] | None = None,
    *,
    finite: bool = True,
    block: int = _CHECK_BLOCK,
) -> tuple[str, ...]:
    """Check a split file before any work: schema, shapes and finiteness.

    Parameters
    ----------
    path : path-like
        A split file.
    modalities : sequence of str, optional
        Modalities the caller will use (default: every stored one). Each needs its image
        ``images/<m>`` and the raw data its plug-in checks
        (:meth:`msl_recon.modalities.Modality.check_file`).
    finite : bool
        Also scan every float/complex dataset for NaN/inf, ``block`` slices at a time.
    block : int
        Slices read per step of the finiteness scan.

    Returns
    -------
    tuple of str
        The validated modalities.

    Raises
    ------
    InputError
        Naming the first missing group, mismatched shape or non-finite dataset.
    """
    import h5py

    from .. import modalities as registry

    p = Path(path)
    attrs = read_attrs(p)
    with h5py.File(p, "r") as f:
        stored = tuple(m for m in registry.names() if f"images/{m}" in f)
        mods = stored if modalities is None else tuple(registry.get(m).name for m in modalities)
        if not mods:
            raise InputError(f"{p} holds no images (no images/<modality> dataset)")
        missing = [m for m in mods if m not in stored]
        if missing:
            raise InputError(
                f"{p} has no modality {', '.join(missing)} (no images/{missing[0]}); it holds "
                f"{', '.join(stored) or 'none'}"
            )
        shape = f[f"images/{mods[0]}"].shape
        if len(shape) != 3 or shape[1] != shape[2]:
            raise InputError(f"{p}: images/{mods[0]} has shape {shape}, expected (S, N, N)")
        s, n = int(shape[0]), int(shape[1])
        checked: list[Any] = []
        for m in mods:
            img = f[f"images/{m}"]
            if tuple(img.shape) != (s, n, n):
                raise InputError(
                    f"{p}: images/{m} has shape {tuple(img.shape)}, expected {(s, n, n)} "
                    f"({s} slices of {n}² images)"
                )
            checked.append(img)
            try:
                checked += registry.get(m).check_file(f, attrs, s)
            except InputError as exc:
                raise InputError(f"{p}: {exc}") from None
        if finite:
            for ds in checked:
                _check_finite(ds, p, block)
    return mods


def merge_shards(
    shard_paths: Sequence[str | os.PathLike],
    out_path: str | os.PathLike,
    *,
    compression: str = "gzip",
) -> int:
    """Join the shard files of one split into ``out_path`` (atomically); return the slice count.

    Slices are ordered by ``meta/subject_index`` then file order, which reproduces the order of an
    unsharded run. All shards must agree on every root attribute except ``shard``, and every shard
    ``1..n`` must be present exactly once.
    """
    import h5py

    from .._io import atomic_path

    paths = [Path(p) for p in shard_paths]
    if not paths:
        raise InputError("no shard files to merge")
    seen: dict[int, Path] = {}
    counts: set[int] = set()
    ref: dict[str, Any] | None = None
    for p in paths:
        m = _SHARD_RE.match(p.name)
        if m is None:
            raise InputError(f"{p.name} is not a shard file name (<split>.shard-i-of-n.h5)")
        i, n = int(m["i"]), int(m["n"])
        counts.add(n)
        if i in seen:
            raise InputError(f"shard {i} given twice: {seen[i]} and {p}")
        seen[i] = p
        attrs = read_attrs(p)
        attrs.pop("shard", None)
        if ref is None:
            ref = attrs
        else:
            diff = sorted(k for k in set(ref) | set(attrs) if ref.get(k) != attrs.get(k))
            if diff:
                raise InputError(
                    f"{p.name} does not match {paths[0].name}: attributes {', '.join(diff)} differ"
                    " (mismatched geometry/sampling/settings)"
                )
    if len(counts) != 1:
        raise InputError(f"shards come from runs with different shard counts: {sorted(counts)}")
    (n_total,) = counts
    missing = sorted(set(range(1, n_total + 1)) - set(seen))
    if missing:
        raise InputError(f"missing shard(s) {missing} of {n_total}")
    assert ref is not None

    # interleaving subjects across shards: copy subject by subject
    total = 0
    with atomic_path(out_path) as tmp, SplitWriter(tmp, ref, compression=compression) as w:
        handles = {p: h5py.File(p, "r") for p in sorted(paths)}
        try:
            order: list[tuple[int, Path]] = []
            for p, f in handles.items():
                if "meta/subject_index" not in f:  # a shard without subjects in this split
                    continue
                for sidx in np.unique(f["meta/subject_index"][:]):
                    order.append((int(sidx), p))
            order.sort()
            for sidx, p in order:
                f = handles[p]
                sel = np.flatnonzero(f["meta/subject_index"][:] == sidx)
                _copy_subject(f, w, sel)
                total += sel.size
            # non-slice datasets (coil maps) from the first shard that has them
            for f in handles.values():
                if "meta/subject_index" in f:
                    _copy_static(f, w)
                    break
        finally:
            for f in handles.values():
                f.close()
    return total


def _copy_subject(f: Any, w: SplitWriter, sel: np.ndarray) -> None:
    import h5py

    chunk: dict[str, np.ndarray] = {}

    def visit(name: str, obj: Any) -> None:
        if isinstance(obj, h5py.Dataset) and obj.maxshape and obj.maxshape[0] is None:
            a = obj[int(sel[0]) : int(sel[-1]) + 1]
            if h5py.check_string_dtype(obj.dtype) is not None:
                a = np.array([x.decode() if isinstance(x, bytes) else x for x in a], dtype=object)
            chunk[name] = a

    if sel.size and not np.array_equal(sel, np.arange(sel[0], sel[-1] + 1)):
        raise InputError("shard file is corrupt: a subject's slices are not contiguous")
    f.visititems(visit)
    w.append(chunk)


def _copy_static(f: Any, w: SplitWriter) -> None:
    import h5py

    def visit(name: str, obj: Any) -> None:
        if isinstance(obj, h5py.Dataset) and not (obj.maxshape and obj.maxshape[0] is None):
            w.write_static(name, obj[()])

    f.visititems(visit)


def summarize(path: str | os.PathLike) -> str:
    """Human-readable multi-line summary of a dataset file (shapes, geometry, sampling, noise)."""
    import h5py

    attrs = read_attrs(path)
    lines = [f"{path}"]
    lines.append(
        f"  split: {attrs.get('split')}   schema v{attrs.get('schema_version')}   "
        f"msl-recon {attrs.get('msl_recon_version')}   seed {attrs.get('seed')}"
    )
    if "shard" in attrs:
        lines.append(f"  shard: {attrs['shard']}")
    with h5py.File(path, "r") as f:
        datasets: list[str] = []
        f.visititems(
            lambda name, obj: (
                datasets.append(f"  {name:22s} {tuple(obj.shape)!s:22s} {obj.dtype}")
                if isinstance(obj, h5py.Dataset)
                else None
            )
        )
        subj = []
        if "meta/subject_id" in f:
            subj = [s.decode() if isinstance(s, bytes) else s for s in f["meta/subject_id"][:]]
    uniq = list(dict.fromkeys(subj))
    lines.append(f"  slices: {len(subj)}   subjects: {len(uniq)}")
    if uniq:
        shown = ", ".join(uniq[:8]) + (" …" if len(uniq) > 8 else "")
        lines.append(f"    {shown}")
    lines.append("  datasets:")
    lines.extend(datasets)
    g = attrs.get("geometry")
    if isinstance(g, dict):
        extra = ""
        if "source_origin" in g:
            extra = f", SOD {g['source_origin']:.1f} mm, ODD {g['origin_detector']:.1f} mm"
        lines.append(
            f"  geometry: {g.get('type')} {g.get('image_size')}² × {g.get('pixel_size', 0):.4g} mm,"
            f" {len(g.get('angles', []))} views, {g.get('det_count')} bins × "
            f"{g.get('det_spacing', 0):.4g} mm{extra}"
        )
    for m, s in (attrs.get("sampling") or {}).items():
        desc = ", ".join(f"{k}={v}" for k, v in s.items() if k != "type")
        lines.append(f"  sampling {m}: {s.get('type')} ({desc})")
    lines.append(f"  noise: {json.dumps(attrs.get('noise'))}")
    lines.append(f"  intensity: {json.dumps(attrs.get('intensity'))}")
    prov = attrs.get("provenance")
    if prov:
        lines.append(f"  provenance: {json.dumps(prov)}")
    return "\n".join(lines)
