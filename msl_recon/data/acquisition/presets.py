# ruff: noqa: E501  (the markdown table of the module docstring has long rows)
"""Named acquisition presets: what a simulated data set contains, as one frozen value object.

| field | ``paper`` | ``clinical`` |
|---|---|---|
| ``supersample`` (phantom grid / recon grid) | 1 (same grid: inverse crime, as the seed paper) | 2 (CT projected on a 2× grid and 2× detector, MRI k-space from the 2× image) |
| ``ct_dose`` / ``ct_i0`` / ``ct_sigma_e`` | none (noise-free) | ``routine``: 1e5 photons/bin, σ_e = 5 photons |
| ``mr_complex`` (phase) | False (real-valued) | True: smooth random phase |
| ``phase_poly_rad`` / ``phase_bumps`` / ``phase_bump_rad`` | 0 / 0 / 0 | π rad polynomial coefficients, 3 off-resonance bumps of 1.5 rad |
| ``n_coils`` / ``coil_model`` | 1 / ``none`` | 12 / ``loop`` (Biot–Savart loop ring, per-subject variations) |
| ``coil_noise_correlation`` | 0 | 0.2 (adjacent coils) |
| ``mr_snr`` | none (noise-free) | 30 (mean object magnitude / σ, see :mod:`.mri`) |
| ``coil_estimation`` / ``calib_width`` | ``none`` / 0 | ``lowres`` from the 24-line ACS block |
| ``mr_encoder_input`` | ``zero-filled`` | ``sense-combined`` magnitude with the estimated maps |
| ``anatomy`` | ``auto`` (MNI152) | ``mixed`` (MNI152 or procedural per subject) |
| ``deformation_mm`` | 2.5 | 4.0 |
| ``heldout_deformation_mm`` / ``heldout_procedural_fraction`` (held-out subjects) | 2.5 / 0 (as training) | 6.0 / 0.7 |
| ``tissue_texture`` | False (0.6 mm white-ish texture) | True (per-tissue correlated texture, σ 1.5–4 mm) |
| ``lesion_probability`` / ``lesion_kinds`` | 0.5 / classic | 0.6 / hyper, hypo, rim |
| ``pv_sigma_mm`` | 0.5 | 0.25 (partial volume comes from the 2× grid) |
| ``ct_windows`` (metrics) | paper [−1000, 2125] HU | paper and brain [0, 80] HU in the head mask |

Use :func:`preset` to get one by name; :meth:`AcquisitionPreset.to_dict` gives the HDF5
attribute (stored as JSON under the ``preset`` attribute of every split file) and
:meth:`AcquisitionPreset.from_attrs` reads it back, returning ``paper`` for files written before
presets existed.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from typing import Any

from ...errors import InputError
from ...metrics import CT_WINDOWS as WINDOWS

__all__ = ["CLINICAL", "PAPER", "PRESETS", "AcquisitionPreset", "preset"]


@dataclasses.dataclass(frozen=True)
class AcquisitionPreset:
    """Every acquisition and phantom parameter a preset sets (see the module table).

    Attributes
    ----------
    name : str
    supersample : int
        Phantom render grid / reconstruction grid (1 = same grid).
    ct_dose : str or None
        Dose level name (:data:`.ct.DOSE_LEVELS`) or None for noise-free.
    ct_i0, ct_sigma_e : float
        Incident photons per bin and electronic noise (photons); ignored when ``ct_dose`` is None.
    mr_complex : bool
        Complex images with a random smooth phase.
    phase_poly_rad, phase_bump_rad : float
        Phase polynomial coefficient and off-resonance bump standard deviations, rad.
    phase_bumps : int
    n_coils : int
    coil_model : {"none", "loop"}
    coil_noise_correlation : float
    mr_snr : float or None
        Linear SNR (:func:`.mri.noise_sigma`), None = noise-free.
    coil_estimation : {"none", "lowres", "espirit"}
    calib_width : int
        ACS block side, k-space lines.
    mr_encoder_input : {"zero-filled", "sense-combined"}
    anatomy : str
    deformation_mm : float
    heldout_deformation_mm : float
        Elastic deformation of held-out (validation/test) subjects, mm.
    heldout_procedural_fraction : float
        Probability of the procedural anatomy for held-out subjects (``anatomy="mixed"``).
    tissue_texture : bool
    lesion_probability : float
    lesion_kinds : tuple of str
    pv_sigma_mm : float
    ct_windows : tuple of str
        Names in :data:`msl_recon.metrics.CT_WINDOWS`.
    """

    name: str
    supersample: int = 1
    ct_dose: str | None = None
    ct_i0: float = 0.0
    ct_sigma_e: float = 0.0
    mr_complex: bool = False
    phase_poly_rad: float = 0.0
    phase_bumps: int = 0
    phase_bump_rad: float = 0.0
    n_coils: int = 1
    coil_model: str = "none"
    coil_noise_correlation: float = 0.0
    mr_snr: float | None = None
    coil_estimation: str = "none"
    calib_width: int = 0
    mr_encoder_input: str = "zero-filled"
    anatomy: str = "auto"
    deformation_mm: float = 2.5
    heldout_deformation_mm: float = 2.5
    heldout_procedural_fraction: float = 0.0
    tissue_texture: bool = False
    lesion_probability: float = 0.5
    lesion_kinds: tuple[str, ...] = ("classic",)
    pv_sigma_mm: float = 0.5
    ct_windows: tuple[str, ...] = ("paper",)

    def __post_init__(self) -> None:
        if self.supersample < 1:
            raise InputError(f"supersample must be >= 1, got {self.supersample}")
        if self.coil_model not in ("none", "loop"):
            raise InputError(f"coil_model must be 'none' or 'loop', got {self.coil_model!r}")
        if self.coil_estimation not in ("none", "lowres", "espirit"):
            raise InputError(f"unknown coil_estimation {self.coil_estimation!r}")
        if self.mr_encoder_input not in ("zero-filled", "sense-combined"):
            raise InputError(f"unknown mr_encoder_input {self.mr_encoder_input!r}")
        if self.n_coils > 1 and self.coil_model == "none":
            raise InputError("n_coils > 1 needs a coil_model")
        if self.mr_snr is not None and not (math.isfinite(self.mr_snr) and self.mr_snr > 0):
            raise InputError(f"mr_snr must be > 0 or None, got {self.mr_snr!r}")
        if set(self.ct_windows) - set(WINDOWS):
            raise InputError(f"ct_windows must be names in {sorted(WINDOWS)}")

    # ------------------------------------------------------------------ derived objects
    def dose(self) -> Any:
        """The :class:`.ct.CTDose` of the preset, or None (noise-free)."""
        from .ct import CTDose

        if self.ct_dose is None:
            return None
        return CTDose(i0=self.ct_i0, sigma_e=self.ct_sigma_e, name=self.ct_dose)

    def phantom_config(self, base: Any = None, *, heldout: bool = False) -> Any:
        """``PhantomConfig`` with the preset's phantom fields set (other fields from ``base``).

        ``heldout=True`` gives the config of held-out subjects: the stronger deformation and,
        when the preset mixes anatomies, the procedural family more often.
        """
        from ..phantom import PhantomConfig

        fields: dict[str, Any] = {
            "supersample": self.supersample,
            "anatomy": self.anatomy,
            "deformation_mm": self.heldout_deformation_mm if heldout else self.deformation_mm,
            "tissue_texture": self.tissue_texture,
            "lesion_probability": self.lesion_probability,
            "lesion_kinds": self.lesion_kinds,
            "pv_sigma_mm": self.pv_sigma_mm,
        }
        if heldout and self.heldout_procedural_fraction > 0:
            fields.update(anatomy="mixed", mixed_fraction=self.heldout_procedural_fraction)
        return dataclasses.replace(base or PhantomConfig(), **fields)

    def windows(self) -> dict[str, tuple[float, float]]:
        """``{name: (low_hu, high_hu)}`` of the CT metric windows."""
        return {w: WINDOWS[w] for w in self.ct_windows}

    # ------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dict of every field (tuples become lists)."""
        return {
            k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> AcquisitionPreset:
        """Inverse of :meth:`to_dict` (unknown keys are an error)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise InputError(f"unknown acquisition preset fields: {sorted(unknown)}")
        kw = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
        return cls(**kw)

    @classmethod
    def from_attrs(cls, attrs: Mapping[str, Any]) -> AcquisitionPreset:
        """Preset stored in HDF5 attributes under ``"preset"`` (JSON text or dict).

        Files without that attribute were written before presets existed: they are ``paper``.
        """
        raw = attrs.get("preset") if hasattr(attrs, "get") else None
        if raw is None:
            return PAPER
        if isinstance(raw, bytes):
            raw = raw.decode()
        d = json.loads(raw) if isinstance(raw, str) else dict(raw)
        return cls.from_dict(d)


PAPER = AcquisitionPreset(name="paper")
CLINICAL = AcquisitionPreset(
    name="clinical",
    supersample=2,
    ct_dose="routine",
    ct_i0=1.0e5,
    ct_sigma_e=5.0,
    mr_complex=True,
    phase_poly_rad=math.pi,
    phase_bumps=3,
    phase_bump_rad=1.5,
    n_coils=12,
    coil_model="loop",
    coil_noise_correlation=0.2,
    mr_snr=30.0,
    coil_estimation="lowres",
    calib_width=24,
    mr_encoder_input="sense-combined",
    anatomy="mixed",
    deformation_mm=4.0,
    heldout_deformation_mm=6.0,
    heldout_procedural_fraction=0.7,
    tissue_texture=True,
    lesion_probability=0.6,
    lesion_kinds=("hyper", "hypo", "rim"),
    pv_sigma_mm=0.25,
    ct_windows=("paper", "brain"),
)
PRESETS: dict[str, AcquisitionPreset] = {"paper": PAPER, "clinical": CLINICAL}


def preset(name: str) -> AcquisitionPreset:
    """The named preset (``"paper"`` or ``"clinical"``)."""
    try:
        return PRESETS[name]
    except KeyError:
        raise InputError(f"unknown acquisition preset {name!r}; known: {sorted(PRESETS)}") from None
