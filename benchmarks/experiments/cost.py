"""Experiment 10: wall times of every method (inference per slice, training records)."""

from __future__ import annotations

from typing import Any

from ..context import Context


def cost(ctx: Context, results: dict[str, Any]) -> dict:
    """Wall time per slice of every method and every training record, same machine/run."""
    rows = []
    main = results.get("main_table", {})
    for method, sec in (main.get("times") or {}).items():
        rows.append({"method": method, "seconds_per_slice": sec})
    train = []
    for key, info in sorted(ctx.timings.items()):
        if key.startswith("train/"):
            d = info if isinstance(info, dict) else {"seconds": info}
            train.append(
                {
                    "model": key[6:],
                    "iterations": d.get("iterations"),
                    "seconds": d.get("seconds"),
                    "lr": d.get("lr"),
                }
            )
        elif key.startswith("simulate/"):
            train.append({"model": key, "seconds": info})
    return {"tables": {"inference": rows, "training and simulation": train}}
