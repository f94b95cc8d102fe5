"""build_operators: the per-batch physics and its caching."""

from __future__ import annotations

import pytest
import torch
from test_network import geometry, make_batch

import geometries as geo
import operators as ops
from msl_recon.modalities.ct import ct_operator
from msl_recon.model import build_operators, measurement_key, measurements_from_batch


def test_build_operators_from_batch(torch_gen):
    batch, g, s = make_batch(("ct", "t1"), torch_gen, torch.device("cpu"), b=3)
    o = build_operators(batch, {"ct": g, **s})
    assert isinstance(o["ct"], ops.RayTransform) and isinstance(o["t1"], ops.CartesianFourier)
    assert o["ct"].geometry == g
    # per-sample masks: sample 1 gets its own mask
    masks = batch["t1_mask"].clone()
    masks[1] = torch.as_tensor(geo.CartesianMask(shape=(32, 32), acceleration=8, seed=9).mask)
    o2 = build_operators({**batch, "t1_mask": masks}, {"ct": g, **s})
    x = torch.rand(3, 32, 32, generator=torch_gen)
    k = o2["t1"](x)
    assert torch.equal(k[1] != 0, masks[1]) and torch.equal(k[0] != 0, masks[0])
    assert int(masks[1].sum()) < int(masks[0].sum())
    # only what the batch holds; restricted sets
    assert set(build_operators(batch, {"ct": g, **s}, modalities=["t1"])) == {"t1"}
    assert set(build_operators({"t1_kspace": batch["t1_kspace"]}, s)) == {"t1"}
    with pytest.raises(ValueError, match="geometry"):
        build_operators({"ct_sino": batch["ct_sino"]}, {})
    assert measurement_key("ct") == "ct_sino" and measurement_key("t2") == "t2_kspace"
    assert set(measurements_from_batch(batch, ("ct", "t1", "t2"))) == {"ct", "t1"}


def test_ct_operator_cached_and_cheap():
    g = geometry(40)
    a = ct_operator(g)
    assert ct_operator(geometry(40)) is a  # same fingerprint, same object
    assert ct_operator(geometry(20)) is not a
    fbp = a.pseudo_inverse()
    assert isinstance(fbp, ops.FBP)
    fbp(torch.zeros(1, 40, 48))
    # the encoder path never needs the ASTRA system matrix
    assert a.matrix_source is None
