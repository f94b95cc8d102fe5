"""``msl-recon reconstruct``: MSL images for global λ values, a λ map or an MI-optimised λ map."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import typer

from ..errors import InputError, UserError


def _input_name(m: str) -> str:
    """Name of a modality's analytical input image (e.g. ``FBP``), from its plug-in."""
    from .. import modalities

    return modalities.get(m).input_label


def _is_modality(name: str) -> bool:
    from .. import modalities

    return name in modalities.names()


def _check_out_dir(out: Path, overwrite: bool) -> None:
    from .._io import check_output_dir

    check_output_dir(out)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise UserError(f"output directory {out} is not empty; pass --overwrite to replace it")
    out.mkdir(parents=True, exist_ok=True)


def _open_source(
    inputs: Sequence[Path],
    model: Any,
    modalities: tuple[str, ...] | None,
    n_views: int | None,
    acceleration: float | None,
) -> tuple[Any, tuple[str, ...]]:
    """A dataset-like object: ``len``, ``[i]`` -> dict, ``.acquisition``, GT keys."""
    from ..inference import load_raw_input

    if not inputs:
        raise UserError("give an input: --input DATA.h5 (or raw .npy sinogram / k-space files)")
    for p in inputs:
        if not p.exists():
            raise UserError(f"input {p} does not exist")
    if len(inputs) == 1 and inputs[0].suffix.lower() in (".h5", ".hdf5"):
        from ..data.dataset import MSLDataset
        from ..data.hdf5 import read_attrs, validate

        read_attrs(inputs[0])  # InputError unless an msl-recon HDF5 file
        want = modalities or None
        if want is None:  # the model's modalities that the file claims to hold
            import h5py

            with h5py.File(inputs[0], "r") as f:
                want = tuple(m for m in model.modalities if f"images/{m}" in f) or None
        validate(inputs[0], want)  # schema, shapes and finiteness before any work
        try:
            ds = MSLDataset(inputs[0], n_views=n_views, acceleration=acceleration)
        except InputError:
            raise
        except (OSError, KeyError, ValueError) as exc:
            raise UserError(f"cannot open {inputs[0]}: {exc}") from exc
        mods = modalities or tuple(m for m in model.modalities if m in ds.modalities)
        missing = [m for m in mods if m not in ds.modalities]
        if missing:
            raise UserError(f"modalities {missing} are not in {inputs[0]} (it has {ds.modalities})")
        return ds, mods
    from .. import modalities as registry

    batch: dict[str, Any] = {}
    acquisition = dict(model.acquisition)
    mods_found: list[str] = []
    for p in inputs:
        want = [m for m in (modalities or model.modalities) if m not in mods_found]
        if not want:
            raise UserError(f"{p}: every requested modality already has a raw input")
        m, b, acq = load_raw_input(p, model, want)
        mods_found.append(m)
        batch.update(b)
        acquisition[m] = acq
    import torch

    for k, v in batch.items():
        if isinstance(v, torch.Tensor) and (v.is_floating_point() or v.is_complex()):
            if not bool(torch.isfinite(v).all()):
                raise UserError(f"raw input {k} holds non-finite values (NaN or inf)")
    sizes = {int(batch[registry.get(m).raw_key].shape[0]) for m in mods_found}
    if len(sizes) != 1:
        raise UserError(f"raw inputs have different slice counts {sorted(sizes)}")
    mods = modalities or tuple(mods_found)
    missing = [m for m in mods if m not in mods_found]
    if missing:
        raise UserError(f"--modalities asks for {missing} but no raw input holds them")
    return _RawSource(batch, acquisition, sizes.pop()), mods


def _acquisition_attr(source: Any, name: str) -> Any:
    """The first acquisition of ``source`` that has attribute ``name`` (e.g. a CT geometry's
    ``pixel_size``), or None."""
    for a in source.acquisition.values():
        if getattr(a, name, None) is not None:
            return getattr(a, name)
    return None


class _RawSource:
    def __init__(self, batch: dict[str, Any], acquisition: dict[str, Any], n: int) -> None:
        self.batch, self.acquisition, self.n = batch, acquisition, n
        self.modalities: tuple[str, ...] = ()

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {k: v[i] for k, v in self.batch.items()}


def _metric_row(name: str, lam: Any, ref: str, x: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """Metrics of a stack ``x`` ``(S, H, W)`` vs ``y``, averaged over slices (torch, batched)."""
    import torch

    from .. import metrics

    a = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64))
    b = torch.from_numpy(np.ascontiguousarray(y, dtype=np.float64))
    return {
        "output": name,
        "lambda": lam,
        "reference": f"GT {ref.upper()}",
        "mae": float(metrics.mae(a, b).mean()),
        "ssim": float(metrics.ssim(a, b).mean()),
        "mi": float(metrics.nmi(a, b).mean()),
        "psnr": float(metrics.psnr(a, b).clamp(max=100.0).mean()),
    }


DEFAULT_LAMBDAS = "0,0.25,0.5,0.75,1"


def run_reconstruct(
    *,
    checkpoint: Path,
    inputs: Sequence[Path],
    out: Path,
    modalities: str | None = None,
    lambdas: str | Sequence[float] | Sequence[Sequence[float]] | None = None,
    lambda_map: Path | None = None,
    optimize_lambda: bool = False,
    alpha: float = 1e-3,
    opt_iterations: int = 100,
    slices: str | None = None,
    n_views: int | None = None,
    acceleration: float | None = None,
    device: str = "auto",
    batch_size: int = 4,
    overwrite: bool = False,
    progress: bool = True,
    png: bool = True,
) -> dict[str, Any]:
    """Reconstruct and write every output (see ``msl-recon reconstruct --help``).

    Returns
    -------
    dict
        ``{"files": {...}, "metrics": [rows], "objective": {...} or None, "seconds": float}``.
    """
    import torch
    from torch.utils.data import default_collate
    from tqdm.auto import tqdm

    from .._io import check_output_dir
    from ..inference import (
        Reconstructor,
        lambda_label,
        load_lambda_map,
        load_model,
        parse_lambdas,
        parse_simplex_points,
        parse_slices,
        simplex_label,
    )
    from ..training.loop import canonical_modalities, resolve_device

    t0 = time.perf_counter()
    check_output_dir(out)
    if alpha < 0:
        raise UserError(f"--alpha must be ≥ 0, got {alpha}")
    dev = resolve_device(device)
    model = load_model(checkpoint, dev)
    mods_req = canonical_modalities(modalities)
    if mods_req:
        bad = [m for m in mods_req if m not in model.modalities]
        if bad:
            raise UserError(
                f"modalities {bad} are not in the checkpoint (it has {list(model.modalities)})"
            )
    n_out = len(model.modalities)
    if n_out > 2 and (lambda_map is not None or optimize_lambda):
        raise UserError("λ maps and λ optimisation need a two-modality model")
    lams: list[float] = []
    points: dict[str, tuple[float, ...]] = {}  # n > 2: output key -> simplex point
    if n_out <= 2:
        lams = parse_lambdas(DEFAULT_LAMBDAS if lambdas is None else lambdas)
    else:
        if lambdas is None:  # the vertices (MSL-<m>) and the barycentre
            pts = [tuple(np.eye(n_out)[i]) for i in range(n_out)] + [(1.0 / n_out,) * n_out]
        else:
            pts = parse_simplex_points(lambdas, n_out)
        for pt in pts:
            hot = [i for i, v in enumerate(pt) if v == 1.0]
            key = model.modalities[hot[0]] if hot else simplex_label(pt)
            points[f"msl_{key}"] = tuple(float(v) for v in pt)
    n = int(model.config.image_size)
    lam_map = load_lambda_map(lambda_map, (n, n)) if lambda_map is not None else None
    source, mods = _open_source(list(inputs), model, mods_req, n_views, acceleration)
    shape_attr = _acquisition_attr(source, "image_shape")
    img_shape = tuple(shape_attr) if shape_attr is not None else (n, n)
    if img_shape != (n, n):
        raise UserError(f"data images are {img_shape}, the model was trained on {(n, n)}")
    sel = parse_slices(slices, len(source))
    _check_out_dir(out, overwrite)

    gt_mods = [m for m in model.modalities if m in getattr(source, "modalities", ())]
    stacks: dict[str, list[np.ndarray]] = {}
    objective: dict[str, list[float]] = {"before": [], "after": []}

    def put(name: str, arr: Any) -> None:
        a = arr.detach().float().cpu().numpy() if isinstance(arr, torch.Tensor) else arr
        stacks.setdefault(name, []).append(np.asarray(a, dtype=np.float32))

    bar = tqdm(total=len(sel), desc="reconstruct", unit="slice", disable=not progress)
    for start in range(0, len(sel), batch_size):
        idx = sel[start : start + batch_size]
        batch = default_collate([source[i] for i in idx])
        rec = Reconstructor(model, batch, source.acquisition, mods, dev)
        for m, x in rec.inputs().items():
            put(f"input_{m}", x)
        for m in gt_mods:
            put(f"gt_{m}", rec.batch[m][:, 0])
        if n_out <= 2:
            for lam in lams:
                put(f"msl_{lambda_label(lam)}", rec.decode(float(lam)).clamp(0, 1))
        else:
            for key, pt in points.items():
                lam_pt = torch.tensor(pt, dtype=torch.float32, device=dev)[None].expand(
                    rec.batch_size, -1
                )
                put(key, rec.decode(lam_pt).clamp(0, 1))
        b = rec.batch_size
        if lam_map is not None:
            lm = torch.from_numpy(lam_map).to(dev)[None, None].expand(b, 1, n, n)
            put("lambda_map", lm[:, 0])
            put("msl_map", rec.decode(lm).clamp(0, 1))
        if optimize_lambda:
            from ..lambda_opt import optimize_lambda as _opt

            lam_opt, hist = _opt(
                model.net, rec.features, alpha=alpha, steps=opt_iterations, init=0.5
            )
            put("lambda_optimized", lam_opt[:, 0])
            put("msl_optimized", rec.decode(lam_opt).clamp(0, 1))
            objective["before"].extend(float(v) for v in hist["objective_before"])
            objective["after"].extend(float(v) for v in hist["objective_after"])
        bar.update(len(idx))
    bar.close()
    arrays = {k: np.concatenate(v, axis=0) for k, v in stacks.items()}
    files = _write_outputs(out, arrays, model, mods, sel, source, png=png, checkpoint=checkpoint)
    from ..figures import meaningful_metric_rows

    rows = meaningful_metric_rows(_metrics(arrays, model, mods, lams), model.modalities)
    obj = None
    if optimize_lambda:
        obj = {
            "alpha": alpha,
            "before_mean": float(np.mean(objective["before"])),
            "after_mean": float(np.mean(objective["after"])),
            "before": objective["before"],
            "after": objective["after"],
        }
    if rows or obj:
        from ..figures import write_metrics_tables

        files.update(
            write_metrics_tables(
                out,
                rows,
                title=f"MSL reconstruction ({', '.join(m.upper() for m in mods)} input)",
                extra={"optimize_lambda": obj} if obj else None,
            )
        )
    return {
        "files": files,
        "metrics": rows,
        "objective": obj,
        "seconds": time.perf_counter() - t0,
        "slices": sel,
    }


def _metrics(
    arrays: dict[str, np.ndarray], model: Any, mods: Sequence[str], lams: Sequence[float]
) -> list[dict[str, Any]]:
    from ..inference import lambda_label

    rows: list[dict[str, Any]] = []
    gts = {k[3:]: v for k, v in arrays.items() if k.startswith("gt_")}
    if not gts:
        return rows

    def add(name: str, lam: Any, stack: np.ndarray, refs: Sequence[str] | None = None) -> None:
        lam = f"{lam:g}" if isinstance(lam, float) else lam
        for ref, gt in gts.items():
            if refs is not None and ref not in refs:
                continue
            rows.append(_metric_row(name, lam, ref, stack, gt))

    for m in mods:
        if m in gts:
            x = np.clip(arrays[f"input_{m}"], 0, 1)
            add(f"input {_input_name(m)}", "-", x, refs=[m])
    if len(model.modalities) <= 2:
        for lam in lams:
            add("MSL", lam, arrays[f"msl_{lambda_label(lam)}"])
    else:
        for k in arrays:
            if k.startswith("msl_lam"):
                add("MSL", k[7:].replace("-", ":"), arrays[k])
            elif k[4:] in model.modalities and k.startswith("msl_"):
                add(f"MSL-{k[4:].upper()}", "vertex", arrays[k])
    if "msl_map" in arrays:
        add("MSL", "map", arrays["msl_map"])
    if "msl_optimized" in arrays:
        add("MSL", "optimized", arrays["msl_optimized"])
    return rows


def _write_outputs(
    out: Path,
    arrays: dict[str, np.ndarray],
    model: Any,
    mods: Sequence[str],
    sel: Sequence[int],
    source: Any,
    *,
    png: bool,
    checkpoint: Path | None = None,
) -> dict[str, Any]:
    import h5py

    from .._io import atomic_path
    from ..figures import save_strip

    files: dict[str, Any] = {}
    from ..outputs import SliceGeometry, write_nifti_outputs, write_recon_metadata

    n = next(iter(arrays.values())).shape[-1]
    ds_path = getattr(source, "path", None)  # an MSLDataset (HDF5 input) has a path
    px_attr = _acquisition_attr(source, "pixel_size")
    pixel = float(px_attr) if px_attr is not None else None
    with atomic_path(out / "recon.h5") as tmp, h5py.File(tmp, "w") as f:
        for k, v in arrays.items():
            f.create_dataset(k, data=v, compression="gzip", compression_opts=4)
        f["slice_index"] = np.asarray(sel, dtype=np.int64)  # row in the input (kept)
        f.attrs["modalities_in"] = json.dumps(list(mods))
        f.attrs["model_modalities"] = json.dumps(list(model.modalities))
        f.attrs["iteration"] = model.iteration
        meta: dict[str, Any] = {}
        if ds_path is not None:
            with h5py.File(ds_path, "r") as src:
                meta["subject_ids"] = [
                    v.decode() if isinstance(v, bytes) else str(v)
                    for v in src["meta/subject_id"][list(sel)]
                ]
                if "meta/slice_index" in src:
                    meta["slice_indices"] = src["meta/slice_index"][list(sel)].tolist()
        geom = SliceGeometry(pixel_size_mm=pixel or 1.0, size=n)
        if ds_path is not None and len(set(meta["subject_ids"])) == 1:
            from ..outputs import slice_geometry_from_dataset

            geom = slice_geometry_from_dataset(ds_path, list(sel))
        write_recon_metadata(
            f,
            geometry=geom,
            n_slices=len(sel),
            keys=list(arrays),
            modalities=model.modalities,
            source_file=ds_path,
            checkpoint=checkpoint,
            rows=list(sel),
            **meta,
        )
    files["hdf5"] = out / "recon.h5"
    files["nifti"] = write_nifti_outputs(
        out / "nifti",
        arrays,
        modalities=model.modalities,
        rows=list(sel),
        size=n,
        dataset_path=ds_path,
        pixel_size=pixel,
    )
    if png:
        files["png"] = []
        for j, s in enumerate(sel):
            rows, diff_rows = _strip_rows(arrays, j, model, mods)
            path = out / "png" / f"slice_{s:04d}.png"
            save_strip(path, rows, diff_rows=diff_rows, title=f"slice {s}")
            files["png"].append(path)
    return files


def _strip_rows(
    arrays: dict[str, np.ndarray], j: int, model: Any, mods: Sequence[str]
) -> tuple[list[list[tuple[str, np.ndarray | None, str]]], list[int]]:
    """Panels ``(title, image, kind)`` of one slice (kinds: see :func:`figures.save_strip`)."""
    from ..figures import lambda_title
    from ..outputs import intensity_kind

    mm = tuple(model.modalities)

    def kind(key: str) -> str:
        k = intensity_kind(key, mm)
        if k == "lambda":
            return k
        return f"mod:{k}" if _is_modality(k) else "unit"

    first = mm[0].upper() if mm else "first"
    second = mm[1].upper() if len(mm) > 1 else "second"
    row_in = [
        (_input_name(m), np.clip(arrays[f"input_{m}"][j], 0, 1), kind(f"input_{m}")) for m in mods
    ]
    row_in += [
        (f"GT {k[3:].upper()}", arrays[k][j], kind(k)) for k in arrays if k.startswith("gt_")
    ]
    for key, name in (("lambda_map", "λ map"), ("lambda_optimized", "optimised λ")):
        if key in arrays:
            row_in.append((f"{name} (0 {first}, 1 {second})", arrays[key][j], "lambda"))
    row_msl = []
    for k in arrays:
        if k.startswith("msl_lam"):
            try:
                t = f"MSL {lambda_title(float(k[7:]), mm)}"
            except ValueError:
                t = f"MSL λ={k[7:]}"
            row_msl.append((t, arrays[k][j], kind(k)))
        elif k.startswith("msl_") and _is_modality(k[4:]):
            row_msl.append((f"MSL-{k[4:].upper()}", arrays[k][j], kind(k)))
    if "msl_map" in arrays:
        row_msl.append(("MSL λ map", arrays["msl_map"][j], "unit"))
    if "msl_optimized" in arrays:
        row_msl.append(("MSL optimised λ", arrays["msl_optimized"][j], "unit"))
    rows: list[list[tuple[str, np.ndarray | None, str]]] = [row_in, row_msl]
    diff: list[tuple[str, np.ndarray | None, str]] = []
    if len(mm) == 2:
        for lam, ref in (("0.00", mm[0]), ("1.00", mm[1])):
            key, gkey = f"msl_lam{lam}", f"gt_{ref}"
            if key in arrays and gkey in arrays:
                diff.append(
                    (
                        f"{lambda_title(float(lam), mm)} − GT {ref.upper()}",
                        arrays[key][j] - arrays[gkey][j],
                        f"diff:{ref}",
                    )
                )
    for m in mods:
        if f"gt_{m}" in arrays:
            d = np.clip(arrays[f"input_{m}"][j], 0, 1) - arrays[f"gt_{m}"][j]
            diff.append((f"{_input_name(m)} − GT", d, f"diff:{m}"))
    if diff:
        rows.append(diff)
    return rows, [2] if diff else []


def reconstruct_cmd(
    inputs: list[Path] = typer.Option(
        [], "--input", "-i", help="HDF5 dataset (e.g. test.h5) or raw .npy sinogram/k-space."
    ),
    checkpoint: Path = typer.Option(..., "--checkpoint", "-c", help="Training checkpoint (.pt)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output directory."),
    modalities: str | None = typer.Option(
        None, "--modalities", help="Inputs to use: ct,mr | ct | mr (mr = t1). Default: all."
    ),
    lambdas: str | None = typer.Option(
        None,
        "--lambda",
        help=(
            "Global λ values in [0,1] (default 0,0.25,0.5,0.75,1). For a model with n > 2 "
            "modalities: simplex points with n weights, e.g. 1:0:0,1:1:1 (normalised; default: "
            "the vertices and the barycentre)."
        ),
    ),
    lambda_map: Path | None = typer.Option(None, "--lambda-map", help="PNG/NPY/NIfTI λ map."),
    optimize: bool = typer.Option(False, "--optimize-lambda", help="MI-optimised λ map."),
    alpha: float = typer.Option(1e-3, "--alpha", help="TV weight of the λ optimisation."),
    opt_iterations: int = typer.Option(100, "--opt-iterations", min=1),
    slices: str | None = typer.Option(None, "--slices", help="e.g. 3 | 0,4,7 | 2:6."),
    n_views: int | None = typer.Option(None, "--n-views", min=1, help="Use fewer CT views."),
    acceleration: float | None = typer.Option(None, "--acceleration", min=1.0),
    device: str = typer.Option("auto", "--device"),
    batch_size: int = typer.Option(4, "--batch-size", min=1),
    overwrite: bool = typer.Option(False, "--overwrite"),
    quiet: bool = typer.Option(False, "--quiet"),
) -> None:
    """Reconstruct MSL images; writes recon.h5, nifti/, png/ and metrics.{md,csv,json}."""
    res = run_reconstruct(
        checkpoint=checkpoint,
        inputs=inputs,
        out=out,
        modalities=modalities,
        lambdas=lambdas,
        lambda_map=lambda_map,
        optimize_lambda=optimize,
        alpha=alpha,
        opt_iterations=opt_iterations,
        slices=slices,
        n_views=n_views,
        acceleration=acceleration,
        device=device,
        batch_size=batch_size,
        overwrite=overwrite,
        progress=not quiet,
    )
    if res["objective"]:
        o = res["objective"]
        typer.echo(
            f"λ optimisation (α={o['alpha']}): objective {o['before_mean']:.4f} → "
            f"{o['after_mean']:.4f} (mean over slices)"
        )
    if res["metrics"]:
        from ..figures import metrics_markdown

        typer.echo(metrics_markdown(res["metrics"]))
    typer.echo(f"wrote {out} ({len(res['slices'])} slices, {res['seconds']:.1f} s)")


def register(app: typer.Typer) -> None:
    """Add ``reconstruct`` to the ``msl-recon`` app."""
    app.command("reconstruct")(reconstruct_cmd)
