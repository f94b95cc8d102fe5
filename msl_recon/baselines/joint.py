"""Compressed-sensing joint CT–MRI reconstruction with structural priors, solved by PDHG.

Both images are reconstructed from both raw data sets. The data terms are normalised,

    ``D(x_ct, x_mr) = ½‖A x_ct − y_ct‖² / ‖A‖²  +  ½‖M F x_mr − k‖² / ‖M F‖²``,

so that one regularisation weight means the same for both modalities and any geometry. Two
priors couple the images' gradients:

* **Joint TV** (:func:`joint_tv_reconstruct`): ``μ Σ_pixels sqrt(|∇x_ct|² + β²|∇x_mr|²)``, one
  convex problem for both images (Haber & Holtzman-Gazit 2013; Ehrhardt & Arridge 2014). An edge
  that both images share costs less than two separate edges, so the better-sampled image
  sharpens the other.
* **Directional TV** (:func:`dtv_reconstruct`, Ehrhardt & Betcke 2016): ``μ Σ |P_ξ ∇x|`` with
  ``P_ξ = I − ξξᵀ`` and the guide ``ξ = γ ∇v / sqrt(|∇v|² + η²)`` computed from the *other*
  image ``v``: gradients parallel to the guide's gradient are not penalised. The two images are
  reconstructed alternately (each with the current other as guide), starting from their
  single-modality TV reconstructions; each sub-problem is convex and solved by PDHG.

CT images are real in [0, 1] (box constraint by default); the MR image is real for single-coil
data and complex for multi-coil SENSE data (its magnitude is returned as ``mr``). Starts,
stopping rule and iteration cap are those of :mod:`.cs`. Regularisation weights are chosen on
a validation set by :func:`.selection.select_weights` (mean RMSE of both images against ground
truth, the grid widened until the optimum is interior), starting from :data:`DEFAULT_GRIDS`.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from operators import Gradient2D, LinearOperator

from .cs import (
    DEFAULT_MAX_ITER,
    DEFAULT_TOL,
    _initial,
    constraint_prox,
    resolve_complex,
    tv_reconstruct,
)
from .pdhg import l2_data_term, operator_norm, pdhg, tv_term

__all__ = [
    "DEFAULT_GRIDS",
    "JointResult",
    "choose_weights",
    "dtv_reconstruct",
    "guide_field",
    "joint_tv_reconstruct",
]

#: Starting grids of the benchmark's weight choice (normalised data terms; μ per pixel-difference
#: TV). :func:`.selection.select_weights` widens them until the optimum is interior;
#: :func:`choose_weights` (fixed grid, no widening) is kept for compatibility.
DEFAULT_GRIDS: dict[str, dict[str, list[float]]] = {
    "tv": {"mu_ct": [1e-4, 3e-4, 1e-3, 3e-3, 1e-2], "mu_mr": [1e-4, 3e-4, 1e-3, 3e-3, 1e-2]},
    "jtv": {"mu": [1e-4, 3e-4, 1e-3, 3e-3, 1e-2], "beta": [0.5, 1.0, 2.0]},
    "dtv": {"mu_ct": [3e-4, 1e-3, 3e-3], "mu_mr": [3e-4, 1e-3, 3e-3], "eta": [0.01, 0.05]},
}


@dataclass
class JointResult:
    """Output of the joint reconstructions.

    Attributes
    ----------
    ct, mr : Tensor, shape ``(*batch, H, W)``
        Reconstructed images, real (for a complex multi-coil MR image, ``mr`` is its magnitude).
    history : Tensor
        Objective values, shape ``(n_records, *batch)``. Joint TV: the one convex objective.
        dTV: the sub-problems' histories concatenated (each sub-problem has its own objective;
        use ``histories`` to tell them apart).
    histories : dict of str -> Tensor
        Per sub-problem histories (joint TV: ``"jtv"``; dTV: ``"ct_init"``, ``"mr_init"``,
        ``"ct_0"``, ``"mr_0"``, ...).
    mr_complex : Tensor or None
        The complex MR image when it is complex (multi-coil SENSE data).
    n_iter, converged : dict of str -> int / bool
        Iterations run and whether the stopping rule was met, per sub-problem (same keys as
        ``histories``).
    """

    ct: torch.Tensor
    mr: torch.Tensor
    history: torch.Tensor
    histories: dict[str, torch.Tensor] = field(default_factory=dict)
    mr_complex: torch.Tensor | None = None
    n_iter: dict[str, int] = field(default_factory=dict)
    converged: dict[str, bool] = field(default_factory=dict)


def guide_field(
    v: torch.Tensor, *, eta: float = 0.05, gamma: float = 0.995, relative: bool = True
) -> torch.Tensor:
    """Normalised gradient field ``ξ = γ ∇v / sqrt(|∇v|² + η²)`` of a guide image.

    Parameters
    ----------
    v : Tensor, shape ``(*batch, H, W)``, real
        Guide image.
    eta : float
        Edge parameter ``η > 0``: gradients much smaller than η are ignored.
    gamma : float
        ``γ ∈ (0, 1]``; γ < 1 keeps ``P_ξ`` strictly positive definite.
    relative : bool
        If true, ``η`` is relative to each sample's largest gradient magnitude (so the same
        value works for images of any contrast).

    Returns
    -------
    Tensor, shape ``(*batch, 2, H, W)``, with ``|ξ| < γ`` at every pixel.
    """
    if eta <= 0 or not (0 < gamma <= 1):
        raise ValueError(f"need eta > 0 and 0 < gamma ≤ 1, got eta={eta}, gamma={gamma}")
    g = Gradient2D(v.shape[-2:])(v)
    mag2 = (g**2).sum(dim=-3, keepdim=True)
    e = eta
    if relative:
        peak = mag2.flatten(-3).amax(dim=-1).sqrt().clamp_min(1e-12)
        e = eta * peak[..., None, None, None]
    return gamma * g / torch.sqrt(mag2 + e**2)


def _norms(
    ct_op: LinearOperator, mr_op: LinearOperator, device: torch.device
) -> tuple[float, float]:
    return operator_norm(ct_op, device), operator_norm(mr_op, device)


def joint_tv_reconstruct(
    y_ct: torch.Tensor,
    ct_op: LinearOperator,
    y_mr: torch.Tensor,
    mr_op: LinearOperator,
    *,
    mu: float,
    beta: float = 1.0,
    n_iter: int = DEFAULT_MAX_ITER,
    tol: float | None = DEFAULT_TOL,
    constraint: str | None = "box",
    complex_mr: bool | None = None,
    x0: tuple[torch.Tensor, torch.Tensor] | str | None = "pinv",
    rho: float = 1.0,
    norms: tuple[float, float] | None = None,
    history_every: int = 1,
    progress: bool = False,
) -> JointResult:
    """Joint-TV reconstruction of CT and MRI from both data sets (one convex problem).

    ``min ½‖A x_ct − y_ct‖²/‖A‖² + ½‖MF x_mr − k‖²/‖MF‖² + μ Σ sqrt(|∇x_ct|² + β²|∇x_mr|²)``.

    Parameters
    ----------
    y_ct : Tensor, shape ``(*batch, V, D)``
        CT sinogram (mm).
    ct_op : LinearOperator
        ``RayTransform`` with domain ``(H, W)``.
    y_mr : Tensor, complex, shape ``(*batch, *mr_op.range_shape)``
        MRI k-space.
    mr_op : LinearOperator
        ``CartesianFourier`` / NUFFT (real MR image) or ``SENSE`` (complex MR image) with
        domain ``(H, W)``.
    mu : float
        Joint TV weight.
    beta : float
        Weight of the MR gradient inside the joint norm (contrast balance).
    n_iter, tol, constraint, rho, history_every, progress
        As in :func:`.cs.tv_reconstruct` (same stopping rule and cap as TV and dTV).
    complex_mr : bool, optional
        Complex MR image (default: for SENSE operators; see :func:`.cs.resolve_complex`).
    x0 : (Tensor, Tensor), "pinv", "zeros" or None
        Start images (default: FBP and zero-filled / SENSE back-transform).
    norms : (float, float), optional
        ``(‖A‖, ‖MF‖)`` if known.
    """
    if ct_op.domain_shape != mr_op.domain_shape:
        raise ValueError(
            "CT and MRI images must have one shape, got "
            f"{ct_op.domain_shape} and {mr_op.domain_shape}"
        )
    cplx = resolve_complex(mr_op, complex_mr)
    n_ct, n_mr = norms if norms is not None else _norms(ct_op, mr_op, y_ct.device)
    terms = [
        l2_data_term(ct_op, y_ct, block=0, weight=1.0 / n_ct**2, norm=n_ct),
        l2_data_term(mr_op, y_mr, block=1, weight=1.0 / n_mr**2, norm=n_mr, real_image=not cplx),
        tv_term(
            ct_op.domain_shape,
            mu,
            blocks=(0, 1),
            weights=(1.0, beta),
            complex_image=(False, cplx),
        ),
    ]
    if isinstance(x0, tuple):
        starts = [_initial(x0[0], ct_op, y_ct, False), _initial(x0[1], mr_op, y_mr, cplx)]
    else:
        starts = [_initial(x0, ct_op, y_ct, False), _initial(x0, mr_op, y_mr, cplx)]
    if not cplx:
        starts[1] = starts[1].to(starts[0].dtype)
    res = pdhg(
        starts,
        terms,
        prox_primal=constraint_prox(constraint),
        n_iter=n_iter,
        tol=tol,
        rho=rho,
        history_every=history_every,
        progress=progress,
    )
    mr = res.x[1]
    return JointResult(
        ct=res.x[0],
        mr=mr.abs() if mr.is_complex() else mr,
        history=res.history,
        histories={"jtv": res.history},
        mr_complex=mr if mr.is_complex() else None,
        n_iter={"jtv": res.n_iter},
        converged={"jtv": res.converged},
    )


def _dtv_single(
    y: torch.Tensor,
    op: LinearOperator,
    norm: float,
    mu: float,
    guide: torch.Tensor,
    x0: torch.Tensor,
    *,
    n_iter: int,
    tol: float | None,
    constraint: str | None,
    rho: float,
    history_every: int,
    progress: bool,
) -> Any:
    cplx = x0.is_complex()
    terms = [
        l2_data_term(op, y, weight=1.0 / norm**2, norm=norm, real_image=not cplx),
        tv_term(op.domain_shape, mu, guides=[guide], complex_image=cplx),
    ]
    return pdhg(
        [x0],
        terms,
        prox_primal=None if cplx else constraint_prox(constraint),
        n_iter=n_iter,
        tol=tol,
        rho=rho,
        history_every=history_every,
        progress=progress,
    )


def dtv_reconstruct(
    y_ct: torch.Tensor,
    ct_op: LinearOperator,
    y_mr: torch.Tensor,
    mr_op: LinearOperator,
    *,
    mu_ct: float,
    mu_mr: float,
    eta: float = 0.05,
    gamma: float = 0.995,
    n_outer: int = 2,
    n_iter: int = DEFAULT_MAX_ITER,
    tol: float | None = DEFAULT_TOL,
    init_iter: int | None = None,
    constraint: str | None = "box",
    complex_mr: bool | None = None,
    rho: float = 1.0,
    norms: tuple[float, float] | None = None,
    history_every: int = 1,
    progress: bool = False,
) -> JointResult:
    """Structure-guided joint reconstruction by alternating directional-TV problems.

    Start: single-modality TV reconstructions (normalised data terms, weights ``mu_ct``,
    ``mu_mr``, warm-started from FBP / zero-filled). Then ``n_outer`` times: reconstruct CT with
    directional TV guided by the current MR image (its magnitude if complex), and MR guided by
    the new CT image (warm-started). Every PDHG solve uses the same stopping rule and cap
    (``tol``, ``n_iter``) as :func:`.cs.tv_reconstruct` and :func:`joint_tv_reconstruct`; dTV
    solves ``2 + 2·n_outer`` such problems, which is the method's cost, not a larger budget per
    problem.

    Parameters
    ----------
    y_ct, ct_op, y_mr, mr_op
        As in :func:`joint_tv_reconstruct`.
    mu_ct, mu_mr : float
        (Directional) TV weights of each modality.
    eta, gamma : float
        Guide parameters (:func:`guide_field`, η relative to the largest guide gradient).
    n_outer : int
        Alternations.
    n_iter, tol : int, float
        Iteration cap and stopping tolerance of every sub-problem; ``init_iter`` (default
        ``n_iter``) caps the TV starts.
    complex_mr : bool, optional
        Complex MR image (default: for SENSE operators).
    """
    if n_outer < 1:
        raise ValueError(f"n_outer must be ≥ 1, got {n_outer}")
    cplx = resolve_complex(mr_op, complex_mr)
    n_ct, n_mr = norms if norms is not None else _norms(ct_op, mr_op, y_ct.device)
    kw: dict[str, Any] = {
        "constraint": constraint,
        "rho": rho,
        "history_every": history_every,
        "progress": progress,
        "tol": tol,
    }
    it0 = n_iter if init_iter is None else init_iter
    r_ct = tv_reconstruct(y_ct, ct_op, mu_ct, n_iter=it0, normalize_data=True, op_norm=n_ct, **kw)
    r_mr = tv_reconstruct(
        y_mr, mr_op, mu_mr, n_iter=it0, normalize_data=True, op_norm=n_mr, complex_image=cplx, **kw
    )
    x_ct, x_mr = r_ct.x[0], r_mr.x[0]
    if not cplx:
        x_mr = x_mr.to(x_ct.dtype)
    hist = {"ct_init": r_ct.history, "mr_init": r_mr.history}
    n_it = {"ct_init": r_ct.n_iter, "mr_init": r_mr.n_iter}
    conv = {"ct_init": r_ct.converged, "mr_init": r_mr.converged}
    for k in range(n_outer):
        res = _dtv_single(
            y_ct,
            ct_op,
            n_ct,
            mu_ct,
            guide_field(x_mr.abs() if cplx else x_mr, eta=eta, gamma=gamma),
            x_ct,
            n_iter=n_iter,
            **kw,
        )
        x_ct = res.x[0]
        hist[f"ct_{k}"], n_it[f"ct_{k}"], conv[f"ct_{k}"] = res.history, res.n_iter, res.converged
        res = _dtv_single(
            y_mr,
            mr_op,
            n_mr,
            mu_mr,
            guide_field(x_ct, eta=eta, gamma=gamma),
            x_mr,
            n_iter=n_iter,
            **kw,
        )
        x_mr = res.x[0]
        hist[f"mr_{k}"], n_it[f"mr_{k}"], conv[f"mr_{k}"] = res.history, res.n_iter, res.converged
    return JointResult(
        ct=x_ct,
        mr=x_mr.abs() if cplx else x_mr,
        history=torch.cat(list(hist.values())),
        histories=hist,
        mr_complex=x_mr if cplx else None,
        n_iter=n_it,
        converged=conv,
    )


def _rmse(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.sqrt(torch.mean((a.to(torch.float64) - b.to(torch.float64)) ** 2)))


def choose_weights(
    reconstruct: Callable[..., tuple[torch.Tensor, torch.Tensor]],
    samples: Iterable[Mapping[str, torch.Tensor]],
    grid: Mapping[str, Sequence[float]],
    *,
    progress: bool = False,
) -> tuple[dict[str, float], list[tuple[dict[str, float], float]]]:
    """Choose regularisation weights on a validation set by exhaustive grid search.

    Every combination of the grid values is run on every validation sample; the score is the
    mean over samples of ``RMSE(ct, gt_ct) + RMSE(mr, gt_mr)`` (lower is better; images in
    [0, 1]). Ties keep the first combination in grid order.

    Parameters
    ----------
    reconstruct : callable
        ``reconstruct(sample, **params) -> (ct, mr)``; e.g.
        ``lambda s, mu, beta: (r := joint_tv_reconstruct(s["ct_sino"], A, s["mr_kspace"], F,
        mu=mu, beta=beta)).ct, r.mr``.
    samples : iterable of mapping
        Validation samples with ground truth under ``"ct"`` and ``"mr"`` (plus whatever
        ``reconstruct`` needs). Consumed once and cached.
    grid : mapping of str -> sequence of float
        Parameter name -> candidate values (see :data:`DEFAULT_GRIDS`).
    progress : bool
        Show a tqdm bar over the combinations.

    Returns
    -------
    best : dict
        The best parameter combination.
    table : list of (dict, float)
        Every combination with its score, in grid order.
    """
    samples = list(samples)
    if not samples:
        raise ValueError("choose_weights needs at least one validation sample")
    names = list(grid)
    combos = [dict(zip(names, vals, strict=True)) for vals in itertools.product(*grid.values())]
    if not combos:
        raise ValueError("the grid is empty")
    it: Iterable[dict[str, float]] = combos
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(combos, desc="weight grid", leave=False)
    table: list[tuple[dict[str, float], float]] = []
    for params in it:
        scores = []
        for s in samples:
            ct, mr = reconstruct(s, **params)
            scores.append(
                _rmse(ct, s["ct"].reshape(ct.shape)) + _rmse(mr, s["mr"].reshape(mr.shape))
            )
        table.append((params, sum(scores) / len(scores)))
    best_i = min(range(len(table)), key=lambda i: (table[i][1], i))
    if not math.isfinite(table[best_i][1]):
        raise RuntimeError("every weight combination gave a non-finite score")
    return table[best_i][0], table
