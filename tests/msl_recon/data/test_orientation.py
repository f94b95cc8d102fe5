"""Orientation helpers and geometry scaling."""

from __future__ import annotations

import numpy as np
import pytest
import torch

sitk = pytest.importorskip("SimpleITK")

import geometries as geo  # noqa: E402
import operators as ops  # noqa: E402
from msl_recon.data.orientation import (  # noqa: E402
    fit_pixel_size,
    geometry_with_pixel_size,
    orientation_code,
    to_canonical,
)


@pytest.mark.parametrize("name", ["msl-paper", "parallel"])
def test_scaled_geometry_scales_line_integrals(name):
    """Same system in pixel units: the sinogram of the same pixels scales with the pixel size."""
    presets = geo.presets()
    if name not in presets:
        name = next(p for p in presets if "parallel" in p)
    g = geo.preset(name, image_size=32, n_views=12)
    g2 = geometry_with_pixel_size(g, 2.5 * g.pixel_size)
    assert g2.pixel_size == pytest.approx(2.5 * g.pixel_size) and g2.det_count == g.det_count
    x = torch.zeros(1, 32, 32, dtype=torch.float64)
    x[0, 10:20, 8:25] = 1.0
    a = ops.RayTransform(g)(x)
    b = ops.RayTransform(g2)(x)
    torch.testing.assert_close(b, 2.5 * a, rtol=1e-3, atol=1e-3 * float(a.abs().max()))  # ASTRA f32
    with pytest.raises(ValueError, match="> 0"):
        geometry_with_pixel_size(g, 0.0)


def test_to_canonical_permutes_without_resampling():
    arr = np.arange(4 * 5 * 6, dtype=np.float32).reshape(4, 5, 6)
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing((1.0, 2.0, 3.0))
    pir = sitk.DICOMOrient(img, "PIR")
    assert orientation_code(pir) == "PIR"
    back, info = to_canonical(pir)
    assert info["orientation"] == "PIR" and not info["resampled"]
    np.testing.assert_array_equal(sitk.GetArrayFromImage(back), arr)
    assert back.GetSpacing() == (1.0, 2.0, 3.0) and orientation_code(back) == "LPS"


def test_oblique_volume_is_resampled_axis_aligned():
    arr = np.zeros((20, 20, 20), np.float32)
    arr[5:15, 5:15, 5:15] = 1.0
    img = sitk.GetImageFromArray(arr)
    rot = sitk.Euler3DTransform()
    rot.SetRotation(0.0, 0.0, np.deg2rad(10.0))
    img.SetDirection(rot.GetMatrix())
    out, info = to_canonical(img)
    assert info["resampled"] and info["obliquity_deg"] == pytest.approx(10.0, abs=1e-6)
    assert np.allclose(out.GetDirection(), np.eye(3).ravel())
    # the cube keeps its volume (1000 voxels of 1 mm³)
    assert sitk.GetArrayFromImage(out).sum() == pytest.approx(1000.0, rel=0.03)


def test_fit_pixel_size_covers_the_mask():
    img = sitk.Image([100, 80, 3], sitk.sitkFloat32)
    img.SetSpacing((0.5, 0.5, 2.0))
    mask = np.zeros((3, 80, 100), bool)
    mask[:, 10:70, 20:90] = True  # 35 mm × 30 mm
    px = fit_pixel_size(img, mask, 64, margin=0.05)
    assert px * 64 == pytest.approx(35.0 * 1.1)
