"""Baselines of the benchmark suite (paper §3): the methods MSL is compared with.

- :mod:`.analytic`: FBP and zero-filled / DCF-adjoint MRI, the "sparse" images.
- :mod:`.pdhg`: a generic batched PDHG (Chambolle–Pock) solver over our linear operators.
- :mod:`.cs`: single-modality TV reconstruction (CT and MRI).
- :mod:`.joint`: compressed-sensing joint CT–MRI reconstruction (joint TV, directional TV) and
  the validation grid search of regularisation weights.
- :mod:`.pix2pix`: U-Net + PatchGAN image translation (MRI → CT, CT → MRI).
- :mod:`.deepfusion`: two encoder–decoders plus pixel-wise fusion.
- :mod:`.fusion`: FUSION, pixel-wise weighted fusion across λ.
- :mod:`.mlem`: MLEM / OSEM for PET (Poisson likelihood with a known background).

The deep-learning modules import torch.nn only; nothing here imports ASTRA at import time.
"""

from .analytic import fbp_image, sparse_image, sparse_images, zero_filled_image
from .cs import tv_ct, tv_mri, tv_reconstruct
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
from .mlem import MLEMResult, mlem, poisson_log_likelihood
from .pdhg import DualTerm, PDHGResult, box_prox, l2_data_term, pdhg, tv_term
from .pix2pix import PatchDiscriminator, Pix2Pix, receptive_field, translation_pair
from .unet import UNet

__all__ = [
    "DEFAULT_GRIDS",
    "DeepFusion",
    "DualTerm",
    "JointResult",
    "MLEMResult",
    "PDHGResult",
    "PatchDiscriminator",
    "Pix2Pix",
    "UNet",
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
    "mlem",
    "pdhg",
    "poisson_log_likelihood",
    "receptive_field",
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
