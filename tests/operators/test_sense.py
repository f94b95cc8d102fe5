"""Multi-coil SENSE operator and simulated birdcage coil maps."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import operators as ops
from geometries import CartesianMask, RadialTrajectory
from operators.testing import dot_test


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.linalg.vector_norm(a - b) / torch.linalg.vector_norm(b))


# ------------------------------------------------------------------------------- birdcage maps
def test_birdcage_maps_normalised(device: torch.device) -> None:
    s = ops.birdcage_maps((24, 20), 8, device=device)
    assert s.shape == (8, 24, 20) and s.dtype == torch.complex64
    assert s.device.type == device.type
    rss = torch.sum(s.abs() ** 2, dim=0)
    assert float((rss - 1).abs().max()) < 1e-5
    s64 = ops.birdcage_maps((24, 20), 8, dtype=torch.complex128)
    assert float((torch.sum(s64.abs() ** 2, dim=0) - 1).abs().max()) < 1e-12


def test_birdcage_maps_geometry() -> None:
    s = ops.birdcage_maps((32, 32), 4, normalize=False, dtype=torch.complex128)
    mag = s.abs()
    # coil 0 sits at azimuth 0 (+x, i.e. right of the image): strongest on the right edge
    assert float(mag[0, 16, -1]) > 3 * float(mag[0, 16, 0])
    # coil 1 sits at +y (bottom rows): strongest on the last row
    assert float(mag[1, -1, 16]) > 3 * float(mag[1, 0, 16])
    # 1/distance falloff: at the image centre every coil is 1/relative_radius away
    c = ops.birdcage_maps((33, 33), 4, normalize=False, dtype=torch.complex128)[:, 16, 16]
    np.testing.assert_allclose(c.abs().numpy(), 1 / 1.5, rtol=1e-12)
    # the coils see different phases (the birdcage mode), so the maps are linearly independent
    flat = s.reshape(4, -1)
    assert torch.linalg.matrix_rank(flat).item() == 4
    # a closer coil circle gives a stronger falloff
    close = ops.birdcage_maps((32, 32), 4, relative_radius=1.1, normalize=False).abs()
    assert float(close[0, 16, -1] / close[0, 16, 0]) > float(mag[0, 16, -1] / mag[0, 16, 0])


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        (((8,), 4), {}),
        (((8, 8), 0), {}),
        (((8, 8), 4), {"relative_radius": 0.9}),
        (((8, 8), 4), {"dtype": torch.float32}),
    ],
)
def test_birdcage_maps_invalid(args: tuple, kwargs: dict) -> None:
    with pytest.raises(ValueError, match="birdcage_maps"):
        ops.birdcage_maps(*args, **kwargs)


# ------------------------------------------------------------------------------- SENSE
def _sense_cart(n_coils: int = 4, acceleration: float = 2.0) -> ops.SENSE:
    m = CartesianMask(shape=(12, 12), acceleration=acceleration, center_fraction=0.2, seed=2)
    return ops.SENSE(ops.birdcage_maps((12, 12), n_coils), ops.CartesianFourier(m))


def test_sense_shapes_and_forward(torch_gen: torch.Generator) -> None:
    A = _sense_cart()
    assert A.domain_shape == (12, 12) and A.range_shape == (4, 12, 12)
    x = torch.randn(2, 12, 12, dtype=torch.complex128, generator=torch_gen)
    y = A(x)
    assert y.shape == (2, 4, 12, 12) and y.dtype == torch.complex128
    maps = A.coil_maps.to(torch.complex128)
    for c in range(4):
        assert _rel(y[:, c], A.inner(maps[c] * x)) < 1e-12


@pytest.mark.parametrize("inner", ["cartesian", "nufft"])
def test_sense_adjoint(inner: str) -> None:
    maps = ops.birdcage_maps((8, 8), 3)
    if inner == "cartesian":
        op: ops.LinearOperator = ops.CartesianFourier(CartesianMask(shape=(8, 8), seed=1))
    else:
        op = ops.NUFFT(RadialTrajectory(n_spokes=4, n_samples=8), (8, 8))
    A = ops.SENSE(maps, op)
    r = dot_test(A)
    assert r.rel_error < 1e-12
    assert r.scale == pytest.approx(1.0, abs=1e-10)


def test_sense_pseudo_inverse_exact_on_full_sampling(torch_gen: torch.Generator) -> None:
    A = _sense_cart(acceleration=1.0)
    x = torch.randn(3, 12, 12, dtype=torch.complex128, generator=torch_gen)
    P = A.pseudo_inverse()
    assert P.domain_shape == (4, 12, 12) and P.range_shape == (12, 12)
    assert _rel(P(A(x)), x) < 1e-6  # maps are float32-normalised: exact to ~1e-7
    # under-sampling: coil-combined zero-filled recon = A^H y for the unitary Cartesian inner
    B = _sense_cart(acceleration=3.0)
    y = B(x)
    assert _rel(B.pseudo_inverse()(y), B.H(y)) < 1e-12
    assert dot_test(B.pseudo_inverse()).rel_error < 1e-12


def test_sense_pseudo_inverse_nufft() -> None:
    from skimage.data import shepp_logan_phantom
    from skimage.transform import resize

    n = 24
    img = torch.from_numpy(resize(shepp_logan_phantom(), (n, n), anti_aliasing=True))
    nufft = ops.NUFFT(RadialTrajectory(n_spokes=38, n_samples=2 * n), (n, n), dcf="ramp")
    A = ops.SENSE(ops.birdcage_maps((n, n), 4, dtype=torch.complex128), nufft)
    rec = A.pseudo_inverse()(A(img)).real
    corr = np.corrcoef(rec.numpy().ravel(), img.numpy().ravel())[0, 1]
    assert corr > 0.98


def test_sense_per_sample_masks(torch_gen: torch.Generator) -> None:
    masks = np.stack([CartesianMask(shape=(8, 8), seed=s).mask for s in (4, 5)])
    A = ops.SENSE(ops.birdcage_maps((8, 8), 3), ops.CartesianFourier(masks))
    x = torch.randn(2, 8, 8, dtype=torch.complex128, generator=torch_gen)
    y = A(x)
    assert y.shape == (2, 3, 8, 8)
    for b in range(2):
        Ab = ops.SENSE(A.coil_maps, ops.CartesianFourier(masks[b]))
        assert _rel(y[b], Ab(x[b])) < 1e-12
        assert _rel(A.H(y)[b], Ab.H(y[b])) < 1e-12


def test_sense_dtype_device(device: torch.device, dtype: torch.dtype, rng) -> None:
    A = _sense_cart(n_coils=2)
    x = torch.as_tensor(rng.standard_normal((3, 12, 12)), dtype=dtype, device=device)
    y = A(x)
    cdt = torch.complex64 if dtype == torch.float32 else torch.complex128
    assert y.dtype == cdt and y.device.type == device.type and y.shape == (3, 2, 12, 12)
    z = A.H(y)
    assert z.dtype == cdt and z.shape == (3, 12, 12)


def test_sense_invalid() -> None:
    F = ops.CartesianFourier(np.ones((8, 8), dtype=bool))
    with pytest.raises(ValueError, match="SENSE"):
        ops.SENSE(ops.birdcage_maps((8, 6), 2), F)
    with pytest.raises(ValueError, match="SENSE"):
        ops.SENSE(torch.ones(8, 8, dtype=torch.complex64), F)
    A = ops.SENSE(ops.birdcage_maps((8, 8), 2), F)
    with pytest.raises(ValueError, match="SENSE"):
        A.H(torch.zeros(3, 8, 8, dtype=torch.complex64))
