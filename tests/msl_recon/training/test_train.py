"""Training: the loss decreases, interrupt + resume is bit-identical, DDP keeps replicas equal."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from msl_recon_testdata import tiny_config

from msl_recon.errors import InputError
from msl_recon.model import MSLNet
from msl_recon.training.checkpoint import load_checkpoint
from msl_recon.training.loop import TrainOptions, train


def _opts(tiny_data, out, **kw) -> TrainOptions:
    base = dict(
        data=tiny_data,
        out=out,
        config=tiny_config(),
        iterations=4,
        val_every=0,
        checkpoint_every=0,
        progress=False,
        tensorboard=False,
    )
    base.update(kw)
    return TrainOptions(**base)


def test_tiny_training_decreases_loss_and_validates(tiny_data, tmp_path) -> None:
    res = train(_opts(tiny_data, tmp_path / "run", iterations=6, val_every=6, val_samples=2))
    assert len(res.losses) == 6
    assert sum(res.losses[-2:]) < 0.85 * sum(res.losses[:2]), res.losses
    assert set(res.val) >= {"ct_mae", "ct_ssim", "ct_mi", "ct_psnr", "t1_ssim"}
    assert 0.0 <= res.val["ct_mae"] <= 1.0 and 1.0 <= res.val["t1_mi"] <= 2.0
    ckpt = load_checkpoint(res.checkpoint)
    assert ckpt["iteration"] == 6
    assert ckpt["modalities"] == ["ct", "t1"]
    assert ckpt["data_state"]["consumed"] == 12
    assert ckpt["config"]["image_size"] == 32
    log = (tmp_path / "run" / "log.csv").read_text(encoding="utf-8").splitlines()
    assert log[0].startswith("iteration,loss,lr")
    assert any("val_ct_ssim" in line for line in log[:1])


def test_interrupt_and_resume_is_bit_identical(tiny_data, tmp_path) -> None:
    # the small config's switches too: a random L_aux scenario per step, SSIM term, refinement
    cfg = tiny_config(aux="random", ssim_weight=1.0, refine_channels=(4,))
    rand = dict(random_views=(8, 16), random_acceleration=(4, 8), modality_dropout=0.5, config=cfg)
    full = train(_opts(tiny_data, tmp_path / "full", iterations=3, **rand))
    part = train(_opts(tiny_data, tmp_path / "part", iterations=3, stop_after=1, **rand))
    assert part.iteration == 1
    # on resume the stored settings rule; given again they must equal the stored ones
    with pytest.raises(InputError, match="cannot honour: --config"):
        train(_opts(tiny_data, tmp_path / "part", config="paper", iterations=3, resume=True))
    rest = train(_opts(tiny_data, tmp_path / "part", **rand, iterations=3, resume=True))
    assert rest.iteration == 3
    assert rest.losses == full.losses[1:]
    a = load_checkpoint(tmp_path / "full" / "last.pt")
    b = load_checkpoint(tmp_path / "part" / "last.pt")
    assert a["model"].keys() == b["model"].keys()
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    sa, sb = a["optimizer"]["state"], b["optimizer"]["state"]
    assert all(torch.equal(sa[i]["exp_avg_sq"], sb[i]["exp_avg_sq"]) for i in sa)
    assert a["scheduler"] == b["scheduler"]
    assert torch.equal(a["rng"]["torch"], b["rng"]["torch"])
    # and training really changed the weights (the comparison is not vacuous)
    torch.manual_seed(0)
    init = MSLNet(cfg).state_dict()
    assert init.keys() == a["model"].keys()
    assert any(not torch.equal(a["model"][k], init[k]) for k in init)


def test_run_dir_guards(tiny_data, tmp_path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "something").write_text("x")
    with pytest.raises(InputError, match="not empty"):
        train(_opts(tiny_data, out))
    with pytest.raises(InputError, match="no checkpoint"):
        train(_opts(tiny_data, tmp_path / "none", resume=True))
    with pytest.raises(InputError, match="does not exist"):
        train(_opts(tmp_path / "nodata", tmp_path / "r2"))
    with pytest.raises(InputError, match="t2"):
        train(_opts(tiny_data, tmp_path / "r3", modalities=("ct", "t2")))


def test_ddp_two_gloo_processes_keep_replicas_identical(tiny_data, tmp_path) -> None:
    """torchrun, 2 CPU processes (gloo), batch 2 each == one process with batch 4 (no dropout)."""
    cfg = tiny_config(dropout=0.0).to_dict()
    cfg_path = tmp_path / "tiny.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        "-m", "msl_recon.cli.main", "train", "--data", str(tiny_data), "--out",
        str(tmp_path / "ddp"), "--config", str(cfg_path), "--iterations", "2",
        "--batch-size", "2", "--device", "cpu", "--val-every", "0", "--checkpoint-every", "0",
        "--quiet", "--no-tensorboard",
    ]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ddp = load_checkpoint(tmp_path / "ddp" / "last.pt")
    sums = ddp["replica_checksums"]
    assert len(sums) == 2 and sums[0] == sums[1]
    assert ddp["data_state"] == {"seed": 0, "consumed": 8, "world_size": 2}
    single = train(
        _opts(
            tiny_data, tmp_path / "one", config=tiny_config(dropout=0.0), iterations=2, batch_size=4
        )
    )
    one = load_checkpoint(single.checkpoint)
    # gradients are averaged over the ranks: the 2×2 run follows the 1×4 run up to rounding
    # (Adam amplifies rounding where gradients are ~0, hence the relative measure); without the
    # all-reduce the ratio is of order 1
    torch.manual_seed(0)
    init = MSLNet(tiny_config(dropout=0.0)).state_dict()
    keys = [k for k in init if init[k].is_floating_point()]
    diff = sum(float((ddp["model"][k] - one["model"][k]).square().sum()) for k in keys) ** 0.5
    step = sum(float((one["model"][k] - init[k]).square().sum()) for k in keys) ** 0.5
    assert step > 0
    assert diff / step < 0.05, (diff, step)


def test_checkpoints_by_time_and_fallback_on_damaged_last(tiny_data, tmp_path, monkeypatch) -> None:
    from msl_recon.training import loop

    saved: list[tuple[str, int]] = []
    real = loop.save_checkpoint

    def spy(path, state):
        saved.append((Path(path).name, int(state["iteration"])))
        return real(path, state)

    monkeypatch.setattr(loop, "save_checkpoint", spy)
    train(_opts(tiny_data, tmp_path / "a", iterations=3, checkpoint_minutes=0.0))
    assert saved == [("last.pt", 3)]  # count-based off, time-based off: only the final one
    saved.clear()
    train(_opts(tiny_data, tmp_path / "b", iterations=3, checkpoint_minutes=1e-9))
    assert saved == [("last.pt", 1), ("last.pt", 2), ("last.pt", 3)]  # the clock is always due
    # a damaged last.pt: resume from the newest valid ckpt_*.pt, with a warning
    out = tmp_path / "c"
    train(_opts(tiny_data, out, iterations=2, checkpoint_every=1))
    (out / "last.pt").write_bytes((out / "last.pt").read_bytes()[:-100])
    with pytest.warns(UserWarning, match="resuming from ckpt_0000002.pt"):
        res = train(_opts(tiny_data, out, config=None, iterations=3, resume=True))
    assert res.iteration == 3 and len(res.losses) == 1
    with pytest.raises(InputError, match="--checkpoint-minutes"):
        train(_opts(tiny_data, tmp_path / "d", checkpoint_minutes=-1.0))


def test_time_budget_stops_the_run_and_keeps_timed_checkpoints(
    tiny_data, tmp_path, monkeypatch
) -> None:
    from msl_recon.training import loop

    clock = iter(range(10**6))  # a fake clock: each reading is one second later
    monkeypatch.setattr(loop.time, "perf_counter", lambda: float(next(clock)))
    out = tmp_path / "budget"
    res = train(
        _opts(
            tiny_data, out, iterations=None, time_budget_s=3.5, checkpoint_every_s=2.0,
        )
    )  # fmt: skip
    # readings: t0 = 0, then one per step (1, 2, 3, 4): the 4th step passes 3.5 s and ends it
    assert res.iteration == 4 and len(res.losses) == 4
    assert sorted(p.name for p in out.glob("ckpt_*.pt")) == ["ckpt_0000002.pt", "ckpt_0000004.pt"]
    assert load_checkpoint(out / "last.pt")["iteration"] == 4
    # --iterations stays a cap
    capped = train(_opts(tiny_data, tmp_path / "cap", iterations=2, time_budget_s=1e6))
    assert capped.iteration == 2
    # a time-budgeted run resumes only with a new budget or an iteration count
    with pytest.raises(InputError, match="time budget"):
        train(_opts(tiny_data, out, config=None, iterations=None, resume=True))
    with pytest.raises(InputError, match="--time-budget"):
        train(_opts(tiny_data, tmp_path / "bad", time_budget_s=0.0))


def test_shift_augment_reacquires_the_shifted_truth_and_keeps_the_target(
    tiny_data, tmp_path
) -> None:
    import numpy as np

    from msl_recon.data.dataset import MSLDataset
    from msl_recon.model import build_operators
    from msl_recon.training.batches import collate, shift_augment

    ds = MSLDataset(tiny_data / "train.h5")
    batch = collate(ds, np.arange(2))
    ops = build_operators(batch, ds.acquisition, "cpu")
    out = shift_augment(batch, ops, {"ct": 0.0}, np.random.default_rng(0))
    # zero shift: the re-acquired sinogram is the operator applied to the truth
    assert torch.allclose(out["ct_sino"], ops["ct"](batch["ct"][:, 0].float()), atol=1e-5)
    out = shift_augment(batch, ops, {"ct": 3.0}, np.random.default_rng(0))
    assert torch.equal(out["ct"], batch["ct"]) and torch.equal(out["t1_kspace"], batch["t1_kspace"])
    rel = (out["ct_sino"] - ops["ct"](batch["ct"][:, 0].float())).norm() / out["ct_sino"].norm()
    assert rel > 0.05  # a 0–3 px shift of the head changes its projections
    # through the loop: runs and is stored for an exact resume; a non-modality is refused
    res = train(_opts(tiny_data, tmp_path / "run", iterations=2, shift_augment={"ct": 2.0}))
    assert res.iteration == 2 and all(np.isfinite(res.losses))
    assert load_checkpoint(res.checkpoint)["train_args"]["shift_augment"] == {"ct": 2.0}
    with pytest.raises(InputError, match="shift-augment"):
        train(_opts(tiny_data, tmp_path / "bad", shift_augment={"pet": 2.0}))
