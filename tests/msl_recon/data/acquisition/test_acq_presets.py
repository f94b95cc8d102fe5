"""Acquisition presets: fields, HDF5 attribute round trip, phantom config."""

from __future__ import annotations

import json

import h5py
import pytest

from msl_recon.data.acquisition import presets as P
from msl_recon.data.phantom import PhantomConfig
from msl_recon.errors import InputError


def test_named_presets() -> None:
    assert P.preset("paper") is P.PAPER and P.preset("clinical") is P.CLINICAL
    assert P.PAPER.supersample == 1 and P.PAPER.dose() is None and P.PAPER.n_coils == 1
    c = P.CLINICAL
    assert c.supersample == 2 and c.n_coils == 12 and c.mr_complex and c.mr_snr
    assert c.dose().i0 == pytest.approx(1e5)
    assert c.windows() == {"paper": (-1000.0, 2125.0), "brain": (0.0, 80.0)}
    with pytest.raises(InputError):
        P.preset("nope")


def test_hdf5_attribute_round_trip(tmp_path) -> None:
    path = tmp_path / "a.h5"
    with h5py.File(path, "w") as f:
        f.attrs["preset"] = json.dumps(P.CLINICAL.to_dict())
        f.create_group("old")
    with h5py.File(path, "r") as f:
        assert P.AcquisitionPreset.from_attrs(f.attrs) == P.CLINICAL
        assert P.AcquisitionPreset.from_attrs(f["old"].attrs) == P.PAPER  # files before presets


def test_from_dict_rejects_unknown_fields() -> None:
    d = P.CLINICAL.to_dict() | {"bogus": 1}
    with pytest.raises(InputError):
        P.AcquisitionPreset.from_dict(d)


def test_phantom_config_from_preset() -> None:
    cfg = P.CLINICAL.phantom_config(PhantomConfig(fov_mm=200.0))
    assert cfg.supersample == 2 and cfg.tissue_texture and cfg.anatomy == "mixed"
    assert cfg.fov_mm == 200.0 and cfg.lesion_kinds == ("hyper", "hypo", "rim")
    assert P.PAPER.phantom_config() == PhantomConfig()


def test_docstring_table_lists_every_field() -> None:
    doc = P.__doc__ or ""
    for name in P.AcquisitionPreset.__dataclass_fields__:
        if name != "name":
            assert f"``{name}``" in doc, name


def test_heldout_phantom_config_differs_more() -> None:
    train = P.CLINICAL.phantom_config()
    held = P.CLINICAL.phantom_config(heldout=True)
    assert held.deformation_mm > train.deformation_mm
    assert held.anatomy == "mixed" and held.mixed_fraction == pytest.approx(0.7)
    assert P.PAPER.phantom_config(heldout=True) == P.PAPER.phantom_config()
