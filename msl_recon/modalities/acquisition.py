"""Serialisation of per-modality acquisitions (checkpoints store the training acquisition)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import get

__all__ = ["acquisition_from_dict", "acquisition_to_dict"]


def acquisition_to_dict(acquisition: Mapping[str, Any]) -> dict[str, Any]:
    """``{modality: acquisition}`` → JSON-able ``{modality: dict or None}``."""
    return {m: get(m).acquisition_to_dict(a) for m, a in acquisition.items()}


def acquisition_from_dict(d: Mapping[str, Any] | None) -> dict[str, Any]:
    """Inverse of :func:`acquisition_to_dict` (``None`` → ``{}``)."""
    return {m: get(m).acquisition_from_dict(v) for m, v in (d or {}).items()}
