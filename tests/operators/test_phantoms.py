"""Ellipse phantoms: rasterisation conventions and closed-form sinograms against ASTRA."""

from __future__ import annotations

import math

import numpy as np
import pytest

import geometries as geo
from operators import phantoms as ph

ANGLES = [0.0, 0.4, 1.1, 1.9, 2.7, 3.5, 5.0]
ASYM = [
    ph.Ellipse(value=1.0, center=(12.0, -20.0), axes=(25.0, 8.0), angle=0.5),
    ph.Ellipse(value=0.5, center=(-30.0, 10.0), axes=(10.0, 18.0), angle=-0.3),
]


def _geometries() -> dict[str, geo.CTGeometry]:
    return {
        "parallel": geo.ParallelBeam2D(
            image_size=128, pixel_size=1.0, det_spacing=0.8, angles=ANGLES
        ),
        "fan": geo.FanBeam2D(
            image_size=128, pixel_size=1.0, det_count=200, det_spacing=1.5, angles=ANGLES,
            source_origin=200.0, origin_detector=100.0,
        ),
    }  # fmt: skip


def _astra_sino(img: np.ndarray, g: geo.CTGeometry) -> np.ndarray:
    """ASTRA projection of ``img`` (any resolution) over the field of view of ``g``."""
    import astra

    m = img.shape[0]
    h = g.image_size * g.pixel_size / 2
    vol = astra.create_vol_geom(m, m, -h, h, -h, h)
    pg = g.to_astra()[1]
    kind = "line" if isinstance(g, geo.ParallelBeam2D) else "line_fanflat"
    pid = astra.create_projector(kind, pg, vol)
    try:
        sid, sino = astra.create_sino(np.ascontiguousarray(img, dtype=np.float32), pid)
        astra.data2d.delete(sid)
    finally:
        astra.projector.delete(pid)
    return sino


@pytest.mark.parametrize("kind", ["parallel", "fan"])
def test_closed_form_matches_astra_of_fine_raster(kind: str) -> None:
    g = _geometries()[kind]
    fine = ph.ellipse_image(ASYM, (768, g.image_size * g.pixel_size / 768), supersample=2)
    ref = _astra_sino(fine, g)
    cf = ph.ellipse_sinogram(ASYM, g)
    scale = np.abs(cf).max()
    rel_rmse = np.sqrt(np.mean((cf - ref) ** 2)) / scale
    assert scale > 20  # the rays do hit the ellipses
    assert rel_rmse < 2e-3, rel_rmse  # measured ~7e-4 (discretisation of the raster)
    assert np.abs(cf - ref).max() < 0.02 * scale
    # conventions are not symmetric: a mirrored phantom is far off (so the test can fail)
    mirrored = [ph.Ellipse(e.value, (-e.center[0], e.center[1]), e.axes, -e.angle) for e in ASYM]
    bad = ph.ellipse_sinogram(mirrored, g)
    assert np.sqrt(np.mean((bad - ref) ** 2)) / scale > 20 * rel_rmse


def test_disk_chord_is_analytic() -> None:
    g = geo.ParallelBeam2D(image_size=64, pixel_size=1.0, det_spacing=1.0, n_views=5)
    r = 20.0
    s = ph.ellipse_sinogram([ph.Ellipse(value=2.0, center=(0.0, 0.0), axes=(r, r))], g)
    u = (np.arange(g.det_count) - (g.det_count - 1) / 2) * g.det_spacing
    expected = 2.0 * 2 * np.sqrt(np.maximum(r * r - u * u, 0))
    np.testing.assert_allclose(s, np.broadcast_to(expected, s.shape), atol=1e-9)


def test_fan_rays_through_isocentre_and_detector_bins() -> None:
    # a small disk off-centre on the +x axis: at θ=0 the source is at (0, -R), the ray through
    # (x0, 0) hits the detector at u = x0 · SDD / R on the +u side (ASTRA convention)
    g = geo.FanBeam2D(
        image_size=64, pixel_size=1.0, det_count=301, det_spacing=0.5, angles=[0.0],
        source_origin=100.0, origin_detector=50.0,
    )  # fmt: skip
    s = ph.ellipse_sinogram([ph.Ellipse(value=1.0, center=(10.0, 0.0), axes=(1.0, 1.0))], g)
    u = (np.arange(g.det_count) - (g.det_count - 1) / 2) * g.det_spacing
    peak = np.sum(u * s[0]) / np.sum(s[0])
    assert peak == pytest.approx(10.0 * 150.0 / 100.0, abs=0.05)


def test_ellipse_image_orientation_and_area() -> None:
    n, p = 64, 0.5
    e = ph.Ellipse(value=1.5, center=(6.0, 8.0), axes=(4.0, 2.0), angle=0.3)
    img = ph.ellipse_image([e], (n, p), supersample=8)
    rows, cols = np.nonzero(img)
    # x > 0 → right half (cols), y > 0 → top half (rows, row 0 at the top)
    assert cols.min() >= n // 2 and rows.max() < n // 2
    assert img.sum() * p * p == pytest.approx(1.5 * math.pi * 4.0 * 2.0, rel=5e-3)
    # pixel averaging: partial values on the boundary
    assert 0 < np.count_nonzero((img > 0) & (img < 1.5))
    g = geo.ParallelBeam2D(image_size=n, pixel_size=p, n_views=3)
    np.testing.assert_array_equal(ph.ellipse_image([e], g, supersample=8), img)


def test_shepp_logan() -> None:
    e = ph.shepp_logan(fov_mm=200.0, scale=0.02)
    assert len(e) == 10
    img = ph.ellipse_image(e, (128, 200.0 / 128), supersample=2)
    assert img.min() >= -1e-12 and img.max() == pytest.approx(0.02)
    assert img[64, 64] == pytest.approx(0.2 * 0.02)  # brain
    assert img[63, 10] == 0.0 and img[64, 118] == 0.0  # outside the skull, left and right
    # the skull is taller than wide: top/bottom rows inside, left/right columns outside
    assert img[8, 64] > 0 and img[64, 12] == 0.0


def test_random_ellipses_reproducible_and_inside() -> None:
    a = ph.random_ellipses(np.random.default_rng(5), 100.0, n=12)
    b = ph.random_ellipses(np.random.default_rng(5), 100.0, n=12)
    c = ph.random_ellipses(np.random.default_rng(6), 100.0, n=12)
    assert a == b and a != c and len(a) == 12
    for e in a:
        assert math.hypot(*e.center) + max(e.axes) <= 0.9 * 50.0 + 1e-9


def test_det_supersample_averages_over_the_bin() -> None:
    g = geo.ParallelBeam2D(image_size=32, pixel_size=1.0, det_spacing=2.0, n_views=4)
    e = [ph.Ellipse(value=1.0, center=(0.0, 0.0), axes=(10.0, 10.0))]
    s1 = ph.ellipse_sinogram(e, g)
    s8 = ph.ellipse_sinogram(e, g, det_supersample=8)
    # the bin average of a concave chord profile is below its centre value, and close to it
    assert np.all(s8 <= s1 + 1e-12) and 0 < np.abs(s8 - s1).max() < 0.1 * s1.max()
    # integral over the detector is the same (area of the disk)
    assert s8[0].sum() * 2.0 == pytest.approx(math.pi * 100.0, rel=1e-3)


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="semi-axes"):
        ph.Ellipse(value=1.0, center=(0.0, 0.0), axes=(0.0, 1.0))
    with pytest.raises(ValueError, match="CTGeometry or a tuple"):
        ph.ellipse_image(ASYM, "grid")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="ParallelBeam2D and FanBeam2D"):
        ph.ellipse_sinogram(ASYM, geo.CartesianMask(shape=(8, 8), acceleration=2))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="fov_mm"):
        ph.shepp_logan(-1.0)
