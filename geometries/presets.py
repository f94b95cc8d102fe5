"""Scanner-matched CT geometry presets.

Each preset fixes the physical scanner (distances, detector) and the reconstructed field of view;
``image_size`` only sets the pixel size (``fov / image_size``) and, by default, scales the detector
bin count so that bins stay as fine relative to the pixels as in the reference set-up.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from ._ct import CTGeometry, FanBeam2D, ParallelBeam2D

__all__ = ["preset", "presets"]


@dataclass(frozen=True)
class _Preset:
    name: str
    summary: str
    build: Callable[[int, int | None, int | None], CTGeometry]


def _msl_paper(image_size: int, n_views: int | None, det_count: int | None) -> CTGeometry:
    # Authors' set-up (ODL + ASTRA, pixel units): 384² image with 0.369 mm pixels, 640 bins
    # spanning 2√2 × the image side, source and detector 1075 px from the isocentre, 64 views.
    fov = 384 * 0.369
    px = fov / image_size
    n_det = _even(640 * image_size / 384) if det_count is None else det_count
    width = 2 * math.sqrt(2) * fov
    return FanBeam2D(
        image_size=image_size,
        pixel_size=px,
        det_count=n_det,
        det_spacing=width / n_det,
        source_origin=1075 * 0.369,
        origin_detector=1075 * 0.369,
        n_views=64 if n_views is None else n_views,
    )


def _siemens_definition_as(
    image_size: int, n_views: int | None, det_count: int | None
) -> FanBeam2D:
    # Diagnostic helical CT (Siemens SOMATOM Definition AS/Flash class) as recorded in the
    # DICOM-CT-PD headers of the AAPM/Mayo "LDCT and Projection Data" collection (TCIA):
    # source-isocentre 595 mm, source-detector 1085.6 mm, 736 detector channels with
    # 1.2858 mm pitch (on the curved detector), 1152 views per rotation. Flattened here: the
    # flat detector keeps the channel count and the fan angle of the curved arc.
    sdd, sod = 1085.6, 595.0
    fan_half = 736 * 1.2858 / 2 / sdd  # arc length / radius = half fan angle
    flat_width = 2 * sdd * math.tan(fan_half)
    n_det = 736 if det_count is None else det_count
    fov = 250.0  # head reconstruction field of view, mm
    return FanBeam2D(
        image_size=image_size,
        pixel_size=fov / image_size,
        det_count=n_det,
        det_spacing=flat_width / n_det,
        source_origin=sod,
        origin_detector=sdd - sod,
        n_views=1152 if n_views is None else n_views,
    )


def _varian_obi(image_size: int, n_views: int | None, det_count: int | None) -> FanBeam2D:
    # Linac-mounted kV imager (Varian TrueBeam OBI, PaxScan 4030CB flat panel): source-axis
    # 1000 mm, source-imager 1500 mm, 397 mm panel width read out as 1024 pixels of
    # 0.388 mm (binned 2×2 to 512 × 0.776 mm for CBCT). Full-fan head mode, the central row.
    sdd, sod = 1500.0, 1000.0
    width = 397.3
    n_det = 512 if det_count is None else det_count
    fov = 256.0  # full-fan head field of view at the isocentre is about 262 mm
    return FanBeam2D(
        image_size=image_size,
        pixel_size=fov / image_size,
        det_count=n_det,
        det_spacing=width / n_det,
        source_origin=sod,
        origin_detector=sdd - sod,
        n_views=900 if n_views is None else n_views,
    )


def _parallel_msl(image_size: int, n_views: int | None, det_count: int | None) -> ParallelBeam2D:
    # Parallel-beam counterpart of msl-paper (same field of view; detector covers the diagonal).
    fov = 384 * 0.369
    px = fov / image_size
    n_det = _even(math.sqrt(2) * image_size) + 2 if det_count is None else det_count
    return ParallelBeam2D(
        image_size=image_size,
        pixel_size=px,
        det_count=n_det,
        det_spacing=px,
        n_views=64 if n_views is None else n_views,
    )


def _pet_biograph_mct(
    image_size: int, n_views: int | None, det_count: int | None
) -> ParallelBeam2D:
    # One direct plane of a Siemens Biograph mCT PET ring (see geometries/pet.py): 168 views
    # over 180°, 2.0364 mm radial bins, over the phantom's 220 mm head field of view.
    from .pet import biograph_mct

    return biograph_mct(image_size, fov_mm=220.0, n_views=n_views, det_count=det_count)


def _even(x: float) -> int:
    n = int(round(x))
    return n + (n % 2)


_PRESETS: dict[str, _Preset] = {
    p.name: p
    for p in (
        _Preset(
            "msl-paper",
            "the MSL authors' fan beam: 141.7 mm FOV, SOD=ODD=396.7 mm, 64 views",
            _msl_paper,
        ),
        _Preset(
            "siemens-definition-as",
            "diagnostic CT: SOD 595 mm, SDD 1085.6 mm, 736 channels, 1152 views, 250 mm FOV",
            _siemens_definition_as,
        ),
        _Preset(
            "varian-obi",
            "linac kV imager: SAD 1000 mm, SID 1500 mm, 397 mm panel, 900 views, 256 mm FOV",
            _varian_obi,
        ),
        _Preset(
            "parallel-msl",
            "parallel beam over [0, π) with the msl-paper field of view",
            _parallel_msl,
        ),
        _Preset(
            "pet-biograph-mct",
            "PET ring plane (Siemens Biograph mCT): parallel beam, 168 views, 2.04 mm bins, "
            "220 mm FOV",
            _pet_biograph_mct,
        ),
    )
}


def presets() -> dict[str, str]:
    """Names of the available presets with a one-line description each."""
    return {name: p.summary for name, p in _PRESETS.items()}


def preset(
    name: str,
    *,
    image_size: int = 256,
    n_views: int | None = None,
    det_count: int | None = None,
) -> CTGeometry:
    """Scanner-matched geometry by name.

    Parameters
    ----------
    name : str
        One of :func:`presets` (``msl-paper``, ``siemens-definition-as``, ``varian-obi``,
        ``parallel-msl``, ``pet-biograph-mct``).
    image_size : int
        Image side N in pixels; the field of view in mm is fixed by the preset.
    n_views : int, optional
        Views over the preset's scan arc (default: the preset's own count).
    det_count : int, optional
        Detector bins (default: the preset's, scaled with ``image_size`` where noted).

    Sources
    -------
    ``msl-paper``: the authors' public code (HKU-MedAI/MSL) and paper §3.1.
    ``siemens-definition-as``: DICOM-CT-PD headers of the AAPM/Mayo LDCT and Projection Data
    collection (McCollough et al., Med. Phys. 2017; TCIA), Siemens SOMATOM Definition AS.
    ``varian-obi``: Varian TrueBeam OBI/PaxScan 4030CB specifications (SAD 100 cm, SID 150 cm,
    40 × 30 cm panel, 0.388 mm pitch).
    ``pet-biograph-mct``: :func:`geometries.pet.biograph_mct` (Jakoby et al., Phys. Med. Biol.
    2011; CASToR's mCT scanner file); any pixel size via that function.
    """
    try:
        p = _PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(_PRESETS)}") from None
    if not isinstance(image_size, int) or image_size <= 0:
        raise ValueError(f"image_size must be a positive integer, got {image_size!r}")
    return p.build(image_size, n_views, det_count)
