"""Clinical PET ring as a 2D parallel-beam geometry (one direct plane of a Siemens Biograph mCT).

A PET ring measures coincidences along lines of response (LORs) between crystal pairs; after arc
correction and view mashing one transaxial plane is a parallel-beam sinogram over ``[0, π)``.
The numbers below describe the Siemens Biograph mCT:

* 48 detector blocks × 13 LSO crystals of 4 × 4 × 20 mm per ring (624 crystals, ring radius
  ≈ 427.6 mm), one virtual gap crystal per block → 672 positions, i.e. 336 views over 180°,
  mashed by 2 to the vendor's 168 views (the e7-tools sinogram format 400 × 168 × 621);
* 400 radial bins over a 814.566 mm transaxial extent: bin width 2.0364 mm (half the crystal
  pitch, the interleaved LOR sampling).

Sources: Jakoby et al., "Physical and clinical performance of the mCT time-of-flight PET/CT
scanner", Phys. Med. Biol. 56:2375 (2011); the Biograph mCT scanner description shipped with the
CASToR reconstruction platform (``PET_SIEMENS_BIOGRAPH_MCT.geom``: 48 sectors × 13 crystals,
4 mm crystals, radius 427.6 mm, transaxial field 814.566 mm for 400 bins).

Only the bins whose LORs cross the reconstructed square are kept (``det_count`` covers its
diagonal): outside it there is neither activity nor attenuation in a simulated slice.
"""

from __future__ import annotations

import math

from ._ct import ParallelBeam2D

__all__ = ["MCT_BIN_MM", "MCT_CRYSTAL_MM", "MCT_N_VIEWS", "MCT_RING_RADIUS_MM", "biograph_mct"]

#: Radial bin width of the mCT sinogram, mm (814.566 mm / 400 bins).
MCT_BIN_MM = 814.566 / 400
#: Transaxial crystal size, mm.
MCT_CRYSTAL_MM = 4.0
#: Views over 180° of the mashed mCT sinogram.
MCT_N_VIEWS = 168
#: Ring radius to the crystal faces, mm.
MCT_RING_RADIUS_MM = 427.6


def biograph_mct(
    image_size: int,
    *,
    pixel_size: float | None = None,
    fov_mm: float = 220.0,
    n_views: int | None = None,
    det_count: int | None = None,
    det_spacing: float = MCT_BIN_MM,
) -> ParallelBeam2D:
    """One direct plane of a Siemens Biograph mCT as a :class:`ParallelBeam2D`.

    Parameters
    ----------
    image_size : int
        Image side N in pixels.
    pixel_size : float, optional
        Pixel side in mm; default ``fov_mm / image_size``.
    fov_mm : float
        Reconstructed field of view in mm when ``pixel_size`` is not given (default 220 mm, the
        head field of the digital phantom).
    n_views : int, optional
        Views over ``[0, π)`` (default 168, the mCT's mashed sinogram).
    det_count : int, optional
        Radial bins (default: the even number of 2.0364 mm bins that covers the image diagonal;
        the full mCT sinogram has 400).
    det_spacing : float
        Radial bin width in mm (default the mCT's 2.0364 mm).

    Returns
    -------
    ParallelBeam2D
    """
    if not isinstance(image_size, int) or image_size <= 0:
        raise ValueError(f"image_size must be a positive integer, got {image_size!r}")
    if pixel_size is None:
        if not fov_mm > 0:
            raise ValueError(f"fov_mm must be positive, got {fov_mm!r}")
        pixel_size = fov_mm / image_size
    if det_count is None:
        n = math.ceil(image_size * pixel_size * math.sqrt(2.0) / det_spacing)
        det_count = n + (n % 2)
    return ParallelBeam2D(
        image_size=image_size,
        pixel_size=pixel_size,
        det_count=det_count,
        det_spacing=det_spacing,
        n_views=n_views or MCT_N_VIEWS,
    )
