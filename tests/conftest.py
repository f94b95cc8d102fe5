"""Shared fixtures: device, rng, dtype. Tests never change torch's global defaults."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch


def _devices() -> list[str]:
    devs = ["cpu"]
    if torch.cuda.is_available():
        devs.append("cuda")
    return devs


@pytest.fixture(params=_devices())
def device(request: pytest.FixtureRequest) -> torch.device:
    """Every available device (CPU always; CUDA when present)."""
    return torch.device(request.param)


@pytest.fixture(params=[torch.float32, torch.float64], ids=["f32", "f64"])
def dtype(request: pytest.FixtureRequest) -> torch.dtype:
    """Real floating dtypes the operators must honour."""
    return request.param


@pytest.fixture
def rng() -> np.random.Generator:
    """A seeded numpy generator (fresh per test)."""
    return np.random.default_rng(1234)


@pytest.fixture
def torch_gen() -> torch.Generator:
    """A seeded torch CPU generator (fresh per test)."""
    return torch.Generator().manual_seed(1234)


@pytest.fixture(autouse=True, scope="session")
def _matrix_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Keep the system-matrix cache of the test session out of the user's cache directory."""
    os.environ.setdefault("MSL_RECON_CACHE", str(tmp_path_factory.mktemp("msl-cache")))


@pytest.fixture
def tiny_fan():
    """A small flat-detector fan-beam scan (24², 30 views, 40 bins): fast operator tests."""
    import geometries as geo

    return geo.FanBeam2D(
        image_size=24, pixel_size=1.0, det_count=40, det_spacing=1.1, n_views=30,
        source_origin=70.0, origin_detector=35.0,
    )  # fmt: skip


@pytest.fixture
def tiny_parallel():
    """A small parallel-beam scan (16², 12 views over 180°, default detector of 24 bins)."""
    import geometries as geo

    return geo.ParallelBeam2D(image_size=16, pixel_size=1.0, n_views=12)
