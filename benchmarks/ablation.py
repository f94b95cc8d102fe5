"""Experiment 0b: what makes the ``small`` config work — its decoder and loss switches, one by one.

Every variant trains the suite's short run (``iters_aux`` iterations) on the same data, seed and
batch order and is evaluated like experiment 0 (held-out test slices, λ = 0 vs GT CT and λ = 1 vs
GT MRI). The full ``small`` config is the main model's checkpoint at the same iteration, so the
last row equals experiment 0's "equal iterations" number. All variants keep ``input_skip`` and
``residual`` (experiment 0 shows ``input_skip`` off).
"""

from __future__ import annotations

from typing import Any

from .context import Context
from .evaluate import metric_summary, msl_images, sparse_and_truth

__all__ = ["VARIANTS", "small_ablation"]

MR = "t1"

#: label -> config overrides of the suite's config (``None``: the config as shipped).
VARIANTS: dict[str, dict[str, Any] | None] = {
    "c7s1-1 only, MAE, all L_aux scenarios": {
        "refine_channels": [],
        "ssim_weight": 0.0,
        "aux": "all",
    },
    "+ (1 − SSIM) loss term": {"refine_channels": [], "ssim_weight": 1.0, "aux": "all"},
    "one 16-channel refinement block, one L_aux scenario, MAE": {
        "refine_channels": [16],
        "ssim_weight": 0.0,
        "aux": "random",
    },
    "one refinement block + SSIM term": {
        "refine_channels": [16],
        "ssim_weight": 1.0,
        "aux": "random",
    },
    "two refinement blocks + SSIM term (the config as shipped)": None,
}


def small_ablation(ctx: Context) -> dict:
    """Train each variant of :data:`VARIANTS` briefly; report s/iteration and held-out quality."""
    from .experiments import _main_run, _nearest_checkpoint, _run_seconds

    s = ctx.suite
    ds = ctx.test_set()
    idx = ctx.test_indices(ds)
    _, truth = sparse_and_truth(ds, idx, ctx.device)
    main_run = _main_run(ctx)
    main_spi = _run_seconds(main_run) / s.iters_main
    rows = []
    for i, (label, overrides) in enumerate(VARIANTS.items()):
        if overrides is None:
            its, model = _nearest_checkpoint(ctx, main_run, s.iters_aux)
            spi = main_spi
        else:
            run = ctx.msl_model(
                f"ablation-{i}", ("ct", MR), iterations=s.iters_aux, config=overrides
            )
            model, its = ctx.load_msl(run), s.iters_aux
            spi = _run_seconds(run) / s.iters_aux
        imgs, _ = msl_images(model, ds, idx, ("ct", MR), [0.0, 1.0], ctx.device)
        ct = metric_summary(imgs[0], truth["ct"])
        mr = metric_summary(imgs[1], truth[MR])
        rows.append(
            {
                "variant": label,
                "iterations": its,
                "s_per_iteration": spi,
                "CT_SSIM": ct["SSIM"]["mean"],
                "CT_MAE": ct["MAE"]["mean"],
                "MRI_SSIM": mr["SSIM"]["mean"],
                "MRI_MAE": mr["MAE"]["mean"],
            }
        )
    return {
        "tables": {"ablation": rows},
        "notes": [
            f"{s.iters_aux} iterations per variant, batch {s.batch_size}, seed {s.seed}; "
            "s/iteration is the wall time of the training iterations (same machine and run). "
            "The shipped config's time is that of the main model's whole run.",
            "Every variant keeps input_skip and residual; see experiment 0 for input_skip off.",
        ],
    }
