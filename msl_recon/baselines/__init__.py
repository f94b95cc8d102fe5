"""Baselines of the benchmark suite (paper §3): the methods MSL is compared with.

- :mod:`.analytic`: FBP and zero-filled / DCF-adjoint MRI, the "sparse" images.
- :mod:`.pdhg`: a generic batched PDHG (Chambolle–Pock) solver over our linear operators.
- :mod:`.cs`: single-modality TV reconstruction (CT and MRI).
- :mod:`.joint`: compressed-sensing joint CT–MRI reconstruction (joint TV, directional TV).
- :mod:`.selection`: validation choice of regularisation weights, widening edge optima.
- :mod:`.pix2pix`: U-Net + PatchGAN image translation (MRI → CT, CT → MRI).
- :mod:`.deepfusion`: two encoder–decoders plus pixel-wise fusion.
- :mod:`.fusion`: FUSION, pixel-wise weighted fusion across λ.

The deep-learning modules import torch.nn only; nothing here imports ASTRA at import time.
"""

from .analytic import fbp_image, sparse_image, sparse_images, zero_filled_image
from .cs import DEFAULT_MAX_ITER, DEFAULT_TOL, tv_ct, tv_mri, tv_reconstruct
from .deepfusion import DeepFusion, deepfusion_inputs
from .fusion import fuse, fuse_many, fuse_sweep, shift_image
from .joint import (
    DEFAULT_GRIDS,
    JointResult,
    choose_weights,
    dtv_reconstruct,
    guide_field,
    joint_tv_reconstruct,
)
from .pdhg import DualTerm, PDHGResult, box_prox, l2_data_term, pdhg, tv_term
from .pix2pix import PatchDiscriminator, Pix2Pix, receptive_field, translation_pair
from .selection import WeightSelection, rmse_score, select_weights
from .unet import UNet

__all__ = [
    "DEFAULT_GRIDS",
    "DEFAULT_MAX_ITER",
    "DEFAULT_TOL",
    "DeepFusion",
    "DualTerm",
    "JointResult",
    "PDHGResult",
    "PatchDiscriminator",
    "Pix2Pix",
    "UNet",
    "WeightSelection",
    "box_prox",
    "choose_weights",
    "deepfusion_inputs",
    "dtv_reconstruct",
    "fbp_image",
    "fuse",
    "fuse_many",
    "fuse_sweep",
    "guide_field",
    "joint_tv_reconstruct",
    "l2_data_term",
    "pdhg",
    "receptive_field",
    "rmse_score",
    "select_weights",
    "shift_image",
    "sparse_image",
    "sparse_images",
    "translation_pair",
    "tv_ct",
    "tv_mri",
    "tv_reconstruct",
    "tv_term",
    "zero_filled_image",
]
