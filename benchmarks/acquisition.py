"""Acquisition presets of the benchmark data (``paper`` or ``clinical``) → simulation specs.

The presets are :mod:`msl_recon.data.acquisition.presets`; :func:`simulation_spec` builds the
:class:`~msl_recon.data.simulate.SimulationSpec` the way ``msl-recon simulate --acquisition``
does (geometry, dose, MRI noise, coils, field of view), with the two shifts the
out-of-distribution set needs: another scanner geometry and a dose factor.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

__all__ = ["get_preset", "ood_preset", "simulation_spec"]


def get_preset(name: str) -> Any:
    """The acquisition preset ``name`` (``paper`` or ``clinical``)."""
    from msl_recon.data.acquisition.presets import preset

    return preset(name)


def default_geometry(preset: Any) -> str:
    """The CT geometry preset of an acquisition preset (as the simulate CLI chooses it)."""
    return "siemens-definition-as" if preset.supersample > 1 else "msl-paper"


def ood_geometry(preset: Any) -> str:
    """Another scanner for the out-of-distribution set (never seen in training)."""
    return "varian-obi" if preset.supersample > 1 else "parallel-msl"


def ood_preset(preset: Any) -> Any:
    """The preset with another anatomy family: procedural brains only, every subject a lesion."""
    return dataclasses.replace(
        preset, anatomy="procedural", heldout_procedural_fraction=0.0, lesion_probability=1.0
    )


def simulation_spec(
    preset: Any,
    *,
    image_size: int,
    n_views: int,
    masks: dict[str, Any],
    geometry: str | None = None,
    ct_i0_scale: float = 1.0,
) -> Any:
    """A :class:`SimulationSpec` of ``preset`` at ``image_size`` / ``n_views`` with ``masks``.

    Parameters
    ----------
    geometry : str, optional
        CT geometry preset (default: the acquisition preset's, :func:`default_geometry`).
    ct_i0_scale : float
        Multiplies the incident photons (a dose shift); noise-free data shifted in dose start
        from the ``routine`` level.
    """
    import geometries
    from msl_recon.data.acquisition.ct import DOSE_LEVELS
    from msl_recon.data.simulate import CTNoise, MRNoise, SimulationSpec

    g = geometries.preset(geometry or default_geometry(preset), image_size=image_size,
                          n_views=n_views)  # fmt: skip
    if preset.ct_dose:
        i0, sigma_e = preset.ct_i0, preset.ct_sigma_e
    elif ct_i0_scale != 1.0:
        i0, sigma_e = DOSE_LEVELS["routine"].i0, DOSE_LEVELS["routine"].sigma_e
    else:
        i0, sigma_e = None, 0.0
    if i0 is not None:
        i0 = i0 * ct_i0_scale
    snr_db = None if preset.mr_snr is None else 20 * math.log10(preset.mr_snr)
    clinical = preset.supersample > 1
    return SimulationSpec(
        geometry=g,
        sampling=masks,
        ct_noise=CTNoise(i0, sigma_e),
        mr_noise=MRNoise(snr_db),
        n_coils=preset.n_coils,
        preset=preset,
        fov_mm=g.image_size * g.pixel_size if clinical else None,
    )
