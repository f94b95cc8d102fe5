"""Benchmark suites: sizes, training lengths and test sets of each named run."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

__all__ = ["SUITES", "Suite", "get_suite"]


@dataclass(frozen=True)
class Suite:
    """Everything that sets the scale of a benchmark run.

    Attributes
    ----------
    name : str
    image_size : int
        Image side N (pixels).
    n_subjects, n_slices : int
        Phantom subjects and axial slices per subject of the main dataset.
    fractions : (float, float, float)
        Train/val/test fractions of subjects (splits are by subject).
    preset, n_views, acceleration, center_fraction
        Acquisition of the main dataset (the paper's 64 views + 1/4 mask, centre 0.1, fixed mask).
    config : str
        MSL configuration (``small`` or ``paper``).
    iters_main : int
        Training iterations of the main CT+MRI model (64c + 1/4m).
    iters_aux : int
        Training iterations of the auxiliary models (T1+T2, single-modality ablations,
        random-view models of the cross-modal-gain experiment).
    batch_size : int
    p2p_iters, df_iters : int
        Training iterations of pix2pix (each direction) and DeepFusion.
    p2p_base, df_base : int
        Base channel counts of the pix2pix and DeepFusion networks.
    cs_iters : int
        PDHG iterations of the compressed-sensing baselines.
    cs_val_slices : int
        Validation slices of the regularisation-weight grid search.
    max_test_slices : int or None
        Cap on test slices (None: all).
    progress_points : int
        Checkpoints along training evaluated by the cross-modal-gain experiment.
    ood_subjects : int
        Subjects of the out-of-distribution phantom test set.
    """

    name: str
    image_size: int
    n_subjects: int
    n_slices: int
    fractions: tuple[float, float, float] = (0.6, 0.2, 0.2)
    preset: str = "msl-paper"
    n_views: int = 64
    acceleration: float = 4.0
    center_fraction: float = 0.1
    config: str = "small"
    iters_main: int = 2000
    iters_aux: int = 600
    batch_size: int = 4
    p2p_iters: int = 600
    df_iters: int = 600
    p2p_base: int = 32
    df_base: int = 32
    cs_iters: int = 200
    cs_val_slices: int = 4
    max_test_slices: int | None = None
    progress_points: int = 4
    ood_subjects: int = 2
    seed: int = 0

    def to_dict(self) -> dict:
        """Plain dict (recorded in results.json)."""
        return dataclasses.asdict(self)


SUITES: dict[str, Suite] = {
    # a few seconds of everything: used by the tests of the runner
    "micro": Suite(
        name="micro",
        image_size=32,
        n_subjects=5,
        n_slices=2,
        iters_main=3,
        iters_aux=2,
        batch_size=2,
        p2p_iters=2,
        df_iters=2,
        p2p_base=8,
        df_base=8,
        cs_iters=5,
        cs_val_slices=1,
        max_test_slices=2,
        progress_points=2,
        ood_subjects=1,
        n_views=16,
        config="tiny",
    ),
    # about an hour on a 2-core CPU
    "quick": Suite(
        name="quick",
        image_size=128,
        n_subjects=10,
        n_slices=8,
        iters_main=1500,
        iters_aux=400,
        p2p_iters=500,
        df_iters=500,
        cs_iters=150,
        cs_val_slices=4,
        max_test_slices=16,
    ),
    # the paper's scale: for a GPU
    "paper": Suite(
        name="paper",
        image_size=384,
        n_subjects=20,
        n_slices=28,
        fractions=(0.75, 0.125, 0.125),
        config="paper",
        iters_main=100_000,
        iters_aux=100_000,
        p2p_iters=100_000,
        df_iters=100_000,
        p2p_base=64,
        df_base=64,
        cs_iters=500,
        cs_val_slices=8,
        max_test_slices=None,
        progress_points=5,
        ood_subjects=4,
    ),
}


def get_suite(name: str) -> Suite:
    """The suite called ``name``."""
    try:
        return SUITES[name]
    except KeyError:
        raise SystemExit(f"error: unknown suite {name!r}; choose one of {sorted(SUITES)}") from None
