"""Registry of sensor plug-ins (modalities).

Every modality that msl-recon can simulate, train on and reconstruct is one registered
:class:`~msl_recon.modalities.base.Modality`. Shared code asks the registry, never a name:

>>> from msl_recon import modalities
>>> modalities.get("mr").name        # aliases resolve to the canonical name
't1'
>>> modalities.parse("ct,mr")
('ct', 't1')

A new sensor is one module that subclasses ``Modality`` and calls :func:`register` (see
``docs/architecture.md``, "Adding a modality"). The built-in plug-ins are CT (:mod:`.ct`), MRI
T1w/T2w (:mod:`.mri`) and PET (:mod:`.pet`).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Sequence

from ..errors import InputError
from .base import Modality, ModalityReader, ModalitySimulator

__all__ = [
    "Modality",
    "ModalityReader",
    "ModalitySimulator",
    "get",
    "measurement_key",
    "names",
    "parse",
    "register",
]

_REGISTRY: dict[str, Modality] = {}
_ALIASES: dict[str, str] = {}
_BUILTINS = ("ct", "mri", "pet")
_loaded = False


def register(modality: Modality) -> Modality:
    """Register a modality instance (its name and aliases must be new); returns it."""
    key = modality.name.lower()
    if not key:
        raise ValueError(f"{type(modality).__name__} has no name")
    clash = [a for a in (key, *modality.aliases) if a in _ALIASES and _ALIASES[a] != key]
    if clash or key in _REGISTRY:
        raise ValueError(f"modality {key!r}: name or alias already registered: {clash or [key]}")
    _REGISTRY[key] = modality
    _ALIASES[key] = key
    for a in modality.aliases:
        _ALIASES[a.lower()] = key
    return modality


def _load_builtins() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        for mod in _BUILTINS:
            importlib.import_module(f"{__name__}.{mod}")


def names() -> tuple[str, ...]:
    """Canonical names of the registered modalities, in registration order."""
    _load_builtins()
    return tuple(_REGISTRY)


def get(name: str) -> Modality:
    """The registered modality for a name or alias (case-insensitive).

    Raises
    ------
    InputError
        On an unknown name (the message lists the known names and aliases).
    """
    _load_builtins()
    key = _ALIASES.get(str(name).strip().lower())
    if key is None:
        known = ", ".join(
            f"{n} (alias {', '.join(_REGISTRY[n].aliases)})" if _REGISTRY[n].aliases else n
            for n in _REGISTRY
        )
        raise InputError(f"unknown modality {name!r}; known: {known}")
    return _REGISTRY[key]


def parse(spec: str | Iterable[str]) -> tuple[str, ...]:
    """Canonical names of a comma-separated list (or iterable) of names and aliases.

    Raises
    ------
    InputError
        On an unknown name, a modality given twice (e.g. ``mr,t1``), or an empty list.
    """
    parts = spec.split(",") if isinstance(spec, str) else list(spec)
    out: list[str] = []
    for raw in parts:
        if not str(raw).strip():
            continue
        m = get(raw).name
        if m in out:
            raise InputError(f"modality {m!r} given twice")
        out.append(m)
    if not out:
        raise InputError("no modality given")
    return tuple(out)


def measurement_key(name: str) -> str:
    """Batch key of a modality's raw data (e.g. ``"ct_sino"``, ``"t1_kspace"``)."""
    return get(name).raw_key


def in_order(mods: Sequence[str]) -> tuple[str, ...]:
    """``mods`` sorted in registry order (the order files store modalities in)."""
    order = {m: i for i, m in enumerate(names())}
    return tuple(sorted(mods, key=lambda m: order.get(m, len(order))))
