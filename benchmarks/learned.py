"""The learned baselines of a run, trained once under the equal wall-time budget and cached.

pix2pix (MRI→CT, CT→MRI), DeepFusion (with its shift augmentation), FBPConvNet and Learned
Primal-Dual (CT), MoDL (MRI). Each: learning rate from ``suite.lr_grid_cnn`` chosen on
validation by short runs, then ``suite.budget_s`` seconds of training keeping the
validation-best parameters. ``iterations``/``seconds``/``lr`` go to ``ctx.timings``.
"""

from __future__ import annotations

from typing import Any

import torch

from msl_recon import modalities as registry

from .budget import budget_fit, tune_lr
from .evaluate import collate

__all__ = ["deepfusion", "fbpconvnet", "lpd", "modl", "pix2pix"]

CT, MR = "ct", "t1"


def _split_arrays(ctx: Any, split: str, idx: list[int] | None = None) -> dict[str, torch.Tensor]:
    """Sparse images ``sp_<m>`` and truths ``gt_<m>`` ``(S, 1, H, W)`` of a split (CPU)."""
    from .evaluate import sparse_and_truth

    ds = ctx.test_set(split=split, modalities=(CT, MR))
    idx = list(range(len(ds))) if idx is None else idx
    sp, gt = sparse_and_truth(ds, idx, ctx.device)
    out = {f"sp_{m}": v[:, None] for m, v in sp.items()}
    out.update({f"gt_{m}": v[:, None] for m, v in gt.items()})
    return out


def _batches(arrays: Any, batch: int, seed: int) -> list[tuple[torch.Tensor, ...]]:
    gen = torch.Generator().manual_seed(seed)
    n = arrays[0].shape[0]
    perm = torch.randperm(n, generator=gen)
    return [
        tuple(a[perm[i : i + batch]] for a in arrays) for i in range(0, n - batch + 1, batch)
    ] or [tuple(a for a in arrays)]


def _run(ctx: Any, key: str, make: Any, train: Any, score: Any) -> Any:
    """Tune the lr on validation by short runs, then train for the budget; cache the state.

    ``make()`` builds an untrained model (only to load a cached state); ``train(lr, seconds)``
    returns ``(model, info)``, the validation-best model of a run of that length.
    """
    s = ctx.suite
    path = ctx.cache / f"{key}.pt"
    if path.exists():
        model = make()
        model.load_state_dict(torch.load(path, map_location=ctx.device))
        return model.eval()
    lr, scores = tune_lr(lambda lr, sec: train(lr, sec)[0], score, s.lr_grid_cnn, s.lr_budget_s)
    model, info = train(lr, s.budget_s)
    ctx.record(f"train/{key}", {**info, "lr": lr, "lr_val_scores": scores})
    torch.save(model.state_dict(), path)
    return model.eval()


def _budget_trainer(make: Any, batches: Any, score: Any) -> Any:
    """``train(lr, seconds)`` of a model with a ``train_step`` (pix2pix, DeepFusion)."""

    def train(lr: float, seconds: float) -> tuple[Any, dict]:
        m = make(lr)
        return m, budget_fit(m, m.train_step, batches, seconds, val_fn=lambda: score(m))

    return train


def _fit_trainer(fit: Any, *args: Any, **kw: Any) -> Any:
    """``train(lr, seconds)`` of a ``train_xxx(*args, time_budget_s=, lr=, **kw)`` baseline
    (FBPConvNet, LPD, MoDL), whose returned model carries its ``train_result``."""

    def train(lr: float, seconds: float) -> tuple[Any, dict]:
        t = fit(*args, time_budget_s=seconds, lr=lr, **kw)
        r = t.train_result
        return t, {"iterations": r.steps, "seconds": r.seconds, "best_step": r.best_step}

    return train


def _mean_mae(pairs: Any, predict: Any) -> float:
    """Mean over validation batches ``(input, target)`` of MAE(``predict(input)``, target)."""
    return sum(
        float(torch.mean(torch.abs(predict(x).reshape(t.shape).cpu() - t.cpu()))) for x, t in pairs
    ) / len(pairs)


def pix2pix(ctx: Any, direction: str) -> Any:
    """pix2pix for ``"mr2ct"`` or ``"ct2mr"`` (sparse input → ground truth target)."""
    from msl_recon.baselines import Pix2Pix

    s = ctx.suite
    src, tgt = (MR, CT) if direction == "mr2ct" else (CT, MR)
    tr, va = _split_arrays(ctx, "train"), _split_arrays(ctx, "val", ctx.val_indices_of("val"))
    batches = _batches((tr[f"sp_{src}"], tr[f"gt_{tgt}"]), s.batch_size, s.seed)

    def make(lr: float) -> Any:
        return Pix2Pix(s.image_size, base=s.p2p_base, device=ctx.device, seed=s.seed, lr=lr)

    def score(m: Any) -> float:
        pred = m.predict(va[f"sp_{src}"].to(ctx.device)).cpu()
        return float(torch.mean(torch.abs(pred - va[f"gt_{tgt}"])))

    train = _budget_trainer(make, batches, score)
    return _run(ctx, f"pix2pix-{direction}", lambda: make(s.lr_grid_cnn[0]), train, score)


def deepfusion(ctx: Any) -> Any:
    """DeepFusion (CT and MRI encoder–decoders, CT shift augmentation as in the paper)."""
    from msl_recon.baselines import DeepFusion

    s = ctx.suite
    tr, va = _split_arrays(ctx, "train"), _split_arrays(ctx, "val", ctx.val_indices_of("val"))
    batches = _batches(
        (tr[f"sp_{CT}"], tr[f"sp_{MR}"], tr[f"gt_{CT}"], tr[f"gt_{MR}"]), s.batch_size, s.seed
    )

    def make(lr: float) -> Any:
        return DeepFusion(s.image_size, base=s.df_base, device=ctx.device, seed=s.seed, lr=lr)

    def score(m: Any) -> float:
        ct, mr = m.predict(va[f"sp_{CT}"].to(ctx.device), va[f"sp_{MR}"].to(ctx.device))
        return float(
            torch.mean(torch.abs(ct.cpu() - va[f"gt_{CT}"]))
            + torch.mean(torch.abs(mr.cpu() - va[f"gt_{MR}"]))
        )

    train = _budget_trainer(make, batches, score)
    return _run(ctx, "deepfusion", lambda: make(s.lr_grid_cnn[0]), train, score)


def fbpconvnet(ctx: Any) -> Any:
    """FBPConvNet on the CT FBP images."""
    from msl_recon.baselines import FBPConvNet, reconstruct_fbpconvnet, train_fbpconvnet
    from msl_recon.baselines._train import seeded

    s = ctx.suite
    tr, va = _split_arrays(ctx, "train"), _split_arrays(ctx, "val", ctx.val_indices_of("val"))
    batches = _batches((tr[f"sp_{CT}"], tr[f"gt_{CT}"]), s.batch_size, s.seed)
    batches = [(a.to(ctx.device), b.to(ctx.device)) for a, b in batches]
    vb = [(va[f"sp_{CT}"].to(ctx.device), va[f"gt_{CT}"].to(ctx.device))]

    def make() -> Any:
        with seeded(s.seed):
            return FBPConvNet(base=s.cnn_base).to(ctx.device)

    train = _fit_trainer(
        train_fbpconvnet, batches, device=ctx.device, seed=s.seed, base=s.cnn_base,
        val_batches=vb,
    )  # fmt: skip

    def score(m: Any) -> float:
        return _mean_mae(vb, lambda x: reconstruct_fbpconvnet(m, x))

    return _run(ctx, "fbpconvnet", make, train, score)


def _raw(ctx: Any, split: str, m: str, idx: list[int] | None = None) -> list[dict]:
    ds = ctx.test_set(split=split, modalities=(CT, MR))
    idx = list(range(len(ds))) if idx is None else idx
    b = ctx.suite.batch_size
    return [collate(ds, idx[i : i + b]) for i in range(0, len(idx), b)], ds


def lpd(ctx: Any) -> Any:
    """Learned Primal-Dual over the dataset's ray transform."""
    import operators as ops
    from msl_recon.baselines import LearnedPrimalDual, reconstruct_lpd, train_lpd

    s = ctx.suite
    key = registry.get(CT).raw_key
    tr, ds = _raw(ctx, "train", CT)
    va, _ = _raw(ctx, "val", CT, ctx.val_indices_of("val"))
    ray = ops.RayTransform(ds.geometry)
    batches = [(b[key].to(ctx.device), b[CT].to(ctx.device)) for b in tr]
    vb = [(b[key].to(ctx.device), b[CT].to(ctx.device)) for b in va]

    def make() -> Any:
        return LearnedPrimalDual(ray).to(ctx.device)

    train = _fit_trainer(train_lpd, batches, ray, device=ctx.device, seed=s.seed, val_batches=vb)

    def score(m: Any) -> float:
        return _mean_mae(vb, lambda y: reconstruct_lpd(m, y))

    return _run(ctx, "lpd", make, train, score)


class _BatchOperator:
    """The forward model of whichever batch MoDL is solving (per-slice masks and coil maps).

    MoDL calls ``op.H(k)`` first on the batch's own k-space tensor; that call selects the
    operator registered for it by :meth:`register`.
    """

    def __init__(self) -> None:
        self._ops: dict[int, tuple[torch.Tensor, Any]] = {}
        self.current: Any = None

    def register(self, k: torch.Tensor, op: Any) -> torch.Tensor:
        self._ops[id(k)] = (k, op)
        return k

    def H(self, y: torch.Tensor) -> torch.Tensor:
        if id(y) in self._ops:
            self.current = self._ops[id(y)][1]
        return self.current.H(y)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.current(x)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.current, name)


def modl(ctx: Any) -> tuple[Any, _BatchOperator]:
    """MoDL for the MRI modality; returns the model and its batch-operator switch."""
    from msl_recon.baselines import MoDL, reconstruct_modl, train_modl
    from msl_recon.model import build_operators

    s = ctx.suite
    key = registry.get(MR).raw_key
    tr, ds = _raw(ctx, "train", MR)
    va, _ = _raw(ctx, "val", MR, ctx.val_indices_of("val"))
    bop = _BatchOperator()

    def prep(raw: list[dict]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        out = []
        for b in raw:
            op = build_operators(b, ds.acquisition, ctx.device, modalities=(MR,))[MR]
            k = b[key].to(ctx.device, torch.complex64)
            out.append((bop.register(k, op), b[MR][:, 0].to(ctx.device)))
        return out

    batches, vb = prep(tr), prep(va)

    def make() -> Any:
        return MoDL(bop).to(ctx.device)

    train = _fit_trainer(train_modl, batches, bop, device=ctx.device, seed=s.seed, val_batches=vb)

    def score(m: Any) -> float:
        return _mean_mae(vb, lambda k: reconstruct_modl(m, k))

    model = _run(ctx, "modl", make, train, score)
    model.op = bop
    return model, bop
