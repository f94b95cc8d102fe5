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


def save_strip(
    path: str | os.PathLike,
    rows: Sequence[Sequence[tuple[str, np.ndarray | None]]],
    *,
    diff_rows: Sequence[int] = (),
    diff_range: float = 0.3,
    title: str | None = None,
    panel_inches: float = 1.9,
    dpi: int = 110,
) -> Path:
    """Write a grid of titled image panels as one PNG.

    Parameters
    ----------
    path : path-like
        Output ``.png``.
    rows : sequence of rows; each row a sequence of ``(title, image)``
        Images are ``(H, W)`` arrays shown in gray on ``[0, 1]``; ``None`` leaves a blank panel.
    diff_rows : sequence of int
        Row indices holding signed difference maps, shown with a diverging colour map on
        ``[-diff_range, diff_range]``.
    diff_range : float
        Half-range of the colour scale of difference rows.
    title : str, optional
        Figure title.
    """
    plt = _figure()
    n_rows = len(rows)
    n_cols = max((len(r) for r in rows), default=1)
    fig, axes = plt.subplots(
        n_rows,
        n_cols,
        figsize=(panel_inches * n_cols, panel_inches * n_rows + (0.4 if title else 0.0)),
        squeeze=False,
    )
    try:
        for i, row in enumerate(rows):
            for j in range(n_cols):
                ax = axes[i][j]
                ax.set_axis_off()
                if j >= len(row) or row[j][1] is None:
                    continue
                name, img = row[j]
                a = np.asarray(img, dtype=np.float32)
                if i in diff_rows:
                    ax.imshow(a, cmap="seismic", vmin=-diff_range, vmax=diff_range)
                else:
                    ax.imshow(a, cmap="gray", vmin=0.0, vmax=1.0)
                ax.set_title(name, fontsize=8)
        if title:
            fig.suptitle(title, fontsize=9)
        # fixed margins: tight_layout costs seconds per figure and the grid is regular
        top = 1.0 - (0.4 / (panel_inches * n_rows + 0.4) if title else 0.0) - 0.02
        fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=top, wspace=0.04, hspace=0.18)
        target = Path(path)
        with atomic_path(target) as tmp:
            fig.savefig(tmp, format="png", dpi=dpi)
    finally:
        plt.close(fig)
    return target


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
