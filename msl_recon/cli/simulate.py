"""``msl-recon simulate``, ``inspect``, ``preview`` and ``merge``.

Heavy modules (torch, operators, h5py, SimpleITK) are imported inside the commands.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import warnings
from collections.abc import Iterator
from pathlib import Path

import typer

from ..errors import UserError


def _parse_modalities(text: str) -> tuple[str, ...]:
    from .. import modalities

    if not text.strip(" ,"):
        raise UserError("--modalities is empty")
    return modalities.in_order(modalities.parse(text))


def _parse_options(items: list[str] | None) -> dict[str, dict[str, object]]:
    """``--acq pet.counts=3e6`` → ``{"pet": {"counts": 3e6}}`` (numbers, true/false, text)."""
    from .. import modalities

    out: dict[str, dict[str, object]] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        m, dot, name = key.partition(".")
        if not sep or not dot or not name:
            raise UserError(f"--acq needs MODALITY.KEY=VALUE (e.g. pet.counts=3e6), got {item!r}")
        value: object = raw
        if raw.lower() in ("true", "false"):
            value = raw.lower() == "true"
        else:
            try:
                value = int(raw)
            except ValueError:
                try:
                    value = float(raw)
                except ValueError:
                    value = raw
        out.setdefault(modalities.get(m).name, {})[name.strip()] = value
    return out


def _parse_fractions(text: str) -> tuple[float, float, float]:
    try:
        vals = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise UserError(f"--split must be three numbers like 0.7,0.15,0.15, got {text!r}") from None
    if len(vals) != 3:
        raise UserError(f"--split must be three numbers like 0.7,0.15,0.15, got {text!r}")
    return vals  # type: ignore[return-value]


def _load_geometry(
    preset: str, geometry_file: Path | None, size: int | None, views: int | None
) -> tuple[object, int]:
    import geometries as geo

    if geometry_file is not None:
        if not geometry_file.is_file():
            raise UserError(f"geometry file {geometry_file} does not exist")
        try:
            d = json.loads(geometry_file.read_text(encoding="utf-8"))
            with _truncation_checked_later():
                g = geo.geometry_from_dict(d)
        except (json.JSONDecodeError, ValueError, TypeError, KeyError) as exc:
            raise UserError(f"{geometry_file} is not a valid CT geometry JSON: {exc}") from None
        if size is not None and size != g.image_size:
            raise UserError(
                f"mismatched geometry: {geometry_file} is for {g.image_size}² images but --size "
                f"is {size}"
            )
        if views is not None and views != g.n_views:
            try:
                g = g.with_views(views)
            except ValueError as exc:
                raise UserError(f"--views {views}: {exc}") from None
        return g, g.image_size
    n = 256 if size is None else size
    if n < 8:
        raise UserError(f"--size must be ≥ 8, got {n}")
    try:
        with _truncation_checked_later():
            return geo.preset(preset, image_size=n, n_views=64 if views is None else views), n
    except ValueError as exc:
        raise UserError(str(exc)) from None


@contextlib.contextmanager
def _truncation_checked_later() -> Iterator[None]:
    """Silence the geometry's truncation warning: the pipeline turns it into an error."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*field of view is truncated")
        yield


def _apply_pixel_size(
    g: object, text: str | None, input: Path | None, layout: str, mods: tuple[str, ...], n: int
) -> object:
    """The geometry scaled to ``--pixel-size`` (a number in mm, or 'fit' to the input's heads)."""
    if text is None:
        return g
    from ..data.orientation import geometry_with_pixel_size

    if text.strip().lower() == "fit":
        if input is None:
            raise UserError("--pixel-size fit needs --input (real data to fit)")
        from ..data.ingest import discover, fit_dataset_pixel_size

        px = fit_dataset_pixel_size(discover(input, layout, mods), n)
        typer.echo(f"pixel size fitted to the data: {px:.3f} mm ({n * px:.0f} mm field of view)")
    else:
        try:
            px = float(text)
        except ValueError:
            raise UserError(f"--pixel-size must be a number in mm or 'fit', got {text!r}") from None
    try:
        return geometry_with_pixel_size(g, px)
    except ValueError as exc:
        raise UserError(f"--pixel-size: {exc}") from None


def _log_registrations() -> None:
    """Print each registration's summary line (metric before → after, iterations, stop)."""
    import logging
    import sys

    log = logging.getLogger("msl_recon.data.pipeline")
    if not any(getattr(h, "_msl_cli", False) for h in log.handlers):
        h = logging.StreamHandler(sys.stderr)
        h.setFormatter(logging.Formatter("registration %(message)s"))
        h._msl_cli = True  # type: ignore[attr-defined]
        log.addHandler(h)
    log.setLevel(logging.INFO)


def simulate_cmd(
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Output folder of train/val/test.h5 (default: data/phantom)."
    ),
    size: int | None = typer.Option(None, min=8, help="Image side N in pixels (default: 256)."),
    subjects: int = typer.Option(6, min=1, help="Phantom subjects (ignored with --input)."),
    slices: int = typer.Option(8, help="Axial slices per subject (0 = all usable slices)."),
    split: str = typer.Option("0.7,0.15,0.15", help="Train,val,test fractions of subjects."),
    modalities: str = typer.Option(
        "ct,t1,t2",
        help="Modalities, comma-separated: ct, t1, t2, pet (mr = t1); see docs/architecture.md.",
    ),
    acquisition: str = typer.Option(
        "clinical",
        "--acquisition",
        help="Acquisition preset: clinical (2× simulation grid, routine-dose CT noise, complex "
        "12-coil MRI with estimated coil maps, realistic tissue) or paper (noise-free, "
        "real-valued, single-coil, same grid, as the MSL paper). See docs/acquisition.md.",
    ),
    preset: str | None = typer.Option(
        None,
        help="CT geometry preset (msl-recon presets; default: siemens-definition-as for "
        "--acquisition clinical, msl-paper for paper).",
    ),
    geometry: Path | None = typer.Option(
        None, "--geometry", help="CT geometry JSON (CTGeometry.to_dict()); overrides --preset."
    ),
    views: int | None = typer.Option(
        None,
        min=1,
        help="CT views over the scan arc (default: 64, the MSL paper's sparse scan, for a "
        "preset; the file's for --geometry).",
    ),
    trajectory: str = typer.Option("cartesian", help="MRI sampling: cartesian or radial."),
    acceleration: float = typer.Option(4.0, help="MRI acceleration R (1/R of k-space)."),
    center_fraction: float = typer.Option(0.1, help="Fully sampled centre fraction (Cartesian)."),
    pattern: str = typer.Option("random", help="Cartesian columns: random or equispaced."),
    mask_seed: int = typer.Option(0, help="Seed of the Cartesian mask."),
    mask_mode: str = typer.Option(
        "fixed", help="fixed (one mask for all slices, as the MSL authors) or per-slice."
    ),
    spokes: int | None = typer.Option(
        None, min=1, help="Radial spokes (default: ceil(π/2·N / acceleration))."
    ),
    golden: bool = typer.Option(False, help="Golden-angle spoke order (radial)."),
    ct_dose: str | None = typer.Option(
        None,
        help="CT dose level: routine (1e5 photons/bin), low (4096, as LoDoPaB-CT) or none "
        "(noise-free). Default: the acquisition preset's (clinical: routine; paper: none).",
    ),
    ct_i0: float | None = typer.Option(
        None, min=1e-9, help="CT incident photons per bin (overrides --ct-dose)."
    ),
    ct_sigma_e: float | None = typer.Option(
        None, min=0.0, help="CT electronic noise std in photons (with --ct-i0; default 0)."
    ),
    mr_snr: float | None = typer.Option(
        None,
        help="MRI SNR in dB (paper: rms(image)/σ; clinical: mean head magnitude/σ, preset "
        "30 ≈ 29.5 dB). Default: the preset's (paper: noise-free).",
    ),
    coils: int | None = typer.Option(
        None, min=1, help="MRI receive coils (default: the preset's; clinical 12, paper 1)."
    ),
    acq: list[str] | None = typer.Option(
        None,
        "--acq",
        help="Acquisition setting of a plug-in, MODALITY.KEY=VALUE, repeatable "
        "(e.g. --acq pet.counts=3e6).",
    ),
    seed: int = typer.Option(0, help="Seed of subjects, splits and noise."),
    input: Path | None = typer.Option(
        None, "--input", help="Real data: folder (rire/synthrad), CSV file or image (single)."
    ),
    layout: str = typer.Option(
        "auto", help="Input layout: auto, rire, synthrad, csv or single (docs/data-layouts.md)."
    ),
    no_register: bool = typer.Option(False, "--no-register", help="Data is pre-registered."),
    strict: bool = typer.Option(
        False, "--strict", help="A registration that ends worse than it started is an error."
    ),
    pixel_size: str | None = typer.Option(
        None,
        "--pixel-size",
        help="CT pixel size in mm (scales the geometry), or 'fit' to fit every subject's head "
        "(default: the preset's; real heads wider than N × pixel size are cut with a warning).",
    ),
    no_head_mask: bool = typer.Option(
        False, "--no-head-mask", help="Keep everything outside the head."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing outputs."),
    allow_truncation: bool = typer.Option(
        False,
        "--allow-truncation",
        help="Accept a CT detector that does not cover the image (truncated projections).",
    ),
    shard: str | None = typer.Option(
        None, help="Write only shard i of n (i/n) as <split>.shard-i-of-n.h5; join with merge."
    ),
    workers: int = typer.Option(1, help="Processes that load/register subjects in parallel."),
    device: str = typer.Option("cpu", help="Torch device of the operators (cpu, cuda, auto)."),
    compression: str = typer.Option("gzip", help="HDF5 compression: gzip, lzf or none."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Simulate sparse-view CT sinograms and under-sampled MRI k-space into HDF5 files.

    Without arguments: a small phantom dataset in data/phantom/{train,val,test}.h5.
    """
    import geometries as geo

    from .. import modalities as modalities_registry
    from ..data.pipeline import SimulationRun, default_output_dir, parse_shard, run_simulation
    from ..data.simulate import CTNoise, MRNoise, SimulationSpec

    mods = _parse_modalities(modalities)
    fractions = _parse_fractions(split)
    shard_t = parse_shard(shard)
    if workers < 1:
        raise UserError(f"--workers must be ≥ 1, got {workers}")
    if slices < 0:
        raise UserError(f"--slices must be ≥ 0, got {slices}")
    if input is not None and not input.exists():
        raise UserError(f"input {input} does not exist")
    from ..training.loop import resolve_device

    device = str(resolve_device(device))  # InputError on an unknown device or missing CUDA
    from ..data.acquisition.ct import DOSE_LEVELS
    from ..data.acquisition.presets import preset as acquisition_preset

    try:
        acq_preset = acquisition_preset(acquisition)
    except ValueError as exc:
        raise UserError(f"--acquisition: {exc}") from None
    clinical = acq_preset.supersample > 1
    if preset is None:
        preset = "siemens-definition-as" if clinical else "msl-paper"
    g, n = _load_geometry(preset, geometry, size, views)
    g = _apply_pixel_size(g, pixel_size, input, layout, mods, n)
    if input is not None and not quiet:
        _log_registrations()
    sampling = {}
    try:
        if trajectory == "cartesian":
            base = geo.CartesianMask(
                shape=(n, n),
                acceleration=acceleration,
                center_fraction=center_fraction,
                pattern=pattern,
                seed=mask_seed,
            )
        elif trajectory == "radial":
            k = math.ceil(math.pi / 2 * n / acceleration) if spokes is None else spokes
            base = geo.RadialTrajectory(
                n_spokes=k, n_samples=2 * n, ordering="golden" if golden else "uniform"
            )
        else:
            raise UserError(f"--trajectory must be cartesian or radial, got {trajectory!r}")
        for m in mods:
            if modalities_registry.get(m).family == "mri":
                sampling[m] = base
        i0, sigma_e = (acq_preset.ct_i0, acq_preset.ct_sigma_e) if acq_preset.ct_dose else (None, 0)
        if ct_dose is not None:
            if ct_dose == "none":
                i0, sigma_e = None, 0.0
            elif ct_dose in DOSE_LEVELS:
                i0, sigma_e = DOSE_LEVELS[ct_dose].i0, DOSE_LEVELS[ct_dose].sigma_e
            else:
                raise UserError(f"--ct-dose must be routine, low or none, got {ct_dose!r}")
        if ct_i0 is not None:
            i0, sigma_e = ct_i0, 0.0
        if ct_sigma_e is not None:
            sigma_e = ct_sigma_e
        fields: dict[str, object] = {}
        if coils is not None:
            fields.update(n_coils=coils, coil_model="loop" if coils > 1 else "none")
            if coils == 1:
                fields.update(coil_estimation="none", mr_encoder_input="zero-filled")
        if mr_snr is not None and clinical:
            fields["mr_snr"] = 10 ** (mr_snr / 20)
        acq_preset = dataclasses.replace(acq_preset, **fields) if fields else acq_preset
        snr_db = mr_snr
        if snr_db is None and acq_preset.mr_snr is not None:
            snr_db = 20 * math.log10(acq_preset.mr_snr)
        spec = SimulationSpec(
            geometry=g,
            sampling=sampling,
            mask_seed_mode=mask_mode,
            ct_noise=CTNoise(i0, sigma_e),
            mr_noise=MRNoise(snr_db),
            n_coils=acq_preset.n_coils,
            options=_parse_options(acq),
            preset=acq_preset,
            fov_mm=g.image_size * g.pixel_size if clinical and input is None else None,
        )
    except ValueError as exc:
        raise UserError(str(exc)) from None
    run = SimulationRun(
        out_dir=out if out is not None else default_output_dir(),
        spec=spec,
        modalities=mods,
        size=n,
        n_subjects=subjects,
        n_slices=None if slices == 0 else slices,
        fractions=fractions,
        seed=seed,
        input=input,
        layout=layout if input is not None else None,
        register=not no_register,
        head_mask=not no_head_mask,
        shard=shard_t,
        workers=workers,
        device=device,
        compression=compression,
        overwrite=overwrite,
        progress=not quiet,
        allow_truncation=allow_truncation,
        strict=strict,
    )
    written = run_simulation(run)
    for s, p in written.items():
        typer.echo(f"wrote {p} ({s})")


def inspect_cmd(
    file: Path = typer.Argument(..., help="An msl-recon HDF5 file, or a folder of split files."),
) -> None:
    """Print a summary of a dataset file: shapes, geometry, sampling, noise, subjects."""
    from ..data.hdf5 import SPLITS, summarize

    if file.is_dir():
        files = [file / f"{s}.h5" for s in SPLITS if (file / f"{s}.h5").is_file()]
        files += sorted(file.glob("*.shard-*-of-*.h5"))
        if not files:
            raise UserError(f"{file} holds no split files (train.h5, val.h5, test.h5)")
        typer.echo("\n\n".join(summarize(f) for f in files))
        return
    typer.echo(summarize(file))


def preview_cmd(
    file: Path = typer.Argument(..., help="An msl-recon HDF5 file."),
    out: Path = typer.Option(Path("preview.png"), "--out", "-o", help="Output image (PNG)."),
    index: int = typer.Option(0, help="Slice to show."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing image."),
) -> None:
    """Write a montage: GT CT, GT MRI, FBP, zero-filled MRI, sinogram, k-space, mask."""
    write_preview(file, out, index=index, overwrite=overwrite)
    typer.echo(f"wrote {out}")


def merge_cmd(
    folder: Path = typer.Argument(..., help="Folder holding <split>.shard-i-of-n.h5 files."),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Output folder (default: the shards' folder)."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing split files."),
    compression: str = typer.Option("gzip", help="HDF5 compression: gzip, lzf or none."),
) -> None:
    """Join shard files (from simulate --shard i/n) into train/val/test.h5."""
    import re

    from ..data.hdf5 import SPLITS, merge_shards, read_attrs

    if not folder.is_dir():
        raise UserError(f"{folder} is not a folder")
    dest = out or folder
    groups: dict[str, list[Path]] = {}
    for p in sorted(folder.glob("*.shard-*-of-*.h5")):
        m = re.match(r"^(.+)\.shard-\d+-of-\d+\.h5$", p.name)
        if m:
            groups.setdefault(m.group(1), []).append(p)
    if not groups:
        raise UserError(f"no shard files (<split>.shard-i-of-n.h5) in {folder}")
    unknown = sorted(set(groups) - set(SPLITS))
    if unknown:
        raise UserError(f"unexpected shard names {unknown}; expected splits {list(SPLITS)}")
    targets = {s: dest / f"{s}.h5" for s in groups}
    if not overwrite:
        for t in targets.values():
            if t.exists():
                raise UserError(f"{t} exists; pass --overwrite to replace it")
    for s, paths in groups.items():
        import h5py

        total = 0
        for p in paths:
            read_attrs(p)
            with h5py.File(p, "r") as f:
                total += f["meta/subject_id"].shape[0] if "meta/subject_id" in f else 0
        if total == 0:
            typer.echo(f"{s}: no slices in any shard, nothing written")
            continue
        n = merge_shards(paths, targets[s], compression=compression)
        typer.echo(f"wrote {targets[s]} ({n} slices from {len(paths)} shards)")


def write_preview(file: Path, out: Path, *, index: int = 0, overwrite: bool = False) -> Path:
    """Montage of one slice of a dataset file (see :func:`preview_cmd`); returns ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    import torch

    from .. import modalities
    from .._io import atomic_path, check_output_path
    from ..data.dataset import MSLDataset

    check_output_path(out, overwrite=overwrite)
    ds = MSLDataset(file)
    if len(ds) == 0:
        raise UserError(f"{file} holds no slices")
    if not -len(ds) <= index < len(ds):
        raise UserError(f"--index {index} out of range: {file} has {len(ds)} slices")
    item = ds[index]
    panels: list[tuple[str, np.ndarray, str]] = []
    for m in ds.modalities:
        panels += modalities.get(m).preview_panels(item, ds.acquisition.get(m))
    cols = 4
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.3 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (title, img, cmap) in zip(axes.flat, panels, strict=False):
        kw = {"vmin": 0.0, "vmax": 1.0} if cmap == "gray" and title != "mask" else {}
        aspect = "auto" if title.startswith(("sinogram", "log |k| per")) else "equal"
        im = ax.imshow(img, cmap=cmap, aspect=aspect, interpolation="nearest", **kw)
        ax.set_title(title, fontsize=9)
        cb = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02)
        cb.ax.tick_params(labelsize=6)
        cb.set_label("[0, 1]" if kw else "data units", fontsize=7)
    subj = ds.subject_ids()[index]
    fig.suptitle(f"{Path(file).name} — slice {index} ({subj})", fontsize=10)
    fig.tight_layout()
    fmt = out.suffix.lstrip(".").lower() or "png"
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format=fmt, dpi=110)
    plt.close(fig)
    del torch
    return out


def register(app: typer.Typer) -> None:
    """Add the data commands to the ``msl-recon`` app."""
    app.command("simulate")(simulate_cmd)
    app.command("inspect")(inspect_cmd)
    app.command("preview")(preview_cmd)
    app.command("merge")(merge_cmd)
