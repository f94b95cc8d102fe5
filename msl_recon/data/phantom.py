"""The built-in digital head phantom: paired, perfectly registered CT and MRI of random subjects.

A subject is an anatomy (MNI152 brain maps from nilearn, or a procedural brain) warped by a random
similarity transform (head size and shape, small 3D rotation, shift), a smooth elastic
deformation and a local ventricle enlargement; skull, scalp, fat and sinuses are shells at
random thicknesses around the brain; an optional tumour with edema is placed in the brain. The
label map is sampled on axial slices; CT numbers and spin-echo MR signals are assigned per tissue
(:mod:`msl_recon.data.tissues`), with CT texture, partial-volume blur and an MR bias field.

What varies per subject (seed)
------------------------------
* anatomy source: ``anatomy="mixed"`` draws MNI152 or the procedural brain per seed (a second,
  independent anatomy family for held-out subjects); ``"mni"`` / ``"procedural"`` fix it;
* global scale, head shape (per-axis scale), 3D rotation, in-plane shift;
* elastic deformation (amplitude ``deformation_mm``, correlation ``deformation_corr_mm``: the
  clinical preset uses a stronger warp than the default);
* ventricle size; CSF, skull, diploë, fat and scalp thicknesses and their spatial variation;
  presence and size of each sinus / air cell;
* lesion: presence (``lesion_probability``), radius, edema extent, lobularity, position, and with
  ``lesion_kinds`` its kind (``"hyper"``: hyperdense, T1-bright, T2-dark; ``"hypo"``: hypodense,
  T1-dark, T2-bright; ``"rim"``: rim-enhancing shell around a necrotic core) and contrast;
* texture: with ``tissue_texture=True`` each tissue group gets its own spatially correlated
  Gaussian texture whose correlation length (``texture_corr_mm``) and amplitude
  (``texture_scale`` × the tissue's ``hu_std``) are drawn per subject and tissue; the same fields
  modulate the MR signals (relative amplitude ``mr_texture``);
* MR bias field.

Partial volume: with ``supersample = s > 1`` the phantom is rendered on an ``s``× finer grid and
the returned images are ``s × s`` block averages of it (true partial volume); the fine images
are kept in :attr:`Subject.fine` for the acquisition simulation without inverse crime
(:mod:`msl_recon.data.acquisition`).

Example
-------
>>> from msl_recon.data.phantom import make_subject
>>> s = make_subject(0, size=128, n_slices=4)
>>> s.labels.shape, s.ct_hu.dtype, sorted(s.mr)
((4, 128, 128), dtype('float32'), ['t1', 't2'])
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from scipy import ndimage

from . import _realism as R
from . import tissues as T
from ._anatomy import Atlas, get_atlas
from ._deform import SmoothField, random_rotation
from .intensity import normalize_mr

__all__ = ["PhantomConfig", "Subject", "gradient_echo", "make_subject", "spin_echo"]

_BONE = (T.CORTICAL_BONE, T.CANCELLOUS_BONE)
_LESION_KINDS = ("classic", "hyper", "hypo", "rim")


@dataclass(frozen=True)
class PhantomConfig:
    """Settings of the digital head phantom (all lengths in mm, times in ms).

    Attributes
    ----------
    anatomy : {"auto", "mni", "procedural", "mixed"}
        Brain source: nilearn's bundled MNI152 maps, a procedural brain, MNI when available, or
        per seed one of the two (``"mixed"``, procedural with probability ``mixed_fraction``).
    mixed_fraction : float
        Probability of the procedural anatomy under ``anatomy="mixed"``.
    t1w_tr_ms, t1w_te_ms, t2w_tr_ms, t2w_te_ms : float
        Spin-echo repetition and echo times of the T1- and T2-weighted images.
    bias_strength : float
        Standard deviation of the log of the smooth multiplicative bias field (0 = none).
    bias_corr_mm : float
        Correlation length of the bias field.
    lesion_probability : float
        Probability that a subject has a tumour with edema (1.0 forces one, 0.0 none).
    lesion_radius_mm : tuple of float
        Range of the tumour radius.
    edema_factor : tuple of float
        Range of the edema radius as a multiple of the tumour radius.
    deformation_mm : float
        Standard deviation of the elastic displacement per axis.
    deformation_corr_mm : float
        Correlation length of the elastic displacement.
    head_scale : float
        Mean scale from the atlas (MNI152 is larger than an average head) to the subject.
    scale_jitter : float
        Relative range of the random global scale (uniform ± jitter).
    shape_jitter : float
        Relative range of the random per-axis scale (head shape).
    max_rotation_deg : tuple of float
        Maximum yaw (in-plane), pitch and roll.
    max_shift_mm : float
        Maximum in-plane shift of the head centre.
    ventricle_scale : tuple of float
        Range of the local ventricle magnification.
    csf_mm, skull_mm, table_mm, fat_mm, scalp_mm : tuple of float
        Ranges of the subarachnoid CSF, whole skull, inner/outer cortical table, subcutaneous
        fat and scalp thicknesses.
    thickness_variation : float
        Relative spatial variation of the shell thicknesses around the head.
    sinus_probability : float
        Probability that each sinus / air-cell region is present.
    z_range_mm : tuple of float
        Atlas (MNI) z range covered by the axial slices, inferior to superior. The default spans
        the skull base with sinuses and mastoid air cells up to the upper cerebrum.
    fov_mm : float
        Default in-plane field of view (the head fills ~80–90 % of 220 mm).
    pv_sigma_mm : float
        In-plane Gaussian σ of the partial-volume blur applied to CT and MR images.
    ct_texture : float
        Multiplier of the per-tissue CT texture standard deviations (0 = flat tissues).
    ct_texture_mm : float
        Correlation length (Gaussian σ) of the CT texture.
    mr_texture : float
        Relative standard deviation of MR tissue texture.
    mr_percentiles : tuple of float
        Percentiles used by :func:`~msl_recon.data.intensity.normalize_mr`.
    supersample : int
        Render on a ``supersample``× finer grid and block-average (1 = render directly).
    tissue_texture : bool
        Per-tissue, per-subject correlated texture (replaces the white ``ct_texture`` model).
    texture_corr_mm : tuple of float
        Range of the per-tissue texture Gaussian σ, mm (the autocorrelation falls to 1/e at
        a lag of 2σ).
    texture_scale : tuple of float
        Range of the per-tissue, per-subject multiplier of the tissue's ``hu_std``.
    lesion_kinds : tuple of str
        Lesion kinds drawn uniformly per subject: ``"classic"`` (table values), ``"hyper"``,
        ``"hypo"``, ``"rim"``.
    lesion_contrast : tuple of float
        Range of the lesion contrast strength (0 = table values, 1 = strongest).
    lesion_lobularity : float
        Relative amplitude of the lesion's lobulated shape.
    """

    anatomy: str = "auto"
    mixed_fraction: float = 0.5
    t1w_tr_ms: float = 500.0
    t1w_te_ms: float = 15.0
    t2w_tr_ms: float = 4000.0
    t2w_te_ms: float = 100.0
    bias_strength: float = 0.12
    bias_corr_mm: float = 70.0
    lesion_probability: float = 0.5
    lesion_radius_mm: tuple[float, float] = (5.0, 14.0)
    edema_factor: tuple[float, float] = (1.5, 2.3)
    deformation_mm: float = 2.5
    deformation_corr_mm: float = 22.0
    head_scale: float = 0.83
    scale_jitter: float = 0.04
    shape_jitter: float = 0.04
    max_rotation_deg: tuple[float, float, float] = (8.0, 4.0, 3.0)
    max_shift_mm: float = 4.0
    ventricle_scale: tuple[float, float] = (0.85, 1.7)
    csf_mm: tuple[float, float] = (1.0, 2.5)
    skull_mm: tuple[float, float] = (5.0, 9.0)
    table_mm: tuple[float, float] = (1.3, 2.2)
    fat_mm: tuple[float, float] = (1.5, 4.0)
    scalp_mm: tuple[float, float] = (2.0, 3.5)
    thickness_variation: float = 0.15
    sinus_probability: float = 0.9
    z_range_mm: tuple[float, float] = (-38.0, 62.0)
    fov_mm: float = 220.0
    pv_sigma_mm: float = 0.5
    ct_texture: float = 1.0
    ct_texture_mm: float = 0.6
    mr_texture: float = 0.03
    mr_percentiles: tuple[float, float] = (0.5, 99.5)
    supersample: int = 1
    tissue_texture: bool = False
    texture_corr_mm: tuple[float, float] = (1.5, 4.0)
    texture_scale: tuple[float, float] = (0.7, 1.4)
    lesion_kinds: tuple[str, ...] = ("classic",)
    lesion_contrast: tuple[float, float] = (0.3, 1.0)
    lesion_lobularity: float = 0.18

    def __post_init__(self) -> None:
        if self.anatomy not in {"auto", "mni", "procedural", "mixed"}:
            raise ValueError(
                f"anatomy must be 'auto', 'mni', 'procedural' or 'mixed', got {self.anatomy!r}"
            )
        if not (isinstance(self.supersample, int) and 1 <= self.supersample <= 4):
            raise ValueError(f"supersample must be an integer in 1..4, got {self.supersample!r}")
        bad = set(self.lesion_kinds) - set(_LESION_KINDS)
        if not self.lesion_kinds or bad:
            raise ValueError(f"lesion_kinds must be a non-empty subset of {_LESION_KINDS}")
        if not 0.0 <= self.mixed_fraction <= 1.0:
            raise ValueError(f"mixed_fraction must be in [0, 1], got {self.mixed_fraction}")
        if min(self.texture_corr_mm) < 0 or self.texture_corr_mm[1] < self.texture_corr_mm[0]:
            raise ValueError(f"texture_corr_mm must be (low, high) >= 0: {self.texture_corr_mm}")
        if not 0.0 <= self.lesion_probability <= 1.0:
            raise ValueError(f"lesion_probability must be in [0, 1], got {self.lesion_probability}")
        for name in ("t1w_tr_ms", "t1w_te_ms", "t2w_tr_ms", "t2w_te_ms", "fov_mm", "head_scale"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        for name in ("bias_strength", "deformation_mm", "pv_sigma_mm", "ct_texture", "mr_texture"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.z_range_mm[1] <= self.z_range_mm[0]:
            raise ValueError(f"z_range_mm must be (low, high) with low < high: {self.z_range_mm}")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dict of the settings."""
        return {
            k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()
        }


@dataclass
class Subject:
    """One phantom subject: registered label map, CT and MR volumes of axial slices.

    Attributes
    ----------
    subject_id : str
        ``"phantom-<seed>"``.
    labels : ndarray, shape ``(Z, H, W)``, uint8
        Tissue label ids of :mod:`msl_recon.data.tissues`.
    ct_hu : ndarray, shape ``(Z, H, W)``, float32
        CT numbers, HU (tissue value + texture, partial-volume blurred).
    mr : dict of str to ndarray
        ``"t1"`` and ``"t2"``: spin-echo magnitude images ``(Z, H, W)`` float32 in [0, 1].
    spacing_mm : tuple of float
        ``(z, y, x)`` voxel spacing, mm.
    meta : dict
        Seed, anatomy source, scales, head size, thicknesses, ventricle scale, rotation, lesion.
    fine : dict of str to ndarray
        With ``supersample = s > 1``: ``"ct_hu"``, ``"t1"``, ``"t2"`` and ``"labels"`` on the
        ``(Z, sH, sW)`` grid; ``ct_hu`` and ``mr`` are exactly their ``s × s`` block averages
        (``labels`` the block majority). Empty for ``s = 1``.
    """

    subject_id: str
    labels: np.ndarray
    ct_hu: np.ndarray
    mr: dict[str, np.ndarray]
    spacing_mm: tuple[float, float, float]
    meta: dict[str, Any] = field(default_factory=dict)
    fine: dict[str, np.ndarray] = field(default_factory=dict)


def spin_echo(pd: np.ndarray, t1: np.ndarray, t2: np.ndarray, tr: float, te: float) -> np.ndarray:
    """Spin-echo signal ``PD·(1 − exp(−TR/T1))·exp(−TE/T2)`` (times in ms, any shapes)."""
    return pd * (1.0 - np.exp(-tr / t1)) * np.exp(-te / t2)


def gradient_echo(
    pd: np.ndarray,
    t1: np.ndarray,
    t2s: np.ndarray,
    tr: float,
    te: float,
    flip_deg: float,
) -> np.ndarray:
    """Spoiled gradient-echo (FLASH) signal, times in ms, flip angle in degrees (any shapes).

    ``PD · sin α · (1 − E1) / (1 − cos α · E1) · exp(−TE/T2*)`` with ``E1 = exp(−TR/T1)``
    (steady state of a spoiled gradient echo; Ernst angle ``arccos E1`` maximises it).
    """
    a = np.deg2rad(flip_deg)
    e1 = np.exp(-tr / t1)
    return pd * np.sin(a) * (1.0 - e1) / (1.0 - np.cos(a) * e1) * np.exp(-te / t2s)


def _u(rng: np.random.Generator, lohi: tuple[float, float]) -> float:
    return float(rng.uniform(lohi[0], lohi[1]))


def make_subject(
    seed: int,
    *,
    size: int = 256,
    n_slices: int = 16,
    fov_mm: float | None = None,
    config: PhantomConfig | None = None,
) -> Subject:
    """Generate one random head subject.

    Parameters
    ----------
    seed : int
        Subject seed; the same seed and arguments give identical arrays.
    size : int
        In-plane matrix ``H = W``, pixels.
    n_slices : int
        Number of axial slices ``Z``, evenly covering ``config.z_range_mm`` (scaled to the subject).
    fov_mm : float, optional
        In-plane field of view, mm (pixel spacing ``fov_mm / size``); default ``config.fov_mm``
        (220 mm, so that the head fills about 80–90 % of the image width).
    config : PhantomConfig, optional

    Returns
    -------
    Subject
    """
    cfg = config or PhantomConfig()
    fov = float(cfg.fov_mm if fov_mm is None else fov_mm)
    if int(size) != size or size < 8:
        raise ValueError(f"size must be an integer >= 8, got {size}")
    if int(n_slices) != n_slices or n_slices < 1:
        raise ValueError(f"n_slices must be an integer >= 1, got {n_slices}")
    if not fov > 0:
        raise ValueError(f"fov_mm must be > 0, got {fov_mm}")
    if int(seed) != seed or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed}")
    size, n_slices, seed = int(size), int(n_slices), int(seed)
    out_size, ss = size, cfg.supersample
    size = out_size * ss
    anatomy = cfg.anatomy
    if anatomy == "mixed":
        pick = np.random.default_rng([seed, 0xA1A5]).random()
        anatomy = "procedural" if pick < cfg.mixed_fraction else "mni"
    atlas = get_atlas(anatomy)
    rng = np.random.default_rng([seed, 0x5EAD])

    # ---- subject parameters (always drawn in this order) --------------------------------------
    s_iso = cfg.head_scale * (1.0 + rng.uniform(-cfg.scale_jitter, cfg.scale_jitter))
    scale = s_iso * (1.0 + rng.uniform(-cfg.shape_jitter, cfg.shape_jitter, size=3))
    rot, angles = random_rotation(rng, cfg.max_rotation_deg)
    shift = np.array([0.0, *rng.uniform(-cfg.max_shift_mm, cfg.max_shift_mm, size=2)])
    thick = {
        "csf": _u(rng, cfg.csf_mm),
        "skull": _u(rng, cfg.skull_mm),
        "table": _u(rng, cfg.table_mm),
        "fat": _u(rng, cfg.fat_mm),
        "scalp": _u(rng, cfg.scalp_mm),
    }
    vent_scale = _u(rng, cfg.ventricle_scale)
    has_lesion = bool(rng.random() < cfg.lesion_probability)
    lesion_r = _u(rng, cfg.lesion_radius_mm)
    edema_f = _u(rng, cfg.edema_factor)
    lesion_pick = float(rng.random())
    sinus_present = rng.random(len(atlas.inserts)) < cfg.sinus_probability
    sinus_size = rng.uniform(0.7, 1.25, size=len(atlas.inserts))

    # ---- sampling grid: subject mm -> atlas mm --------------------------------------------------
    pix = fov / size
    z_lo, z_hi = cfg.z_range_mm
    dz_atlas = (z_hi - z_lo) / n_slices
    z_atlas = z_lo + (np.arange(n_slices) + 0.5) * dz_atlas
    zs = (z_atlas - atlas.center[0]) * scale[0]
    ys = ((size - 1) / 2.0 - np.arange(size)) * pix  # row 0 = anterior
    xs = ((size - 1) / 2.0 - np.arange(size)) * pix  # col 0 = patient right (radiological)
    p = torch.from_numpy(
        np.stack(np.meshgrid(zs, ys, xs, indexing="ij"), axis=-1).astype(np.float32)
    )  # (Z, H, W, 3) subject mm
    # random fields cover the whole slab, independent of n_slices and size (same anatomy at
    # every sampling of one seed)
    z_span = (np.array([z_lo, z_hi]) - atlas.center[0]) * scale[0]
    lo = (float(z_span[0]) - 10.0, -fov / 2.0, -fov / 2.0)
    hi = (float(z_span[1]) + 10.0, fov / 2.0, fov / 2.0)
    deform = SmoothField(rng, lo, hi, cfg.deformation_corr_mm, n_comp=3)
    thick_field = SmoothField(rng, lo, hi, 25.0, n_comp=1)
    bias_fields = SmoothField(rng, lo, hi, cfg.bias_corr_mm, n_comp=3)
    lesion_field = SmoothField(rng, lo, hi, 8.0, n_comp=1)

    inv = torch.from_numpy((rot.T / scale[:, None]).astype(np.float32))  # S^-1 R^T
    ctr = torch.tensor(atlas.center, dtype=torch.float32)
    shift_t = torch.from_numpy(shift.astype(np.float32))

    def to_atlas(pts: torch.Tensor, disp: torch.Tensor | None = None) -> torch.Tensor:
        """Subject mm ``(..., 3)`` -> atlas mm; ``disp`` is the displacement if precomputed."""
        qq = (pts - shift_t) @ inv.T + ctr
        if cfg.deformation_mm > 0:
            d = deform(pts).movedim(0, -1) if disp is None else disp
            qq = qq + cfg.deformation_mm * d
        return _enlarge_ventricles(qq, atlas, vent_scale)

    q = to_atlas(p, _on_grid(deform, zs, ys, xs).permute(1, 2, 3, 0))

    gm, wm, brain, vent = atlas.sample_brain(q).numpy()
    d_env, d_hull, _ = atlas.sample_shells(q).numpy()

    # ---- label map ----------------------------------------------------------------------------
    mod = 1.0 + cfg.thickness_variation * _on_grid(thick_field, zs, ys, xs)[0].numpy()
    mod = np.clip(mod, 0.5, 1.5)
    mm = mod / s_iso  # subject mm -> atlas mm, spatially modulated
    c_t = thick["csf"] * mm
    sk = thick["skull"] * mm
    tb = thick["table"] * mm
    labels = np.zeros(p.shape[:3], dtype=np.uint8)
    labels[d_hull < c_t + sk + thick["fat"] * mm + thick["scalp"] * mm] = T.SCALP
    labels[d_hull < c_t + sk + thick["fat"] * mm] = T.FAT
    bone = d_hull < c_t + sk
    labels[bone] = T.CORTICAL_BONE
    labels[bone & (d_env >= c_t + tb) & (d_hull < c_t + sk - tb)] = T.CANCELLOUS_BONE
    labels[d_env < c_t] = T.CSF
    in_brain = brain > 0.5
    csf_p = np.clip(brain - gm - wm, 0.0, None)
    tissue = np.argmax(np.stack([csf_p, gm, wm]), axis=0)
    labels[in_brain] = np.array([T.CSF, T.GREY_MATTER, T.WHITE_MATTER], np.uint8)[tissue[in_brain]]
    labels[in_brain & (tissue == 0) & (vent > 0.4)] = T.VENTRICLES

    # sinuses / air cells, orbits and eyes; the bone bulges outward over a sinus (up to `bulge`
    # mm); air cells are carved out of bone only, keeping the inner and outer cortical tables
    sinus_meta = []
    near = np.nonzero(d_hull < c_t + sk + 12.0 / s_iso)
    qn = q[near]
    for k, ins in enumerate(atlas.inserts):
        if ins.optional and not sinus_present[k]:
            continue
        size_f = float(sinus_size[k]) if ins.optional else 1.0
        rad = torch.tensor(ins.radii, dtype=torch.float32) * size_f
        rho = (((qn - torch.tensor(ins.center, dtype=torch.float32)) / rad) ** 2).sum(-1).numpy()
        inside = rho < 1.0
        if not inside.any():
            continue
        at = tuple(ix[inside] for ix in near)
        lab = labels[at]
        dh, de = d_hull[at], d_env[at]
        outer = c_t[at] + sk[at]
        if ins.bulge > 0:
            outer = outer + ins.bulge * (1.0 - rho[inside]) / s_iso
            lab[(dh < outer) & np.isin(lab, (T.AIR, T.SCALP, T.FAT))] = T.CORTICAL_BONE
        change = np.isin(lab, ins.replace)
        if ins.keep_tables:
            change &= (de >= c_t[at] + tb[at]) & (dh < outer - tb[at])
        lab[change] = ins.label
        labels[at] = lab
        if ins.optional:
            sinus_meta.append({"name": ins.name, "size_factor": size_f})

    lesion_meta: dict[str, Any] = {"present": False}
    if has_lesion:
        lesion_meta = _add_lesion(
            labels,
            q,
            p,
            to_atlas,
            atlas,
            lesion_r,
            edema_f,
            lesion_pick,
            s_iso,
            lesion_field,
            fov,
            cfg.lesion_lobularity,
        )
    # lesion kind and contrast use their own stream (the draws above stay as they were)
    les_rng = np.random.default_rng([seed, 0x1E51])
    kind = cfg.lesion_kinds[int(les_rng.integers(len(cfg.lesion_kinds)))]
    contrast = _u(les_rng, cfg.lesion_contrast)
    rim_mm = float(les_rng.uniform(1.5, 3.0))

    # ---- images -------------------------------------------------------------------------------
    tex_rng = np.random.default_rng([seed, 0x7E47, size, n_slices])
    sig_px = cfg.pv_sigma_mm / pix
    hu = T.property_lut("hu")[labels]
    pd, t1, t2 = (T.property_lut(f)[labels] for f in ("pd", "t1_ms", "t2_ms"))
    if lesion_meta["present"]:
        lesion_meta.update(R.lesion_contrast(labels, hu, pd, t1, t2, kind, contrast, rim_mm, pix))
    if cfg.tissue_texture:
        ct_noise, tex_meta = R.tissue_texture(
            np.random.default_rng([seed, 0x7E48]),
            labels,
            pix,
            cfg.texture_corr_mm,
            cfg.texture_scale,
        )
        mr_noise = ct_noise
        hu = hu + T.property_lut("hu_std")[labels] * ct_noise
    else:
        tex_meta = {}
        ct_noise = R.correlated_noise(tex_rng, labels.shape, cfg.ct_texture_mm / pix)
        hu = hu + cfg.ct_texture * T.property_lut("hu_std")[labels] * ct_noise
        mr_noise = R.correlated_noise(tex_rng, labels.shape, cfg.ct_texture_mm / pix)
    if ss > 1:
        hu = np.maximum(hu, -1000.0)  # no sub-air values, so block means map linearly to units
    ct_hu = _blur(hu, sig_px).astype(np.float32)
    bias = _on_grid(bias_fields, zs, ys, xs).numpy()
    mr = {}
    for k, (name, tr, te) in enumerate(
        (("t1", cfg.t1w_tr_ms, cfg.t1w_te_ms), ("t2", cfg.t2w_tr_ms, cfg.t2w_te_ms))
    ):
        sig = spin_echo(pd, t1, t2, tr, te) * (1.0 + cfg.mr_texture * mr_noise)
        sig = _blur(np.clip(sig, 0.0, None), sig_px)
        field_log = cfg.bias_strength * (0.8 * bias[0] + 0.6 * bias[1 + k])
        sig = sig * np.exp(field_log)
        mr[name] = np.asarray(normalize_mr(sig.astype(np.float32), *cfg.mr_percentiles))

    fine: dict[str, np.ndarray] = {}
    if ss > 1:
        fine = {"ct_hu": ct_hu, **mr, "labels": labels}
        ct_hu = R.block_mean(ct_hu, ss)
        mr = {k: R.block_mean(v, ss) for k, v in mr.items()}
        labels = R.block_majority(labels, ss, len(T.TISSUES))
        pix = pix * ss
    head = labels > 0
    extent_y = float(np.ptp(np.nonzero(head.any(axis=(0, 2)))[0]) + 1) * pix if head.any() else 0.0
    extent_x = float(np.ptp(np.nonzero(head.any(axis=(0, 1)))[0]) + 1) * pix if head.any() else 0.0
    meta = {
        "seed": seed,
        "anatomy": atlas.source,
        "fov_mm": fov,
        "pixel_mm": pix,
        "scale": [float(v) for v in scale],
        "head_size_mm": {"ap": extent_y, "lr": extent_x},
        "head_fraction": max(extent_y, extent_x) / fov,
        "thickness_mm": thick,
        "skull_thickness_mm": thick["skull"],
        "ventricle_scale": vent_scale,
        "rotation_deg": {"yaw": angles[0], "pitch": angles[1], "roll": angles[2]},
        "shift_mm": [float(shift[1]), float(shift[2])],
        "slice_atlas_z_mm": [float(v) for v in z_atlas],
        "lesion": lesion_meta,
        "texture": tex_meta,
        "supersample": ss,
        "sinuses": sinus_meta,
        "config": cfg.to_dict(),
    }
    return Subject(
        subject_id=f"phantom-{seed:05d}",
        labels=labels,
        ct_hu=ct_hu,
        mr=mr,
        spacing_mm=(float(dz_atlas * scale[0]), pix, pix),
        meta=meta,
        fine=fine,
    )


def _on_grid(f: SmoothField, zs: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> torch.Tensor:
    """Evaluate a smooth field on the slice grid ``(Z, H, W)`` via a 4× coarser in-plane grid.

    The coarse grid shares the end points of ``ys``/``xs``, so bilinear upsampling with
    ``align_corners=True`` interpolates at the exact pixel positions. Returns ``(C, Z, H, W)``.
    """
    h, w = len(ys), len(xs)
    hc, wc = max(2, (h - 1) // 4 + 2), max(2, (w - 1) // 4 + 2)
    yc = np.linspace(ys[0], ys[-1], hc)
    xc = np.linspace(xs[0], xs[-1], wc)
    pc = np.stack(np.meshgrid(zs, yc, xc, indexing="ij"), axis=-1).astype(np.float32)
    vals = f(torch.from_numpy(pc))  # (C, Z, hc, wc)
    c, z = vals.shape[:2]
    up = torch.nn.functional.interpolate(
        vals.reshape(c * z, 1, hc, wc), size=(h, w), mode="bilinear", align_corners=True
    )
    return up.reshape(c, z, h, w)


def _enlarge_ventricles(q: torch.Tensor, atlas: Atlas, factor: float) -> torch.Tensor:
    """Local magnification ``factor`` around the ventricles (Gaussian weight, σ = 35 mm)."""
    if factor == 1.0:
        return q
    cv = torch.tensor(atlas.ventricle_center, dtype=torch.float32)
    d = q - cv
    w = torch.exp(-(d**2).sum(-1, keepdim=True) / (2 * 35.0**2))
    return cv + d / (1.0 + (factor - 1.0) * w)


def _add_lesion(
    labels: np.ndarray,
    q: torch.Tensor,
    p: torch.Tensor,
    to_atlas,
    atlas: Atlas,
    radius_mm: float,
    edema_f: float,
    pick: float,
    s_iso: float,
    shape_field: SmoothField,
    fov: float,
    lobularity: float = 0.18,
) -> dict[str, Any]:
    """Place a lobulated tumour with surrounding edema inside the brain (modifies ``labels``).

    The centre is drawn from brain points deep enough for the tumour on a fixed 3 mm in-plane
    grid at the sampled slice heights, so its position does not depend on the matrix size.
    """
    r_at = radius_mm / s_iso
    g = torch.arange(-fov / 2.0 + 1.5, fov / 2.0, 3.0)
    cz, cy, cx = torch.meshgrid(p[:, 0, 0, 0], g, g, indexing="ij")
    cp = torch.stack([cz, cy, cx], dim=-1).reshape(-1, 3)
    cq = to_atlas(cp)
    gm, wm, brain, vent = atlas.sample_brain(cq)
    depth = atlas.sample_shells(cq)[2]
    tissue = (brain > 0.5) & (gm + wm > 0.5) & (vent < 0.2)
    ok = tissue & (depth > r_at + 3.0)
    if not ok.any():
        ok = tissue & (depth >= depth[tissue].max() - 1e-3) if tissue.any() else tissue
    if not ok.any():
        return {"present": False}
    cand = torch.nonzero(ok).flatten()
    k = int(cand[min(int(pick * len(cand)), len(cand) - 1)])
    center_q, pc_t = cq[k], cp[k]
    # work in a sub-block around the centre that holds the edema (lobes are at most +54 %)
    reach = 1.6 * radius_mm * edema_f + 2.0
    block = []
    for ax, coords in enumerate((p[:, 0, 0, 0], p[0, :, 0, 1], p[0, 0, :, 2])):
        inside = torch.nonzero((coords - pc_t[ax]).abs() <= reach).flatten()
        block.append(slice(int(inside.min()), int(inside.max()) + 1))
    blk = tuple(block)
    qb, pb, lab = q[blk], p[blk], labels[blk]
    d = ((qb - center_q) ** 2).sum(-1).sqrt().numpy() / r_at
    lobes = 1.0 + lobularity * shape_field(pb)[0].numpy()
    rho = d / lobes
    brainish = np.isin(lab, (T.GREY_MATTER, T.WHITE_MATTER, T.CSF))
    tumour = (rho < 1.0) & brainish
    edema = (
        (rho < edema_f)
        & ~tumour
        & ((lab == T.WHITE_MATTER) | ((lab == T.GREY_MATTER) & (rho < 0.5 * (1 + edema_f))))
    )
    lab[edema] = T.EDEMA
    lab[tumour] = T.LESION
    c_idx = [
        int(torch.argmin((coords - pc_t[ax]).abs()))
        for ax, coords in enumerate((p[:, 0, 0, 0], p[0, :, 0, 1], p[0, 0, :, 2]))
    ]
    return {
        "present": True,
        "center_mm": [float(v) for v in pc_t],
        "center_index": c_idx,
        "radius_mm": float(radius_mm),
        "edema_radius_mm": float(radius_mm * edema_f),
        "slices": [int(k) for k in np.nonzero((labels == T.LESION).any(axis=(1, 2)))[0]],
    }


def _blur(img: np.ndarray, sigma_px: float) -> np.ndarray:
    """In-plane Gaussian blur (partial-volume effect); identity for σ ≲ 0.1 px."""
    if sigma_px < 0.1:
        return img
    return ndimage.gaussian_filter(img, sigma=(0.0, sigma_px, sigma_px), mode="nearest")
