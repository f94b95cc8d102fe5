"""The paper's experiments (§3), each a function ``run(ctx) -> result dict``.

A result holds ``tables`` (name -> list of row dicts), ``figures`` (paths relative to the run
directory) and ``notes``. Every method sees the same held-out test subjects and the same
metrics (DESIGN §3).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from . import figures
from .ablation import small_ablation
from .context import Context
from .evaluate import (
    collate,
    metric_summary,
    msl_images,
    shifted_ct_sinograms,
    sparse_and_truth,
)

__all__ = ["EXPERIMENTS"]

MR = "t1"
SWEEP = [round(x, 1) for x in np.arange(0.0, 1.01, 0.1)]


def _row(method: str, target: str, summary: dict[str, dict[str, float]], **extra: Any) -> dict:
    row = {"method": method, "target": target, **extra}
    for k, v in summary.items():
        row[k] = v["mean"]
        row[f"{k}_std"] = v["std"]
    return row


def _main_run(ctx: Context):
    s = ctx.suite
    # a checkpoint every ~100 iterations, so that equal-iteration and equal-time comparisons exist
    return ctx.msl_model(
        "main", ("ct", MR), checkpoints=max(1, s.iters_main // max(1, s.iters_aux // 4))
    )


def _main_model(ctx: Context):
    return ctx.load_msl(_main_run(ctx))


def _single_run(ctx: Context, modality: str):
    return ctx.msl_model(f"{modality}-only", (modality,), iterations=ctx.suite.iters_aux)


def _run_seconds(run) -> float:
    return float(torch.load(run / "final.pt", map_location="cpu", weights_only=False)["seconds"])


def _nearest_checkpoint(ctx: Context, run, iteration: float):
    ckpts = ctx.msl_checkpoints(run)
    it, path = min(ckpts, key=lambda c: abs(c[0] - iteration))
    return it, ctx.load_msl(run, path)


# ----------------------------------------------------------------------------- 0. training
def training_quality(ctx: Context) -> dict:
    """Short CPU training of the small config: quality vs inputs, single-modality, skip on/off."""
    s = ctx.suite
    ds = ctx.test_set()
    idx = ctx.test_indices(ds)
    sparse, truth = sparse_and_truth(ds, idx, ctx.device)
    main_run = _main_run(ctx)
    main = ctx.load_msl(main_run)
    t_main = _run_seconds(main_run)
    spi = t_main / s.iters_main
    rows = [
        _row("FBP (input)", "CT", metric_summary(sparse["ct"], truth["ct"])),
        _row("zero-filled (input)", "MRI", metric_summary(sparse[MR], truth[MR])),
    ]
    both, _ = msl_images(main, ds, idx, ("ct", MR), [0.0, 1.0], ctx.device)
    label = f"MSL CT+MRI, {s.iters_main} it ({t_main / 60:.1f} min)"
    rows.append(_row(label, "CT", metric_summary(both[0], truth["ct"]), iterations=s.iters_main))
    rows.append(_row(label, "MRI", metric_summary(both[1], truth[MR]), iterations=s.iters_main))
    # the same model given one modality only
    ct_in, _ = msl_images(main, ds, idx, ("ct",), [0.0], ctx.device)
    mr_in, _ = msl_images(main, ds, idx, (MR,), [1.0], ctx.device)
    rows.append(_row("same MSL model, CT input only", "CT", metric_summary(ct_in[0], truth["ct"])))
    rows.append(_row("same MSL model, MRI input only", "MRI", metric_summary(mr_in[0], truth[MR])))
    # models trained on one modality: equal iterations and equal wall time
    for m, target in (("ct", "CT"), (MR, "MRI")):
        run = _single_run(ctx, m)
        single = ctx.load_msl(run)
        t_single = _run_seconds(run)
        img, _ = msl_images(single, ds, idx, (m,), [0.0], ctx.device)
        rows.append(
            _row(
                f"MSL trained on {target} only, {s.iters_aux} it ({t_single / 60:.1f} min)",
                target,
                metric_summary(img[0], truth[m]),
                iterations=s.iters_aux,
            )
        )
        for what, it_target in (
            ("equal iterations", s.iters_aux),
            ("equal wall time", t_single / spi),
        ):
            it, ck = _nearest_checkpoint(ctx, main_run, it_target)
            img2, _ = msl_images(ck, ds, idx, ("ct", MR), [0.0 if m == "ct" else 1.0], ctx.device)
            rows.append(
                _row(
                    f"MSL CT+MRI at {it} it ({what})",
                    target,
                    metric_summary(img2[0], truth[m]),
                    iterations=it,
                )
            )
    # the decoder-refines-the-input switch (input_skip) on and off, at equal iterations
    off_run = ctx.msl_model(
        "noskip", ("ct", MR), iterations=s.iters_aux, config={"input_skip": False}
    )
    off = ctx.load_msl(off_run)
    img, _ = msl_images(off, ds, idx, ("ct", MR), [0.0, 1.0], ctx.device)
    it, on = _nearest_checkpoint(ctx, main_run, s.iters_aux)
    img_on, _ = msl_images(on, ds, idx, ("ct", MR), [0.0, 1.0], ctx.device)
    for name, im, its in (
        ("input_skip off (paper decoder)", img, s.iters_aux),
        ("input_skip on", img_on, it),
    ):
        rows.append(
            _row(f"{name}, {its} it", "CT", metric_summary(im[0], truth["ct"]), iterations=its)
        )
        rows.append(
            _row(f"{name}, {its} it", "MRI", metric_summary(im[1], truth[MR]), iterations=its)
        )
    # the targets
    ssim_ct = next(r["SSIM"] for r in rows if r["method"] == label and r["target"] == "CT")
    ssim_mr = next(r["SSIM"] for r in rows if r["method"] == label and r["target"] == "MRI")
    in_ct, in_mr = rows[0]["SSIM"], rows[1]["SSIM"]
    targets = [
        {"target": "small: s/iteration at 128², batch 4 ≤ 0.6", "measured": spi, "met": spi <= 0.6},
        {"target": "training time ≤ 15 min", "measured": t_main / 60, "met": t_main <= 900},
        {"target": "MSL-CT SSIM ≥ 0.93", "measured": ssim_ct, "met": ssim_ct >= 0.93},
        {"target": "MSL-MRI SSIM ≥ 0.88", "measured": ssim_mr, "met": ssim_mr >= 0.88},
        {
            "target": "MSL-CT closes ≥ ½ of the FBP→1 SSIM gap",
            "measured": (ssim_ct - in_ct) / (1 - in_ct),
            "met": (ssim_ct - in_ct) / (1 - in_ct) >= 0.5,
        },
        {
            "target": "MSL-MRI closes ≥ ½ of the zero-filled→1 SSIM gap",
            "measured": (ssim_mr - in_mr) / (1 - in_mr),
            "met": (ssim_mr - in_mr) / (1 - in_mr) >= 0.5,
        },
    ]
    return {
        "tables": {"quality": rows, "targets": targets},
        "notes": [
            f"{s.iters_main} iterations of the `{s.config}` config at {s.image_size}², "
            f"batch {s.batch_size}: {t_main:.0f} s, {spi:.3f} s/iteration ({1 / spi:.2f} it/s), "
            "same machine as everything else.",
            "Equal wall time: the CT+MRI checkpoint whose elapsed training time is closest to the "
            "single-modality model's whole run.",
        ],
    }


# ----------------------------------------------------------------------------- 1. λ sweep
def lambda_sweep(ctx: Context) -> dict:
    """Fig. 2B: MAE/SSIM/MI of MSL images vs GT CT and GT MRI across λ, and their sums."""
    model = _main_model(ctx)
    ds = ctx.test_set()
    idx = ctx.test_indices(ds)
    imgs, _ = msl_images(model, ds, idx, ("ct", MR), SWEEP, ctx.device)
    _, truth = sparse_and_truth(ds, idx, ctx.device)
    rows = []
    for li, lam in enumerate(SWEEP):
        s_ct = metric_summary(imgs[li], truth["ct"])
        s_mr = metric_summary(imgs[li], truth[MR])
        row = {"lambda": lam}
        for k in ("MAE", "SSIM", "MI"):
            row[f"{k}_CT"] = s_ct[k]["mean"]
            row[f"{k}_MRI"] = s_mr[k]["mean"]
            row[f"{k}_sum"] = s_ct[k]["mean"] + s_mr[k]["mean"]
        rows.append(row)
    sparse, _ = sparse_and_truth(ds, idx[:2], ctx.device)
    strip = figures.lambda_strip(
        ctx.figures / "lambda_strip.png",
        sparse={"FBP": sparse["ct"], "zero-filled": sparse[MR]},
        truth={"GT CT": truth["ct"][:2], "GT MRI": truth[MR][:2]},
        images=imgs[:, :2],
        lams=SWEEP,
        show=[0.0, 0.3, 0.5, 0.7, 1.0],
    )
    curves = figures.lambda_curves(ctx.figures / "lambda_curves.png", rows)
    return {"tables": {"lambda_sweep": rows}, "figures": [strip, curves]}


# ----------------------------------------------------------------------------- 2. main table
def _cs_weights(ctx: Context, val_ds: Any) -> dict[str, dict[str, float]]:
    """Regularisation weights of the CS baselines chosen on validation slices (grid search)."""
    from msl_recon.baselines import (
        dtv_reconstruct,
        joint_tv_reconstruct,
        select_weights,
        tv_ct,
        tv_mri,
    )
    from msl_recon.model import build_operators

    s = ctx.suite
    vidx = ctx.test_indices(val_ds)[: s.cs_val_slices]
    b = collate(val_ds, vidx)
    ops = build_operators(b, val_ds.acquisition, ctx.device)
    sample = {
        "ct_sino": b["ct_sino"].to(ctx.device),
        "mr_kspace": b[f"{MR}_kspace"].to(ctx.device),
        "ct": b["ct"][:, 0].to(ctx.device),
        "mr": b[MR][:, 0].to(ctx.device),
    }
    A, F = ops["ct"], ops[MR]
    n = s.cs_iters
    grids = {
        "tv": {"mu_ct": [3e-4, 1e-3, 3e-3, 1e-2], "mu_mr": [3e-4, 1e-3, 3e-3, 1e-2]},
        "jtv": {"mu": [3e-4, 1e-3, 3e-3], "beta": [0.5, 1.0, 2.0]},
        "dtv": {"mu_ct": [1e-3, 3e-3], "mu_mr": [1e-3, 3e-3], "eta": [0.01, 0.05]},
    }
    if s.name == "micro":
        grids = {k: {p: v[:1] for p, v in g.items()} for k, g in grids.items()}
    chosen = {}

    def tv(smp: dict, mu_ct: float, mu_mr: float):
        return tv_ct(smp["ct_sino"], A, mu_ct, n_iter=n), tv_mri(
            smp["mr_kspace"], F, mu_mr, n_iter=n
        )

    def jtv(smp: dict, mu: float, beta: float):
        r = joint_tv_reconstruct(smp["ct_sino"], A, smp["mr_kspace"], F, mu=mu, beta=beta, n_iter=n)
        return r.ct, r.mr

    def dtv(smp: dict, mu_ct: float, mu_mr: float, eta: float):
        r = dtv_reconstruct(
            smp["ct_sino"], A, smp["mr_kspace"], F, mu_ct=mu_ct, mu_mr=mu_mr, eta=eta, n_iter=n
        )
        return r.ct, r.mr

    for name, fn in (("tv", tv), ("jtv", jtv), ("dtv", dtv)):
        # the grid is widened until every chosen weight is interior (η bounded by 1)
        sel = select_weights(
            fn, [sample], grids[name], bounds={"eta": (0.0, 1.0)}, progress=ctx.progress
        )
        chosen[name] = sel.best
    return chosen


def main_table(ctx: Context) -> dict:
    """Every method × {CT, MRI} × {MAE, SSIM, MI, PSNR} at the suite's acquisition."""
    from msl_recon.baselines import dtv_reconstruct, joint_tv_reconstruct, tv_ct, tv_mri
    from msl_recon.model import build_operators

    s = ctx.suite
    ds = ctx.test_set()
    idx = ctx.test_indices(ds)
    sparse, truth = sparse_and_truth(ds, idx, ctx.device)
    rows: list[dict] = []
    times: dict[str, float] = {}
    preds: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def add(method: str, ct: torch.Tensor | None, mr: torch.Tensor | None, sec: float) -> None:
        times[method] = sec
        if ct is not None:
            rows.append(_row(method, "CT", metric_summary(ct, truth["ct"]), sec_per_slice=sec))
        if mr is not None:
            rows.append(_row(method, "MRI", metric_summary(mr, truth[MR]), sec_per_slice=sec))
        preds[method] = (ct, mr)

    # analytic
    t0 = time.perf_counter()
    sp, _ = sparse_and_truth(ds, idx, ctx.device)
    add("FBP / zero-filled", sp["ct"], sp[MR], (time.perf_counter() - t0) / len(idx))

    # compressed sensing (weights from the validation split)
    weights = _cs_weights(ctx, ctx.test_set(split="val"))
    b = collate(ds, idx)
    ops = build_operators(b, ds.acquisition, ctx.device)
    y_ct, y_mr = b["ct_sino"].to(ctx.device), b[f"{MR}_kspace"].to(ctx.device)
    A, F = ops["ct"], ops[MR]
    t0 = time.perf_counter()
    w = weights["tv"]
    ct_tv = tv_ct(y_ct, A, w["mu_ct"], n_iter=s.cs_iters).cpu()
    mr_tv = tv_mri(y_mr, F, w["mu_mr"], n_iter=s.cs_iters).cpu()
    add("TV (single-modality CS)", ct_tv, mr_tv, (time.perf_counter() - t0) / len(idx))
    t0 = time.perf_counter()
    r = joint_tv_reconstruct(y_ct, A, y_mr, F, n_iter=s.cs_iters, **weights["jtv"])
    add("Joint TV (CS joint CT-MRI)", r.ct.cpu(), r.mr.cpu(), (time.perf_counter() - t0) / len(idx))
    t0 = time.perf_counter()
    r = dtv_reconstruct(y_ct, A, y_mr, F, n_iter=s.cs_iters, **weights["dtv"])
    add(
        "Directional TV (CS joint CT-MRI)",
        r.ct.cpu(),
        r.mr.cpu(),
        (time.perf_counter() - t0) / len(idx),
    )

    # pix2pix, one model per direction
    p_mr2ct, p_ct2mr = ctx.pix2pix("mr2ct"), ctx.pix2pix("ct2mr")
    t0 = time.perf_counter()
    ct_p = p_mr2ct.predict(sparse[MR][:, None].to(ctx.device))[:, 0].cpu()
    mr_p = p_ct2mr.predict(sparse["ct"][:, None].to(ctx.device))[:, 0].cpu()
    add("pix2pix (MRI→CT, CT→MRI)", ct_p, mr_p, (time.perf_counter() - t0) / len(idx))

    # DeepFusion
    df = ctx.deepfusion()
    t0 = time.perf_counter()
    with torch.no_grad():
        ct_d, mr_d = df.predict(
            sparse["ct"][:, None].to(ctx.device), sparse[MR][:, None].to(ctx.device)
        )
    add("DeepFusion", ct_d[:, 0].cpu(), mr_d[:, 0].cpu(), (time.perf_counter() - t0) / len(idx))

    # MSL, and the single-modality ablations
    model = _main_model(ctx)
    imgs, sec = msl_images(model, ds, idx, ("ct", MR), [0.0, 1.0], ctx.device)
    add("MSL (CT+MRI)", imgs[0], imgs[1], sec)
    ct_only = ctx.load_msl(_single_run(ctx, "ct"))
    imgs_c, sec_c = msl_images(ct_only, ds, idx, ("ct",), [0.0], ctx.device)
    mr_only = ctx.load_msl(_single_run(ctx, MR))
    imgs_m, sec_m = msl_images(mr_only, ds, idx, (MR,), [0.0], ctx.device)
    add("MSL single-modality", imgs_c[0], imgs_m[0], sec_c + sec_m)

    panel = figures.method_panel(
        ctx.figures / "methods.png",
        truth={"CT": truth["ct"][0], "MRI": truth[MR][0]},
        preds={
            k: (v[0][0] if v[0] is not None else None, v[1][0] if v[1] is not None else None)
            for k, v in preds.items()
        },
    )
    return {
        "tables": {"main": rows},
        "figures": [panel],
        "weights": weights,
        "times": times,
        "notes": [
            f"{len(idx)} test slices from held-out subjects; CS weights chosen on "
            f"{s.cs_val_slices} validation slices by grid search; {s.cs_iters} PDHG iterations.",
            "FUSION is not listed: at λ=0/1 it returns its inputs (see the registration "
            "experiment).",
        ],
    }


def _ct_only_run(ctx: Context):
    s = ctx.suite
    views = tuple(sorted({s.n_views, s.n_views // 2, s.n_views // 4}))
    return ctx.msl_model(
        "ct-only-rv",
        ("ct",),
        iterations=s.iters_aux,
        random_views=views,
        checkpoints=s.progress_points,
    )


# ----------------------------------------------------------------------------- 3. cross-modal gain
def cross_modal_gain(ctx: Context) -> dict:
    """Fig. 6: MSL-CT from sparser views with vs without MRI k-space, across training."""
    s = ctx.suite
    views = tuple(sorted({s.n_views, s.n_views // 2, s.n_views // 4}))
    with_mr = ctx.msl_model(
        "ctmr-rv",
        ("ct", MR),
        iterations=s.iters_aux,
        random_views=views,
        checkpoints=s.progress_points,
    )
    without = _ct_only_run(ctx)
    rows = []
    for n_views in (s.n_views // 4, s.n_views // 2):
        ds = ctx.test_set(n_views=n_views)
        idx = ctx.test_indices(ds)
        _, truth = sparse_and_truth(ds, idx, ctx.device)
        for label, run, inputs in (
            ("CT + MRI k-space", with_mr, ("ct", MR)),
            ("CT only", without, ("ct",)),
        ):
            for it, ckpt in ctx.msl_checkpoints(run):
                model = ctx.load_msl(run, ckpt)
                imgs, _ = msl_images(model, ds, idx, inputs, [0.0], ctx.device)
                rows.append(
                    _row(
                        label,
                        "CT",
                        metric_summary(imgs[0], truth["ct"]),
                        views=n_views,
                        iteration=it,
                    )
                )
        # the same CT+MRI model fed CT only (no retraining)
        model = ctx.load_msl(with_mr)
        imgs, _ = msl_images(model, ds, idx, ("ct",), [0.0], ctx.device)
        rows.append(
            _row(
                "CT+MRI model, CT input only",
                "CT",
                metric_summary(imgs[0], truth["ct"]),
                views=n_views,
                iteration=-1,
            )
        )
    fig = figures.progress_curves(ctx.figures / "cross_modal_gain.png", rows)
    return {"tables": {"cross_modal_gain": rows}, "figures": [fig]}


# ----------------------------------------------------------------------------- 4. robustness
def sampling_robustness(ctx: Context) -> dict:
    """Fig. 7: one model (64c + 1/4m) tested at sparser views and higher accelerations."""
    s = ctx.suite
    model = _main_model(ctx)
    cases = [
        (s.n_views, s.acceleration),
        (s.n_views, 2 * s.acceleration),
        (s.n_views, 4 * s.acceleration),
        (s.n_views // 2, s.acceleration),
        (s.n_views // 4, s.acceleration),
    ]
    rows = []
    for v, acc in cases:
        ds = ctx.test_set(n_views=v, acceleration=acc)
        idx = ctx.test_indices(ds)
        _, truth = sparse_and_truth(ds, idx, ctx.device)
        imgs, _ = msl_images(model, ds, idx, ("ct", MR), [0.0, 1.0], ctx.device)
        label = f"{v}c+1/{acc:g}m"
        mask = ds[idx[0]].get(f"{MR}_mask")  # the acceleration actually sampled
        achieved = float(mask.shape[-1] / mask.any(dim=0).sum()) if mask is not None else acc
        extra = {"case": label, "achieved_acceleration": round(achieved, 2)}
        rows.append(_row("MSL", "CT", metric_summary(imgs[0], truth["ct"]), **extra))
        rows.append(_row("MSL", "MRI", metric_summary(imgs[1], truth[MR]), **extra))
    fig = figures.robustness_bars(ctx.figures / "robustness.png", rows)
    return {"tables": {"robustness": rows}, "figures": [fig]}


# ----------------------------------------------------------------------------- 5. MRI only
def mri_only(ctx: Context) -> dict:
    """Figs. 4–5: MSL-CT from MRI k-space only vs pix2pix MRI→CT (and MSL with both inputs)."""
    model = _main_model(ctx)
    ds = ctx.test_set()
    idx = ctx.test_indices(ds)
    sparse, truth = sparse_and_truth(ds, idx, ctx.device)
    single, _ = msl_images(model, ds, idx, (MR,), [0.0, 0.5, 1.0], ctx.device)
    multi, _ = msl_images(model, ds, idx, ("ct", MR), [0.0], ctx.device)
    p2p = ctx.pix2pix("mr2ct").predict(sparse[MR][:, None].to(ctx.device))[:, 0].cpu()
    rows = [
        _row("MSL-CT (CT+MRI input)", "CT", metric_summary(multi[0], truth["ct"])),
        _row("MSL-CT (MRI input only)", "CT", metric_summary(single[0], truth["ct"])),
        _row("pix2pix MRI→CT", "CT", metric_summary(p2p, truth["ct"])),
        _row("MSL-MRI (MRI input only)", "MRI", metric_summary(single[2], truth[MR])),
    ]
    fig = figures.image_grid(
        ctx.figures / "mri_only.png",
        {
            "zero-filled MRI": sparse[MR][0],
            "MSL λ=1 (MRI only)": single[2][0],
            "MSL λ=0.5 (MRI only)": single[1][0],
            "MSL-CT (MRI only)": single[0][0],
            "MSL-CT (CT+MRI)": multi[0][0],
            "pix2pix MRI→CT": p2p[0],
            "GT CT": truth["ct"][0],
        },
    )
    return {"tables": {"mri_only": rows}, "figures": [fig]}


# ----------------------------------------------------------------------------- 6. registration
def registration(ctx: Context) -> dict:
    """Fig. 10: CT shifted by P ∈ {5, 10, 15} px: MSL vs FUSION vs DeepFusion."""
    from msl_recon.baselines import fbp_image, fuse

    model = _main_model(ctx)
    ds = ctx.test_set()
    idx = ctx.test_indices(ds)
    _, truth = sparse_and_truth(ds, idx, ctx.device)
    sparse_mr = sparse_and_truth(ds, idx, ctx.device)[0][MR]
    df = ctx.deepfusion()
    rng = np.random.default_rng(ctx.suite.seed + 6)
    rows = []
    example = {}
    for p in (5, 10, 15):
        signs = rng.choice([-1.0, 1.0], size=(len(idx), 2))
        shifts = signs * p * ctx.suite.image_size / 384  # P is in pixels of the paper's 384² grid
        sino, _moved = shifted_ct_sinograms(ds, idx, shifts, ctx.device)
        hybrid_ref = fuse(truth["ct"], truth[MR], 0.5)
        # MSL: the shifted CT's sinogram with the (registered-frame) MRI k-space
        imgs, _ = msl_images(
            model, ds, idx, ("ct", MR), [0.0, 0.5, 1.0], ctx.device, override={"ct_sino": sino}
        )
        # FUSION of the misaligned *reconstructed* images (FBP of the shifted CT, zero-filled MRI)
        ct_sp = fbp_image(sino.to(ctx.device), ds.geometry).float().cpu()
        fus = fuse(ct_sp.clamp(0, 1), sparse_mr.cpu().clamp(0, 1), 0.5)
        # DeepFusion on the misaligned sparse images
        with torch.no_grad():
            ct_d, mr_d = df.predict(
                ct_sp[:, None].to(ctx.device), sparse_mr[:, None].to(ctx.device)
            )
        df_h = fuse(ct_d[:, 0].cpu(), mr_d[:, 0].cpu(), 0.5)
        for name, h in (("MSL", imgs[1]), ("FUSION", fus), ("DeepFusion", df_h)):
            rows.append(
                _row(
                    name,
                    "hybrid λ=0.5 vs aligned fusion of GT",
                    metric_summary(h, hybrid_ref),
                    shift_px=p,
                )
            )
        rows.append(_row("MSL", "CT (MRI frame)", metric_summary(imgs[0], truth["ct"]), shift_px=p))
        rows.append(
            _row(
                "DeepFusion",
                "CT (MRI frame)",
                metric_summary(ct_d[:, 0].cpu(), truth["ct"]),
                shift_px=p,
            )
        )
        if p == 10:
            example = {
                "FUSION": fus[0],
                "DeepFusion": df_h[0],
                "MSL": imgs[1][0],
                "reference": hybrid_ref[0],
            }
    fig = figures.image_grid(ctx.figures / "registration.png", example)
    return {
        "tables": {"registration": rows},
        "figures": [fig],
        "notes": [
            "Shifts are the paper's 5/10/15 px on its 384² grid, scaled to this image size; "
            "random signs in x and y.",
            "Reference for hybrids: the λ=0.5 pixel-wise fusion of the *aligned* ground truths.",
        ],
    }


# ----------------------------------------------------------------------------- 7. OOD
def out_of_distribution(ctx: Context) -> dict:
    """Fig. 8: another phantom family (procedural anatomy, lesions) and real shipped head CTs."""
    import geometries
    import operators as ops
    from msl_recon.baselines import fbp_image
    from msl_recon.data.ingest import load_single

    model = _main_model(ctx)
    rows = []
    for name in ("main", "ood"):
        ds = ctx.test_set(name)
        idx = ctx.test_indices(ds)
        _, truth = sparse_and_truth(ds, idx, ctx.device)
        imgs, _ = msl_images(model, ds, idx, ("ct", MR), [0.0, 1.0], ctx.device)
        label = (
            "in-distribution (MNI anatomy)"
            if name == "main"
            else "OOD (procedural anatomy, lesions)"
        )
        rows.append(_row("MSL", "CT", metric_summary(imgs[0], truth["ct"]), test_set=label))
        rows.append(_row("MSL", "MRI", metric_summary(imgs[1], truth[MR]), test_set=label))
    # real CT slices shipped with pydicom, CT-only input
    from pydicom.data import get_testdata_file

    s = ctx.suite
    geom = geometries.preset(s.preset, image_size=s.image_size, n_views=s.n_views)
    ray = ops.RayTransform(geom)
    example = {}
    for fname in ("693_J2KI.dcm", "J2K_pixelrep_mismatch.dcm"):
        path = get_testdata_file(fname)
        if path is None:
            rows.append({"method": "MSL", "target": "CT", "test_set": f"{fname} (not shipped)"})
            continue
        images, _ = load_single(path, "ct", size=s.image_size)
        gt = torch.as_tensor(np.asarray(images["ct"], dtype=np.float32)).reshape(
            -1, s.image_size, s.image_size
        )[:1]
        sino = ray(gt.to(ctx.device))
        fbp = fbp_image(sino, geom).float().cpu().clamp(0, 1)
        batch = {"ct_sino": sino.cpu(), "index": torch.zeros(1, dtype=torch.long)}
        from msl_recon.inference import Reconstructor

        rec = Reconstructor(model, batch, {"ct": geom}, ("ct",), ctx.device)
        msl_ct = rec.decode(0.0).cpu()
        rows.append(_row("FBP", "CT", metric_summary(fbp, gt), test_set=f"real CT {fname}"))
        rows.append(
            _row(
                "MSL (CT input only)", "CT", metric_summary(msl_ct, gt), test_set=f"real CT {fname}"
            )
        )
        if not example:
            example = {
                "real CT": gt[0],
                "FBP": fbp[0],
                "MSL-CT": msl_ct[0],
                "MSL λ=1": rec.decode(1.0).cpu()[0],
            }
    fig = figures.image_grid(ctx.figures / "ood.png", example)
    return {"tables": {"ood": rows}, "figures": [fig]}


# ----------------------------------------------------------------------------- 8. T1/T2
def t1_t2(ctx: Context) -> dict:
    """Fig. 9: MSL on T1 + T2 k-space."""
    s = ctx.suite
    model = ctx.load_msl(ctx.msl_model("t1t2", ("t1", "t2"), iterations=s.iters_aux))
    ds = ctx.test_set()
    idx = ctx.test_indices(ds)
    sparse, truth = sparse_and_truth(ds, idx, ctx.device)
    imgs, _ = msl_images(model, ds, idx, ("t1", "t2"), [0.0, 0.5, 1.0], ctx.device)
    rows = [
        _row("zero-filled", "T1", metric_summary(sparse["t1"], truth["t1"])),
        _row("zero-filled", "T2", metric_summary(sparse["t2"], truth["t2"])),
        _row("MSL (T1+T2)", "T1", metric_summary(imgs[0], truth["t1"])),
        _row("MSL (T1+T2)", "T2", metric_summary(imgs[2], truth["t2"])),
    ]
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
    return {"tables": {"t1_t2": rows}, "figures": [fig]}


# ----------------------------------------------------------------------------- 9. λ maps
def lambda_maps(ctx: Context) -> dict:
    """Fig. 3: predefined spatial λ maps and MI-optimised maps, with the objective before/after."""
    from msl_recon.inference import Reconstructor
    from msl_recon.lambda_opt import optimize_lambda

    model = _main_model(ctx)
    ds = ctx.test_set()
    idx = ctx.test_indices(ds)[:3]
    n = ctx.suite.image_size
    yy, xx = np.mgrid[0:n, 0:n] / (n - 1)
    r = np.hypot(yy - 0.5, xx - 0.5)
    maps = {
        "left MRI / right CT": (xx < 0.5).astype(np.float32),
        "top MRI / bottom CT": (yy < 0.5).astype(np.float32),
        "centre disk MRI": (r < 0.3).astype(np.float32),
        "ring CT": ((r > 0.3) & (r < 0.45)).astype(np.float32) * -1 + 1,
        "horizontal ramp": xx.astype(np.float32),
        "radial ramp": np.clip(1 - r / 0.6, 0, 1).astype(np.float32),
    }
    b = collate(ds, idx)
    rec = Reconstructor(model, b, ds.acquisition, ("ct", MR), ctx.device)
    images = {"λ=0 (MSL-CT)": rec.decode(0.0).cpu(), "λ=1 (MSL-MRI)": rec.decode(1.0).cpu()}
    for name, m in maps.items():
        lam = torch.as_tensor(m)[None, None].expand(len(idx), 1, n, n).to(ctx.device)
        images[name] = rec.decode(lam).cpu()
    steps = 5 if ctx.suite.name == "micro" else 100
    lam_opt, hist = optimize_lambda(model.net, rec.features, steps=steps, progress=ctx.progress)
    images["optimised λ"] = rec.decode(lam_opt.to(ctx.device)).cpu()

    def per_slice(key: str) -> list[float]:
        v = np.asarray(hist.get(key, [np.nan]), dtype=float).reshape(-1)
        return [float(v[min(j, v.size - 1)]) for j in range(len(idx))]

    ob, oa = per_slice("objective_before"), per_slice("objective_after")
    nb, na = per_slice("nmi_before"), per_slice("nmi_after")
    rows = [
        {
            "slice": int(i),
            "objective (soft MI − α·TV), λ=0.5": ob[j],
            "objective, optimised λ": oa[j],
            "MI(X,CT)+MI(X,MRI) exact, λ=0.5": nb[j],
            "MI(X,CT)+MI(X,MRI) exact, optimised λ": na[j],
        }
        for j, i in enumerate(idx)
    ]
    fig = figures.lambda_map_panel(ctx.figures / "lambda_maps.png", images, maps, lam_opt.cpu())
    return {"tables": {"lambda_maps": rows}, "figures": [fig]}


# ----------------------------------------------------------------------------- 10. cost
def cost(ctx: Context, results: dict[str, Any]) -> dict:
    """Wall time per slice of every method (inference) and training times, same machine/run."""
    rows = []
    main = results.get("main_table", {})
    for method, sec in (main.get("times") or {}).items():
        rows.append({"method": method, "seconds_per_slice": sec})
    for key, sec in sorted(ctx.timings.items()):
        rows.append({"method": key, "seconds_total": sec})
    return {"tables": {"cost": rows}}


EXPERIMENTS: dict[str, Callable[..., dict]] = {
    "training_quality": training_quality,
    "small_ablation": small_ablation,
    "lambda_sweep": lambda_sweep,
    "main_table": main_table,
    "cross_modal_gain": cross_modal_gain,
    "sampling_robustness": sampling_robustness,
    "mri_only": mri_only,
    "registration": registration,
    "out_of_distribution": out_of_distribution,
    "t1_t2": t1_t2,
    "lambda_maps": lambda_maps,
    "cost": cost,
}
