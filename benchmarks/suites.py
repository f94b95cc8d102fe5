"""Benchmark suites: sizes, wall-time budgets, seeds and test sets of each named run.

Protocol (every suite): subjects are split into train / validation / test; every choice
(configs, switches, learning rates, CS weights, checkpoints, MLEM iterations) is made on the
validation subjects; the test subjects are scored once per method. Every learned method gets
the same training wall time (``budget_s``) on the same machine, at a learning rate chosen from
``lr_grid`` by a short run (``lr_budget_s``) scored on validation.
"""

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
    n_train, n_val, n_test : int
        Phantom subjects of each split of the main dataset (splits are by subject).
    n_slices : int
        Axial slices per subject.
    acq_preset : str
        Acquisition preset (``"paper"`` or ``"clinical"``, see :mod:`benchmarks.acquisition`).
    n_views, acceleration, center_fraction
        Acquisition of the main dataset (the paper's 64 views + 1/4 mask, centre 0.1).
    config : str
        MSL configuration (``tiny``, ``small`` or ``paper``).
    batch_size : int
    budget_s : float
        Training wall time (s) of every learned method in the main comparisons.
    seed_budget_s : float
        Training wall time (s) of each model of the multi-seed experiments.
    seeds : int
        Training seeds of the cross-modal and single-modality experiments.
    lr_budget_s : float
        Wall time (s) of each short learning-rate trial.
    lr_grid_msl, lr_grid_cnn : tuple of float
        Learning rates tried for MSL and for the CNN baselines.
    checkpoints : int
        Checkpoints kept along an MSL run (the best on validation is used).
    p2p_base, df_base, cnn_base : int
        Base channel counts of pix2pix, DeepFusion and FBPConvNet.
    cs_max_iter : int
        PDHG iteration cap of the CS baselines (they stop earlier on convergence).
    cs_val_slices : int
        Validation slices of the CS weight search.
    cs_methods : tuple of str
        CS baselines of the main table (``tv``, ``jtv``, ``dtv``).
    cs_methods_clinical : tuple of str or None
        CS baselines on ``clinical`` data (None: ``cs_methods``). Measured on the shared 2-core
        CPU, 2 slices of 96², 1000 PDHG iterations: 12-coil SENSE-TV ≈ 4 s, joint TV ≈ 12 s,
        CT TV ≈ 2.3 s (it converges in ≈ 340 iterations).
    cs_jtv_beta : tuple of float
        Joint-TV β candidates (one value: β fixed, only μ searched).
    cs_one_per_subject : bool
        Score the CS methods of the main table on one slice of every test subject (with MSL
        on the same slices) instead of every test slice (their cost on a CPU).
    cs_robustness : tuple of str
        CS methods (``tv``, ``jtv``, ``dtv``) also run at the sparser acquisitions of Fig. 7.
    val_slices : int
        Validation slices of checkpoint / learning-rate / MLEM choices.
    ood_subjects, pet_subjects : int
        Test subjects of the out-of-distribution set; subjects of the PET set (same split
        fractions as the main set).
    """

    name: str
    image_size: int
    n_train: int
    n_val: int
    n_test: int
    n_slices: int
    acq_preset: str = "clinical"
    n_views: int = 64
    acceleration: float = 4.0
    center_fraction: float = 0.1
    config: str = "small"
    batch_size: int = 4
    budget_s: float = 100.0
    seed_budget_s: float = 40.0
    seeds: int = 3
    lr_budget_s: float = 20.0
    lr_grid_msl: tuple[float, ...] = (3e-4, 1e-3)
    lr_grid_cnn: tuple[float, ...] = (2e-4, 1e-3)
    checkpoints: int = 4
    p2p_base: int = 16
    df_base: int = 16
    cnn_base: int = 16
    cs_max_iter: int = 1000
    cs_val_slices: int = 4
    cs_methods: tuple[str, ...] = ("tv", "jtv", "dtv")
    cs_methods_clinical: tuple[str, ...] | None = None
    cs_jtv_beta: tuple[float, ...] = (0.5, 1.0, 2.0)
    cs_one_per_subject: bool = False
    cs_robustness: tuple[str, ...] = ("tv", "jtv", "dtv")
    val_slices: int = 8
    ood_subjects: int = 10
    pet_subjects: int = 30
    seed: int = 0

    @property
    def n_subjects(self) -> int:
        """Subjects of the main dataset."""
        return self.n_train + self.n_val + self.n_test

    @property
    def cs_active(self) -> tuple[str, ...]:
        """The CS baselines run on this suite's acquisition preset."""
        if self.acq_preset != "paper" and self.cs_methods_clinical is not None:
            return self.cs_methods_clinical
        return self.cs_methods

    @property
    def fractions(self) -> tuple[float, float, float]:
        """Train / validation / test fractions of the main dataset's subjects."""
        n = self.n_subjects
        return (self.n_train / n, self.n_val / n, self.n_test / n)

    def to_dict(self) -> dict:
        """Plain dict (recorded in results.json)."""
        return dataclasses.asdict(self)


SUITES: dict[str, Suite] = {
    # a few seconds of everything: used by the tests of the runner
    "micro": Suite(
        name="micro",
        image_size=32,
        n_train=3,
        n_val=2,
        n_test=2,
        n_slices=2,
        n_views=16,
        config="tiny",
        batch_size=2,
        budget_s=1.0,
        seed_budget_s=0.5,
        seeds=2,
        lr_budget_s=0.3,
        checkpoints=2,
        p2p_base=8,
        df_base=8,
        cnn_base=4,
        cs_max_iter=5,
        cs_val_slices=1,
        val_slices=2,
        ood_subjects=2,
        pet_subjects=6,
    ),
    # ≈ 55–65 min on a quiet 2-core CPU with the clinical preset (budgets ≈ 37 min + overheads,
    # CS ≈ 6 min: weights on one validation slice, then one slice of each test subject, main
    # table and the four sparser acquisitions of Fig. 7).
    "quick": Suite(
        name="quick",
        image_size=96,
        n_train=40,
        n_val=10,
        n_test=10,
        n_slices=2,
        budget_s=90.0,
        seed_budget_s=35.0,
        lr_budget_s=12.0,
        cs_max_iter=2000,  # the clinical MR and joint-TV solves did not meet the 1e-4 rule by 1000
        cs_one_per_subject=True,
        cs_val_slices=1,
        # β balances the MR gradient in the joint norm; fixed at 1, joint TV's MRI was worse
        # than zero-filled on clinical data (one μ set by CT): a grid, widened until interior
        # like μ, lets validation balance the two modalities (chose 3 on clinical data)
        cs_jtv_beta=(0.3, 1.0, 3.0),
        cs_methods=("tv", "jtv"),  # DTV: ~3× JTV's cost; in the paper suite
        # 12-coil SENSE TV ≈ 4 s and joint TV ≈ 12 s per 1000-iteration solve of 2 slices
        # (sampled k-space only, one thread: msl_recon.baselines._kspace / ._speed). Measured on
        # clinical 96² data: weights (1 validation slice) 26 s + main-table solves (10 slices)
        # 62 s; Fig. 7 adds ≈ 4 × 60 s. DTV (6 solves per reconstruction) would add ≈ 2 min.
        cs_methods_clinical=("tv", "jtv"),
        cs_robustness=("tv", "jtv"),
        val_slices=8,
        ood_subjects=10,
        pet_subjects=36,  # 6 test subjects
    ),
    # the paper's scale: for a GPU
    "paper": Suite(
        name="paper",
        image_size=384,
        n_train=60,
        n_val=10,
        n_test=10,
        n_slices=28,
        config="paper",
        batch_size=4,
        budget_s=12 * 3600.0,
        seed_budget_s=4 * 3600.0,
        lr_budget_s=1800.0,
        lr_grid_msl=(1e-4, 3e-4, 1e-3),
        lr_grid_cnn=(1e-4, 2e-4, 1e-3),
        checkpoints=8,
        p2p_base=64,
        df_base=64,
        cnn_base=32,
        cs_max_iter=1000,
        cs_val_slices=8,
        val_slices=32,
        ood_subjects=10,
        pet_subjects=40,
    ),
}


def get_suite(name: str, **overrides: object) -> Suite:
    """The suite called ``name``, with optional field overrides (e.g. ``acq_preset``)."""
    try:
        suite = SUITES[name]
    except KeyError:
        raise SystemExit(f"error: unknown suite {name!r}; choose one of {sorted(SUITES)}") from None
    overrides = {k: v for k, v in overrides.items() if v is not None}
    return dataclasses.replace(suite, **overrides) if overrides else suite
