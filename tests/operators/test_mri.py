"""MRI operators: masked Cartesian FFT, NUFFT (torchkbnufft), Toeplitz normal, DCF adjoint."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import operators as ops
from geometries import CartesianMask, RadialTrajectory
from operators.mri import DCFAdjoint, ToeplitzNormal, centered_fft2
from operators.testing import dot_test


def _phantom(n: int) -> np.ndarray:
    from skimage.data import shepp_logan_phantom
    from skimage.transform import resize

    return resize(shepp_logan_phantom(), (n, n), anti_aliasing=True)


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.linalg.vector_norm(a - b) / torch.linalg.vector_norm(b))


def _ndft(x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Direct non-uniform DFT with the centred orthonormal convention, x (H, W), k (2, P)."""
    h, w = x.shape
    r = torch.arange(h, dtype=torch.float64) - h // 2
    c = torch.arange(w, dtype=torch.float64) - w // 2
    e = torch.exp(-1j * (k[0][:, None, None] * r[None, :, None] + k[1][:, None, None] * c))
    return (e * x).sum((-2, -1)) / math.sqrt(h * w)


# ------------------------------------------------------------------------------- CartesianFourier
def test_cartesian_matches_numpy_definition(device: torch.device, dtype: torch.dtype, rng) -> None:
    m = CartesianMask(shape=(12, 10), acceleration=2, center_fraction=0.2, seed=4)
    F = ops.CartesianFourier(m)
    x = rng.standard_normal((3, 12, 10))
    k = F(torch.as_tensor(x, dtype=dtype, device=device))
    assert k.dtype == (torch.complex64 if dtype == torch.float32 else torch.complex128)
    assert k.device.type == device.type and k.shape == (3, 12, 10)
    ref = np.fft.fftshift(
        np.fft.fft2(np.fft.ifftshift(x, axes=(-2, -1)), norm="ortho"), axes=(-2, -1)
    )
    ref = ref * m.mask
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    np.testing.assert_allclose(k.cpu().numpy(), ref, atol=tol * np.abs(ref).max())
    assert (k.cpu()[:, ~torch.from_numpy(m.mask)] == 0).all()


def test_cartesian_full_mask_is_unitary(torch_gen: torch.Generator) -> None:
    F = ops.CartesianFourier(np.ones((16, 8), dtype=bool))
    x = torch.randn(2, 16, 8, dtype=torch.complex128, generator=torch_gen)
    k = F(x)
    assert float(torch.linalg.vector_norm(k)) == pytest.approx(float(torch.linalg.vector_norm(x)))
    assert _rel(F.H(k), x) < 1e-14
    assert F.opnorm() == pytest.approx(1.0, abs=1e-6)
    assert F.pseudo_inverse() is F.H


def test_cartesian_zero_filled_quarter_mask() -> None:
    img = torch.from_numpy(_phantom(64))
    m = CartesianMask(shape=(64, 64), acceleration=4, center_fraction=0.08, seed=0)
    F = ops.CartesianFourier(m)
    k = F(img)
    assert int((k != 0).sum()) == 64 * 16  # 1/4 of the phase encodes
    rec = F.pseudo_inverse()(k)
    ref = np.fft.fftshift(
        np.fft.ifft2(np.fft.ifftshift(k.numpy()), norm="ortho")
    )  # zero-filled IFFT
    np.testing.assert_allclose(rec.numpy(), ref, atol=1e-12)
    corr = np.corrcoef(rec.abs().numpy().ravel(), img.numpy().ravel())[0, 1]
    assert 0.7 < corr < 0.95  # aliased but recognisable (measured 0.78)
    # the fully sampled reconstruction is exact, the under-sampled one is not
    assert _rel(rec.real, img) > 0.05


def test_cartesian_normal_equals_h_a(torch_gen: torch.Generator) -> None:
    F = ops.CartesianFourier(CartesianMask(shape=(8, 8), acceleration=3, seed=1))
    x = torch.randn(3, 8, 8, dtype=torch.complex128, generator=torch_gen)
    N = F.normal()
    assert _rel(N(x), F.H(F(x))) < 1e-14
    assert dot_test(N).rel_error < 1e-12


def test_cartesian_per_sample_masks(torch_gen: torch.Generator) -> None:
    masks = [CartesianMask(shape=(8, 8), acceleration=4, seed=s).mask for s in (1, 2, 3)]
    F = ops.CartesianFourier(torch.from_numpy(np.stack(masks)))
    x = torch.randn(3, 8, 8, dtype=torch.complex128, generator=torch_gen)
    xc = torch.randn(3, 2, 8, 8, dtype=torch.complex128, generator=torch_gen)
    y, yc = F(x), F(xc)
    for b, mb in enumerate(masks):
        Fb = ops.CartesianFourier(mb)
        assert _rel(y[b], Fb(x[b])) < 1e-14
        assert _rel(yc[b], Fb(xc[b])) < 1e-14  # (B, H, W) mask applies per sample to (B, C, H, W)
        assert _rel(F.H(yc)[b], Fb.H(yc[b])) < 1e-14
    assert F.acceleration == pytest.approx(4.0)
    with pytest.raises(RuntimeError):
        F(torch.zeros(2, 8, 8))  # 2 samples cannot use 3 masks


def test_cartesian_invalid_mask() -> None:
    with pytest.raises(ValueError, match="boolean"):
        ops.CartesianFourier(np.ones((8, 8)))
    with pytest.raises(ValueError, match="shape"):
        ops.CartesianFourier(np.ones(8, dtype=bool))
    F = ops.CartesianFourier(np.ones((8, 8), dtype=bool))
    with pytest.raises(ValueError, match="CartesianFourier"):
        F(torch.zeros(8, 9))


# ------------------------------------------------------------------------------- NUFFT
@pytest.mark.parametrize(("interp", "tol"), [("table", 2e-4), ("sparse", 3e-5)])
def test_nufft_matches_direct_dft(interp: str, tol: float, torch_gen: torch.Generator) -> None:
    k = (torch.rand(2, 150, generator=torch_gen, dtype=torch.float64) * 2 - 1) * math.pi
    x = torch.randn(12, 10, dtype=torch.complex128, generator=torch_gen)
    A = ops.NUFFT(k, (12, 10), interp=interp)
    assert A.range_shape == (150,) and A.interp == interp
    err = _rel(A(x), _ndft(x, k))
    # measured: table ~5e-5, sparse ~6e-6
    assert err < tol


def test_nufft_on_cartesian_grid_matches_fft(torch_gen: torch.Generator) -> None:
    n = 16
    kk = (torch.arange(n, dtype=torch.float64) - n // 2) * (2 * math.pi / n)
    grid = torch.stack(torch.meshgrid(kk, kk, indexing="ij")).reshape(2, -1)
    A = ops.NUFFT(grid, (n, n))
    x = torch.randn(n, n, dtype=torch.complex128, generator=torch_gen)
    assert _rel(A(x).reshape(n, n), centered_fft2(x)) < 3e-5
    # the DCF pseudo-inverse is calibrated to be exact on the full Cartesian grid
    assert _rel(A.pseudo_inverse()(A(x)), x) < 1e-3


@pytest.mark.parametrize("interp", ["table", "sparse"])
def test_nufft_adjoint_is_exact(interp: str) -> None:
    A = ops.NUFFT(
        RadialTrajectory(n_spokes=5, n_samples=16, ordering="golden"), (8, 8), interp=interp
    )
    r = dot_test(A)
    assert r.rel_error < 1e-12  # measured ~1e-17: torchkbnufft's adjoint is the exact transpose
    assert r.scale == pytest.approx(1.0, abs=1e-10)


@pytest.mark.parametrize("interp", ["table", "sparse"])
def test_toeplitz_normal_equals_h_a(interp: str, torch_gen: torch.Generator) -> None:
    A = ops.NUFFT(RadialTrajectory(n_spokes=13, n_samples=32), (16, 16), interp=interp)
    N = A.normal()
    assert isinstance(N, ToeplitzNormal) and N.domain_shape == (16, 16)
    x = torch.randn(2, 16, 16, dtype=torch.complex128, generator=torch_gen)
    err = _rel(N(x), A.H(A(x)))
    assert err < 1e-4  # measured ~1e-5 (both approximate the exact A^H A to ~1e-5)
    assert dot_test(N).rel_error < 1e-12  # self-adjoint
    x32 = x.to(torch.complex64)
    assert N(x32).dtype == torch.complex64
    assert _rel(N(x32).to(torch.complex128), N(x)) < 1e-5


@pytest.mark.parametrize("shape", [(9, 12), (7, 5)])
def test_toeplitz_normal_odd_and_rectangular(shape: tuple[int, int], torch_gen) -> None:
    A = ops.NUFFT(RadialTrajectory(n_spokes=9, n_samples=24, ordering="golden"), shape)
    x = torch.randn(2, *shape, dtype=torch.complex128, generator=torch_gen)
    assert _rel(A.normal()(x), A.H(A(x))) < 1e-4  # measured ~5e-6
    # the centred convention also holds for odd and rectangular images
    assert _rel(A(x[0]), _ndft(x[0], A.ktraj)) < 3e-5


@pytest.mark.parametrize("dcf", ["pipe", "ramp"])
def test_dcf_reconstruction_quality(dcf: str) -> None:
    n = 32
    img = torch.from_numpy(_phantom(n))
    traj = RadialTrajectory(n_spokes=math.ceil(math.pi / 2 * n), n_samples=2 * n)
    A = ops.NUFFT(traj, (n, n), dcf=dcf)
    P = A.pseudo_inverse()
    assert isinstance(P, DCFAdjoint) and P.domain_shape == (traj.n_points,)
    rec = P(A(img)).real
    a, b = img.numpy().ravel(), rec.numpy().ravel()
    corr = np.corrcoef(a, b)[0, 1]
    scale = float(a @ b / (a @ a))
    # measured at 32²: pipe corr 0.9960 scale 1.033; ramp corr 0.9963 scale 1.019
    assert corr >= 0.99
    assert abs(scale - 1.0) < 0.05
    assert (A.density_weights > 0).all()
    # the pseudo-inverse is a LinearOperator with an exact adjoint
    assert dot_test(P).rel_error < 1e-12


@pytest.mark.slow
@pytest.mark.parametrize("interp", ["sparse", "table"])
def test_dcf_reconstruction_quality_64(interp: str) -> None:
    n = 64
    img = torch.from_numpy(_phantom(n))
    traj = RadialTrajectory(n_spokes=math.ceil(math.pi / 2 * n), n_samples=2 * n)
    for dcf in ("pipe", "ramp"):
        A = ops.NUFFT(traj, (n, n), dcf=dcf, interp=interp)
        rec = A.pseudo_inverse()(A(img)).real
        a, b = img.numpy().ravel(), rec.numpy().ravel()
        assert np.corrcoef(a, b)[0, 1] >= 0.995  # measured 0.9975 (pipe), 0.9979 (ramp)
        assert abs(float(a @ b / (a @ a)) - 1.0) < 0.04  # measured 1.029 / 1.016


def test_plans_are_shared_and_interp_auto() -> None:
    traj = RadialTrajectory(n_spokes=6, n_samples=16)
    a = ops.NUFFT(traj, (8, 8))
    b = ops.NUFFT(traj.ktraj.copy(), (8, 8), dcf="pipe")
    assert a.interp == "sparse" and a._plan is b._plan
    assert a.density_weights is b.density_weights  # the Pipe DCF is computed once
    assert ops.NUFFT(traj, (8, 8), oversampling=1.5)._plan is not a._plan
    assert ops.NUFFT(np.zeros((2, 230_000)), (8, 8)).interp == "table"  # > 8e6 non-zeros


def test_explicit_dcf_weights_match_ramp() -> None:
    traj = RadialTrajectory(n_spokes=6, n_samples=16)
    ramp = ops.NUFFT(traj, (8, 8), dcf="ramp")
    w = ramp.density_weights
    # ring areas: the disc of radius π - dk/2 plus half of the outer ring (one sample per spoke)
    np.testing.assert_allclose(float(w.sum()), math.pi**3 * (1 + 1 / 16**2), rtol=1e-12)
    expl = ops.NUFFT(traj.ktraj, (8, 8), dcf=w.numpy())
    y = torch.ones(traj.n_points, dtype=torch.complex128)
    assert _rel(expl.pseudo_inverse()(y), ramp.pseudo_inverse()(y)) < 1e-14


def test_nufft_batch_dtype_device(device: torch.device, dtype: torch.dtype, rng) -> None:
    A = ops.NUFFT(RadialTrajectory(n_spokes=4, n_samples=16), (8, 8))
    x = torch.as_tensor(rng.standard_normal((2, 3, 8, 8)), dtype=dtype, device=device)
    y = A(x)
    cdt = torch.complex64 if dtype == torch.float32 else torch.complex128
    assert y.shape == (2, 3, 64) and y.dtype == cdt and y.device.type == device.type
    for i in range(2):
        for j in range(3):
            assert _rel(y[i, j], A(x[i, j])) < 1e-5
    z = A.H(y)
    assert z.shape == (2, 3, 8, 8) and z.dtype == cdt
    assert A.pseudo_inverse()(y).shape == (2, 3, 8, 8)
    assert A.normal()(x).shape == (2, 3, 8, 8)
    # float32 agrees with float64
    y64 = A(x.to(torch.float64))
    assert _rel(y.to(torch.complex128), y64) < 1e-5


def test_nufft_autograd_through_pseudo_inverse(torch_gen: torch.Generator) -> None:
    A = ops.NUFFT(RadialTrajectory(n_spokes=4, n_samples=8), (8, 8))
    P = A.pseudo_inverse()
    x = torch.rand(8, 8, dtype=torch.float64, generator=torch_gen, requires_grad=True)
    loss = P(A(x)).abs().pow(2).sum()
    (g,) = torch.autograd.grad(loss, x)
    with torch.no_grad():
        z = P(A(x))
        ref = 2 * A.H(P.H(z)).real
    assert _rel(g, ref) < 1e-12


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        ((np.zeros((3, 5)), (8, 8)), {}, "trajectory"),
        ((np.zeros((2, 5)), (8,)), {}, "image_shape"),
        ((np.full((2, 5), np.nan), (8, 8)), {}, "non-finite"),
        ((np.zeros((2, 5)), (8, 8)), {"oversampling": 0.5}, "oversampling"),
        ((np.zeros((2, 5)), (8, 8)), {"kernel_width": 0}, "kernel_width"),
        ((np.zeros((2, 5)), (8, 8)), {"dcf": "voronoi"}, "dcf"),
        ((np.zeros((2, 5)), (8, 8)), {"dcf": "ramp"}, "RadialTrajectory"),
        ((np.zeros((2, 5)), (8, 8)), {"dcf": np.ones(4)}, "dcf"),
        ((np.zeros((2, 5)), (8, 8)), {"interp": "linear"}, "interp"),
    ],
)
def test_nufft_invalid_arguments(args: tuple, kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ops.NUFFT(*args, **kwargs)


def test_nufft_wrong_input_shape() -> None:
    A = ops.NUFFT(RadialTrajectory(n_spokes=2, n_samples=8), (8, 8))
    with pytest.raises(ValueError, match="NUFFT"):
        A(torch.zeros(8, 7))
    with pytest.raises(ValueError, match="NUFFT"):
        A.H(torch.zeros(15, dtype=torch.complex64))


def test_mri_examples_registered() -> None:
    names = set(ops.examples())
    expected = {
        "cartesian-random",
        "cartesian-batched-mask",
        "nufft-radial",
        "nufft-golden",
        "nufft-toeplitz-normal",
        "sense-cartesian",
        "sense-nufft",
    }
    assert expected <= names
