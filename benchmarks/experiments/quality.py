"""Experiment 0 (single-modality ablation, paper decoder) and 0b (the small config's switches).

Every model trains for the same wall time; the single-modality ablation uses ``suite.seeds``
training seeds, each seed's CT+MRI model against that seed's CT-only / MRI-only model, and the
CIs pool the seeds' per-slice scores per subject (seed-averaged images' metrics). Experiment 0b
scores on the **validation** split: it is the place where the switches were chosen.
"""

from __future__ import annotations

from typing import Any

import torch

from ..context import Context
from ..evaluate import msl_images, sparse_and_truth
from .common import CT, MR, board, main_run, result, single_run, train_row

#: The paper's decoder (configs/paper.toml): no input skip, no residual, no refinement, no
#: SSIM term, all L_aux scenarios; the widths stay those of the suite's config.
PAPER_DECODER = {
    "input_skip": False,
    "residual": False,
    "refine_channels": [],
    "ssim_weight": 0.0,
    "aux": "all",
}


def training_quality(ctx: Context) -> dict:
    """Single-modality ablation (3 seeds, equal time) and a row with the paper's decoder."""
    s = ctx.suite
    ds = ctx.test_set()
    idx = ctx.test_indices(ds)
    sparse, truth = sparse_and_truth(ds, idx, ctx.device)
    sb = board(ds, idx)
    sb.add("FBP / zero-filled (input)", "CT", sparse[CT], truth[CT])
    sb.add("FBP / zero-filled (input)", "MRI", sparse[MR], truth[MR])
    train_rows = []
    acc: dict[str, list[torch.Tensor]] = {}
    for seed in range(s.seeds):
        both = main_run(ctx, seed=seed, budget=s.seed_budget_s)
        imgs, _ = msl_images(ctx.load_msl(both), ds, idx, (CT, MR), [0.0, 1.0], ctx.device)
        acc.setdefault("MSL CT+MRI|CT", []).append(imgs[0])
        acc.setdefault("MSL CT+MRI|MRI", []).append(imgs[1])
        train_rows.append(train_row(ctx, both, f"MSL CT+MRI seed {seed}"))
        for m, target in ((CT, "CT"), (MR, "MRI")):
            run = single_run(ctx, m, seed=seed, budget=s.seed_budget_s)
            img, _ = msl_images(ctx.load_msl(run), ds, idx, (m,), [0.0], ctx.device)
            acc.setdefault(f"MSL {target} only|{target}", []).append(img[0])
            train_rows.append(train_row(ctx, run, f"MSL {target}-only seed {seed}"))
    for key, imgs in acc.items():
        method, target = key.split("|")
        # per-slice metrics of each seed, averaged over seeds (seed variation inside the CI)
        stack = [sb_metric_slices(im, truth[CT if target == "CT" else MR]) for im in imgs]
        sb.values.setdefault(f"{method} ({s.seeds} seeds)", {})[target] = {
            k: [float(sum(v[k][i] for v in stack) / len(stack)) for i in range(len(idx))]
            for k in stack[0]
        }
    # the paper's decoder at the suite's widths, same budget as the main model
    pd_run = ctx.msl_model(
        "paper-decoder", (CT, MR), config=PAPER_DECODER, lr=_lr(ctx), budget_s=s.budget_s
    )
    imgs, _ = msl_images(ctx.load_msl(pd_run), ds, idx, (CT, MR), [0.0, 1.0], ctx.device)
    sb.add("MSL, paper decoder (paper.toml switches)", "CT", imgs[0], truth[CT])
    sb.add("MSL, paper decoder (paper.toml switches)", "MRI", imgs[1], truth[MR])
    main = main_run(ctx)
    imgs, _ = msl_images(ctx.load_msl(main), ds, idx, (CT, MR), [0.0, 1.0], ctx.device)
    sb.add("MSL, small decoder", "CT", imgs[0], truth[CT])
    sb.add("MSL, small decoder", "MRI", imgs[1], truth[MR])
    train_rows += [
        train_row(ctx, pd_run, "MSL paper decoder"),
        train_row(ctx, main, "MSL small decoder"),
    ]
    both = f"MSL CT+MRI ({s.seeds} seeds)"
    comps = []
    for target, single in (("CT", "MSL CT only"), ("MRI", "MSL MRI only")):
        comps += [
            r for r in sb.compare(both, target) if r["method"] == f"{single} ({s.seeds} seeds)"
        ]
        comps += [
            r
            for r in sb.compare("MSL, small decoder", target)
            if r["method"].startswith("MSL, paper decoder")
        ]
    return result(
        sb,
        "quality",
        comps,
        tables={"training": train_rows},
        notes=[
            f"Single-modality ablation: {s.seeds} seeds × {s.seed_budget_s:g} s per model; the "
            "metrics of each slice are averaged over seeds before the bootstrap over subjects.",
            f"Paper decoder vs small decoder: {s.budget_s:g} s each, the suite's widths; "
            f"paper decoder switches {PAPER_DECODER}.",
        ],
    )


def sb_metric_slices(pred: torch.Tensor, ref: torch.Tensor) -> dict[str, list[float]]:
    """Per-slice metrics as lists."""
    from ..evaluate import per_slice_metrics

    return {k: v.tolist() for k, v in per_slice_metrics(pred, ref).items()}


def _lr(ctx: Context) -> float:
    from ..budget import msl_lr

    return msl_lr(ctx)


#: label -> config overrides of the suite's config (``None``: the config as shipped).
VARIANTS: dict[str, dict[str, Any] | None] = {
    "c7s1-1 only, MAE, all L_aux scenarios": {
        "refine_channels": [],
        "ssim_weight": 0.0,
        "aux": "all",
    },
    "+ (1 − SSIM) loss term": {"refine_channels": [], "ssim_weight": 1.0, "aux": "all"},
    "one 16-channel refinement block + SSIM term": {
        "refine_channels": [16],
        "ssim_weight": 1.0,
        "aux": "random",
    },
    "two refinement blocks + SSIM term (the config as shipped)": None,
}


def small_ablation(ctx: Context) -> dict:
    """0b: the small config's switches one by one, equal short budgets, scored on VALIDATION."""
    s = ctx.suite
    ds = ctx.test_set(split="val")
    idx = ctx.test_indices(ds)
    _, truth = sparse_and_truth(ds, idx, ctx.device)
    sb = board(ds, idx)
    rows = []
    for i, (label, overrides) in enumerate(VARIANTS.items()):
        run = ctx.msl_model(
            f"ablation-{i}", (CT, MR), budget_s=s.seed_budget_s, config=overrides, lr=_lr(ctx)
        )
        imgs, _ = msl_images(ctx.load_msl(run), ds, idx, (CT, MR), [0.0, 1.0], ctx.device)
        sb.add(label, "CT", imgs[0], truth[CT])
        sb.add(label, "MRI", imgs[1], truth[MR])
        rows.append(train_row(ctx, run, label))
    shipped = list(VARIANTS)[-1]
    comps = sb.compare(shipped, "CT", ("SSIM",)) + sb.compare(shipped, "MRI", ("SSIM",))
    return result(
        sb,
        "ablation (validation split)",
        comps,
        tables={"training": rows},
        notes=[
            f"{s.seed_budget_s:g} s per variant; scored on the validation subjects (this is "
            "where the switches are chosen; the test split is not used here).",
        ],
    )
