"""Experiment 2: every method × {CT, MRI} on the test subjects, with paired CIs against MSL."""

from __future__ import annotations

import time
from typing import Any

import torch

from msl_recon import modalities as registry

from .. import figures, learned
from ..context import Context
from ..evaluate import collate, msl_images, sparse_and_truth
from .common import CT, MR, board, main_model, main_run, result, single_run, train_row

GRIDS = {
    "tv": {"mu_ct": [1e-4, 1e-3, 1e-2], "mu_mr": [1e-4, 1e-3, 1e-2]},
    "jtv": {"mu": [1e-4, 1e-3, 1e-2], "beta": [0.5, 1.0, 2.0]},
    "dtv": {"eta": [0.01, 0.05, 0.2]},  # μ_ct, μ_mr: TV's choice (DTV refines TV)
}


def _mag(x: Any) -> Any:
    return x.abs() if x.is_complex() else x


def cs_methods(ctx: Context, A: Any, F: Any) -> dict[str, Any]:
    """``name -> fn(y_ct, y_mr, **weights) -> (ct, mr, converged)`` of the CS baselines."""
    from msl_recon.baselines import dtv_reconstruct, joint_tv_reconstruct, tv_reconstruct

    n = ctx.suite.cs_max_iter
    h = 0  # objective only at the end: the stopping rule does not need it, and it costs
    # more than the PDHG step itself on k-space data

    def tv(y_ct, y_mr, mu_ct, mu_mr):
        r1 = tv_reconstruct(y_ct, A, mu_ct, n_iter=n, history_every=h)
        r2 = tv_reconstruct(y_mr, F, mu_mr, n_iter=n, history_every=h)
        return r1.x[0], _mag(r2.x[0]), bool(r1.converged and r2.converged)

    def jtv(y_ct, y_mr, mu, beta):
        r = joint_tv_reconstruct(y_ct, A, y_mr, F, mu=mu, beta=beta, n_iter=n, history_every=h)
        return r.ct, r.mr, all(r.converged.values())

    def dtv(y_ct, y_mr, mu_ct, mu_mr, eta):
        r = dtv_reconstruct(
            y_ct, A, y_mr, F, mu_ct=mu_ct, mu_mr=mu_mr, eta=eta, n_iter=n, history_every=h
        )
        return r.ct, r.mr, all(r.converged.values())

    return {"tv": tv, "jtv": jtv, "dtv": dtv}


def cs_weights(ctx: Context) -> dict[str, Any]:
    """CS weights chosen on validation slices (grids widened until the optimum is interior)."""
    from msl_recon.baselines import select_weights, tv_reconstruct
    from msl_recon.model import build_operators

    key = "cs/weights"
    if key in ctx.timings:
        return ctx.timings[key]
    s = ctx.suite
    if not s.cs_active:
        return {}
    val = ctx.test_set(split="val", modalities=(CT, MR))
    b = collate(val, ctx.val_indices(val, s.cs_val_slices))
    ops = build_operators(b, val.acquisition, ctx.device)
    sample = {
        "y_ct": b[registry.get(CT).raw_key].to(ctx.device),
        "y_mr": b[registry.get(MR).raw_key].to(ctx.device),
        "ct": b[CT][:, 0].to(ctx.device),
        "mr": b[MR][:, 0].to(ctx.device),
    }
    fns = cs_methods(ctx, ops[CT], ops[MR])
    grids = (
        GRIDS
        if s.name != "micro"
        else {k: {p: v[:2] for p, v in g.items()} for k, g in GRIDS.items()}
    )
    grids = {**grids, "jtv": {**grids["jtv"], "beta": list(s.cs_jtv_beta)}}
    out: dict[str, Any] = {}

    def select(name: str, fn: Any, grid: dict, fixed: dict) -> dict:
        sel = select_weights(
            lambda smp, **w: fn(smp, **fixed, **w),
            [sample],
            grid,
            bounds={"eta": (0.0, 1.0)},
            max_widen=0 if s.name == "micro" else 4,
            progress=ctx.progress,
        )
        return {
            "chosen": {**fixed, **sel.best},
            "grid": sel.grid,
            "interior": sel.interior,
            "table": [[w, float(v)] for w, v in sel.table],
        }

    A, F = ops[CT], ops[MR]
    n, h = s.cs_max_iter, 0

    # TV: the CT and MRI problems are independent, so their weights are chosen separately
    def tv_ct(smp: dict, mu_ct: float) -> tuple:
        return tv_reconstruct(smp["y_ct"], A, mu_ct, n_iter=n, history_every=h).x[0], None

    def tv_mr(smp: dict, mu_mr: float) -> tuple:
        return None, _mag(tv_reconstruct(smp["y_mr"], F, mu_mr, n_iter=n, history_every=h).x[0])

    ct_sel = select("tv", tv_ct, {"mu_ct": grids["tv"]["mu_ct"]}, {})
    mr_sel = select("tv", tv_mr, {"mu_mr": grids["tv"]["mu_mr"]}, {})
    out["tv"] = {
        "chosen": {**ct_sel["chosen"], **mr_sel["chosen"]},
        "grid": {**ct_sel["grid"], **mr_sel["grid"]},
        "interior": ct_sel["interior"] and mr_sel["interior"],
        "table": ct_sel["table"] + mr_sel["table"],
    }
    for name in s.cs_active:
        if name == "tv":
            continue
        fixed = dict(out["tv"]["chosen"]) if name == "dtv" else {}
        fn = fns[name]
        out[name] = select(
            name, lambda smp, _f=fn, **w: _f(smp["y_ct"], smp["y_mr"], **w)[:2], grids[name], fixed
        )
    ctx.record(key, out)
    return out


def main_table(ctx: Context) -> dict:
    """Every method × {CT, MRI} × {MAE, SSIM, MI, PSNR}; paired CIs of each method vs MSL."""
    from msl_recon.baselines import reconstruct_fbpconvnet, reconstruct_lpd, reconstruct_modl
    from msl_recon.model import build_operators

    s = ctx.suite
    ds = ctx.test_set(modalities=(CT, MR))
    idx = ctx.test_indices(ds)
    sparse, truth = sparse_and_truth(ds, idx, ctx.device)
    sb = board(ds, idx)
    times: dict[str, float] = {}
    preds: dict[str, tuple[Any, Any]] = {}

    def add(method: str, ct: Any, mr: Any, sec: float, *, on: Any = None, **extra: Any) -> None:
        bd, pos = (sb, slice(None)) if on is None else on
        times[method] = sec
        if ct is not None:
            bd.add(method, "CT", ct.float().cpu(), truth[CT][pos], **extra)
        if mr is not None:
            bd.add(method, "MRI", mr.float().cpu(), truth[MR][pos], **extra)
        preds[method] = (ct, mr)

    add("FBP / zero-filled", sparse[CT], sparse[MR], 0.0)
    # learned baselines, equal wall-time budget (trained or loaded before the clock starts:
    # the timings are inference only)
    p2p_ct, p2p_mr = learned.pix2pix(ctx, "mr2ct"), learned.pix2pix(ctx, "ct2mr")
    df, fbc_net, lpd_net = learned.deepfusion(ctx), learned.fbpconvnet(ctx), learned.lpd(ctx)
    model, bop = learned.modl(ctx)
    t0 = time.perf_counter()
    ct_p = p2p_ct.predict(sparse[MR][:, None].to(ctx.device))[:, 0]
    mr_p = p2p_mr.predict(sparse[CT][:, None].to(ctx.device))[:, 0]
    add("pix2pix (MRI→CT, CT→MRI)", ct_p, mr_p, (time.perf_counter() - t0) / len(idx))
    t0 = time.perf_counter()
    ct_d, mr_d = df.predict(sparse[CT][:, None].to(ctx.device), sparse[MR][:, None].to(ctx.device))
    add("DeepFusion", ct_d[:, 0], mr_d[:, 0], (time.perf_counter() - t0) / len(idx))
    t0 = time.perf_counter()
    fbc = reconstruct_fbpconvnet(fbc_net, sparse[CT][:, None].to(ctx.device))
    add("FBPConvNet (CT)", fbc[:, 0], None, (time.perf_counter() - t0) / len(idx))
    b_all = collate(ds, idx)
    t0 = time.perf_counter()
    lp = reconstruct_lpd(lpd_net, b_all[registry.get(CT).raw_key].to(ctx.device))
    add(
        "Learned Primal-Dual (CT)",
        lp.reshape(-1, *truth[CT].shape[1:]),
        None,
        (time.perf_counter() - t0) / len(idx),
    )
    t0 = time.perf_counter()
    op_mr = build_operators(b_all, ds.acquisition, ctx.device, modalities=(MR,))[MR]
    k = bop.register(b_all[registry.get(MR).raw_key].to(ctx.device, torch.complex64), op_mr)
    add("MoDL (MRI)", None, reconstruct_modl(model, k), (time.perf_counter() - t0) / len(idx))
    # MSL and the single-modality MSL models, same budget
    msl = main_model(ctx)
    imgs, sec = msl_images(msl, ds, idx, (CT, MR), [0.0, 1.0], ctx.device)
    add("MSL (CT+MRI)", imgs[0], imgs[1], sec)
    c_run, m_run = single_run(ctx, CT), single_run(ctx, MR)
    ic, sc = msl_images(ctx.load_msl(c_run), ds, idx, (CT,), [0.0], ctx.device)
    im, sm = msl_images(ctx.load_msl(m_run), ds, idx, (MR,), [0.0], ctx.device)
    add("MSL single-modality", ic[0], im[0], sc + sm)
    # compressed sensing, weights chosen on validation (the costliest methods: with
    # ``cs_one_per_subject`` on one slice of every test subject, next to MSL on the same slices)
    weights = cs_weights(ctx)
    cs_idx = ctx.one_per_subject(ds) if s.cs_one_per_subject else idx
    pos = [idx.index(i) for i in cs_idx]
    sb_cs = sb if cs_idx == idx else board(ds, cs_idx)
    on = None if sb_cs is sb else (sb_cs, pos)
    if on is not None:
        sb_cs.add("FBP / zero-filled", "CT", sparse[CT][pos], truth[CT][pos])
        sb_cs.add("FBP / zero-filled", "MRI", sparse[MR][pos], truth[MR][pos])
        sb_cs.add("MSL (CT+MRI)", "CT", imgs[0][pos], truth[CT][pos])
        sb_cs.add("MSL (CT+MRI)", "MRI", imgs[1][pos], truth[MR][pos])
    b = collate(ds, cs_idx)
    ops = build_operators(b, ds.acquisition, ctx.device)
    y_ct = b[registry.get(CT).raw_key].to(ctx.device)
    y_mr = b[registry.get(MR).raw_key].to(ctx.device)
    labels = {
        "tv": "TV (single-modality CS)",
        "jtv": "Joint TV (CS joint CT-MRI)",
        "dtv": "Directional TV (CS joint CT-MRI)",
    }
    for name, fn in cs_methods(ctx, ops[CT], ops[MR]).items():
        if name not in s.cs_active:
            continue
        t0 = time.perf_counter()
        ct, mr, conv = fn(y_ct, y_mr, **weights[name]["chosen"])
        add(labels[name], ct, mr, (time.perf_counter() - t0) / len(cs_idx), on=on, converged=conv)
    comps = sb.compare("MSL (CT+MRI)", "CT") + sb.compare("MSL (CT+MRI)", "MRI")
    extra_tables: dict[str, Any] = {}
    if on is not None:
        comps += [
            r
            for t in ("CT", "MRI")
            for r in sb_cs.compare("MSL (CT+MRI)", t)
            if r["method"] in labels.values()
        ]
        extra_tables["main, CS methods (one slice per test subject, MSL on the same slices)"] = (
            sb_cs.rows()
        )
    training = [
        train_row(ctx, main_run(ctx), "MSL (CT+MRI)"),
        train_row(ctx, c_run, "MSL CT-only"),
        train_row(ctx, m_run, "MSL MRI-only"),
    ]
    for key in ("pix2pix-mr2ct", "pix2pix-ct2mr", "deepfusion", "fbpconvnet", "lpd", "modl"):
        info = ctx.timings.get(f"train/{key}", {})
        training.append(
            {
                "method": key,
                "iterations": info.get("iterations"),
                "seconds": info.get("seconds"),
                "lr": info.get("lr"),
                "lr_val_scores": str(info.get("lr_val_scores")),
            }
        )
    cs_rows = [
        {"method": labels[k], "grid": str(v["grid"]), "chosen": str(v["chosen"]),
         "interior": v["interior"]}
        for k, v in weights.items()
    ]  # fmt: skip
    panel = figures.method_panel(
        ctx.figures / "methods.png",
        truth={"CT": truth[CT][0], "MRI": truth[MR][0]},
        preds={
            k: (None if v[0] is None else v[0][0].cpu(), None if v[1] is None else v[1][0].cpu())
            for k, v in preds.items()
        },
    )
    return result(
        sb,
        "main",
        comps,
        tables={
            **extra_tables,
            "training budgets": training,
            "CS weights (validation)": cs_rows,
        },
        figures=[panel],
        times=times,
        notes=[
            f"{len(idx)} test slices of {len(set(sb.subjects))} held-out subjects; mean ± SD "
            "over subjects. CS weights chosen on validation slices (grid, widened until "
            f"interior); PDHG with a convergence rule, cap {s.cs_max_iter} iterations.",
            f"Every learned method: {s.budget_s:g} s of training on this machine, learning rate "
            f"chosen on validation by {s.lr_budget_s:g} s runs.",
            f"CS baselines on `{s.acq_preset}` data: {list(s.cs_active) or 'none (cost)'}.",
        ],
    )
