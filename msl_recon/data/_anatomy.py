"""Anatomical atlases that the digital head phantom deforms into subjects (private).

An :class:`Atlas` lives in an MNI-like frame (mm, ``(z, y, x)`` = inferior→superior,
posterior→anterior, left→right) and holds two grids:

* ``brain`` (fine, 1–1.5 mm): channels grey matter, white matter and brain mask probabilities and a
  ventricle indicator;
* ``shells`` (2 mm): distance outside the smoothed brain envelope (for the subarachnoid CSF and
  the inner skull table), distance outside the per-slice convex hull of the envelope (outer
  table, fat, scalp; the hull fills the skull base between temporal lobes and cerebellum in the
  lower slices) and depth inside the envelope (for placing lesions).

Two sources: the MNI152 maps bundled with nilearn (:func:`mni_atlas`), and a procedural brain of
nested, folded ellipsoids (:func:`procedural_atlas`) for when nilearn is unavailable. Both are
cached per process.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

from . import tissues as T
from ._deform import Grid, sample_grid

__all__ = ["Atlas", "Insert", "get_atlas", "mni_atlas", "procedural_atlas"]

_SHELL_STEP = 2.0  # mm
_SHELL_MARGIN = 44.0  # mm of head outside the brain envelope that the shells grid covers


@dataclass(frozen=True)
class Insert:
    """An ellipsoidal structure (atlas mm) that relabels part of the skull or face.

    Attributes
    ----------
    name : str
    center, radii : tuple of float
        ``(z, y, x)`` mm.
    label : int
        Tissue label written inside the ellipsoid.
    replace : tuple of int
        Only voxels with these labels are relabelled.
    keep_tables : bool
        Keep the inner and outer cortical tables (air cells inside bone).
    bulge : float
        mm by which the outer skull table bulges over the structure (frontal bossing).
    optional : bool
        Present only with ``PhantomConfig.sinus_probability`` and randomly sized (sinuses).
    """

    name: str
    center: tuple[float, float, float]
    radii: tuple[float, float, float]
    label: int
    replace: tuple[int, ...]
    keep_tables: bool = True
    bulge: float = 0.0
    optional: bool = True


@dataclass(frozen=True)
class Atlas:
    """Brain maps and shell distance fields in an MNI-like mm frame.

    Attributes
    ----------
    source : str
        ``"mni"`` or ``"procedural"``.
    brain : Grid
        Channels ``(gm, wm, brain, ventricles)``, each in [0, 1].
    shells : Grid
        Channels ``(dist_envelope, dist_hull, depth)`` in mm (2 mm grid).
    center : tuple of float
        ``(z, y, x)`` mm: the in-plane centre of the head (z is the centre of the brain).
    ventricle_center : tuple of float
        ``(z, y, x)`` mm centroid of the ventricles (centre of ventricle enlargement).
    inserts : tuple of Insert
        Sinuses, air cells, orbits and eyes, applied in order.
    z_extent : tuple of float
        Lowest and highest z (mm) of the brain.
    """

    source: str
    brain: Grid
    shells: Grid
    center: tuple[float, float, float]
    ventricle_center: tuple[float, float, float]
    inserts: tuple[Insert, ...]
    z_extent: tuple[float, float]

    def sample_brain(self, q: torch.Tensor) -> torch.Tensor:
        """``(gm, wm, brain, ventricles)`` at atlas points ``q (..., 3)``; returns ``(4, ...)``."""
        return sample_grid(self.brain, q)

    def sample_shells(self, q: torch.Tensor) -> torch.Tensor:
        """``(dist_envelope, dist_hull, depth)`` mm at ``q (..., 3)``; returns ``(3, ...)``."""
        return sample_grid(self.shells, q)


def get_atlas(anatomy: str) -> Atlas:
    """Return the atlas for ``anatomy`` in ``{"mni", "procedural", "auto"}``.

    ``"auto"`` uses MNI152 when nilearn can load it and the procedural brain otherwise.
    ``"mni"`` raises :class:`~msl_recon.data._mni.MNIUnavailable` when it cannot.
    """
    if anatomy == "procedural":
        return procedural_atlas()
    if anatomy == "mni":
        return mni_atlas()
    if anatomy == "auto":
        from ._mni import MNIUnavailable

        try:
            return mni_atlas()
        except MNIUnavailable:
            return procedural_atlas()
    raise ValueError(f"anatomy must be 'mni', 'procedural' or 'auto', got {anatomy!r}")


# --------------------------------------------------------------------------------------------
# shared construction


def _shells(
    brain: np.ndarray,
    origin: tuple[float, float, float],
    spacing: float,
    face: tuple[tuple[float, float, float], tuple[float, float, float]],
) -> tuple[Grid, tuple[float, float, float]]:
    """Envelope/hull distance fields on a 2 mm grid padded by the shell margin.

    The hull is the per-slice convex hull of the brain envelope united with the ``face``
    ellipsoid ``(center, radii)`` (the facial skeleton below the frontal lobes).
    """
    from skimage.morphology import convex_hull_image

    # smooth envelope without deep sulci, then resample to the 2 mm shell grid
    env_fine = ndimage.gaussian_filter(brain.astype(np.float32), sigma=3.0 / spacing)
    factor = spacing / _SHELL_STEP
    env = ndimage.zoom(env_fine, factor, order=1) > 0.45
    pad = int(np.ceil(_SHELL_MARGIN / _SHELL_STEP))
    env = np.pad(env, pad)
    sh_origin = tuple(o - pad * _SHELL_STEP for o in origin)
    axes = [sh_origin[a] + _SHELL_STEP * np.arange(env.shape[a]) for a in range(3)]
    fz, fy, fx = np.meshgrid(*axes, indexing="ij", sparse=True)
    (cz, cy, cx), (rz, ry, rx) = face
    face_m = ((fz - cz) / rz) ** 2 + ((fy - cy) / ry) ** 2 + ((fx - cx) / rx) ** 2 < 1.0
    hull = np.zeros_like(env)
    for k in range(env.shape[0]):
        sl = env[k] | face_m[k]
        if sl.any():
            hull[k] = convex_hull_image(sl)
    dist_env = ndimage.distance_transform_edt(~env, sampling=_SHELL_STEP)
    dist_hull = ndimage.distance_transform_edt(~hull, sampling=_SHELL_STEP)
    depth = ndimage.distance_transform_edt(env, sampling=_SHELL_STEP)
    data = torch.from_numpy(np.stack([dist_env, dist_hull, depth]).astype(np.float32))
    # in-plane centre of the head: centre of the hull's bounding box
    idx = np.argwhere(hull)
    lo, hi = idx.min(0), idx.max(0)
    ctr = tuple(float(sh_origin[a] + 0.5 * (lo[a] + hi[a]) * _SHELL_STEP) for a in range(3))
    return Grid.make(data, sh_origin, _SHELL_STEP, (1e3, 1e3, 0.0)), ctr


def _centroid(mask: np.ndarray, origin: tuple[float, float, float], spacing: float):
    idx = np.argwhere(mask)
    c = idx.mean(0) if len(idx) else np.array(mask.shape) / 2.0
    return tuple(float(origin[a] + c[a] * spacing) for a in range(3))


def _finish(
    source: str,
    gm: np.ndarray,
    wm: np.ndarray,
    brain: np.ndarray,
    vent: np.ndarray | None,
    origin: tuple[float, float, float],
    spacing: float,
) -> Atlas:
    """Build shells, ventricles (if ``vent`` is None, from deep CSF) and the atlas grids.

    The brain channels are rounded to float16 precision so that an atlas rebuilt from scratch
    and one read from the disk cache are bit-identical.
    """
    front_y, back_y = _ap_extent(brain, origin, spacing, 8.0)
    face, inserts = _face_and_inserts(front_y, back_y)
    shells, ctr = _shells(brain > 0.5, origin, spacing, face)
    if vent is None:
        vent = _deep_csf_ventricles(gm, wm, brain, origin, spacing, shells)
    data = np.stack([gm, wm, brain, vent]).astype(np.float16).astype(np.float32)
    zs = np.nonzero((brain > 0.5).any(axis=(1, 2)))[0]
    z_extent = (origin[0] + zs.min() * spacing, origin[0] + zs.max() * spacing)
    return Atlas(
        source=source,
        brain=Grid.make(data, origin, spacing),
        shells=shells,
        center=ctr,
        ventricle_center=_centroid(vent > 0.5, origin, spacing),
        inserts=inserts,
        z_extent=(float(z_extent[0]), float(z_extent[1])),
    )


def _face_and_inserts(front_y: float, back_y: float):
    """Face block, sinuses, air cells, orbits and eyes, placed relative to the brain's AP extent.

    Approximate MNI positions: frontal sinus above the nasion, ethmoid cells and nasal cavity
    between the orbits, sphenoid sinus below the sella, mastoid air cells behind the ear canals,
    eyes ~12 mm in radius in fat-filled orbits below the orbitofrontal cortex.
    """
    bone = (T.CORTICAL_BONE, T.CANCELLOUS_BONE)
    fy = front_y
    face = ((-50.0, fy - 22.0, 0.0), (26.0, 38.0, 52.0))
    inserts = [
        Insert("frontal_sinus", (8.0, fy + 6.0, 0.0), (11.0, 8.0, 14.0), T.SINUS, bone, bulge=6.0),
        Insert("ethmoid_cells", (-36.0, fy - 22.0, 0.0), (14.0, 26.0, 9.0), T.SINUS, bone),
        Insert("sphenoid_sinus", (-36.0, fy - 58.0, 0.0), (9.0, 11.0, 11.0), T.SINUS, bone),
        Insert("mastoid_r", (-36.0, back_y + 72.0, 50.0), (10.0, 11.0, 8.0), T.SINUS, bone),
        Insert("mastoid_l", (-36.0, back_y + 72.0, -50.0), (10.0, 11.0, 8.0), T.SINUS, bone),
    ]
    for side, name in ((1.0, "r"), (-1.0, "l")):
        inserts.append(
            Insert(
                f"orbit_{name}",
                (-38.0, fy - 12.0, 31.0 * side),
                (15.0, 30.0, 15.0),
                T.FAT,
                bone,
                keep_tables=False,
                optional=False,
            )
        )
    for side, name in ((1.0, "r"), (-1.0, "l")):
        # vitreous humour is labelled as CSF-like fluid (same CT number and long T1/T2)
        inserts.append(
            Insert(
                f"eye_{name}",
                (-38.0, fy - 6.0, 32.0 * side),
                (12.0, 12.0, 12.0),
                T.CSF,
                (*bone, T.FAT),
                keep_tables=False,
                optional=False,
            )
        )
    return face, tuple(inserts)


def _ap_extent(brain: np.ndarray, origin, spacing: float, z_mm: float) -> tuple[float, float]:
    """Front and back y (mm) of the brain on the midline near height ``z_mm``."""
    k = round((z_mm - origin[0]) / spacing)
    k = min(max(k, 0), brain.shape[0] - 1)
    sl = brain[k] > 0.5
    ys = np.nonzero(sl.any(axis=1))[0]
    return origin[1] + ys.max() * spacing, origin[1] + ys.min() * spacing


# --------------------------------------------------------------------------------------------
# MNI152


@functools.lru_cache(maxsize=1)
def mni_atlas() -> Atlas:
    """The atlas from nilearn's bundled MNI152 2009a maps (1 mm), cached in memory and on disk."""
    return _disk_cached("mni", _build_mni_atlas)


def _build_mni_atlas() -> Atlas:
    from ._mni import load_mni_maps

    maps, origin = load_mni_maps()
    brain = maps["brain"] > 0.5
    idx = np.argwhere(brain)
    lo = np.maximum(idx.min(0) - 3, 0)
    hi = np.minimum(idx.max(0) + 4, brain.shape)
    sl = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
    org = tuple(float(origin[a] + lo[a]) for a in range(3))
    b = brain[sl].astype(np.float32)
    gm = maps["gm"][sl] * b
    wm = maps["wm"][sl] * b
    return _finish("mni", gm, wm, b, None, org, 1.0)


def _deep_csf_ventricles(
    gm: np.ndarray, wm: np.ndarray, brain: np.ndarray, origin, spacing: float, shells: Grid
) -> np.ndarray:
    """Ventricles: CSF ≥ 14 mm deep in the brain near the midline, largest connected pieces."""
    axes = [origin[a] + spacing * np.arange(brain.shape[a]) for a in range(3)]
    box = [
        (ax > lo) & (ax < hi)
        for ax, (lo, hi) in zip(axes, ((-40.0, 40.0), (-50.0, 35.0), (-28.0, 28.0)), strict=True)
    ]
    sl = tuple(slice(int(np.argmax(m)), int(len(m) - np.argmax(m[::-1]))) for m in box)
    csf = np.clip(brain[sl] - gm[sl] - wm[sl], 0.0, 1.0)
    pts = np.stack(np.meshgrid(*(axes[a][sl[a]] for a in range(3)), indexing="ij"), axis=-1)
    depth = sample_grid(shells, torch.from_numpy(pts.astype(np.float32)))[2].numpy()
    cand = (csf > 0.5) & (depth > 14.0)
    vent = np.zeros(brain.shape, dtype=np.float32)
    lab, n = ndimage.label(cand)
    if n == 0:
        return vent
    sizes = ndimage.sum(cand, lab, index=np.arange(1, n + 1))
    keep = np.zeros(n + 1, dtype=bool)
    keep[1:] = sizes >= 150 / spacing**3
    vent[sl] = ndimage.gaussian_filter(keep[lab].astype(np.float32), 0.5 / spacing)
    return vent


# --------------------------------------------------------------------------------------------
# disk cache


def _cache_file(source: str) -> Path:
    here = Path(__file__).parent
    h = hashlib.sha1()
    for name in ("_anatomy.py", "_mni.py", "_deform.py"):
        h.update((here / name).read_bytes())
    env = os.environ.get("MSL_RECON_CACHE")
    root = Path(env) if env else Path.home() / ".cache" / "msl-recon"
    return root / "phantom" / f"atlas-{source}-{h.hexdigest()[:16]}.npz"


def _disk_cached(source: str, build) -> Atlas:
    """Load the atlas arrays from the cache directory, or build and store them.

    The file is ``$MSL_RECON_CACHE/phantom/atlas-<source>-<hash>.npz`` (default cache directory
    ``~/.cache/msl-recon``; ~60 MB for MNI), keyed by a hash of the atlas code so that editing it
    invalidates the cache; older versions are deleted. Any cache failure (read-only directory,
    corrupt file) falls back to building in memory.
    """
    try:
        path = _cache_file(source)
    except OSError:
        return build()
    if path.exists():
        try:
            return _atlas_from_npz(path)
        except Exception:  # corrupt or stale: rebuild below
            pass
    atlas = build()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as fh:
            np.savez(
                fh,
                brain=atlas.brain.data.numpy().astype(np.float16),
                brain_origin=np.array(atlas.brain.origin),
                brain_spacing=np.array(atlas.brain.spacing),
                shells=atlas.shells.data.numpy(),  # stored minus `outside`, exactly as in memory
                shells_outside=np.array(atlas.shells.outside),
                shells_origin=np.array(atlas.shells.origin),
                center=np.array(atlas.center),
                ventricle_center=np.array(atlas.ventricle_center),
                z_extent=np.array(atlas.z_extent),
                source=np.array(atlas.source),
            )
        os.replace(tmp, path)
        for stale in path.parent.glob(f"atlas-{source}-*.npz"):  # older code versions
            if stale != path:
                stale.unlink(missing_ok=True)
    except OSError:  # the cache is an optimisation: a read-only or full disk must not fail
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
    return atlas


def _atlas_from_npz(path: Path) -> Atlas:
    with np.load(path) as z:
        brain = z["brain"].astype(np.float32)
        shells = torch.from_numpy(z["shells"])
        s_out = tuple(float(v) for v in z["shells_outside"])
        b_org = tuple(float(v) for v in z["brain_origin"])
        b_sp = float(z["brain_spacing"])
        s_org = tuple(float(v) for v in z["shells_origin"])
        center = tuple(float(v) for v in z["center"])
        vcenter = tuple(float(v) for v in z["ventricle_center"])
        z_extent = tuple(float(v) for v in z["z_extent"])
        source = str(z["source"])
    front_y, back_y = _ap_extent(brain[2], b_org, b_sp, 8.0)
    _, inserts = _face_and_inserts(front_y, back_y)
    return Atlas(
        source=source,
        brain=Grid.make(brain, b_org, b_sp),
        shells=Grid(shells, s_org, _SHELL_STEP, s_out),
        center=center,
        ventricle_center=vcenter,
        inserts=inserts,
        z_extent=z_extent,
    )


# --------------------------------------------------------------------------------------------
# procedural fallback


@functools.lru_cache(maxsize=1)
def procedural_atlas() -> Atlas:
    """The procedural atlas (see :func:`_build_procedural_atlas`), cached in memory and on disk."""
    return _disk_cached("procedural", _build_procedural_atlas)


def _build_procedural_atlas() -> Atlas:
    """A procedural brain (nested folded ellipsoids) in the MNI-like frame, cached per process.

    The cortex is a grey-matter band of ~3 mm whose white-matter boundary and sulcal CSF follow a
    fixed random folding pattern; deep grey nuclei, lateral and third ventricles and the
    interhemispheric fissure are added as ellipsoids/planes.
    """
    step = 1.5
    rng = np.random.default_rng(20240611)
    origin = (-60.0, -108.0, -75.0)
    shape = (98, 128, 101)
    z, y, x = np.meshgrid(
        *(origin[a] + step * np.arange(shape[a]) for a in range(3)), indexing="ij"
    )
    c, r = (12.0, -18.0, 0.0), (62.0, 86.0, 68.0)
    rho = np.sqrt(((z - c[0]) / r[0]) ** 2 + ((y - c[1]) / r[1]) ** 2 + ((x - c[2]) / r[2]) ** 2)
    # flatten the frontal/temporal base a little
    rho = rho + 0.25 * np.clip((-25.0 - z) / 40.0, 0.0, None)
    fold = np.zeros(shape, dtype=np.float64)
    for _ in range(14):
        d = rng.normal(size=3)
        d /= np.linalg.norm(d)
        k = 2 * np.pi / rng.uniform(14.0, 24.0)
        fold += np.cos(k * (d[0] * z + d[1] * y + d[2] * x) + rng.uniform(0, 2 * np.pi))
    fold /= np.sqrt(14 / 2)
    brain = (rho < 1.0).astype(np.float32)
    depth = ndimage.distance_transform_edt(brain > 0.5, sampling=step)  # mm below the surface
    # gyri: grey matter lines folds down to ~15 mm, with CSF in the sulcal fundus lines
    wm = ((depth > 4.0 + 1.5 * fold) & ~((fold < -0.4) & (depth < 16.0))).astype(np.float32)
    sulci = (fold < -1.0) & (depth < 13.0)
    fissure = (np.abs(x) < 1.6) & (z > -5.0)
    medial = np.abs(x) < 4.5
    wm[medial & (z > 25.0)] = 0.0
    deep = ((z - 2.0) / 12.0) ** 2 + ((y + 12.0) / 16.0) ** 2 + (
        (np.abs(x) - 17.0) / 9.0
    ) ** 2 < 1.0
    wm[deep] = 0.0
    vent = ((z - 12.0) / 11.0) ** 2 + ((y + 8.0) / 28.0) ** 2 + ((np.abs(x) - 10.0) / 7.0) ** 2 < 1
    vent |= ((z + 2.0) / 9.0) ** 2 + ((y + 12.0) / 10.0) ** 2 + (x / 2.0) ** 2 < 1.0
    vent &= brain > 0.5
    csf = (sulci | fissure | vent) & (brain > 0.5)
    wm[csf] = 0.0
    gm = np.clip(brain - wm - csf, 0.0, 1.0).astype(np.float32)
    sm = 0.6
    gm, wm = ndimage.gaussian_filter(gm, sm), ndimage.gaussian_filter(wm, sm)
    vent_f = ndimage.gaussian_filter(vent.astype(np.float32), sm)
    return _finish("procedural", gm, wm, brain, vent_f, origin, step)
