"""Training checkpoints: atomic writes, CPU-safe loading and the RNG state needed for exact resume.

A checkpoint is one ``torch.save`` file holding only plain Python containers, numbers, strings and
tensors (so it loads with ``weights_only=True``):

``format``, ``version``
    ``"msl-recon-checkpoint"`` and the schema version.
``model``, ``optimizer``, ``scheduler``
    ``state_dict()`` of each (the model's is the bare module's, never DDP-wrapped).
``rng``
    :func:`capture_rng_state` (torch CPU/CUDA, numpy legacy global, Python ``random``).
``data_state``
    ``{"seed": int, "consumed": int}``: samples consumed from the data stream, see
    :mod:`msl_recon.training.loop` (the order is a pure function of seed and epoch).
``iteration``
    Number of completed optimiser steps.
``config``, ``train_args``, ``modalities``, ``geometry``, ``sampling``
    Everything needed to rebuild the model and its physics without the training data.
``checksum``
    ``{"sha256": hex}`` of the content above (:func:`content_digest`), verified on load, so a
    damaged file is never resumed silently. Files without it (older msl-recon) load unverified.

A run directory holds ``last.pt`` (rewritten at every checkpoint) and ``ckpt_<iteration>.pt``
(periodic copies). :func:`load_latest_checkpoint` falls back to the newest valid ``ckpt_*.pt``
when ``last.pt`` is damaged.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import random
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._io import atomic_path
from ..errors import InputError

__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_VERSION",
    "capture_rng_state",
    "config_from_dict",
    "config_to_dict",
    "content_digest",
    "latest_checkpoint",
    "list_checkpoints",
    "load_checkpoint",
    "load_latest_checkpoint",
    "restore_rng_state",
    "save_checkpoint",
]

CHECKPOINT_FORMAT = "msl-recon-checkpoint"
CHECKPOINT_VERSION = 1


def capture_rng_state() -> dict[str, Any]:
    """The state of every global random generator, as plain containers and CPU tensors.

    Returns
    -------
    dict
        ``torch`` (uint8 tensor), ``cuda`` (list of uint8 tensors, empty without CUDA),
        ``numpy`` (the legacy global generator's state as a dict of lists) and ``python``
        (``random.getstate()``).
    """
    kind, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)  # noqa: NPY002
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "cuda": [s.cpu() for s in torch.cuda.get_rng_state_all()]
        if torch.cuda.is_available()
        else [],
        "numpy": {
            "kind": str(kind),
            "keys": np.asarray(keys, dtype=np.uint32).tolist(),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },
        "python": _py_state_to_lists(random.getstate()),
    }
    return state


def _py_state_to_lists(state: tuple) -> list:
    version, internal, gauss = state
    return [int(version), [int(v) for v in internal], gauss]


def restore_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`capture_rng_state` captured (CUDA states only if CUDA is present)."""
    torch.set_rng_state(torch.as_tensor(state["torch"], dtype=torch.uint8).cpu())
    cuda_states = state.get("cuda") or []
    if cuda_states and torch.cuda.is_available():
        n = min(len(cuda_states), torch.cuda.device_count())
        for i in range(n):
            torch.cuda.set_rng_state(torch.as_tensor(cuda_states[i], dtype=torch.uint8).cpu(), i)
    npst = state["numpy"]
    np.random.set_state(  # noqa: NPY002
        (
            npst["kind"],
            np.asarray(npst["keys"], dtype=np.uint32),
            int(npst["pos"]),
            int(npst["has_gauss"]),
            float(npst["cached"]),
        )
    )
    version, internal, gauss = state["python"]
    random.setstate((int(version), tuple(int(v) for v in internal), gauss))


def _feed(h: Any, obj: Any) -> None:
    """Hash ``obj`` canonically: dicts by sorted key, sequences in order, tensors by bytes."""
    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().contiguous().reshape(-1)
        h.update(f"T{t.dtype}{tuple(obj.shape)}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes())
    elif isinstance(obj, dict):
        h.update(f"D{len(obj)}".encode())
        for k in sorted(obj, key=str):
            h.update(f"K{k!s}".encode())
            _feed(h, obj[k])
    elif isinstance(obj, (list, tuple)):
        h.update(f"L{len(obj)}".encode())
        for v in obj:
            _feed(h, v)
    elif isinstance(obj, np.ndarray):
        h.update(f"A{obj.dtype}{obj.shape}".encode())
        h.update(np.ascontiguousarray(obj).tobytes())
    else:
        h.update(f"V{type(obj).__name__}:{obj!r}".encode())


def content_digest(state: dict[str, Any]) -> str:
    """SHA-256 (hex) of a checkpoint's content, excluding its ``checksum`` entry."""
    h = hashlib.sha256()
    _feed(h, {k: v for k, v in state.items() if k != "checksum"})
    return h.hexdigest()


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Write ``state`` to ``path`` atomically (temporary file + rename).

    Parameters
    ----------
    path : path-like
        Target file (``.pt``); its parent directory is created.
    state : dict
        The checkpoint content (see the module docstring). ``format`` and ``version`` are added.

    Returns
    -------
    Path
        The written file.
    """
    payload = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, **state}
    payload.pop("checksum", None)
    payload["checksum"] = {"sha256": content_digest(payload)}
    target = Path(path)
    with atomic_path(target) as tmp:
        torch.save(payload, tmp)
    return target


def load_checkpoint(
    path: str | os.PathLike, *, map_location: str | torch.device | None = "cpu"
) -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint`.

    Tensors are mapped to ``map_location`` (CPU by default), so a checkpoint saved on a GPU loads
    on a CPU-only machine.

    Raises
    ------
    InputError
        If the file is missing, unreadable, not an msl-recon checkpoint, or damaged (its content
        does not match the stored checksum).
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"checkpoint {p} does not exist")
    try:
        data = torch.load(p, map_location=map_location, weights_only=True)
    except Exception as exc:  # corrupt file, foreign pickle, ...
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"cannot read checkpoint {p}: {msg}") from exc
    if not isinstance(data, dict) or data.get("format") != CHECKPOINT_FORMAT:
        raise InputError(f"{p} is not an msl-recon checkpoint")
    if int(data.get("version", 0)) > CHECKPOINT_VERSION:
        raise InputError(
            f"{p} has checkpoint version {data.get('version')}, this msl-recon reads "
            f"≤ {CHECKPOINT_VERSION}; upgrade msl-recon"
        )
    stored = data.get("checksum")
    if isinstance(stored, dict) and stored.get("sha256") != content_digest(data):
        raise InputError(f"checkpoint {p} is damaged: its content does not match its checksum")
    return data


def list_checkpoints(run_dir: str | os.PathLike) -> list[Path]:
    """Checkpoints of a run, newest first: ``last.pt``, then ``ckpt_*.pt`` by iteration."""
    d = Path(run_dir)
    out = [d / "last.pt"] if (d / "last.pt").is_file() else []
    return out + sorted(d.glob("ckpt_*.pt"), reverse=True)


def load_latest_checkpoint(
    run_dir: str | os.PathLike, *, map_location: str | torch.device | None = "cpu"
) -> tuple[dict[str, Any], Path]:
    """The newest readable checkpoint of a run: ``last.pt``, else the newest valid ``ckpt_*.pt``.

    A damaged ``last.pt`` gives a warning naming the file used instead.

    Returns
    -------
    state : dict
    path : Path
        The file loaded.

    Raises
    ------
    InputError
        If the run has no checkpoint, or none of them is readable.
    """
    paths = list_checkpoints(run_dir)
    if not paths:
        raise InputError(f"no checkpoint in {run_dir}")
    errors: list[str] = []
    for p in paths:
        try:
            data = load_checkpoint(p, map_location=map_location)
        except InputError as exc:
            errors.append(str(exc))
            continue
        if errors:
            warnings.warn(
                f"{errors[0]}; resuming from {p.name} (iteration {data.get('iteration')})",
                stacklevel=2,
            )
        return data, p
    raise InputError("; ".join(errors) + "; no valid checkpoint left to resume from")


def latest_checkpoint(run_dir: str | os.PathLike) -> Path | None:
    """The most recent checkpoint of a run directory (``last.pt``), or ``None``."""
    p = Path(run_dir) / "last.pt"
    return p if p.is_file() else None


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """A JSON-compatible dict of an ``MSLConfig`` (stored in checkpoints)."""
    if hasattr(cfg, "to_dict"):
        return dict(cfg.to_dict())
    if dataclasses.is_dataclass(cfg):
        return _plain(dataclasses.asdict(cfg))
    raise TypeError(f"cannot serialise config of type {type(cfg).__name__}")


def _plain(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return v


def config_from_dict(d: dict[str, Any]) -> Any:
    """Inverse of :func:`config_to_dict`."""
    from ..model import MSLConfig

    return MSLConfig.from_dict(d)
