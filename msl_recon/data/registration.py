"""Affine CT–MR registration as in the MSL paper, and resampling onto a common grid.

The paper registers each MR volume (moving) to its CT (fixed) with an affine transform, Mattes
mutual information, random sampling of 1 % of the voxels, and gradient descent (learning rate
1.0, 100 iterations). :func:`register_affine` keeps those settings and makes every implicit
choice explicit:

* **Physical units.** The optimiser scales come from physical shifts
  (``SetOptimizerScalesFromPhysicalShift``): a step of length 1 moves voxels by about 1 mm,
  whether it changes a translation or a matrix entry.
* **Learning rate.** SimpleITK's plain gradient descent re-estimates the learning rate by default
  (``estimateLearningRate=Once``), which silently replaced the configured 1.0 by 20–56; with a
  fixed 1.0 the plain descent hardly moves (MI gradients are ~1e-2 per mm), and with the
  estimate its convergence check stops it after ~10 iterations while the metric oscillates
  (measured: 1.4–4.9 mm residual on a 6 mm misalignment). The default optimiser is therefore
  *regular-step* gradient descent: the learning rate 1.0 is the first step length in mm, halved
  whenever the gradient reverses, no estimation (``estimate_learning_rate='never'``).
  ``optimizer='gradient'`` runs SimpleITK's plain gradient descent with the estimation mode you
  pass explicitly.
* **Initial transform.** The best (lowest metric) of the header alignment (identity), the
  geometry-centred and the moments-centred transforms.
* **Multi-resolution.** Shrink factors 4, 2, 1 with Gaussian smoothing 3, 1, 0 voxels; the
  sampling fraction is the paper's 1 % at full resolution and at least ``min_samples`` voxels
  at the coarse levels (1 % of a 4× shrunk volume is too few points for a stable metric).
* **Best iterate.** Regular-step descent takes fixed-length steps, so its last position need not
  be its best; the best full-resolution iterate is returned when it evaluates better.
* **Reported.** Metric before and after (same sampling), iterations, stop condition and the
  transform; ``worsened`` when the registration ends worse than it started.

Measured on the MNI152 T1 (2 mm) against a CT-like volume, 4.8° + 5 mm misalignment (6.0 mm mean
displacement over the head): residual 0.56 mm when the misalignment sits in the MR header as
oblique direction cosines, 0.40 mm when resampled into the voxels, 0.38 mm for an aligned
oblique MR (the previous settings: 1.38, 1.30 and 0.97 mm).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "RegistrationResult",
    "metric_value",
    "register_affine",
    "resample_like",
    "transform_error_mm",
]


@dataclass
class RegistrationResult:
    """Outcome of :func:`register_affine`.

    Attributes
    ----------
    transform : SimpleITK.Transform
        Maps fixed (CT) physical points to moving (MR) physical points.
    metric : float
        Final Mattes MI metric value (negative; lower is better), evaluated after the run on a
        fixed random sample of max(1 %, ``min_samples``) voxels.
    iterations : int
        Optimiser iterations run (summed over resolution levels).
    stop_condition : str
        The optimiser's stop reason (last level).
    initial_metric : float
        Metric of the chosen initial transform (same evaluation as ``metric``).
    initializer : str
        ``'header'``, ``'geometry'`` or ``'moments'``.
    settings : dict
        Every setting used (JSON-serialisable).
    """

    transform: Any
    metric: float
    iterations: int
    stop_condition: str
    initial_metric: float = float("nan")
    initializer: str = "geometry"
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def worsened(self) -> bool:
        """True when the final metric is worse (higher) than the initial one."""
        return bool(self.metric > self.initial_metric + 1e-4)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable summary (transform as its parameters and fixed parameters)."""
        return {
            "metric_initial": self.initial_metric,
            "metric_final": self.metric,
            "iterations": self.iterations,
            "stop_condition": self.stop_condition,
            "initializer": self.initializer,
            "worsened": self.worsened,
            "transform": self.transform.GetName(),
            "parameters": list(self.transform.GetParameters()),
            "fixed_parameters": list(self.transform.GetFixedParameters()),
            "settings": self.settings,
        }


def _method(histogram_bins: int, fraction: float | list[float], seed: int) -> Any:
    import SimpleITK as sitk

    reg = sitk.ImageRegistrationMethod()
    reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=histogram_bins)
    reg.SetMetricSamplingStrategy(reg.RANDOM)
    if isinstance(fraction, list):
        reg.SetMetricSamplingPercentagePerLevel(fraction, int(seed) + 1)
    else:
        reg.SetMetricSamplingPercentage(float(fraction), int(seed) + 1)
    reg.SetInterpolator(sitk.sitkLinear)
    return reg


def metric_value(
    fixed: Any,
    moving: Any,
    transform: Any,
    *,
    sampling_percentage: float = 0.01,
    histogram_bins: int = 50,
    seed: int = 0,
) -> float:
    """Mattes MI of ``moving`` through ``transform`` against ``fixed`` (lower is better)."""
    import SimpleITK as sitk

    reg = _method(histogram_bins, sampling_percentage, seed)
    reg.SetInitialTransform(transform)
    return float(
        reg.MetricEvaluate(sitk.Cast(fixed, sitk.sitkFloat32), sitk.Cast(moving, sitk.sitkFloat32))
    )


def register_affine(
    fixed: Any,
    moving: Any,
    *,
    sampling_percentage: float = 0.01,
    learning_rate: float = 1.0,
    iterations: int = 100,
    histogram_bins: int = 50,
    optimizer: str = "regular-step",
    estimate_learning_rate: str = "never",
    convergence_minimum: float | None = 1e-6,
    shrink_factors: tuple[int, ...] = (4, 2, 1),
    smoothing_sigmas: tuple[float, ...] = (3.0, 1.0, 0.0),
    min_samples: int = 20000,
    initializer: str = "best",
    seed: int = 0,
) -> RegistrationResult:
    """Affine registration of ``moving`` (MR) onto ``fixed`` (CT), the paper's settings.

    Parameters
    ----------
    fixed, moving : SimpleITK.Image
        3D volumes (any pixel type; cast to float32). Oblique direction cosines are honoured
        (everything happens in physical mm).
    sampling_percentage : float
        Fraction of voxels sampled at random for the metric at full resolution (paper: 0.01).
    learning_rate, iterations : float, int
        Paper: 1.0, 100 (iterations per resolution level). With ``optimizer='regular-step'`` the
        learning rate is the first step length in mm (optimiser scales from physical shifts).
    histogram_bins : int
        Bins of Mattes mutual information.
    optimizer : {'regular-step', 'gradient'}
        Regular-step gradient descent (default; robust) or SimpleITK's plain gradient descent.
    estimate_learning_rate : {'never', 'once', 'each'}
        Learning-rate estimation of the plain gradient descent (SimpleITK's default is 'once';
        here nothing is estimated unless asked). Ignored by 'regular-step'.
    convergence_minimum : float or None
        Plain gradient descent only: stop when the convergence value (slope of the metric over a
        window of 10 iterations) falls below this. ``None`` disables the check (the window is
        made longer than ``iterations``). Regular-step descent stops when its step falls
        below 1e-3 mm.
    shrink_factors, smoothing_sigmas : tuple
        Multi-resolution pyramid (smoothing in voxels of each level); ``(1,), (0,)`` for one
        level. Levels that would leave fewer than 16 voxels along an axis are skipped.
    min_samples : int
        Minimum metric samples at every level.
    initializer : {'best', 'header', 'geometry', 'moments'}
        Initial transform; 'best' takes the lowest metric of the three.
    seed : int
        Seed of the random metric sampling (reproducible results; ITK's seed is ``seed + 1``
        because ITK treats 0 as "seed from the wall clock").
    """
    import SimpleITK as sitk

    if optimizer not in ("regular-step", "gradient"):
        raise ValueError(f"optimizer must be 'regular-step' or 'gradient', got {optimizer!r}")
    est_modes = {"never": "Never", "once": "Once", "each": "EachIteration"}
    if estimate_learning_rate not in est_modes:
        raise ValueError(f"estimate_learning_rate must be one of {sorted(est_modes)}")
    if len(shrink_factors) != len(smoothing_sigmas):
        raise ValueError("shrink_factors and smoothing_sigmas need the same length")
    f = sitk.Cast(fixed, sitk.sitkFloat32)
    m = sitk.Cast(moving, sitk.sitkFloat32)
    dim = f.GetDimension()
    n_vox = float(np.prod(f.GetSize()))
    # metric evaluations (initial choice, before/after) on one fixed sample of ≥ min_samples
    kw = {
        "sampling_percentage": float(min(1.0, max(sampling_percentage, min_samples / n_vox))),
        "histogram_bins": histogram_bins,
        "seed": seed,
    }

    candidates: dict[str, Any] = {}
    if initializer in ("best", "header"):
        t = sitk.AffineTransform(dim)
        centre = np.asarray(
            f.TransformContinuousIndexToPhysicalPoint([(s - 1) / 2 for s in f.GetSize()])
        )
        t.SetCenter(centre.tolist())
        candidates["header"] = t
    modes = {
        "geometry": sitk.CenteredTransformInitializerFilter.GEOMETRY,
        "moments": sitk.CenteredTransformInitializerFilter.MOMENTS,
    }
    for name, mode in modes.items():
        if initializer in ("best", name):
            candidates[name] = sitk.AffineTransform(
                sitk.CenteredTransformInitializer(f, m, sitk.AffineTransform(dim), mode)
            )
    if not candidates:
        raise ValueError(f"unknown initializer {initializer!r}")
    scores = {k: metric_value(f, m, t, **kw) for k, t in candidates.items()}
    init_name = min(scores, key=lambda k: scores[k])
    init = candidates[init_name]

    # drop pyramid levels that would shrink the smallest axis below 16 voxels
    levels = [
        (k, sg)
        for k, sg in zip(shrink_factors, smoothing_sigmas, strict=True)
        if k == 1 or min(f.GetSize()) / k >= 16
    ] or [(1, 0.0)]
    shrink_factors = tuple(k for k, _ in levels)
    smoothing_sigmas = tuple(sg for _, sg in levels)
    fractions = [
        float(min(1.0, max(sampling_percentage, min_samples * s**dim / n_vox)))
        for s in shrink_factors
    ]
    reg = _method(histogram_bins, fractions, seed)
    if optimizer == "regular-step":
        reg.SetOptimizerAsRegularStepGradientDescent(
            learningRate=learning_rate,
            minStep=1e-3,
            numberOfIterations=iterations,
            relaxationFactor=0.5,
            gradientMagnitudeTolerance=1e-8,
        )
    else:
        window = 10 if convergence_minimum is not None else iterations + 1
        reg.SetOptimizerAsGradientDescent(
            learningRate=learning_rate,
            numberOfIterations=iterations,
            convergenceMinimumValue=convergence_minimum or 0.0,
            convergenceWindowSize=window,
            estimateLearningRate=getattr(reg, est_modes[estimate_learning_rate]),
        )
    reg.SetOptimizerScalesFromPhysicalShift()
    reg.SetShrinkFactorsPerLevel(list(shrink_factors))
    reg.SetSmoothingSigmasPerLevel(list(smoothing_sigmas))
    reg.SmoothingSigmasAreSpecifiedInPhysicalUnitsOff()
    reg.SetInitialTransform(init, inPlace=False)
    track: dict[str, Any] = {"n": 0, "best": (np.inf, None)}
    last_level = len(shrink_factors) - 1

    def on_iteration() -> None:
        track["n"] += 1
        if reg.GetCurrentLevel() == last_level and reg.GetMetricValue() < track["best"][0]:
            track["best"] = (reg.GetMetricValue(), tuple(reg.GetOptimizerPosition()))

    reg.AddCommand(sitk.sitkIterationEvent, on_iteration)
    out = reg.Execute(f, m)
    if isinstance(out, sitk.CompositeTransform) and out.GetNumberOfTransforms() == 1:
        out = out.GetNthTransform(0)
    out = sitk.AffineTransform(out) if out.GetName() == "AffineTransform" else out
    final = metric_value(f, m, out, **kw)
    returned = "final"
    # regular-step descent takes fixed-length steps, so its last position need not be its best:
    # return the best full-resolution iterate when it evaluates better than the last one
    if track["best"][1] is not None:
        best = sitk.AffineTransform(out)
        best.SetParameters(track["best"][1])
        best_metric = metric_value(f, m, best, **kw)
        if best_metric < final:
            out, final, returned = best, best_metric, "best full-resolution iterate"
    settings = {
        "transform": "affine",
        "metric": "mattes_mi",
        "histogram_bins": histogram_bins,
        "sampling": "random",
        "sampling_percentage": sampling_percentage,
        "sampling_per_level": fractions,
        "optimizer": optimizer,
        "learning_rate": learning_rate,
        "estimate_learning_rate": estimate_learning_rate if optimizer == "gradient" else "never",
        "scales": "physical_shift",
        "iterations_per_level": iterations,
        "shrink_factors": list(shrink_factors),
        "smoothing_sigmas_voxels": list(smoothing_sigmas),
        "seed": seed,
        "returned": returned,
    }
    return RegistrationResult(
        transform=out,
        metric=final,
        iterations=int(track["n"]),
        stop_condition=reg.GetOptimizerStopConditionDescription(),
        initial_metric=scores[init_name],
        initializer=init_name,
        settings=settings,
    )


def resample_like(
    image: Any,
    reference: Any,
    transform: Any | None = None,
    *,
    default: float = 0.0,
    interpolator: str = "linear",
) -> Any:
    """Resample ``image`` onto the grid of ``reference`` through ``transform`` (identity if None).

    ``transform`` maps reference physical points to ``image`` physical points (the output of
    :func:`register_affine`). Points outside ``image`` get ``default``.
    """
    import SimpleITK as sitk

    interp = {"linear": sitk.sitkLinear, "nearest": sitk.sitkNearestNeighbor}[interpolator]
    tx = (
        transform
        if transform is not None
        else sitk.Transform(reference.GetDimension(), sitk.sitkIdentity)
    )
    return sitk.Resample(image, reference, tx, interp, float(default), image.GetPixelID())


def transform_error_mm(
    estimated: Any, true: Any, reference: Any, mask: np.ndarray | None = None
) -> tuple[float, float]:
    """Mean and max distance in mm between two transforms over the voxels of ``reference``.

    Parameters
    ----------
    estimated, true : SimpleITK.Transform
        Both map reference physical points to moving physical points.
    reference : SimpleITK.Image
        Grid whose voxel centres are compared.
    mask : ndarray of bool, optional
        SimpleITK array order ``(z, y, x)``; only these voxels are compared.
    """
    size = reference.GetSize()
    idx = np.stack(np.meshgrid(*[np.arange(s) for s in size], indexing="ij"), -1).reshape(-1, 3)
    if mask is not None:
        keep = np.transpose(mask, (2, 1, 0)).reshape(-1).astype(bool)
        idx = idx[keep]
    # sub-sample for speed
    if idx.shape[0] > 4000:
        idx = idx[np.linspace(0, idx.shape[0] - 1, 4000).astype(int)]
    d = []
    for i in idx:
        p = reference.TransformIndexToPhysicalPoint([int(v) for v in i])
        a = np.asarray(estimated.TransformPoint(p))
        b = np.asarray(true.TransformPoint(p))
        d.append(np.linalg.norm(a - b))
    arr = np.asarray(d)
    return float(arr.mean()), float(arr.max())
