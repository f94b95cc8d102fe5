"""PET operators: Gaussian resolution blur, attenuation factors, attenuated ray transform.

The shared registry suite (tests/operators/test_registry.py) runs the dot, gradient, gradcheck,
dtype and batch tests on the registered ``pet-*`` examples; here: physics and numbers.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import geometries as geo
import operators as ops
from geometries.pet import MCT_BIN_MM, MCT_N_VIEWS, biograph_mct
from operators.pet import FWHM_PER_SIGMA


def test_pet_examples_are_registered() -> None:
    assert {"pet-blur", "pet-attenuated", "pet-attenuated-batched"} <= set(ops.examples())


def _half_max_width(profile: np.ndarray) -> float:
    """FWHM in samples of a single-peaked profile, by linear interpolation at half maximum."""
    k = int(np.argmax(profile))
    half = profile[k] / 2.0
    left = k
    while profile[left - 1] > half:
        left -= 1
    right = k
    while profile[right + 1] > half:
        right += 1
    # interpolate the crossings between (left-1, left) and (right, right+1)
    xl = left - 1 + (half - profile[left - 1]) / (profile[left] - profile[left - 1])
    xr = right + (profile[right] - half) / (profile[right] - profile[right + 1])
    return float(xr - xl)


@pytest.mark.parametrize(("fwhm", "pixel"), [(4.5, 0.5), (4.0, 1.0), (5.0, 2.0)])
def test_blur_fwhm_of_a_point_source(fwhm: float, pixel: float) -> None:
    n = 65
    blur = ops.GaussianBlur(fwhm, pixel, (n, n))
    x = torch.zeros(n, n, dtype=torch.float64)
    x[32, 32] = 1.0
    img = blur(x).numpy()
    assert img.sum() == pytest.approx(1.0, abs=1e-12)  # counts kept away from the border
    # second moment of the point-spread function, along rows and columns
    k = np.arange(n) - 32
    for prof in (img.sum(axis=0), img.sum(axis=1)):
        sigma_mm = math.sqrt(float((prof * k**2).sum())) * pixel
        assert sigma_mm * FWHM_PER_SIGMA == pytest.approx(fwhm, rel=0.05)
    if fwhm / pixel >= 4:  # half-maximum width is only meaningful on a fine grid
        assert _half_max_width(img[32]) * pixel == pytest.approx(fwhm, rel=0.05)
    # isotropic: the 45° profile has the same width (diagonal samples are √2 pixels apart)
    assert np.allclose(img, img.T, atol=1e-15)


def test_blur_is_self_adjoint_and_zero_fwhm_is_identity(torch_gen: torch.Generator) -> None:
    blur = ops.GaussianBlur(4.5, 1.2, (12, 9))
    x = torch.randn(3, 12, 9, generator=torch_gen, dtype=torch.float64)
    y = torch.randn(3, 12, 9, generator=torch_gen, dtype=torch.float64)
    torch.testing.assert_close(blur.H(y), blur(y))
    assert float((blur(x) * y).sum()) == pytest.approx(float((x * blur(y)).sum()), rel=1e-12)
    torch.testing.assert_close(ops.GaussianBlur(0.0, 1.0, (12, 9))(x), x)
    with pytest.raises(ValueError, match="fwhm_mm"):
        ops.GaussianBlur(-1.0, 1.0, (4, 4))


def _disk(n: int, pixel: float, radius: float, value: float, sub: int = 4) -> torch.Tensor:
    """Disk centred at the isocentre, pixel values = value × covered area fraction."""
    c = (np.arange(n * sub) + 0.5) / sub - n / 2.0
    yy, xx = np.meshgrid(c * pixel, c * pixel, indexing="ij")
    inside = (xx**2 + yy**2 <= radius**2).astype(np.float64)
    frac = inside.reshape(n, sub, n, sub).mean(axis=(1, 3))
    return torch.from_numpy(value * frac)


@pytest.mark.parametrize("projector", ["strip", "line"])
def test_attenuation_of_a_water_disk_matches_chord_lengths(projector: str) -> None:
    n, pixel, radius, mu_w = 96, 2.0, 80.0, 0.0096
    g = biograph_mct(n, pixel_size=pixel, n_views=12)
    mu = _disk(n, pixel, radius, mu_w)
    a = ops.attenuation_factors(mu, g, projector=projector)
    assert a.shape == g.sino_shape and a.dtype == torch.float64
    # exactly exp(-line integrals of ASTRA's projector)
    line = ops.RayTransform(g, projector=projector)(mu)
    torch.testing.assert_close(a, torch.exp(-line))
    # analytic: a = exp(-μ 2 sqrt(R² - u²)); strip bins average the chord over their width
    u = (np.arange(g.det_count) - (g.det_count - 1) / 2.0) * g.det_spacing
    w = g.det_spacing
    fine = u[:, None] + (np.arange(64)[None, :] + 0.5) / 64 * w - w / 2
    chord = 2 * np.sqrt(np.clip(radius**2 - fine**2, 0.0, None))
    chord = chord.mean(axis=1) if projector == "strip" else 2 * np.sqrt(
        np.clip(radius**2 - u**2, 0.0, None)
    )  # fmt: skip
    expect = np.exp(-mu_w * chord)
    # strip: all bins 2 px inside the rim within 1 %; line: a single ray per bin sees the
    # pixelated rim (axis-aligned views run along pixel rows), 2 % up to 3/4 of the radius
    strip = projector == "strip"
    inner = np.abs(u) < (radius - 2 * pixel if strip else 0.75 * radius)
    tol = 0.01 if strip else 0.02
    got = a.numpy()
    # every view sees the same disk; the central chord is 160 mm: a = exp(-1.536) = 0.215
    assert got[:, inner] == pytest.approx(np.broadcast_to(expect[inner], got[:, inner].shape),
                                          rel=tol)  # fmt: skip
    assert float(a.min()) == pytest.approx(math.exp(-mu_w * 2 * radius), rel=0.01)
    outside = np.abs(u) > radius + 2 * pixel
    assert np.all(got[:, outside] == 1.0)


def test_attenuated_transform_is_a_times_ray_of_blur(torch_gen: torch.Generator) -> None:
    g = biograph_mct(32, pixel_size=3.0, n_views=10)
    a = 0.1 + torch.rand(2, *g.sino_shape, generator=torch_gen, dtype=torch.float64)
    op = ops.AttenuatedRayTransform(g, a, fwhm_mm=5.0)
    x = torch.rand(2, 4, 32, 32, generator=torch_gen, dtype=torch.float64)
    ray = ops.RayTransform(g, projector="strip")
    blur = ops.GaussianBlur(5.0, 3.0, (32, 32))
    ref = a[:, None] * ray(blur(x))  # per-sample factors align with the leading axis
    torch.testing.assert_close(op(x), ref)
    y = torch.rand(2, 4, *g.sino_shape, generator=torch_gen, dtype=torch.float64)
    torch.testing.assert_close(op.H(y), blur(ray.H(a[:, None] * y)))
    # shared factors broadcast over any batch; None means a = 1
    shared = ops.AttenuatedRayTransform(g, a[0], fwhm_mm=5.0)
    torch.testing.assert_close(shared(x), a[0] * ray(blur(x)))
    torch.testing.assert_close(ops.AttenuatedRayTransform(g, fwhm_mm=5.0)(x), ray(blur(x)))
    # view subsets (for OSEM) are the rows of the full model
    idx = np.array([1, 4, 7])
    torch.testing.assert_close(op.view_subset(idx)(x[:, 0]), op(x[:, 0])[:, idx])


def test_attenuated_transform_rejects_bad_factors() -> None:
    g = biograph_mct(16, pixel_size=4.0, n_views=6)
    with pytest.raises(ValueError, match=r"\(\.\.\., V, D\)"):
        ops.AttenuatedRayTransform(g, torch.ones(6, 3))
    with pytest.raises(ValueError, match="finite"):
        ops.AttenuatedRayTransform(g, torch.full(g.sino_shape, float("nan")))
    with pytest.raises(ValueError, match=">= 0"):
        ops.attenuation_factors(-torch.ones(16, 16), g)


def test_pet_preset_is_a_biograph_mct_plane() -> None:
    g = geo.preset("pet-biograph-mct", image_size=128)
    assert isinstance(g, geo.ParallelBeam2D)
    assert g.n_views == MCT_N_VIEWS == 168
    assert g.det_spacing == pytest.approx(814.566 / 400) == MCT_BIN_MM
    assert g.image_size * g.pixel_size == pytest.approx(220.0)
    # the bins cover the image diagonal, and no more than one extra bin pair
    width = g.det_count * g.det_spacing
    assert 220.0 * math.sqrt(2) <= width < 220.0 * math.sqrt(2) + 2 * g.det_spacing + 1e-9
    assert g.angles_array[-1] - g.angles_array[0] + g.angles_array[1] == pytest.approx(math.pi)
    assert geo.preset("pet-biograph-mct", image_size=64, n_views=84).sino_shape == (84, 154)
    # any pixel size through the geometry function
    h = biograph_mct(100, pixel_size=2.0)
    assert h.pixel_size == 2.0 and h.det_count * h.det_spacing >= 200 * math.sqrt(2)
