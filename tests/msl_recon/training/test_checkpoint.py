"""Checkpoint files: atomic writes, RNG round trip, CPU loading of GPU-saved files, bad files."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from torch import serialization

from msl_recon.errors import InputError
from msl_recon.training.checkpoint import (
    capture_rng_state,
    latest_checkpoint,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
)

# A storage tagger that, while enabled, labels every saved storage as living on "cuda:0": the file
# is then byte-for-byte what torch.save writes on a GPU machine (the location tag is the only
# device information in the file). Plain torch.load of it fails on a CPU-only machine.
_FAKE_CUDA = {"on": False}


def _cuda_tagger(obj: object) -> str | None:
    return "cuda:0" if _FAKE_CUDA["on"] else None


if not any(p[1] is _cuda_tagger for p in serialization._package_registry):
    serialization.register_package(1, _cuda_tagger, lambda obj, loc: None)


def test_rng_state_roundtrip_restores_all_generators() -> None:
    torch.manual_seed(3)
    np.random.seed(3)  # noqa: NPY002 - the legacy global generator is what is tested
    random.seed(3)
    state = capture_rng_state()
    a = (torch.rand(4), np.random.rand(4), [random.random() for _ in range(4)])  # noqa: NPY002
    torch.rand(10)
    np.random.rand(10)  # noqa: NPY002
    random.random()
    restore_rng_state(state)
    b = (torch.rand(4), np.random.rand(4), [random.random() for _ in range(4)])  # noqa: NPY002
    assert torch.equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert a[2] == b[2]


def test_save_is_atomic_and_loads_with_weights_only(tmp_path) -> None:
    state = {"model": {"w": torch.arange(5.0)}, "iteration": 7, "rng": capture_rng_state()}
    p = save_checkpoint(tmp_path / "run" / "last.pt", state)
    assert p.is_file()
    assert [f.name for f in p.parent.iterdir()] == ["last.pt"]  # no temporary left behind
    got = load_checkpoint(p)
    assert got["iteration"] == 7
    assert torch.equal(got["model"]["w"], torch.arange(5.0))
    assert latest_checkpoint(tmp_path / "run") == p
    assert latest_checkpoint(tmp_path) is None


def test_failed_save_leaves_previous_checkpoint(tmp_path) -> None:
    p = save_checkpoint(tmp_path / "last.pt", {"iteration": 1})

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        save_checkpoint(p, {"iteration": 2, "bad": Unpicklable()})
    assert load_checkpoint(p)["iteration"] == 1
    assert sorted(f.name for f in tmp_path.iterdir()) == ["last.pt"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a CPU-only machine")
def test_gpu_saved_checkpoint_loads_on_cpu(tmp_path) -> None:
    """What is tested: storages tagged 'cuda:0' in the file (as a GPU save writes them)."""
    _FAKE_CUDA["on"] = True
    try:
        save_checkpoint(tmp_path / "gpu.pt", {"model": {"w": torch.ones(3)}, "iteration": 1})
    finally:
        _FAKE_CUDA["on"] = False
    with pytest.raises(RuntimeError, match="CUDA"):
        torch.load(tmp_path / "gpu.pt", weights_only=True)  # proves the file is GPU-tagged
    got = load_checkpoint(tmp_path / "gpu.pt")
    assert got["model"]["w"].device.type == "cpu"
    assert torch.equal(got["model"]["w"], torch.ones(3))


def test_bad_checkpoints_raise_user_error(tmp_path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="cannot read"):
        load_checkpoint(tmp_path / "junk.pt")
    torch.save({"some": 1}, tmp_path / "foreign.pt")
    with pytest.raises(InputError, match="not an msl-recon checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")
