"""Fixtures of the training tests (the helpers live in ``tests/msl_recon_testdata.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from msl_recon_testdata import write_tiny_split


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Directory with ``train.h5`` (8 slices), ``val.h5`` (4) and ``test.h5`` (4), 32²."""
    root = tmp_path_factory.mktemp("tiny-data")
    write_tiny_split(root / "train.h5", "train", 8, 1)
    write_tiny_split(root / "val.h5", "val", 4, 2)
    write_tiny_split(root / "test.h5", "test", 4, 3)
    return root
