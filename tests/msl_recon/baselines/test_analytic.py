"""The "sparse" images: FBP and zero-filled MRI through the operators' pseudo-inverses."""

from __future__ import annotations

import numpy as np
import torch

import geometries as geo
import operators as ops
from msl_recon.baselines import fbp_image, sparse_image, sparse_images, zero_filled_image
from operators import phantoms


def _geometry() -> geo.FanBeam2D:
    return geo.FanBeam2D(
        image_size=32,
        pixel_size=1.0,
        n_views=64,
        det_count=48,
        det_spacing=2.0,
        source_origin=64.0,
        origin_detector=64.0,
    )


def test_fbp_image_reconstructs_an_ellipse_phantom() -> None:
    g = _geometry()
    ell = phantoms.shepp_logan(fov_mm=32.0)
    sino = torch.from_numpy(phantoms.ellipse_sinogram(ell, g))
    truth = torch.from_numpy(phantoms.ellipse_image(ell, g))
    x = fbp_image(sino, g)
    assert x.shape == (32, 32)
    torch.testing.assert_close(x, ops.FBP(g)(sino))
    # the body (value 1 minus 0.8 = 0.2 inside the skull) is recovered on average
    inner = truth > 0.15
    assert abs(float(x[inner].mean() - truth[inner].mean())) < 0.05
    xc = fbp_image(sino, g, clip=True)
    assert float(xc.min()) >= 0.0 and float(xc.max()) <= 1.0


def test_zero_filled_is_the_magnitude_of_the_adjoint(rng: np.random.Generator) -> None:
    mask = geo.CartesianMask(shape=(16, 16), acceleration=4, seed=1)
    F = ops.CartesianFourier(mask)
    img = torch.from_numpy(rng.random((2, 16, 16)))
    k = F(img)
    zf = zero_filled_image(k, mask)
    assert zf.shape == (2, 16, 16) and not zf.is_complex()
    torch.testing.assert_close(zf, F.H(k).abs())
    cplx = zero_filled_image(k, F, magnitude=False)
    assert cplx.is_complex()
    # fully sampled k-space gives the image back exactly
    full = ops.CartesianFourier(torch.ones(16, 16, dtype=torch.bool))
    torch.testing.assert_close(sparse_image(full(img), full), img)


def test_sparse_images_of_a_batch() -> None:
    g = _geometry()
    A = ops.RayTransform(g)
    F = ops.CartesianFourier(geo.CartesianMask(shape=(32, 32), acceleration=4, seed=0))
    gt = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(0))
    batch = {"ct_sino": A(gt), "t1_kspace": F(gt).to(torch.complex64), "index": torch.arange(3)}
    out = sparse_images(batch, {"ct": A, "t1": F, "t2": F}, clip=True)
    assert set(out) == {"ct", "t1"}  # t2 has no data in the batch
    for m in ("ct", "t1"):
        assert out[m].shape == (3, 1, 32, 32) and out[m].dtype == torch.float32
        assert float(out[m].min()) >= 0.0 and float(out[m].max()) <= 1.0
    torch.testing.assert_close(out["t1"][:, 0], F.H(batch["t1_kspace"]).abs().clamp(0, 1))
