"""The modality plug-in contract, run over every registered modality and every pair and triple.

As ``tests/operators/test_registry.py`` checks every registered operator, this checks every
registered sensor end to end: simulate → dataset → batch → encoder → model → reconstruct →
files. A new plug-in is picked up here by registering it; nothing in this file names one.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from msl_recon_testdata import tiny_config

import geometries as geo
from msl_recon import modalities as registry
from msl_recon.data.dataset import MSLDataset
from msl_recon.data.pipeline import SimulationRun, run_simulation
from msl_recon.data.simulate import MRNoise, SimulationSpec
from msl_recon.modalities.acquisition import acquisition_from_dict, acquisition_to_dict
from msl_recon.model import MSLNet, build_operators, msl_losses
from msl_recon.training.batches import collate, randomize_batch

N = 32
NAMES = registry.names()
COMBOS = [c for k in (1, 2, 3) for c in itertools.combinations(NAMES, k)]


def _ids(c: tuple[str, ...]) -> str:
    return "+".join(c)


@pytest.fixture(scope="module")
def datasets(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, ...], Path]:
    """One tiny simulated dataset (3 phantom subjects × 2 slices) per combination, lazily."""
    root = tmp_path_factory.mktemp("contract")
    cache: dict[tuple[str, ...], Path] = {}

    def get(mods: tuple[str, ...]) -> Path:
        if mods not in cache:
            g = geo.preset("msl-paper", image_size=N, n_views=16)
            mask = geo.CartesianMask(shape=(N, N), acceleration=4, center_fraction=0.1, seed=0)
            spec = SimulationSpec(
                geometry=g,
                sampling={m: mask for m in mods if registry.get(m).family == "mri"},
                mr_noise=MRNoise(30.0),
                options={"pet": {"counts": 2e5, "views": 42}},
            )
            out = root / _ids(mods)
            run = SimulationRun(
                out_dir=out, spec=spec, modalities=mods, size=N, n_subjects=3, n_slices=2,
                fractions=(0.34, 0.33, 0.33), progress=False,
            )  # fmt: skip
            run_simulation(run)
            cache[mods] = out
        return cache[mods]

    return get  # type: ignore[return-value]


def test_registry_names_and_aliases() -> None:
    assert {"ct", "t1", "t2", "pet"} <= set(NAMES)
    for m in NAMES:
        spec = registry.get(m)
        assert spec.name == m and registry.get(m.upper()) is spec
        for a in spec.aliases:
            assert registry.get(a) is spec
        assert spec.raw_key and spec.units and spec.label and spec.windows
    assert registry.parse("ct,mr") == ("ct", "t1")
    with pytest.raises(ValueError, match="unknown modality 'spect'"):
        registry.get("spect")
    with pytest.raises(ValueError, match="twice"):
        registry.parse("mr,t1")


@pytest.mark.parametrize("m", NAMES)
def test_units_round_trip(m: str) -> None:
    spec = registry.get(m)
    u = torch.linspace(0.05, 0.95, 7, dtype=torch.float64)
    phys = spec.from_unit(u)
    torch.testing.assert_close(spec.to_unit(phys), u)
    lo, hi = next(iter(spec.windows.values()))
    assert hi > lo


@pytest.mark.parametrize("mods", COMBOS, ids=_ids)
def test_contract_end_to_end(mods: tuple[str, ...], datasets, tmp_path: Path) -> None:
    from msl_recon.cli.reconstruct import run_reconstruct
    from msl_recon.training.checkpoint import save_checkpoint

    data = datasets(mods)
    # simulate → files: each modality's raw data and ground truth, and its acquisition attribute
    with h5py.File(data / "train.h5", "r") as f:
        for m in mods:
            assert f"images/{m}" in f
            assert registry.get(m).h5_group in f
        intensity = json.loads(f.attrs["intensity"])
        assert set(mods) <= set(intensity)
    # dataset → batch
    ds = MSLDataset(data / "train.h5")
    assert ds.modalities == registry.in_order(mods)
    assert set(ds.acquisition) == set(mods)
    batch = collate(ds, np.arange(len(ds)))
    for m in mods:
        spec = registry.get(m)
        assert batch[m].shape == (len(ds), 1, N, N)
        assert torch.isfinite(spec.measurement(batch).abs()).all()
    # acquisition survives a checkpoint round trip
    acq2 = acquisition_from_dict(json.loads(json.dumps(acquisition_to_dict(ds.acquisition))))
    assert acquisition_to_dict(acq2) == acquisition_to_dict(ds.acquisition)
    # operators: forward model consistent with the stored data (noise-free CT, noisy others)
    ops = build_operators(batch, ds.acquisition)
    assert set(ops) == set(mods)
    gen = np.random.default_rng(0)
    _rb, racq, present = randomize_batch(batch, ds.acquisition, mods, gen)
    assert present == ds.modalities and set(racq) == set(mods)
    # encoder back-transform: the analytical image resembles the ground truth
    for m in mods:
        spec = registry.get(m)
        x0 = spec.back_transform(spec.measurement(batch), ops[m]).float()
        assert x0.shape == (len(ds), N, N)
        gt = batch[m][:, 0]
        corr = np.corrcoef(x0.flatten().numpy(), gt.flatten().numpy())[0, 1]
        assert corr > 0.5, f"{m}: back-transform correlates {corr:.2f} with the ground truth"
    # the baselines' analytical images use the same back-transforms
    from msl_recon.baselines import sparse_images

    sp = sparse_images(batch, ops)
    assert set(sp) == set(mods)
    for m in mods:
        assert sp[m].shape == (len(ds), 1, N, N) and torch.isfinite(sp[m]).all()
    # model: loss and gradients with every modality present
    cfg = tiny_config(modalities=ds.modalities)
    torch.manual_seed(0)
    net = MSLNet(cfg)
    total, _parts = msl_losses(net, batch, ops, present=ds.modalities)
    total.backward()
    assert torch.isfinite(total)
    for m in mods:
        grads = [p.grad for p in net.encoders[m].parameters()]
        assert all(g is not None and torch.isfinite(g).all() for g in grads)
    # reconstruct → files
    ck = save_checkpoint(
        tmp_path / "ck.pt",
        {
            "model": net.state_dict(),
            "iteration": 0,
            "config": cfg.to_dict(),
            "modalities": list(cfg.modalities),
            "acquisition": acquisition_to_dict(ds.acquisition),
        },
    )
    res = run_reconstruct(
        checkpoint=ck, inputs=[data / "test.h5"], out=tmp_path / "rec", progress=False, png=False
    )
    assert (tmp_path / "rec" / "recon.h5").is_file()
    with h5py.File(tmp_path / "rec" / "recon.h5", "r") as f:
        names = set(f)
    for m in mods:
        assert any(m in n for n in names), f"{m} missing from recon.h5 datasets {sorted(names)}"
    assert res["metrics"]
