"""Test helpers: a tiny dataset in the shared HDF5 format, written directly with h5py, and a tiny
MSL config and checkpoint.

It is deliberately written here, following the schema of docs/architecture.md (Data files), rather
than through ``msl-recon simulate``: the training and inference code is then tested against the
format itself. 32² images of random ellipses (CT) and a related contrast (T1), a 16-view fan-beam
scan and a 1/4 Cartesian mask.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

TINY_N = 32
TINY_VIEWS = 16


def _ellipse_images(rng: np.random.Generator, n: int, s: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[-1 : 1 : s * 1j, -1 : 1 : s * 1j]
    ct = np.zeros((n, s, s), np.float32)
    t1 = np.zeros((n, s, s), np.float32)
    for i in range(n):
        head = (xx / 0.85) ** 2 + (yy / 0.7) ** 2 <= 1
        skull = head & ((xx / 0.75) ** 2 + (yy / 0.6) ** 2 > 1)
        ct[i][head] = 0.35
        ct[i][skull] = 0.9
        t1[i][head] = 0.55
        t1[i][skull] = 0.1
        for _ in range(3):
            cx, cy = rng.uniform(-0.4, 0.4, 2)
            a, b = rng.uniform(0.08, 0.25, 2)
            inside = ((xx - cx) / a) ** 2 + ((yy - cy) / b) ** 2 <= 1
            v = rng.uniform(0.0, 0.3)
            ct[i][inside] = 0.3 + 0.2 * v
            t1[i][inside] = 0.6 + v
    return np.clip(ct, 0, 1), np.clip(t1, 0, 1)


def write_tiny_split(path: Path, split: str, n: int, seed: int) -> None:
    """Write one split (``n`` slices) of the tiny dataset in the shared HDF5 schema."""
    import h5py

    import geometries as geo
    import operators as ops

    rng = np.random.default_rng(seed)
    ct, t1 = _ellipse_images(rng, n, TINY_N)
    g = geo.preset("msl-paper", image_size=TINY_N, n_views=TINY_VIEWS)
    mask = geo.CartesianMask(shape=(TINY_N, TINY_N), acceleration=4, center_fraction=0.1, seed=0)
    sino = ops.RayTransform(g)(torch.from_numpy(ct)).numpy().astype(np.float32)
    k = ops.CartesianFourier(mask)(torch.from_numpy(t1)).numpy().astype(np.complex64)
    with h5py.File(path, "w") as f:
        f["images/ct"] = ct
        f["images/t1"] = t1
        f["ct/sinogram"] = sino
        f["mr/t1/kspace"] = k
        f["mr/t1/mask"] = np.broadcast_to(mask.mask, (n, TINY_N, TINY_N)).copy()
        f["meta/subject_id"] = np.array([f"{split}{i // 2:03d}" for i in range(n)], dtype="S")
        f["meta/slice_index"] = np.arange(n) % 2
        f.attrs["geometry"] = json.dumps(g.to_dict())
        f.attrs["sampling"] = json.dumps({"t1": mask.to_dict()})
        f.attrs["noise"] = json.dumps({})
        f.attrs["intensity"] = json.dumps({"ct": "msl-hu", "t1": "minmax"})
        f.attrs["seed"] = json.dumps(seed)
        f.attrs["split"] = split
        f.attrs["schema_version"] = json.dumps(1)
        f.attrs["msl_recon_version"] = "test"
        f.attrs["provenance"] = json.dumps({"source": "tests/msl_recon/training/conftest.py"})


def tiny_config(**overrides: object):
    """The shipped ``tiny`` MSLConfig (32², a few thousand parameters), with ``overrides``."""
    from msl_recon.model import MSLConfig

    return MSLConfig.named("tiny", **overrides)


def make_checkpoint(path: Path, data_dir: Path, **cfg_overrides: object) -> Path:
    """A checkpoint of an untrained tiny model (what inference needs; no training run)."""
    from msl_recon.data.dataset import MSLDataset
    from msl_recon.modalities.acquisition import acquisition_to_dict
    from msl_recon.model import MSLNet
    from msl_recon.training.checkpoint import save_checkpoint

    cfg = tiny_config(**cfg_overrides)
    torch.manual_seed(0)
    net = MSLNet(cfg)
    ds = MSLDataset(data_dir / "train.h5")
    return save_checkpoint(
        path,
        {
            "model": net.state_dict(),
            "iteration": 0,
            "config": cfg.to_dict(),
            "modalities": list(cfg.modalities),
            "acquisition": acquisition_to_dict(ds.acquisition),
        },
    )
