"""The paper's experiments (§3), each a function ``run(ctx) -> result dict``.

A result holds ``tables`` (name -> list of row dicts; tables of paired 95 % CIs over test
subjects next to the metric tables), ``scores`` (per-slice and per-subject values),
``figures`` (paths relative to the run directory) and ``notes``. Every method sees the same
held-out test subjects and the same metrics; every choice is made on validation.

Modules: :mod:`.quality` (0, 0b), :mod:`.lambdas` (1, 9), :mod:`.main_table` (2),
:mod:`.sampling` (3, 4), :mod:`.mri` (5, 8), :mod:`.registration` (6), :mod:`.ood` (7),
:mod:`.pet` (11), :mod:`.cost` (10).
"""

from __future__ import annotations

from collections.abc import Callable

from .cost import cost
from .lambdas import lambda_maps, lambda_sweep
from .main_table import main_table
from .mri import mri_only, t1_t2
from .ood import out_of_distribution
from .pet import pet
from .quality import small_ablation, training_quality
from .registration import registration
from .sampling import cross_modal_gain, sampling_robustness

__all__ = ["EXPERIMENTS"]

EXPERIMENTS: dict[str, Callable[..., dict]] = {
    "small_ablation": small_ablation,
    "training_quality": training_quality,
    "lambda_sweep": lambda_sweep,
    "main_table": main_table,
    "cross_modal_gain": cross_modal_gain,
    "sampling_robustness": sampling_robustness,
    "mri_only": mri_only,
    "registration": registration,
    "out_of_distribution": out_of_distribution,
    "t1_t2": t1_t2,
    "lambda_maps": lambda_maps,
    "pet": pet,
    "cost": cost,
}
