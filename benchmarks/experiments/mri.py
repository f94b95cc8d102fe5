"""Experiments 5 (Figs. 4–5, MRI-only input) and 8 (Fig. 9, T1 + T2)."""

from __future__ import annotations

from .. import figures, learned
from ..context import Context
from ..evaluate import msl_images, sparse_and_truth
from .common import CT, MR, board, main_model, result, train_row


def mri_only(ctx: Context) -> dict:
    """Figs. 4–5: MSL-CT from MRI k-space only vs pix2pix MRI→CT, paired CIs.

    With the residual decoder an absent modality's base image is the present modalities'
    (see ``MSLFeatures.base_images``), so the MRI-only output does not start from a zero image.
    """
    model = main_model(ctx)
    ds = ctx.test_set()
    idx = ctx.test_indices(ds)
    sparse, truth = sparse_and_truth(ds, idx, ctx.device)
    single, _ = msl_images(model, ds, idx, (MR,), [0.0, 0.5, 1.0], ctx.device)
    multi, _ = msl_images(model, ds, idx, (CT, MR), [0.0], ctx.device)
    p2p = learned.pix2pix(ctx, "mr2ct").predict(sparse[MR][:, None].to(ctx.device))[:, 0].cpu()
    sb = board(ds, idx)
    sb.add("MSL-CT (CT+MRI input)", "CT", multi[0], truth[CT])
    sb.add("MSL-CT (MRI input only)", "CT", single[0], truth[CT])
    sb.add("pix2pix MRI→CT", "CT", p2p, truth[CT])
    sb.add("zero-filled MRI (as CT)", "CT", sparse[MR], truth[CT])
    sb.add("MSL-MRI (MRI input only)", "MRI", single[2], truth[MR])
    sb.add("zero-filled MRI", "MRI", sparse[MR], truth[MR])
    comps = sb.compare("MSL-CT (MRI input only)", "CT") + sb.compare(
        "MSL-MRI (MRI input only)", "MRI"
    )
    fig = figures.image_grid(
        ctx.figures / "mri_only.png",
        {
            "zero-filled MRI": sparse[MR][0],
            "MSL λ=1 (MRI only)": single[2][0],
            "MSL λ=0.5 (MRI only)": single[1][0],
            "MSL-CT (MRI only)": single[0][0],
            "MSL-CT (CT+MRI)": multi[0][0],
            "pix2pix MRI→CT": p2p[0],
            "GT CT": truth[CT][0],
        },
    )
    return result(sb, "mri_only", comps, figures=[fig])


def t1_t2(ctx: Context) -> dict:
    """Fig. 9: MSL on T1 + T2 k-space (same budget), vs zero-filled, with CIs."""
    from ..budget import msl_lr

    run = ctx.msl_model("t1t2", ("t1", "t2"), lr=msl_lr(ctx))
    model = ctx.load_msl(run)
    ds = ctx.test_set()
    idx = ctx.test_indices(ds)
    sparse, truth = sparse_and_truth(ds, idx, ctx.device)
    imgs, _ = msl_images(model, ds, idx, ("t1", "t2"), [0.0, 0.5, 1.0], ctx.device)
    sb = board(ds, idx)
    for m, k in (("t1", 0), ("t2", 2)):
        sb.add("zero-filled", m.upper(), sparse[m], truth[m])
        sb.add("MSL (T1+T2)", m.upper(), imgs[k], truth[m])
    comps = sb.compare("MSL (T1+T2)", "T1") + sb.compare("MSL (T1+T2)", "T2")
    fig = figures.image_grid(
        ctx.figures / "t1_t2.png",
        {
            "zero-filled T1": sparse["t1"][0],
            "zero-filled T2": sparse["t2"][0],
            "MSL T1 (λ=0)": imgs[0][0],
            "MSL λ=0.5": imgs[1][0],
            "MSL T2 (λ=1)": imgs[2][0],
            "GT T1": truth["t1"][0],
            "GT T2": truth["t2"][0],
        },
    )
    return result(
        sb, "t1_t2", comps, figures=[fig], tables={"training": [train_row(ctx, run, "T1+T2")]}
    )
