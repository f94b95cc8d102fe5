"""Acquisition presets of the benchmark data: ``paper`` (the MSL authors' set-up) and ``clinical``.

When :mod:`msl_recon.data.acquisition.presets` exists (its ``get_preset(name)``), its presets
are used; until then this module provides the same interface with the fields the benchmark
passes to :class:`msl_recon.data.simulate.SimulationSpec`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["AcquisitionPreset", "get_preset", "simulation_spec"]


@dataclass(frozen=True)
class AcquisitionPreset:
    """What an acquisition preset sets.

    Attributes
    ----------
    name : str
    geometry : str
        CT geometry preset (:func:`geometries.preset`).
    ct_i0 : float or None
        Incident photons per detector bin and view (None: noise-free).
    ct_sigma_e : float
        Electronic noise (post-log Gaussian, see ``CTNoise``).
    mr_snr_db : float or None
        k-space SNR in dB (``MRNoise.snr_db``; None: noise-free).
    n_coils : int
        Receive coils (1: single coil; >1: SENSE with simulated maps).
    mask_seed_mode : {'fixed', 'per-slice'}
    """

    name: str
    geometry: str = "msl-paper"
    ct_i0: float | None = None
    ct_sigma_e: float = 0.0
    mr_snr_db: float | None = None
    n_coils: int = 1
    mask_seed_mode: str = "fixed"


_FALLBACK = {
    # the MSL authors: noise-free fan beam, single-coil, one fixed mask
    "paper": AcquisitionPreset("paper"),
    # realistic: low-dose CT noise, noisy 4-coil k-space, a mask per slice
    "clinical": AcquisitionPreset(
        "clinical", ct_i0=2e4, ct_sigma_e=5.0, mr_snr_db=30.0, n_coils=4, mask_seed_mode="per-slice"
    ),
}


def get_preset(name: str) -> Any:
    """The acquisition preset ``name`` (from ``msl_recon.data.acquisition.presets`` if present)."""
    try:
        from msl_recon.data.acquisition.presets import get_preset as lib_get  # type: ignore
    except ImportError:
        lib_get = None
    if lib_get is not None:
        return lib_get(name)
    try:
        return _FALLBACK[name]
    except KeyError:
        raise ValueError(
            f"unknown acquisition preset {name!r}; known: {sorted(_FALLBACK)}"
        ) from None


def simulation_spec(
    preset: Any, *, image_size: int, n_views: int, masks: dict[str, Any], ct_i0_scale: float = 1.0
) -> Any:
    """A :class:`SimulationSpec` of ``preset`` (geometry at ``image_size``/``n_views``, masks).

    ``ct_i0_scale`` multiplies the preset's dose (out-of-distribution dose shifts).
    """
    import geometries
    from msl_recon.data.simulate import CTNoise, MRNoise, SimulationSpec

    if hasattr(preset, "simulation_spec"):  # the library's presets know how to build one
        return preset.simulation_spec(
            image_size=image_size, n_views=n_views, sampling=masks, ct_i0_scale=ct_i0_scale
        )
    geom = geometries.preset(preset.geometry, image_size=image_size, n_views=n_views)
    i0 = preset.ct_i0
    if i0 is None and ct_i0_scale != 1.0:  # a dose shift of noise-free data: from 1e5 photons
        i0 = 1e5
    i0 = None if i0 is None else i0 * ct_i0_scale
    return SimulationSpec(
        geometry=geom,
        sampling=masks,
        mask_seed_mode=preset.mask_seed_mode,
        ct_noise=CTNoise(i0=i0, sigma_e=preset.ct_sigma_e if i0 is not None else 0.0),
        mr_noise=MRNoise(snr_db=preset.mr_snr_db),
        n_coils=preset.n_coils,
    )
