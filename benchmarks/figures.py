"""PNG figures of the benchmark suite (matplotlib, Agg backend)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = [
    "image_grid",
    "lambda_curves",
    "lambda_map_panel",
    "lambda_strip",
    "method_panel",
    "progress_curves",
    "robustness_bars",
]


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _np(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().float().cpu().numpy()
    return np.asarray(x, dtype=np.float32)


def _save(fig: Any, path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    _plt().close(fig)
    return str(Path("figures") / path.name)


def image_grid(path: Path, images: dict[str, Any], *, cols: int = 4) -> str:
    """A grid of grey images in [0, 1] with titles."""
    plt = _plt()
    n = max(1, len(images))
    cols = min(cols, n)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.7 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, (title, img) in zip(axes.ravel(), images.items(), strict=False):
        ax.imshow(_np(img), cmap="gray", vmin=0, vmax=1)
        ax.set_title(title, fontsize=8)
    return _save(fig, path)


def lambda_strip(
    path: Path,
    *,
    sparse: dict[str, Any],
    truth: dict[str, Any],
    images: torch.Tensor,
    lams: Sequence[float],
    show: Sequence[float],
) -> str:
    """Rows = slices: sparse inputs, GT, MSL images at selected λ, |MSL − GT| at λ=0 and 1."""
    plt = _plt()
    n_slices = images.shape[1]
    cols = len(sparse) + len(truth) + len(show) + 2
    fig, axes = plt.subplots(n_slices, cols, figsize=(1.9 * cols, 2.0 * n_slices), squeeze=False)
    gts = list(truth.values())
    for s in range(n_slices):
        panels: list[tuple[str, np.ndarray, str, float]] = []
        for k, v in sparse.items():
            panels.append((k, _np(v[s]), "gray", 1.0))
        for k, v in truth.items():
            panels.append((k, _np(v[s]), "gray", 1.0))
        for lam in show:
            li = int(np.argmin(np.abs(np.asarray(lams) - lam)))
            panels.append((f"MSL λ={lams[li]:g}", _np(images[li, s]), "gray", 1.0))
        panels.append(("|λ=0 − GT CT|", np.abs(_np(images[0, s]) - _np(gts[0][s])), "magma", 0.2))
        panels.append(("|λ=1 − GT MRI|", np.abs(_np(images[-1, s]) - _np(gts[1][s])), "magma", 0.2))
        for ax, (title, img, cmap, vmax) in zip(axes[s], panels, strict=False):
            ax.imshow(img, cmap=cmap, vmin=0, vmax=vmax)
            ax.set_title(title, fontsize=7)
            ax.axis("off")
    return _save(fig, path)


def lambda_curves(path: Path, rows: list[dict]) -> str:
    """MAE/SSIM/MI vs λ towards GT CT, GT MRI and their sum (paper Fig. 2B)."""
    plt = _plt()
    lam = [r["lambda"] for r in rows]
    fig, axes = plt.subplots(1, 3, figsize=(11, 3))
    for ax, k in zip(axes, ("MAE", "SSIM", "MI"), strict=True):
        ax.plot(lam, [r[f"{k}_CT"] for r in rows], "o-", label="vs GT CT")
        ax.plot(lam, [r[f"{k}_MRI"] for r in rows], "s-", label="vs GT MRI")
        ax.plot(lam, [r[f"{k}_sum"] for r in rows], "k--", label="sum")
        ax.set_xlabel("λ")
        ax.set_title(k)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    return _save(fig, path)


def method_panel(path: Path, truth: dict[str, Any], preds: dict[str, tuple[Any, Any]]) -> str:
    """Two rows (CT, MRI): ground truth then every method's image of one test slice."""
    plt = _plt()
    methods = list(preds)
    cols = len(methods) + 1
    fig, axes = plt.subplots(2, cols, figsize=(2.0 * cols, 4.3), squeeze=False)
    for r, (target, gt) in enumerate(truth.items()):
        axes[r, 0].imshow(_np(gt), cmap="gray", vmin=0, vmax=1)
        axes[r, 0].set_title(f"GT {target}", fontsize=7)
        for c, m in enumerate(methods, start=1):
            img = preds[m][r]
            if img is not None:
                axes[r, c].imshow(_np(img), cmap="gray", vmin=0, vmax=1)
            axes[r, c].set_title(m, fontsize=6)
    for ax in axes.ravel():
        ax.axis("off")
    return _save(fig, path)


def progress_curves(path: Path, rows: list[dict]) -> str:
    """MSL-CT MAE and SSIM vs training iteration, with and without MRI (paper Fig. 6)."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    for views in sorted({r["views"] for r in rows}):
        for method, style in (("CT + MRI k-space", "o-"), ("CT only", "s--")):
            pts = sorted(
                (r["iteration"], r) for r in rows if r["views"] == views and r["method"] == method
            )
            if not pts:
                continue
            for ax, k in zip(axes, ("MAE", "SSIM"), strict=True):
                ax.plot(
                    [p[0] for p in pts],
                    [p[1][k] for p in pts],
                    style,
                    label=f"{views} views, {method}",
                )
    for ax, k in zip(axes, ("MAE", "SSIM"), strict=True):
        ax.set_xlabel("training iteration")
        ax.set_title(f"MSL-CT {k}")
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=7)
    return _save(fig, path)


def robustness_bars(path: Path, rows: list[dict]) -> str:
    """SSIM and MAE of MSL-CT and MSL-MRI per sampling case (paper Fig. 7)."""
    plt = _plt()
    cases = list(dict.fromkeys(r["case"] for r in rows))
    x = np.arange(len(cases))
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.2))
    for ax, k in zip(axes, ("SSIM", "MAE"), strict=True):
        for j, t in enumerate(("CT", "MRI")):
            vals = [next(r[k] for r in rows if r["case"] == c and r["target"] == t) for c in cases]
            errs = [
                next(r[f"{k}_std"] for r in rows if r["case"] == c and r["target"] == t)
                for c in cases
            ]
            ax.bar(x + (j - 0.5) * 0.38, vals, 0.38, yerr=errs, label=f"MSL-{t}", capsize=2)
        ax.set_xticks(x, cases, fontsize=8)
        ax.set_title(k)
        ax.grid(alpha=0.3, axis="y")
    axes[0].legend(fontsize=8)
    return _save(fig, path)


def lambda_map_panel(
    path: Path, images: dict[str, torch.Tensor], maps: dict[str, np.ndarray], lam_opt: torch.Tensor
) -> str:
    """Per slice: MSL images for each λ map, the maps and the optimised map (paper Fig. 3)."""
    plt = _plt()
    names = list(images)
    n_slices = next(iter(images.values())).shape[0]
    cols = len(names) + 1
    fig, axes = plt.subplots(
        n_slices + 1, cols, figsize=(1.8 * cols, 1.9 * (n_slices + 1)), squeeze=False
    )
    for ax in axes.ravel():
        ax.axis("off")
    for c, name in enumerate(names):
        if name in maps:
            axes[0, c].imshow(maps[name], cmap="gray", vmin=0, vmax=1)
        axes[0, c].set_title(name, fontsize=6)
        for s in range(n_slices):
            axes[s + 1, c].imshow(_np(images[name][s]), cmap="gray", vmin=0, vmax=1)
    lo = _np(lam_opt)
    lo = lo.reshape(lo.shape[0], *lo.shape[-2:]) if lo.ndim >= 3 else lo[None]
    axes[0, -1].set_title("optimised λ map", fontsize=6)
    for s in range(min(n_slices, lo.shape[0])):
        axes[s + 1, -1].imshow(lo[s], cmap="viridis", vmin=0, vmax=1)
    return _save(fig, path)


def gain_curve(path: Path, comps: list[dict]) -> str:
    """Paired difference (CT+MRI − CT only) vs views per metric, with 95% CI bars (Fig. 6)."""
    plt = _plt()
    metrics = sorted({c["metric"] for c in comps})
    fig, axes = plt.subplots(1, max(1, len(metrics)), figsize=(3.2 * max(1, len(metrics)), 3))
    axes = np.atleast_1d(axes)
    for ax, k in zip(axes, metrics, strict=False):
        pts = sorted((c["views"], c) for c in comps if c["metric"] == k)
        x = [p[0] for p in pts]
        y = np.array([p[1]["diff"] for p in pts])
        lo = y - np.array([p[1]["ci_low"] for p in pts])
        hi = np.array([p[1]["ci_high"] for p in pts]) - y
        ax.errorbar(x, y, yerr=[lo, hi], fmt="o-", capsize=3)
        ax.axhline(0, color="k", lw=0.5)
        ax.set_xlabel("CT views (train = test)")
        ax.set_title(f"Δ{k} (CT+MRI − CT only)")
        ax.grid(alpha=0.3)
    return _save(fig, path)
