"""CT geometries: validation, derived scans, serialisation, ASTRA conversion, presets."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import warnings

import numpy as np
import pytest

import geometries as geo


def _fan(**kw):
    base = dict(
        image_size=64,
        pixel_size=1.0,
        n_views=32,
        det_count=128,
        det_spacing=1.5,
        source_origin=300.0,
        origin_detector=200.0,
    )
    base.update(kw)
    return geo.FanBeam2D(**base)


def test_fan_defaults_full_rotation():
    g = _fan()
    a = g.angles_array
    assert a.shape == (32,)
    np.testing.assert_allclose(a, np.arange(32) * 2 * np.pi / 32)
    assert g.sino_shape == (32, 128)
    assert g.image_shape == (64, 64)
    assert g.magnification == pytest.approx(500 / 300)


def test_parallel_defaults_half_rotation_and_detector_covers_diagonal():
    g = geo.ParallelBeam2D(image_size=64, pixel_size=0.5, n_views=10)
    np.testing.assert_allclose(g.angles_array, np.arange(10) * np.pi / 10)
    assert g.det_count * g.det_spacing >= 64 * 0.5 * math.sqrt(2)
    assert g.det_count % 2 == 0


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("image_size", 0, "image_size"),
        ("image_size", -3, "image_size"),
        ("image_size", 2.5, "image_size"),
        ("pixel_size", 0.0, "pixel_size"),
        ("pixel_size", float("nan"), "pixel_size"),
        ("det_count", 0, "det_count"),
        ("det_spacing", -1.0, "det_spacing"),
        ("source_origin", 0.0, "source_origin"),
        ("origin_detector", -5.0, "origin_detector"),
        ("n_views", 0, "n_views"),
    ],
)
def test_invalid_values_raise_with_the_parameter_name(field, value, match):
    with pytest.raises(ValueError, match=match):
        _fan(**{field: value})


def test_source_inside_the_image_is_rejected():
    with pytest.raises(ValueError, match="inside the image"):
        _fan(source_origin=40.0)


def test_truncating_detector_warns():
    with pytest.warns(UserWarning, match="truncated"):
        _fan(det_count=16)
    with pytest.warns(UserWarning, match="truncated"):
        geo.ParallelBeam2D(image_size=64, det_count=20, n_views=4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _fan()


def test_angles_and_n_views_must_agree():
    with pytest.raises(ValueError, match="disagrees"):
        _fan(angles=[0.0, 1.0], n_views=3)
    with pytest.raises(ValueError, match="finite"):
        _fan(angles=[0.0, float("inf")], n_views=None)
    g = _fan(angles=[0.3, 0.1, 2.0], n_views=None)
    assert g.n_views == 3
    assert not g.is_uniform()


def test_with_views_subsamples_the_same_arc():
    g = _fan(n_views=64)
    g16 = g.with_views(16)
    assert g16.n_views == 16
    # 16 divides 64: the new views are a subset of the old ones
    assert set(np.round(g16.angles_array, 12)) <= set(np.round(g.angles_array, 12))
    short = _fan(angles=np.linspace(0, np.pi, 40, endpoint=False), n_views=None)
    s10 = short.with_views(10)
    assert s10.angles_array.max() < np.pi
    np.testing.assert_allclose(np.diff(s10.angles_array), np.pi / 10)
    irregular = _fan(angles=[0.0, 0.1, 0.5], n_views=None)
    with pytest.raises(ValueError, match="subset"):
        irregular.with_views(2)


def test_subset_by_indices_and_mask():
    g = _fan(n_views=8)
    s = g.subset([1, 3, 5])
    np.testing.assert_allclose(s.angles_array, g.angles_array[[1, 3, 5]])
    m = np.zeros(8, bool)
    m[::4] = True
    assert g.subset(m).n_views == 2
    with pytest.raises(ValueError, match="view indices"):
        g.subset([9])
    with pytest.raises(ValueError, match="boolean view mask"):
        g.subset(np.ones(3, bool))
    with pytest.raises(ValueError, match="at least one"):
        g.subset([])


@pytest.mark.parametrize(
    "g",
    [
        _fan(),
        geo.ParallelBeam2D(image_size=32, pixel_size=0.7, n_views=7),
        _fan(angles=[0.1, 0.5, 2.2], n_views=None),
    ],
    ids=["fan", "parallel", "irregular"],
)
def test_dict_round_trip_through_json(g):
    d = json.loads(json.dumps(g.to_dict()))
    g2 = geo.geometry_from_dict(d)
    assert g2 == g
    assert type(g2) is type(g)
    assert g2.fingerprint() == g.fingerprint()


def test_from_dict_errors():
    d = _fan().to_dict()
    with pytest.raises(ValueError, match="unknown geometry type"):
        geo.geometry_from_dict({**d, "type": "Cone3D"})
    with pytest.raises(ValueError, match="unknown FanBeam2D fields"):
        geo.geometry_from_dict({**d, "bogus": 1})
    with pytest.raises(ValueError, match="not a ParallelBeam2D"):
        geo.ParallelBeam2D.from_dict(d)


def test_fingerprint_changes_with_geometry():
    assert _fan().fingerprint() != _fan(det_spacing=1.6).fingerprint()
    assert _fan().fingerprint() != _fan().with_views(16).fingerprint()


def test_to_astra_physical_units():
    g = _fan(pixel_size=0.5)
    vol, proj = g.to_astra()
    assert vol["GridColCount"] == 64 and vol["GridRowCount"] == 64
    assert vol["option"]["WindowMinX"] == pytest.approx(-16.0)
    assert vol["option"]["WindowMaxY"] == pytest.approx(16.0)
    assert proj["type"] == "fanflat"
    assert proj["DetectorWidth"] == pytest.approx(1.5)
    assert proj["DistanceOriginSource"] == pytest.approx(300.0)
    assert proj["DistanceOriginDetector"] == pytest.approx(200.0)
    np.testing.assert_allclose(proj["ProjectionAngles"], g.angles_array)
    _, pp = geo.ParallelBeam2D(image_size=16, n_views=3).to_astra()
    assert pp["type"] == "parallel"


@pytest.mark.parametrize("name", ["tiny_fan", "tiny_parallel"])
def test_to_vec_matches_astra(name, request):
    import astra

    g = request.getfixturevalue(name)
    vec = g.to_vec()
    assert vec.shape == (g.n_views, 6) and vec.dtype == np.float64
    # ASTRA's own conversion to its *_vec geometries gives the same numbers
    np.testing.assert_allclose(vec, astra.geom_2vec(g.to_astra()[1])["Vectors"], atol=1e-12)
    np.testing.assert_allclose(np.hypot(vec[:, 4], vec[:, 5]), g.det_spacing)
    if g.beam == "fan":
        np.testing.assert_allclose(np.hypot(vec[:, 0], vec[:, 1]), g.source_origin)
        np.testing.assert_allclose(np.hypot(vec[:, 2], vec[:, 3]), g.origin_detector)
        # source, isocentre and detector centre are on one line, the detector ⟂ to it
        np.testing.assert_allclose(vec[:, 0] * vec[:, 3] - vec[:, 1] * vec[:, 2], 0, atol=1e-9)
        np.testing.assert_allclose(vec[:, 0] * vec[:, 4] + vec[:, 1] * vec[:, 5], 0, atol=1e-9)
    else:
        np.testing.assert_allclose(np.hypot(vec[:, 0], vec[:, 1]), 1.0)  # unit ray direction
        np.testing.assert_allclose(vec[:, 2:4], 0.0)


def test_geometries_import_is_light():
    code = "import sys, geometries; print(any(m in sys.modules for m in ('torch', 'astra')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


class TestPresets:
    def test_listing_and_unknown_name(self):
        names = geo.presets()
        assert {"msl-paper", "siemens-definition-as", "varian-obi"} <= set(names)
        with pytest.raises(ValueError, match="unknown preset"):
            geo.preset("nope")

    def test_msl_paper_matches_the_authors_geometry(self):
        g = geo.preset("msl-paper", image_size=384)
        assert g.pixel_size == pytest.approx(0.369)
        assert g.det_count == 640
        # 640 bins spanning 2·√2 × the image side
        assert g.det_count * g.det_spacing == pytest.approx(2 * math.sqrt(2) * 384 * 0.369)
        # source and detector 1075 pixels from the isocentre
        assert g.source_origin == pytest.approx(1075 * 0.369)
        assert g.origin_detector == pytest.approx(1075 * 0.369)
        assert g.n_views == 64
        assert g.angles_array[-1] < 2 * np.pi

    def test_image_size_keeps_the_field_of_view(self):
        a = geo.preset("msl-paper", image_size=128, n_views=32)
        b = geo.preset("msl-paper", image_size=384)
        assert a.image_size * a.pixel_size == pytest.approx(b.image_size * b.pixel_size)
        assert a.n_views == 32

    @pytest.mark.parametrize(
        ("name", "sod", "sdd"),
        [("siemens-definition-as", 595.0, 1085.6), ("varian-obi", 1000.0, 1500.0)],
    )
    def test_clinical_scanner_distances(self, name, sod, sdd):
        g = geo.preset(name, image_size=128)
        assert g.source_origin == pytest.approx(sod)
        assert g.source_detector == pytest.approx(sdd)
        # the fan covers the reconstructed field of view
        assert g.source_origin * math.sin(g.fan_half_angle) >= g.image_size * g.pixel_size / 2
