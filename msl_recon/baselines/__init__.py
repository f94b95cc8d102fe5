"""Baselines of the benchmark suite (paper §3): the methods MSL is compared with.

- :mod:`.analytic`: FBP and zero-filled / DCF-adjoint MRI, the "sparse" images.
- :mod:`.pdhg`: a generic batched PDHG (Chambolle–Pock) solver over our linear operators.
- :mod:`.cs`: single-modality TV reconstruction (CT and MRI).
- :mod:`.joint`: compressed-sensing joint CT–MRI reconstruction (joint TV, directional TV).
- :mod:`.selection`: validation choice of regularisation weights, widening edge optima.
- :mod:`.pix2pix`: U-Net + PatchGAN image translation (MRI → CT, CT → MRI).
- :mod:`.deepfusion`: two encoder–decoders plus pixel-wise fusion.
- :mod:`.fusion`: FUSION, pixel-wise weighted fusion across λ (of reconstructed images).
- :mod:`.fbpconvnet`: FBPConvNet, residual U-Net post-processing of FBP (CT).
- :mod:`.lpd`: Learned Primal-Dual unrolled over the ray transform (CT).
- :mod:`.modl`: MoDL, CNN denoiser + CG data consistency (Cartesian / SENSE MRI).
- :mod:`._train`: the time-budgeted training loop of the learned reconstructions.
- :mod:`.mlem`: MLEM / OSEM for PET (Poisson likelihood with a known background).

The deep-learning modules import torch.nn only; nothing here imports ASTRA at import time.
"""

from .analytic import fbp_image, sparse_image, sparse_images, zero_filled_image
from .cs import DEFAULT_MAX_ITER, DEFAULT_TOL, tv_ct, tv_mri, tv_reconstruct
from .deepfusion import DeepFusion, deepfusion_inputs
from .fbpconvnet import FBPConvNet, reconstruct_fbpconvnet, train_fbpconvnet
from .fusion import fuse, fuse_many, fuse_sweep, shift_image
from .joint import (
    DEFAULT_GRIDS,
    JointResult,
    choose_weights,
    dtv_reconstruct,
    guide_field,
    joint_tv_reconstruct,
)
from .lpd import LearnedPrimalDual, reconstruct_lpd, train_lpd
from .mlem import MLEMResult, mlem, poisson_log_likelihood
from .modl import MoDL, cg_solve, reconstruct_modl, train_modl
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
    "FBPConvNet",
    "JointResult",
    "LearnedPrimalDual",
    "MLEMResult",
    "MoDL",
    "PDHGResult",
    "PatchDiscriminator",
    "Pix2Pix",
    "UNet",
    "WeightSelection",
    "box_prox",
    "cg_solve",
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
    "reconstruct_fbpconvnet",
    "reconstruct_lpd",
    "reconstruct_modl",
    "rmse_score",
    "select_weights",
    "shift_image",
    "sparse_image",
    "sparse_images",
    "train_fbpconvnet",
    "train_lpd",
    "train_modl",
    "translation_pair",
    "tv_ct",
    "tv_mri",
    "tv_reconstruct",
    "tv_term",
    "zero_filled_image",
]
