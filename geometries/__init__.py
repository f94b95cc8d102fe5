"""Scan geometries for CT and sampling patterns for MRI: pure value objects (numpy only).

All lengths are in millimetres and angles in radians, with ASTRA's conventions. Nothing here
imports torch or ASTRA at import time.

Examples
--------
>>> import geometries as geo
>>> g = geo.preset("msl-paper", image_size=256, n_views=64)
>>> g.sino_shape
(64, 428)
>>> m = geo.CartesianMask(shape=(256, 256), acceleration=4, center_fraction=0.08, seed=0)
>>> m.achieved_acceleration
4.0
"""

from ._ct import CTGeometry, FanBeam2D, ParallelBeam2D, geometry_from_dict
from ._mri import GOLDEN_ANGLE, CartesianMask, RadialTrajectory, sampling_from_dict
from .presets import preset, presets

__all__ = [
    "GOLDEN_ANGLE",
    "CTGeometry",
    "CartesianMask",
    "FanBeam2D",
    "ParallelBeam2D",
    "RadialTrajectory",
    "geometry_from_dict",
    "preset",
    "presets",
    "sampling_from_dict",
]
