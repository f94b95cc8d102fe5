"""The MNI152 (ICBM 2009a symmetric) maps that ship inside the ``nilearn`` wheel (private).

``nilearn.datasets.load_mni152_template``, ``load_mni152_gm_template``,
``load_mni152_wm_template`` and ``load_mni152_brain_mask`` read files bundled with the package
(``nilearn/datasets/data/mni_icbm152_*_tal_nlin_sym_09a_converted.nii.gz``): nothing is downloaded.
Importing ``nilearn.datasets`` costs several seconds (it pulls in scikit-learn), so the fast path
reads the same bundled files with nibabel and applies the same processing as those functions
(each map divided by its maximum; brain mask = template > 0.2); a test checks that both paths
give identical arrays. The nilearn functions are the fallback if the files move.
"""

from __future__ import annotations

import functools
import warnings

import numpy as np

__all__ = ["MNIUnavailable", "load_mni_maps"]


class MNIUnavailable(RuntimeError):
    """nilearn (or its bundled MNI152 files) cannot be loaded."""


@functools.lru_cache(maxsize=1)
def load_mni_maps() -> tuple[dict[str, np.ndarray], tuple[float, float, float]]:
    """Load the 1 mm MNI152 T1, GM, WM and brain mask, as ``(z, y, x)`` float32 arrays.

    Returns
    -------
    maps : dict
        ``"t1"``, ``"gm"``, ``"wm"``, ``"brain"``: float32 arrays ``(Z, Y, X)`` in [0, 1]; axes
        inferior→superior, posterior→anterior, left→right (RAS world coordinates).
    origin : tuple of float
        ``(z, y, x)`` MNI mm coordinate of voxel ``[0, 0, 0]``; the spacing is 1 mm.

    Raises
    ------
    MNIUnavailable
        If nilearn is not installed or a map cannot be read (no network access is attempted).
    """
    try:
        maps = _read_bundled()
    except Exception:
        maps = _read_with_nilearn()
    return maps


_FILES = {
    "t1": "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",
    "gm": "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz",
    "wm": "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz",
}


def _read_bundled() -> tuple[dict[str, np.ndarray], tuple[float, float, float]]:
    """Read nilearn's bundled files with nibabel, without importing nilearn."""
    import importlib.util
    from pathlib import Path

    import nibabel as nib

    spec = importlib.util.find_spec("nilearn")
    if spec is None or not spec.submodule_search_locations:
        raise MNIUnavailable("nilearn is not installed")
    data_dir = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data"
    imgs = {k: nib.load(str(data_dir / f)) for k, f in _FILES.items()}
    arrays = {}
    for k, img in imgs.items():
        a = np.asarray(img.get_fdata(dtype=np.float32))
        arrays[k] = a / a.max()
    arrays["brain"] = (arrays["t1"] > 0.2).astype(np.float32)
    return _to_zyx(arrays, imgs["t1"].affine, {k: imgs.get(k, imgs["t1"]).affine for k in arrays})


def _read_with_nilearn() -> tuple[dict[str, np.ndarray], tuple[float, float, float]]:
    """Load the maps through ``nilearn.datasets`` (offline loaders of the bundled files)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from nilearn import datasets  # lazy: heavy import

            imgs = {
                "t1": datasets.load_mni152_template(resolution=1),
                "gm": datasets.load_mni152_gm_template(resolution=1),
                "wm": datasets.load_mni152_wm_template(resolution=1),
                "brain": datasets.load_mni152_brain_mask(resolution=1),
            }
    except Exception as exc:  # ImportError, missing files, ...
        raise MNIUnavailable(f"MNI152 maps from nilearn are unavailable: {exc}") from exc
    arrays = {k: np.asarray(img.get_fdata(dtype=np.float32)) for k, img in imgs.items()}
    return _to_zyx(arrays, imgs["t1"].affine, {k: img.affine for k, img in imgs.items()})


def _to_zyx(arrays, affine, affines) -> tuple[dict[str, np.ndarray], tuple[float, float, float]]:
    affine = np.asarray(affine, dtype=np.float64)
    if not np.allclose(affine[:3, :3], np.eye(3)):
        raise MNIUnavailable(f"unexpected MNI152 affine (need 1 mm RAS, axis-aligned): {affine}")
    maps = {}
    for name, arr in arrays.items():
        if not np.allclose(affines[name], affine):
            raise MNIUnavailable(f"MNI152 {name} map is not on the template grid")
        maps[name] = np.ascontiguousarray(arr.transpose(2, 1, 0).astype(np.float32))  # (z, y, x)
    origin = (float(affine[2, 3]), float(affine[1, 3]), float(affine[0, 3]))
    return maps, origin
