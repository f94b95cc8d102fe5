"""HDF5 format: attributes, chunking/compression, atomic writes, shard merging."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

import geometries as geo
from msl_recon._io import atomic_path
from msl_recon.data.hdf5 import SplitWriter, merge_shards, read_attrs, shard_name, summarize
from msl_recon.data.pipeline import write_arrays
from msl_recon.data.simulate import SimulationSpec
from msl_recon.errors import InputError


def _batch(rng: np.random.Generator, subject: int, n: int) -> dict[str, np.ndarray]:
    return {
        "images/ct": rng.random((n, 8, 8), dtype=np.float32),
        "meta/subject_id": np.array([f"s{subject}"] * n, dtype=object),
        "meta/subject_index": np.full(n, subject, dtype=np.int64),
        "meta/slice_index": np.arange(n, dtype=np.int64),
    }


def test_writer_attrs_chunks_compression(tmp_path, rng):
    attrs = {"split": "train", "schema_version": 1, "geometry": {"a": [1.0, 2.0]}}
    p = tmp_path / "x.h5"
    with SplitWriter(p, attrs) as w:
        w.append(_batch(rng, 0, 3))
        w.append(_batch(rng, 1, 2))
    got = read_attrs(p)
    assert got["geometry"] == {"a": [1.0, 2.0]} and got["split"] == "train"
    with h5py.File(p, "r") as f:
        ds = f["images/ct"]
        assert ds.shape == (5, 8, 8)
        assert ds.chunks == (1, 8, 8)
        assert ds.compression == "gzip"
        assert [s.decode() for s in f["meta/subject_id"][:]] == ["s0"] * 3 + ["s1"] * 2


def test_geometry_roundtrip_through_file(tmp_path, rng):
    g = geo.preset("msl-paper", image_size=16, n_views=8)
    m = geo.CartesianMask(shape=(16, 16), acceleration=4, center_fraction=0.1, seed=5)
    spec = SimulationSpec(geometry=g, sampling={"t1": m})
    imgs = {
        "ct": rng.random((2, 16, 16), dtype=np.float32),
        "t1": rng.random((2, 16, 16), dtype=np.float32),
    }
    p = write_arrays(tmp_path / "a.h5", imgs, spec)
    a = read_attrs(p)
    g2 = geo.geometry_from_dict(a["geometry"])
    assert g2 == g and g2.fingerprint() == g.fingerprint()
    assert geo.sampling_from_dict(a["sampling"]["t1"]) == m
    assert a["msl_recon_version"] and a["schema_version"] == 1
    text = summarize(p)
    assert "FanBeam2D" in text and "slices: 2" in text


def test_exception_mid_write_leaves_nothing(tmp_path, rng):
    target = tmp_path / "train.h5"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        with SplitWriter(tmp, {"schema_version": 1}) as w:
            w.append(_batch(rng, 0, 2))
            raise RuntimeError("injected")
    assert list(tmp_path.iterdir()) == []


def _write_shard(path, rng, subjects, attrs):
    with SplitWriter(path, {**attrs, "shard": path.name}) as w:
        for s in subjects:
            w.append(_batch(rng, s, 2))


def test_merge_orders_by_subject_and_checks(tmp_path, rng):
    attrs = {"schema_version": 1, "split": "train", "geometry": {"n": 1}}
    _write_shard(tmp_path / shard_name("train", 1, 2), rng, [0, 2, 4], attrs)
    _write_shard(tmp_path / shard_name("train", 2, 2), rng, [1, 3], attrs)
    out = tmp_path / "train.h5"
    n = merge_shards(sorted(tmp_path.glob("train.shard-*")), out)
    assert n == 10
    with h5py.File(out, "r") as f:
        assert f["meta/subject_index"][:].tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    assert "shard" not in read_attrs(out)
    # a shard missing
    with pytest.raises(InputError, match="missing shard"):
        merge_shards([tmp_path / shard_name("train", 1, 2)], tmp_path / "y.h5")
    # a shard from a different geometry
    bad = tmp_path / "other" / shard_name("train", 2, 2)
    bad.parent.mkdir()
    _write_shard(bad, rng, [1], {**attrs, "geometry": {"n": 2}})
    with pytest.raises(InputError, match="geometry"):
        merge_shards([tmp_path / shard_name("train", 1, 2), bad], tmp_path / "z.h5")
    assert not (tmp_path / "z.h5").exists()


def test_read_attrs_rejects_foreign_files(tmp_path):
    p = tmp_path / "foreign.h5"
    with h5py.File(p, "w") as f:
        f["x"] = 1
    with pytest.raises(InputError, match="not an msl-recon dataset"):
        read_attrs(p)
    q = tmp_path / "junk.h5"
    q.write_bytes(b"not hdf5")
    with pytest.raises(InputError, match="not a readable HDF5"):
        read_attrs(q)
