"""PNG figures and result tables for reconstructions: image strips, difference maps, metrics.

Everything here writes files atomically and uses matplotlib's non-interactive ``Agg`` backend
(imported lazily), so it works on headless machines.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ._io import atomic_path

__all__ = [
    "lambda_title",
    "meaningful_metric_rows",
    "metrics_markdown",
    "save_image_png",
    "save_strip",
    "write_metrics_tables",
]


def _figure():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def save_image_png(
    path: str | os.PathLike, image: np.ndarray, *, vmin: float = 0.0, vmax: float = 1.0
) -> Path:
    """Write one 2D image as an 8-bit grayscale PNG (values clipped to ``[vmin, vmax]``).

    Parameters
    ----------
    path : path-like
        Output ``.png``.
    image : ndarray, shape ``(H, W)``
        Intensities (``[0, 1]`` by convention).
    """
    from PIL import Image

    a = np.asarray(image, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f"save_image_png expects a 2D image, got shape {a.shape}")
    a = np.clip((a - vmin) / max(vmax - vmin, 1e-12), 0.0, 1.0)
    img = Image.fromarray(np.round(a * 255).astype(np.uint8), mode="L")
    target = Path(path)
    with atomic_path(target) as tmp:
        img.save(tmp, format="PNG")
    return target


_LEGACY_KINDS = {"ct": "mod:ct", "diff_ct": "diff:ct"}


def _windows(m: str) -> list[tuple[str, float, float]]:
    """Display windows ``(name, low, high)`` of a modality, physical units (its plug-in's)."""
    from . import modalities

    return [(name, lo, hi) for name, (lo, hi) in modalities.get(m).windows.items()]


def lambda_title(lam: float, modalities: Sequence[str]) -> str:
    """``'λ=0 (CT)'``, ``'λ=1 (T1)'`` or ``'λ=0.25'``: a global λ named by what it reconstructs."""
    text = f"λ={lam:g}"
    if len(modalities) == 2 and lam in (0.0, 1.0):
        m = modalities[int(lam)]
        text += f" ({m.upper()})"
    return text


def _panels(row: Sequence[tuple], diff: bool) -> list[tuple[str, np.ndarray | None, str]]:
    """Expand a row's ``(title, image[, kind])`` tuples; a modality panel becomes one per display
    window of its plug-in (CT: the full range and a brain window)."""
    out: list[tuple[str, np.ndarray | None, str]] = []
    for item in row:
        name, img = item[0], item[1]
        kind = item[2] if len(item) > 2 and item[2] else ("diff" if diff else "unit")
        kind = _LEGACY_KINDS.get(kind, kind)
        if kind.startswith("mod:") and img is not None:
            m = kind[4:]
            for k, (wname, lo, hi) in enumerate(_windows(m)):
                title = name if k == 0 else f"{name} ({wname} {lo:g}–{hi:g})"
                out.append((title, img, f"{kind}:{k}"))
        else:
            out.append((name, img, kind))
    return out


def save_strip(
    path: str | os.PathLike,
    rows: Sequence[Sequence[tuple]],
    *,
    diff_rows: Sequence[int] = (),
    diff_range: float = 0.3,
    title: str | None = None,
    panel_inches: float = 1.9,
    dpi: int = 110,
    colorbar: bool = True,
) -> Path:
    """Write a grid of titled image panels, each with a colour bar, as one PNG.

    Parameters
    ----------
    path : path-like
        Output ``.png``.
    rows : sequence of rows; each row a sequence of ``(title, image)`` or ``(title, image, kind)``
        Images are ``(H, W)`` arrays on the [0, 1] scale; ``None`` leaves a blank panel. ``kind``:

        * ``'unit'`` (default): gray on [0, 1];
        * ``'mod:<m>'``: modality ``m`` shown in its physical units (its plug-in's
          ``from_unit``) once per display window of the plug-in (CT: the full −1000 … 2125 HU
          range and a brain window 0–80 HU; ``'ct'`` is accepted for ``'mod:ct'``), colour
          bar in its units;
        * ``'lambda'``: λ map on [0, 1] (viridis);
        * ``'diff'`` / ``'diff:<m>'``: signed difference, diverging colours on ``±diff_range``
          (``'diff:<m>'`` in the modality's units, e.g. ``±diff_range × 3125`` HU for CT;
          ``'diff_ct'`` is accepted for ``'diff:ct'``).
    diff_rows : sequence of int
        Rows whose panels without an explicit kind are ``'diff'``.
    diff_range : float
        Half-range of difference colour scales (unit scale).
    title : str, optional
        Figure title.
    colorbar : bool
        A colour bar beside every panel, labelled with its unit.
    """
    from . import modalities

    plt = _figure()
    grid = [_panels(r, i in diff_rows) for i, r in enumerate(rows)]
    n_rows = len(grid)
    n_cols = max((len(r) for r in grid), default=1)
    width = panel_inches * (1.25 if colorbar else 1.0)
    fig, axes = plt.subplots(
        n_rows,
        n_cols,
        figsize=(width * n_cols, panel_inches * n_rows + (0.4 if title else 0.0)),
        squeeze=False,
    )
    try:
        for i, row in enumerate(grid):
            for j in range(n_cols):
                ax = axes[i][j]
                ax.set_axis_off()
                if j >= len(row) or row[j][1] is None:
                    continue
                name, img, kind = row[j]
                a = np.asarray(img, dtype=np.float32)
                label = "[0, 1]"
                if kind.startswith("mod:"):
                    _, m, k = kind.split(":")
                    spec = modalities.get(m)
                    _, lo, hi = _windows(m)[int(k)]
                    phys = np.asarray(spec.from_unit(a), dtype=np.float32)
                    im = ax.imshow(phys, cmap="gray", vmin=lo, vmax=hi)
                    label = spec.units
                elif kind == "diff" or kind.startswith("diff:"):
                    scale, label = 1.0, "Δ [0, 1]"
                    if kind.startswith("diff:"):
                        spec = modalities.get(kind[5:])
                        scale = float(
                            spec.from_unit(np.float32(1.0)) - spec.from_unit(np.float32(0))
                        )
                        label = f"Δ {spec.units}"
                    r = diff_range * scale
                    im = ax.imshow(a * scale, cmap="seismic", vmin=-r, vmax=r)
                elif kind == "lambda":
                    im = ax.imshow(a, cmap="viridis", vmin=0.0, vmax=1.0)
                    label = "λ"
                else:
                    im = ax.imshow(a, cmap="gray", vmin=0.0, vmax=1.0)
                ax.set_title(name, fontsize=7)
                if colorbar:
                    cb = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02)
                    cb.ax.tick_params(labelsize=5)
                    cb.set_label(label, fontsize=6)
        if title:
            fig.suptitle(title, fontsize=9)
        # fixed margins: tight_layout costs seconds per figure and the grid is regular
        top = 1.0 - (0.4 / (panel_inches * n_rows + 0.4) if title else 0.0) - 0.03
        fig.subplots_adjust(left=0.01, right=0.97, bottom=0.01, top=top, wspace=0.15, hspace=0.22)
        target = Path(path)
        with atomic_path(target) as tmp:
            fig.savefig(tmp, format="png", dpi=dpi)
    finally:
        plt.close(fig)
    return target


def meaningful_metric_rows(
    rows: Sequence[dict[str, Any]], modalities: Sequence[str]
) -> list[dict[str, Any]]:
    """Drop metric rows that compare an output with a modality it does not represent.

    For a two-modality model, a global λ = 0 output is scored against the first modality's
    ground truth only, λ = 1 against the second's only; intermediate λ (fusions) against each
    ground truth only when every modality's ground truth is there (with CT-only ground truth,
    a λ > 0 image is not a CT). Simplex vertices ``MSL-<M>`` are scored against ``GT <M>``
    only. Inputs, λ maps and optimised λ rows are kept.
    """
    refs = {str(r.get("reference", "")) for r in rows}
    all_gt = all(f"GT {m.upper()}" in refs for m in modalities)
    out = []
    for r in rows:
        ref = str(r.get("reference", ""))
        lam = str(r.get("lambda", ""))
        name = str(r.get("output", ""))
        if name.startswith("MSL-"):
            if ref != f"GT {name[4:]}":
                continue
        elif name == "MSL" and len(modalities) == 2:
            try:
                val = float(lam)
            except ValueError:
                val = None
            if val in (0.0, 1.0):
                m = modalities[int(val)]
                if ref != f"GT {m.upper()}":
                    continue
            elif val is not None and not all_gt:
                continue
        out.append(r)
    return out


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.4f}"
    return str(v)


def metrics_markdown(rows: Sequence[dict[str, Any]], *, title: str | None = None) -> str:
    """A GitHub-markdown table of metric rows (columns: union of keys, first-seen order)."""
    cols: list[str] = []
    for r in rows:
        for k in r:
            if k not in cols:
                cols.append(k)
    lines = []
    if title:
        lines += [f"### {title}", ""]
    lines.append("| " + " | ".join(cols) + " |")
    lines.append("|" + "|".join("---" for _ in cols) + "|")
    for r in rows:
        lines.append("| " + " | ".join(_fmt(r.get(c, "")) for c in cols) + " |")
    return "\n".join(lines) + "\n"


def write_metrics_tables(
    out_dir: str | os.PathLike,
    rows: Sequence[dict[str, Any]],
    *,
    stem: str = "metrics",
    title: str | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Path]:
    """Write metric rows as ``<stem>.md``, ``<stem>.csv`` and ``<stem>.json`` (atomically).

    Parameters
    ----------
    out_dir : path-like
        Directory (created).
    rows : sequence of dict
        One dict per table row (e.g. ``{"lambda": 0.5, "reference": "ct", "mae": ...}``).
    extra : dict, optional
        Additional JSON content (e.g. λ-optimisation objectives), stored under ``"extra"``.

    Returns
    -------
    dict
        ``{"md": path, "csv": path, "json": path}``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cols: list[str] = []
    for r in rows:
        for k in r:
            if k not in cols:
                cols.append(k)
    paths = {"md": out / f"{stem}.md", "csv": out / f"{stem}.csv", "json": out / f"{stem}.json"}
    with atomic_path(paths["md"]) as tmp:
        tmp.write_text(metrics_markdown(rows, title=title), encoding="utf-8")
    with atomic_path(paths["csv"]) as tmp, tmp.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=cols)
        w.writeheader()
        for r in rows:
            w.writerow(r)
    payload: dict[str, Any] = {"rows": list(rows)}
    if extra:
        payload["extra"] = extra
    with atomic_path(paths["json"]) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, default=float), encoding="utf-8")
    return paths
