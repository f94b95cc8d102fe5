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


def _state(seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {"model": {"w": torch.randn(1000, generator=g)}, "iteration": seed, "config": {}}


def test_bit_flip_is_detected(tmp_path) -> None:
    p = save_checkpoint(tmp_path / "last.pt", _state())
    raw = bytearray(p.read_bytes())
    w = load_checkpoint(p)["model"]["w"].numpy().tobytes()
    at = raw.find(w)
    assert at > 0  # the tensor is stored uncompressed
    raw[at + 1234] ^= 0x10
    p.write_bytes(bytes(raw))
    with pytest.raises(InputError, match="damaged"):
        load_checkpoint(p)
    # a content change that keeps the container valid is caught by the checksum
    data = torch.load(save_checkpoint(tmp_path / "b.pt", _state()))
    data["model"]["w"][7] += 1e-3
    torch.save(data, tmp_path / "b.pt")
    with pytest.raises(InputError, match="damaged: its content does not match its checksum"):
        load_checkpoint(tmp_path / "b.pt")


def test_damaged_last_falls_back_to_newest_valid_ckpt(tmp_path) -> None:
    from msl_recon.training.checkpoint import load_latest_checkpoint

    for it in (1, 2):
        save_checkpoint(tmp_path / f"ckpt_{it:07d}.pt", _state(it))
    save_checkpoint(tmp_path / "last.pt", _state(3))
    assert load_latest_checkpoint(tmp_path)[1].name == "last.pt"
    (tmp_path / "last.pt").write_bytes(b"\0" * 100)  # torn / damaged
    with pytest.warns(UserWarning, match="resuming from ckpt_0000002.pt"):
        data, path = load_latest_checkpoint(tmp_path)
    assert path.name == "ckpt_0000002.pt" and data["iteration"] == 2
    for p in tmp_path.glob("*.pt"):
        p.write_bytes(b"junk")
    with pytest.raises(InputError, match="no valid checkpoint"):
        load_latest_checkpoint(tmp_path)
