"""RESULTS.md of a suite run: every table of results.json as markdown, with the figures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["render_results", "table_markdown"]

_TITLES = {
    "small_ablation": "0b. The small config's switches one by one (validation split)",
    "training_quality": "0. Single-modality ablation (seeds) and the paper's decoder",
    "lambda_sweep": "1. λ sweep (paper Fig. 2B)",
    "main_table": "2. Main comparison",
    "cross_modal_gain": "3. Cross-modal gain (Fig. 6)",
    "sampling_robustness": "4. Sampling robustness (Fig. 7)",
    "mri_only": "5. MRI-only input (Figs. 4-5)",
    "registration": "6. Registration robustness (Fig. 10)",
    "out_of_distribution": "7. Out-of-distribution and real CTs (Fig. 8)",
    "t1_t2": "8. T1/T2 MRI synergy (Fig. 9)",
    "lambda_maps": "9. Local and optimised λ maps (Fig. 3)",
    "pet": "11. PET: MSL vs corrected FBP vs MLEM",
    "cost": "10. Cost (same machine, same run)",
}


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        if v != v:  # NaN
            return "nan"
        if abs(v) >= 100 or (abs(v) < 1e-3 and v != 0):
            return f"{v:.3g}"
        return f"{v:.4f}"
    return "" if v is None else str(v)


def table_markdown(rows: list[dict[str, Any]]) -> str:
    """A markdown table; ``X`` and ``X_std`` columns merge into ``mean ± std``."""
    if not rows:
        return "_(no rows)_\n"
    cols: list[str] = []
    for r in rows:
        for k in r:
            if k not in cols:
                cols.append(k)
    shown = [c for c in cols if not (c.endswith("_std") and c[:-4] in cols)]
    lines = ["| " + " | ".join(shown) + " |", "|" + "---|" * len(shown)]
    for r in rows:
        cells = []
        for c in shown:
            v = r.get(c)
            if f"{c}_std" in cols and isinstance(v, float):
                cells.append(f"{_fmt(v)} ± {_fmt(r.get(c + '_std'))}")
            else:
                cells.append(_fmt(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def render_results(data: dict[str, Any], path: Path) -> None:
    """Write RESULTS.md for ``results.json`` content ``data``."""
    env = data.get("environment", {})
    out = [
        f"# Benchmark results: suite `{data['suite']}`",
        "",
        f"Machine: {env.get('platform')}, {env.get('cpu_count')} CPUs, torch threads "
        f"{env.get('torch_threads')}, CUDA: {env.get('cuda')}. Commit `{env.get('git_commit')}`, "
        f"{env.get('date')}. Versions: "
        + ", ".join(f"{k} {v}" for k, v in (env.get("versions") or {}).items() if v)
        + ".",
        "",
        "Suite configuration: `"
        + ", ".join(f"{k}={v}" for k, v in data.get("config", {}).items())
        + "`.",
        "",
        "Metrics as docs/architecture.md (Conventions): MAE on [0,1], SSIM = skimage defaults "
        "with data_range 1, "
        "MI = skimage normalised mutual information (100 bins, range 1–2), PSNR (data_range 1); "
        "mean ± SD over held-out test subjects (per-subject means; per-slice and per-subject "
        'values are in results.json). Every "A beats B" below is a paired bootstrap 95% CI '
        "over test subjects (benchmarks/stats.py) that excludes 0; otherwise the comparison "
        'reads "no measurable difference".',
        "",
    ]
    findings = _findings(data)
    if findings:
        out += ["## Findings (paired 95% CIs over test subjects)", "", *findings, ""]
    for name, title in _TITLES.items():
        res = data["experiments"].get(name)
        out.append(f"## {title}")
        out.append("")
        if res is None:
            out += ["_not run_", ""]
            continue
        if "error" in res:
            out += [f"**failed:** `{res['error']}`", ""]
            continue
        for tname, rows in (res.get("tables") or {}).items():
            if len(res.get("tables")) > 1:
                out.append(f"**{tname}**\n")
            out.append(table_markdown(rows))
        for note in res.get("notes") or []:
            out.append(f"- {note}")
        if res.get("weights"):
            out.append(f"- chosen CS weights: `{res['weights']}`")
        out.append("")
        for fig in res.get("figures") or []:
            out.append(f"![{name}]({fig})")
        out.append(f"\n_{res.get('seconds', 0):.0f} s_\n")
    path.write_text("\n".join(out), encoding="utf-8")


def _findings(data: dict[str, Any]) -> list[str]:
    """One bullet per paired comparison of every experiment; MSL's losses say by how much."""
    lines = []
    for name in _TITLES:
        res = data["experiments"].get(name) or {}
        for tname, rows in (res.get("tables") or {}).items():
            if "CI" not in tname:
                continue
            for r in rows:
                v = r.get("verdict")
                if not v:
                    continue
                ctx = ", ".join(
                    f"{k} {r[k]}"
                    for k in ("target", "metric", "views", "case", "shift_px", "test_set")
                    if k in r
                )
                ref = str(r.get("reference", ""))
                loses = ref.startswith("MSL") and v.startswith(f"{r.get('method')} beats ")
                tag = f" **({ref} loses)**" if loses else ""
                lines.append(f"- {name} [{ctx}]: {v}{tag}")
    return lines
