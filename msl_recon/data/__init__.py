"""Data: the digital head phantom, intensity mappings, ingest of real volumes, simulation, HDF5.

Submodules are imported lazily so that ``import msl_recon.data`` stays cheap:

* :mod:`msl_recon.data.phantom` — :func:`make_subject`, :class:`PhantomConfig`, :class:`Subject`;
* :mod:`msl_recon.data.tissues` — tissue classes, label ids and CT/MR properties;
* :mod:`msl_recon.data.intensity` — :func:`hu_to_unit`, :func:`unit_to_hu`, :func:`normalize_mr`.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "make_subject": "phantom",
    "PhantomConfig": "phantom",
    "Subject": "phantom",
    "hu_to_unit": "intensity",
    "unit_to_hu": "intensity",
    "normalize_mr": "intensity",
    "MSLDataset": "dataset",
    "SimulationSpec": "simulate",
    "Simulator": "simulate",
    "CTNoise": "simulate",
    "MRNoise": "simulate",
    "SimulationRun": "pipeline",
    "run_simulation": "pipeline",
    "write_arrays": "pipeline",
    "register_affine": "registration",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
