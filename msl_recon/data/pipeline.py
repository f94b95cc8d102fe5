"""Orchestration of ``msl-recon simulate``: subjects → splits → slices → sensor data → HDF5 files.

Determinism: every random choice is keyed by ``(seed, subject_index, …)`` — the phantom seed of
a subject, its split, the noise generator and per-slice mask seeds — never by processing order.
So an unsharded run, any sharding (``--shard i/n`` keeps subjects with ``index % n == i - 1``)
followed by :func:`msl_recon.data.hdf5.merge_shards`, and any ``workers`` count all give
byte-identical arrays.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from .hdf5 import SCHEMA_VERSION, SPLITS, SplitWriter, shard_name

__all__ = [
    "SimulationRun",
    "SubjectTask",
    "assign_splits",
    "output_paths",
    "parse_shard",
    "run_simulation",
    "subject_seed",
    "write_arrays",
]


def subject_seed(seed: int, index: int, purpose: int = 0) -> int:
    """Deterministic 32-bit seed for subject ``index`` of a run (``purpose`` separates streams)."""
    ss = np.random.SeedSequence([int(seed), int(index), int(purpose)])
    return int(ss.generate_state(1, dtype=np.uint32)[0])


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """Parse ``'i/n'`` (1 ≤ i ≤ n) into ``(i, n)``; None stays None."""
    if text is None:
        return None
    try:
        a, b = text.split("/")
        i, n = int(a), int(b)
    except ValueError:
        raise InputError(f"--shard must look like i/n (e.g. 2/8), got {text!r}") from None
    if n < 1 or not (1 <= i <= n):
        raise InputError(f"--shard {text}: need 1 ≤ i ≤ n")
    return i, n


def assign_splits(n_subjects: int, fractions: Sequence[float], seed: int) -> list[str]:
    """Split name of each subject index (by subject, never by slice), seeded and reproducible.

    Every split with a positive fraction gets at least one subject when there are enough
    subjects; the train split takes the remainder.
    """
    fr = np.asarray(fractions, dtype=float)
    if fr.shape != (3,) or np.any(fr < 0) or not math.isclose(fr.sum(), 1.0, abs_tol=1e-6):
        raise InputError(f"split fractions must be three numbers ≥ 0 summing to 1, got {fractions}")
    n_val = round(n_subjects * fr[1])
    n_test = round(n_subjects * fr[2])
    if n_subjects >= 3:
        n_val = max(n_val, 1 if fr[1] > 0 else 0)
        n_test = max(n_test, 1 if fr[2] > 0 else 0)
    if fr[0] > 0 and n_subjects >= 1:
        while n_val + n_test > n_subjects - 1 and (n_val or n_test):
            if n_val >= n_test and n_val:
                n_val -= 1
            else:
                n_test -= 1
    perm = np.random.default_rng([int(seed), 9173]).permutation(n_subjects)
    out = ["train"] * n_subjects
    for k, idx in enumerate(perm):
        if k < n_val:
            out[idx] = "val"
        elif k < n_val + n_test:
            out[idx] = "test"
    return out


@dataclass
class SubjectTask:
    """One subject to load: where it comes from and its global index (picklable)."""

    index: int
    subject_id: str
    kind: str  # 'phantom' | 'paired' | 'single'
    size: int
    n_slices: int | None
    seed: int
    files: Any = None
    modalities: tuple[str, ...] = ("ct", "t1", "t2")
    register: bool = True
    head_mask: bool = True
    phantom_config: Any = None
    pixel_size: float | str | None = None  # mm of real-data slices (None/'fit': from the data)
    strict: bool = False


def load_task(
    task: SubjectTask,
) -> tuple[dict[str, np.ndarray], np.ndarray, str, dict[str, Any]]:
    """Images ``{m: (Z, N, N)}``, axial indices ``(Z,)``, a source string and the real-data
    provenance of a subject (``{}`` for phantoms; see :func:`msl_recon.data.ingest.load_paired`)."""
    if task.kind == "phantom":
        from .. import modalities
        from .phantom import make_subject

        pseed = subject_seed(task.seed, task.index, 1)
        kw: dict[str, Any] = {"size": task.size, "n_slices": task.n_slices or 16}
        if task.phantom_config is not None:
            kw["config"] = task.phantom_config
        subj = make_subject(pseed, **kw)
        rng = np.random.default_rng(subject_seed(task.seed, task.index, 4))
        imgs = {
            m: np.asarray(modalities.get(m).from_phantom(subj, rng), dtype=np.float32)
            for m in task.modalities
        }
        if subj.fine:  # supersampled phantom: the 2× grid that the acquisition is simulated on
            for m in task.modalities:
                fine = modalities.get(m).from_phantom(subj, rng, fine=True)
                if fine is not None:
                    imgs[f"{m}@fine"] = np.asarray(fine, dtype=np.float32)
        z = imgs[task.modalities[0]].shape[0]
        return imgs, np.arange(z, dtype=np.int64), f"phantom:seed={pseed}", {}
    if task.kind == "paired":
        from .ingest import load_paired

        imgs, idx, prov = load_paired(
            task.files,
            size=task.size,
            n_slices=task.n_slices,
            register=task.register,
            head_mask=task.head_mask,
            seed=subject_seed(task.seed, task.index, 2),
            pixel_size=task.pixel_size,
            strict=task.strict,
        )
        src = ";".join(f"{m}={p}" for m, p in task.files.paths.items())
        return {m: imgs[m] for m in task.modalities}, idx, src, prov
    if task.kind == "single":
        from .ingest import load_single

        (m,) = task.modalities
        imgs, idx, prov = load_single(
            task.files.paths[m],
            m,
            size=task.size,
            n_slices=task.n_slices,
            pixel_size=task.pixel_size,
        )
        return imgs, idx, f"{m}={task.files.paths[m]}", prov
    raise ValueError(f"unknown subject kind {task.kind!r}")


@dataclass
class SimulationRun:
    """Everything one ``simulate`` run needs (the CLI fills it in).

    Parameters
    ----------
    out_dir : Path
        Folder of the split files.
    spec : msl_recon.data.simulate.SimulationSpec
        Geometry, sampling, noise.
    modalities : tuple of str
        Modalities to produce (``ct``, ``t1``, ``t2``).
    size : int
        Image side N (must equal ``spec.geometry.image_size``).
    n_subjects : int
        Phantom subjects (ignored with ``input``).
    n_slices : int or None
        Slices per subject.
    fractions : (float, float, float)
        Train/val/test fractions of the subjects.
    seed : int
    input, layout : Path, str, optional
        Real data source (see :mod:`msl_recon.data.ingest`).
    register, head_mask : bool
    shard : (int, int), optional
        ``(i, n)``, 1-based.
    workers : int
        Processes that load subjects (phantom generation, registration) in parallel.
    device : str
    compression : str
    batch_size : int
        Slices per operator call.
    overwrite, progress : bool
    allow_truncation : bool
        Accept a CT detector that does not cover the disk inscribed in the image (projections
        are truncated); without it such a geometry is an :class:`InputError`.
    """

    out_dir: Path
    spec: Any
    modalities: tuple[str, ...] = ("ct", "t1", "t2")
    size: int = 256
    n_subjects: int = 6
    n_slices: int | None = 8
    fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)
    seed: int = 0
    input: Path | None = None
    layout: str | None = None
    register: bool = True
    head_mask: bool = True
    shard: tuple[int, int] | None = None
    workers: int = 1
    device: str = "cpu"
    compression: str = "gzip"
    batch_size: int = 16
    overwrite: bool = False
    progress: bool = True
    ct_backend: str = "astra"
    phantom_config: Any = None
    strict: bool = False
    extra_provenance: dict[str, Any] = field(default_factory=dict)
    allow_truncation: bool = False


def output_paths(run: SimulationRun) -> dict[str, Path]:
    """Split name → output file of this run (shard files with ``--shard``)."""
    out = {}
    for s in SPLITS:
        name = f"{s}.h5" if run.shard is None else shard_name(s, *run.shard)
        out[s] = Path(run.out_dir) / name
    return out


def _apply_preset(run: SimulationRun, tasks: list[SubjectTask], splits: list[str]) -> None:
    """Phantom settings of each subject from the acquisition preset: held-out (validation and
    test) subjects get the preset's held-out anatomy variation; the field of view follows
    ``spec.fov_mm``."""
    preset = run.spec.preset
    for t in tasks:
        if t.kind != "phantom":
            continue
        cfg = preset.phantom_config(run.phantom_config, heldout=splits[t.index] != "train")
        if run.spec.fov_mm is not None:
            cfg = dataclasses.replace(cfg, fov_mm=float(run.spec.fov_mm))
        t.phantom_config = cfg


def _with_needs(mods: Sequence[str]) -> tuple[str, ...]:
    """``mods`` plus the modalities their simulators need as context (e.g. CT for PET)."""
    from .. import modalities

    out = list(mods)
    for m in mods:
        out += [n for n in modalities.get(m).needs if n not in out]
    return tuple(out)


def _tasks(run: SimulationRun) -> list[SubjectTask]:
    common = {
        "size": run.size,
        "n_slices": run.n_slices,
        "seed": run.seed,
        "modalities": _with_needs(run.modalities),
    }
    if run.input is None:
        if run.n_subjects < 1:
            raise InputError(f"--subjects must be ≥ 1, got {run.n_subjects}")
        return [
            SubjectTask(
                i, f"phantom-{i:04d}", "phantom", phantom_config=run.phantom_config, **common
            )
            for i in range(run.n_subjects)
        ]
    from .ingest import discover

    layout = run.layout or "auto"
    subjects = discover(run.input, layout, run.modalities)
    layout = subjects[0].layout if subjects else layout
    kind = "single" if layout == "single" else "paired"
    if kind == "paired" and "ct" not in run.modalities:
        raise InputError("paired layouts need ct among --modalities (the CT is the fixed image)")
    return [
        SubjectTask(
            i,
            s.subject_id,
            kind,
            files=s,
            register=run.register and kind == "paired",
            head_mask=run.head_mask,
            pixel_size=run.spec.geometry.pixel_size if "ct" in run.modalities else None,
            strict=run.strict,
            **common,
        )
        for i, s in enumerate(subjects)
    ]


def detector_coverage(g: Any) -> tuple[float, float]:
    """Radius in mm of the disk every view measures, and the required one.

    Returns
    -------
    covered : float
        Fan beam: ``source_origin · sin(fan half angle)``; parallel beam: half the detector width.
    required : float
        Fan beam: the radius of the disk inscribed in the image, ``N p / 2``; parallel beam: the
        same (the geometry's own check).
    """
    required = g.image_size * g.pixel_size / 2.0
    if hasattr(g, "fan_half_angle"):
        covered = g.source_origin * math.sin(g.fan_half_angle)
    else:
        covered = g.det_count * g.det_spacing / 2.0
    return float(covered), float(required)


def _validate(run: SimulationRun) -> None:
    from .. import modalities

    if not run.modalities:
        raise InputError("no modality given")
    for m in run.modalities:
        modalities.get(m).validate(run.spec, run.size, allow_truncation=run.allow_truncation)
    if run.n_slices is not None and run.n_slices < 1:
        raise InputError(f"--slices must be ≥ 1, got {run.n_slices}")


def _attrs(run: SimulationRun, split: str, provenance: dict[str, Any]) -> dict[str, Any]:
    from .. import __version__, modalities

    attrs: dict[str, Any] = {
        "geometry": None,
        "sampling": {},
        "noise": run.spec.noise_dict(),
        "preset": run.spec.preset.to_dict(),
        "intensity": {},
        "seed": run.seed,
        "split": split,
        "schema_version": SCHEMA_VERSION,
        "msl_recon_version": __version__,
        "provenance": provenance,
    }
    for m in run.modalities:
        for key, value in modalities.get(m).file_attrs(run.spec).items():
            if isinstance(value, dict) and isinstance(attrs.get(key), dict):
                attrs[key] = {**attrs[key], **value}
            else:
                attrs[key] = value
    if run.shard is not None:
        attrs["shard"] = f"{run.shard[0]}/{run.shard[1]}"
    return attrs


def _loaded(tasks: list[SubjectTask], workers: int) -> Iterator[tuple[SubjectTask, Any]]:
    if workers <= 1 or len(tasks) <= 1:
        for t in tasks:
            yield t, load_task(t)
        return
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    # spawn, not fork: forking a process whose torch/OpenMP threads hold locks deadlocks
    with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn")) as ex:
        yield from zip(tasks, ex.map(load_task, tasks), strict=True)


def run_simulation(run: SimulationRun) -> dict[str, Path]:
    """Run a simulation and write the split files as one commit; returns split → written path.

    The split files are written into a stage folder and published together
    (:func:`msl_recon._io.staged_outputs`): after an interruption either the previous outputs or
    the complete new set are in place, and the next run completes an interrupted publication and
    removes orphaned temporaries of dead runs.

    Raises
    ------
    InputError
        Bad settings or input, or existing outputs without ``overwrite``.
    """
    import torch
    from tqdm import tqdm

    from .._io import check_output_dir, recover_staged, remove_stale_temps, staged_outputs
    from .simulate import Simulator

    _validate(run)
    out_dir = check_output_dir(run.out_dir)
    recover_staged(out_dir)  # finish (or discard) the outputs of an interrupted earlier run
    remove_stale_temps(out_dir)
    paths = output_paths(run)
    for p in paths.values():
        if p.exists() and p.is_dir():
            raise InputError(f"{p} is a directory, expected a file path")
    if not run.overwrite:
        existing = [str(p) for p in paths.values() if p.exists()]
        if existing:
            raise InputError(f"{existing[0]} exists; pass --overwrite to replace it")
    tasks = _tasks(run)
    splits = assign_splits(len(tasks), run.fractions, run.seed)
    _apply_preset(run, tasks, splits)
    if run.shard is not None:
        i, n = run.shard
        tasks = [t for t in tasks if t.index % n == i - 1]
    layout = tasks[0].files.layout if tasks and tasks[0].files is not None else run.layout
    provenance = {
        "generator": "msl-recon simulate",
        "source": "phantom" if run.input is None else layout,
        "input": None if run.input is None else str(run.input),
        "n_subjects_total": len(splits),
        "subjects_per_split": {s: splits.count(s) for s in SPLITS},
        "register": run.register if run.input is not None and layout != "single" else None,
        "head_mask": run.head_mask if run.input is not None else None,
        **run.extra_provenance,
    }
    wanted = set(SPLITS) if run.shard is not None else set(splits)
    sim = Simulator(run.spec, run.device, ct_backend=run.ct_backend)
    written = {s: paths[s] for s in SPLITS if s in wanted}
    # the split files are one output: staged together, published together (see _io)
    stale = [paths[s].name for s in SPLITS if s not in wanted and paths[s].exists()]
    with contextlib.ExitStack() as stack:
        staged = stack.enter_context(
            staged_outputs(out_dir, [p.name for p in written.values()], remove=stale)
        )
        writers: dict[str, SplitWriter] = {}
        for s, p in written.items():
            writers[s] = stack.enter_context(
                SplitWriter(staged[p.name], _attrs(run, s, provenance), compression=run.compression)
            )
        bar = tqdm(
            total=len(tasks),
            unit="subject",
            desc="simulate",
            disable=not run.progress,
            dynamic_ncols=True,
        )
        stack.callback(bar.close)
        for task, (imgs, idx, source, prov) in _loaded(tasks, run.workers):
            _log_registration(task.subject_id, prov)
            w = writers[splits[task.index]]
            gen = torch.Generator().manual_seed(subject_seed(run.seed, task.index, 3))
            for b0 in range(0, len(idx), run.batch_size):
                sl = slice(b0, b0 + run.batch_size)
                batch = sim.simulate(
                    {m: imgs[m][sl] for m in run.modalities},
                    subject_index=task.index,
                    slice_indices=idx[sl].tolist(),
                    generator=gen,
                    context={m: v[sl] for m, v in imgs.items()},
                )
                nb = len(idx[sl])
                batch["meta/subject_id"] = np.array([task.subject_id] * nb, dtype=object)
                batch["meta/subject_index"] = np.full(nb, task.index, dtype=np.int64)
                batch["meta/slice_index"] = idx[sl].astype(np.int64)
                batch["meta/source"] = np.array([source] * nb, dtype=object)
                if prov:  # real data: physical slice positions, subject provenance once
                    batch.update(_real_meta(prov, sl, nb, first=b0 == 0))
                if w.n == 0:
                    for name, arr in sim.static().items():
                        w.write_static(name, arr)
                w.append(batch)
            bar.update(1)
            bar.set_postfix(slices=sum(x.n for x in writers.values()))
        for wr in writers.values():
            wr.close()
    return written


def _log_registration(subject_id: str, prov: dict[str, Any]) -> None:
    """One INFO line per registered MR (logger ``msl_recon.data.pipeline``; the CLI prints it)."""
    import logging

    from .ingest import format_registration

    for m, r in (prov.get("registration") or {}).items():
        logging.getLogger(__name__).info(format_registration(subject_id, m, r))


def _real_meta(prov: dict[str, Any], sl: slice, nb: int, *, first: bool) -> dict[str, Any]:
    """``meta/slice_position_mm`` (LPS z of every slice) and ``meta/provenance`` (the subject's
    provenance JSON on its first slice, empty on the others)."""
    import json

    text = [""] * nb
    if first:
        text[0] = json.dumps(prov, default=float, sort_keys=True)
    return {
        "meta/slice_position_mm": np.asarray(prov["slice_positions_mm"], np.float64)[sl],
        "meta/provenance": np.array(text, dtype=object),
    }


def default_output_dir() -> Path:
    """Default folder of ``msl-recon simulate`` without ``--out``: ``data/phantom``."""
    return Path(os.environ.get("MSL_RECON_DATA", "data")) / "phantom"


def write_arrays(
    path: str | os.PathLike,
    images: dict[str, np.ndarray],
    spec: Any,
    *,
    subject_ids: Sequence[str] | None = None,
    split: str = "train",
    seed: int = 0,
    device: str = "cpu",
    batch_size: int = 16,
    compression: str = "gzip",
    overwrite: bool = False,
) -> Path:
    """Simulate sensor data for in-memory images and write one split file (atomically).

    Parameters
    ----------
    path : path-like
        Output ``.h5`` file.
    images : dict
        ``{m: (S, N, N) float32 in [0, 1]}``, the same ``S`` for every modality.
    spec : SimulationSpec
    subject_ids : sequence of str, optional
        Subject of every slice (default: each slice its own subject ``array-XXXX``). Slices of
        one subject must be contiguous.
    split, seed, device, batch_size, compression, overwrite
        As for :func:`run_simulation`.
    """
    import torch

    from .._io import atomic_path, check_output_path
    from .simulate import Simulator

    target = check_output_path(path, overwrite=overwrite)
    mods = tuple(images)
    n = {v.shape[0] for v in images.values()}
    if len(n) != 1:
        raise InputError(f"all modalities need the same number of slices, got {sorted(n)}")
    (s,) = n
    ids = list(subject_ids) if subject_ids is not None else [f"array-{i:04d}" for i in range(s)]
    if len(ids) != s:
        raise InputError(f"{len(ids)} subject ids for {s} slices")
    size = next(iter(images.values())).shape[-1]
    run = SimulationRun(
        out_dir=target.parent,
        spec=spec,
        modalities=mods,
        size=size,
        seed=seed,
        device=device,
        compression=compression,
    )
    _validate(run)
    order = list(dict.fromkeys(ids))
    prov = {
        "generator": "msl_recon.data.pipeline.write_arrays",
        "source": "arrays",
        "n_subjects_total": len(order),
    }
    sim = Simulator(spec, device)
    with (
        atomic_path(target) as tmp,
        SplitWriter(tmp, _attrs(run, split, prov), compression=compression) as w,
    ):
        for si, sid in enumerate(order):
            rows = np.flatnonzero(np.asarray(ids) == sid)
            if not np.array_equal(rows, np.arange(rows[0], rows[-1] + 1)):
                raise InputError(f"slices of subject {sid} are not contiguous")
            gen = torch.Generator().manual_seed(subject_seed(seed, si, 3))
            for b0 in range(0, rows.size, batch_size):
                r = rows[b0 : b0 + batch_size]
                z = (r - rows[0]).tolist()
                batch = sim.simulate(
                    {m: images[m][r] for m in mods},
                    subject_index=si,
                    slice_indices=z,
                    generator=gen,
                )
                batch["meta/subject_id"] = np.array([sid] * r.size, dtype=object)
                batch["meta/subject_index"] = np.full(r.size, si, dtype=np.int64)
                batch["meta/slice_index"] = np.asarray(z, dtype=np.int64)
                batch["meta/source"] = np.array(["array"] * r.size, dtype=object)
                if w.n == 0:
                    for name, arr in sim.static().items():
                        w.write_static(name, arr)
                w.append(batch)
    return target
