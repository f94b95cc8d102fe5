"""Interruptions leave a runnable state: staged multi-file commits, orphan clean-up, file modes."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import h5py
import pytest

from msl_recon import _io
from msl_recon.cli.main import main

SIM = ["simulate", "--size", "32", "--subjects", "3", "--slices", "1", "--views", "8", "-q"]


@pytest.fixture(scope="module")
def dead_pid() -> int:
    """The id of a process that has exited (not reused within a test, in practice)."""
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    assert not _io.pid_alive(p.pid)
    return p.pid


def _as_dead(p: Path, dead_pid: int) -> Path:
    """Rename a temporary of this process as if a killed process ``dead_pid`` had left it."""
    q = p.with_name(p.name.replace(f".{os.getpid()}.", f".{dead_pid}."))
    p.rename(q)
    return q


def test_atomic_write_uses_the_umask(tmp_path) -> None:
    old = os.umask(0o022)
    try:
        with _io.atomic_path(tmp_path / "a.txt") as tmp:
            tmp.write_text("x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o644


def test_stale_temporaries_of_dead_writers_are_removed(tmp_path, dead_pid) -> None:
    dead = tmp_path / f".last.pt.{dead_pid}.abc123.tmp"
    live = tmp_path / f".last.pt.{os.getpid()}.def456.tmp"
    other = tmp_path / f".val.h5.{dead_pid}.x1.tmp"
    for p in (dead, live, other):
        p.write_text("partial")
    with _io.atomic_path(tmp_path / "last.pt") as tmp:  # a write cleans its own target's orphans
        tmp.write_text("new")
    assert not dead.exists() and live.exists() and other.exists()
    assert _io.remove_stale_temps(tmp_path) == [other]
    assert live.exists()


def test_staged_outputs_commit_as_one(tmp_path) -> None:
    (tmp_path / "test.h5").write_text("old")
    with pytest.raises(RuntimeError, match="boom"):
        with _io.staged_outputs(tmp_path, ["train.h5", "val.h5"]) as paths:
            paths["train.h5"].write_text("new")
            raise RuntimeError("boom")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["test.h5"]  # nothing half-written
    with _io.staged_outputs(tmp_path, ["train.h5", "val.h5"], remove=["test.h5"]) as paths:
        for p in paths.values():
            p.write_text("new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train.h5", "val.h5"]


def _simulate_killed_while_publishing(out: Path, monkeypatch, dead_pid: int) -> None:
    """Run simulate and stop it after the first split file was moved into place."""
    real = os.replace
    moved: list[str] = []

    def replace_then_die(src, dst):
        staged = Path(src).parent.name.startswith(".staging.")
        if staged and Path(dst).suffix == ".h5":
            if moved:
                raise KeyboardInterrupt  # stands for SIGKILL between two renames
            moved.append(str(dst))
        real(src, dst)

    monkeypatch.setattr(_io.os, "replace", replace_then_die)
    assert main([*SIM, "--out", str(out)]) == 130
    monkeypatch.setattr(_io.os, "replace", real)
    (stage,) = out.glob(".staging.*.tmp")
    _as_dead(stage, dead_pid)
    assert len(moved) >= 1 and len(list(out.glob("*.h5"))) == 1  # the broken state of old


def test_interrupted_publication_is_completed_by_the_rerun(tmp_path, monkeypatch, dead_pid, capsys):
    out = tmp_path / "d"
    _simulate_killed_while_publishing(out, monkeypatch, dead_pid)
    capsys.readouterr()
    # the same command: completes the earlier run's files, then says what to do
    rc = main([*SIM, "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and "--overwrite" in err and "completed the interrupted write" in err
    names = sorted(p.name for p in out.iterdir())
    assert names == ["test.h5", "train.h5", "val.h5"]  # complete, no leftovers
    for p in out.iterdir():
        with h5py.File(p) as f:
            assert f["images/ct"].shape == (1, 32, 32)


def test_interrupted_work_leaves_old_outputs_and_rerun_completes(tmp_path, monkeypatch, dead_pid):
    from msl_recon.data import simulate as simmod

    out = tmp_path / "d"
    real = simmod.Simulator.simulate
    calls = {"n": 0}

    def killed(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(self, *a, **k)

    monkeypatch.setattr(simmod.Simulator, "simulate", killed)
    assert main([*SIM, "--out", str(out)]) == 130
    monkeypatch.undo()
    # an exception cleans up itself; a kill leaves the stage: fake that and check the clean-up
    stage = out / f".staging.{dead_pid}.abc.tmp"
    stage.mkdir()
    (stage / "train.h5").write_text("partial")
    (out / f".train.h5.{dead_pid}.x.tmp").write_text("partial")
    assert main([*SIM, "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["test.h5", "train.h5", "val.h5"]


@pytest.mark.slow
def test_real_ctrl_c_exits_130_and_leaves_nothing(tmp_path) -> None:
    import signal
    import time

    out = tmp_path / "o"
    args = ["simulate", "--size", "32", "--subjects", "40", "--slices", "4", "--views", "8", "-q",
            "--out", str(out)]  # fmt: skip
    code = f"import sys; from msl_recon.cli.main import main; sys.exit(main({args!r}))"
    proc = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not list(out.glob(".staging.*.tmp/*.h5")):
            assert proc.poll() is None, "simulation finished before it could be interrupted"
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert err.strip().splitlines() == ["interrupted"], err
    assert list(out.iterdir()) == []  # the stage was removed, no split file


def test_training_completes_an_interrupted_publication(tmp_path, monkeypatch, dead_pid) -> None:
    from msl_recon.training.loop import TrainOptions, _open_datasets

    out = tmp_path / "d"
    _simulate_killed_while_publishing(out, monkeypatch, dead_pid)
    with pytest.warns(UserWarning, match="completed the interrupted write"):
        train_ds, val_ds = _open_datasets(TrainOptions(data=out, out=tmp_path / "r"), None)
    assert val_ds is not None and len(train_ds) >= 1
    assert sorted(p.name for p in out.iterdir()) == ["test.h5", "train.h5", "val.h5"]
