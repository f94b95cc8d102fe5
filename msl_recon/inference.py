"""Apply a trained MSL model to raw sensor data: global λ, spatial λ maps, MI-optimised λ.

The building blocks used by ``msl-recon reconstruct`` and ``msl-recon demo``:

- :func:`load_model` rebuilds the network from a checkpoint alone (config inside);
- :func:`parse_lambdas`, :func:`load_lambda_map` read λ values and λ-map files (PNG/NPY/NIfTI);
- :func:`load_raw_input` turns a ``.npy`` sinogram or k-space into a one-modality batch;
- :class:`Reconstructor` encodes a batch once and decodes it for any λ.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import InputError

__all__ = [
    "LoadedModel",
    "Reconstructor",
    "back_transform",
    "lambda_label",
    "load_lambda_map",
    "load_model",
    "load_raw_input",
    "parse_lambdas",
    "parse_slices",
]


@dataclass
class LoadedModel:
    """A network rebuilt from a checkpoint.

    Attributes
    ----------
    net : torch.nn.Module
        In eval mode, on the requested device.
    config : MSLConfig
    modalities : tuple of str
        The model's modalities in config order.
    geometry : CTGeometry or None
        The training CT geometry (used for raw sinograms).
    sampling : dict
        The training MRI sampling per modality.
    iteration : int
        Training iterations of the checkpoint.
    """

    net: torch.nn.Module
    config: Any
    modalities: tuple[str, ...]
    geometry: Any
    sampling: dict[str, Any]
    iteration: int


def load_model(path: str | os.PathLike, device: torch.device | str = "cpu") -> LoadedModel:
    """Rebuild the network of a training checkpoint (tensors mapped to CPU first).

    Raises
    ------
    InputError
        Missing or unreadable checkpoint.
    """
    import geometries

    from .model import MSLNet
    from .training.checkpoint import config_from_dict, load_checkpoint

    ckpt = load_checkpoint(path, map_location="cpu")
    try:
        cfg = config_from_dict(ckpt["config"])
        net = MSLNet(cfg)
        net.load_state_dict(ckpt["model"])
    except (KeyError, ValueError, RuntimeError) as exc:
        raise InputError(f"checkpoint {path} does not match this msl-recon's model: {exc}") from exc
    net.to(torch.device(device)).eval()
    geom = ckpt.get("geometry")
    sampling = {
        m: geometries.sampling_from_dict(d) for m, d in (ckpt.get("sampling") or {}).items()
    }
    return LoadedModel(
        net=net,
        config=cfg,
        modalities=tuple(ckpt.get("modalities") or cfg.modalities),
        geometry=geometries.geometry_from_dict(geom) if geom else None,
        sampling=sampling,
        iteration=int(ckpt.get("iteration", 0)),
    )


# ---------------------------------------------------------------------------- parsing
def parse_lambdas(text: str | Sequence[float]) -> list[float]:
    """``"0,0.25,0.5"`` -> ``[0.0, 0.25, 0.5]``; every value must lie in [0, 1].

    Raises
    ------
    InputError
        On a non-number or a value outside [0, 1].
    """
    items = text.split(",") if isinstance(text, str) else list(text)
    out: list[float] = []
    for raw in items:
        s = str(raw).strip()
        if not s:
            continue
        try:
            v = float(s)
        except ValueError:
            raise InputError(f"λ value {s!r} is not a number") from None
        if not 0.0 <= v <= 1.0 or not np.isfinite(v):
            raise InputError(f"λ = {v} lies outside [0, 1]")
        out.append(v)
    if not out:
        raise InputError("no λ value given")
    return out


def parse_simplex_points(text: str | Sequence[Sequence[float]], n: int) -> list[tuple[float, ...]]:
    """λ for an ``n``-modality model: ``"1:0:0,0.5:0.25:0.25"`` -> simplex points.

    Each comma-separated item has ``n`` non-negative weights separated by ``:``, in the model's
    modality order (or ``text`` is a sequence of such weight sequences); the weights are
    normalised to sum to 1 (so ``"1:1:1"`` is the barycentre).

    Raises
    ------
    InputError
        On a non-number, a wrong count, a negative weight or an all-zero point.
    """
    if isinstance(text, str):
        items: list[Any] = [r.strip().split(":") for r in text.split(",") if r.strip()]
    else:
        items = list(text)
    out: list[tuple[float, ...]] = []
    for parts in items:
        label = ":".join(map(str, parts)) if isinstance(parts, (list, tuple)) else str(parts)
        if not isinstance(parts, (list, tuple)) or len(parts) != n:
            raise InputError(
                f"λ {label!r}: a {n}-modality model needs {n} weights separated by ':' "
                f"(e.g. {':'.join(['1'] + ['0'] * (n - 1))})"
            )
        try:
            w = [float(x) for x in parts]
        except (TypeError, ValueError):
            raise InputError(f"λ {label!r} contains a non-number") from None
        if any(not np.isfinite(v) or v < 0 for v in w) or sum(w) <= 0:
            raise InputError(f"λ {label!r}: weights must be finite, ≥ 0 and not all 0")
        total = sum(w)
        out.append(tuple(v / total for v in w))
    if not out:
        raise InputError("no λ value given")
    return out


def simplex_label(point: Sequence[float]) -> str:
    """File-name-safe label of a simplex λ, e.g. ``lam0.50-0.25-0.25``."""
    return "lam" + "-".join(f"{v:.2f}" for v in point)


def parse_slices(text: str | None, n: int) -> list[int]:
    """Slice selection: ``None`` (all), ``"3"``, ``"0,4,7"``, ``"2:6"`` (Python range syntax).

    Raises
    ------
    InputError
        On bad syntax or indices outside ``0 .. n-1``.
    """
    if text is None or str(text).strip() in ("", "all"):
        return list(range(n))
    out: list[int] = []
    try:
        for part in str(text).split(","):
            part = part.strip()
            if ":" in part:
                bits = [int(b) if b.strip() else None for b in part.split(":")]
                out.extend(range(n)[slice(*bits)])
            elif part:
                out.append(int(part))
    except ValueError:
        raise InputError(f"--slices {text!r}: use e.g. 3, 0,4,7 or 2:6") from None
    bad = [i for i in out if not 0 <= i < n]
    if bad:
        raise InputError(f"--slices {text!r}: indices {bad} outside 0..{n - 1}")
    if not out:
        raise InputError(f"--slices {text!r} selects no slice")
    return out


def lambda_label(lam: float) -> str:
    """File-name-safe label of a global λ, e.g. ``lam0.25``."""
    return f"lam{lam:.2f}"


def load_lambda_map(path: str | os.PathLike, shape: tuple[int, int]) -> np.ndarray:
    """Read a spatial λ map and resize it to ``shape`` (bilinear, anti-aliased).

    Parameters
    ----------
    path : path-like
        ``.png`` (1-bit, 8/16-bit gray or RGB, scaled by the type's maximum to [0, 1]), ``.npy``
        (values already in [0, 1]) or ``.nii``/``.nii.gz`` (a 2D image, or the middle slice of
        a 3D volume along the last axis; values in [0, 1]).
    shape : (int, int)
        Image shape ``(H, W)``.

    Returns
    -------
    ndarray, float32, shape ``(H, W)``
        Values in [0, 1].

    Raises
    ------
    InputError
        Missing/unreadable file, wrong dimensionality, values outside [0, 1] or non-finite.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"λ map {p} does not exist")
    name = p.name.lower()
    try:
        if name.endswith(".npy"):
            a = np.load(p, allow_pickle=False).astype(np.float64)
        elif name.endswith((".nii", ".nii.gz")):
            import nibabel as nib

            a = np.asarray(nib.load(str(p)).get_fdata(), dtype=np.float64)
            a = np.squeeze(a)
            if a.ndim == 3:
                a = a[..., a.shape[-1] // 2]
            if a.ndim == 2:
                a = a.T  # NIfTI stores (x, y); our images are (row, col)
        elif name.endswith(".png"):
            from PIL import Image

            with Image.open(p) as im:
                arr = np.asarray(im)
            if arr.ndim == 3:
                arr = arr[..., :3].mean(axis=-1) if arr.shape[-1] >= 3 else arr[..., 0]
            if arr.dtype == np.bool_:  # 1-bit PNG: PIL gives booleans, already in {0, 1}
                scale = 1.0
            else:
                scale = 65535.0 if arr.dtype == np.uint16 or arr.max(initial=0) > 255 else 255.0
            a = arr.astype(np.float64) / scale
        else:
            raise InputError(f"λ map {p}: unsupported format (use .png, .npy, .nii or .nii.gz)")
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"cannot read λ map {p}: {exc}") from exc
    a = np.squeeze(a)
    if a.ndim != 2:
        raise InputError(f"λ map {p} must be a 2D image, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise InputError(f"λ map {p} contains non-finite values")
    if a.min() < -1e-6 or a.max() > 1 + 1e-6:
        raise InputError(f"λ map {p} has values in [{a.min():.3g}, {a.max():.3g}], outside [0, 1]")
    if a.shape != tuple(shape):
        from skimage.transform import resize

        a = resize(a, shape, order=1, anti_aliasing=True, preserve_range=True)
    return np.clip(a, 0.0, 1.0).astype(np.float32)


# ---------------------------------------------------------------------------- raw inputs
def load_raw_input(
    path: str | os.PathLike, model: LoadedModel, modality: str | None = None
) -> tuple[str, dict[str, torch.Tensor], Any, dict[str, Any]]:
    """Read a raw ``.npy`` measurement into a batch for the model.

    A real array is a CT sinogram ``(V, D)`` or ``(S, V, D)`` in the checkpoint's geometry (a
    different ``V`` selects evenly spaced views over the same arc). A complex array is masked
    Cartesian k-space ``(H, W)`` or ``(S, H, W)``; the mask is the set of non-zero columns.

    Returns
    -------
    modality, batch, geometry, sampling
        The modality (``"ct"`` or the model's first MRI modality unless ``modality`` says),
        a batch dict (``ct_sino`` or ``<m>_kspace``/``<m>_mask``), the CT geometry and sampling.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"input {p} does not exist")
    if p.suffix.lower() != ".npy":
        raise InputError(f"raw input {p} must be a .npy file (or give an HDF5 dataset)")
    try:
        a = np.load(p, allow_pickle=False)
    except Exception as exc:
        raise InputError(f"cannot read {p}: {exc}") from exc
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3:
        raise InputError(f"{p}: expected a 2D or 3D array, got shape {a.shape}")
    geometry = model.geometry
    sampling = dict(model.sampling)
    if np.iscomplexobj(a):
        mri = [m for m in model.modalities if m != "ct"]
        m = modality or (mri[0] if mri else None)
        if m is None or m == "ct" or m not in model.modalities:
            raise InputError(f"{p} holds k-space but the model has no MRI modality {m!r}")
        k = torch.from_numpy(a.astype(np.complex64))
        mask = (k.abs() > 0).any(dim=-2, keepdim=True).expand_as(k).contiguous()
        n = int(model.config.image_size)
        if tuple(k.shape[-2:]) != (n, n):
            raise InputError(f"{p}: k-space shape {tuple(k.shape[-2:])}, the model needs {(n, n)}")
        return m, {f"{m}_kspace": k, f"{m}_mask": mask}, geometry, sampling
    if "ct" not in model.modalities:
        raise InputError(f"{p} holds a sinogram but the model has no CT modality")
    if geometry is None:
        raise InputError("the checkpoint stores no CT geometry; cannot use a raw sinogram")
    v, d = a.shape[-2:]
    if d != geometry.sino_shape[1]:
        raise InputError(
            f"{p}: {d} detector bins, the model's geometry has {geometry.sino_shape[1]}"
        )
    if v != geometry.sino_shape[0]:
        try:
            geometry = geometry.with_views(int(v))
        except ValueError as exc:
            raise InputError(f"{p}: cannot use {v} views with the model's geometry: {exc}") from exc
    return "ct", {"ct_sino": torch.from_numpy(a.astype(np.float32))}, geometry, sampling


def back_transform(op: Any, measurement: torch.Tensor, modality: str) -> torch.Tensor:
    """The analytical sparse-data image: FBP for CT, zero-filled magnitude for MRI.

    Returns a real tensor ``(B, H, W)``.
    """
    with torch.no_grad():
        x = op.pseudo_inverse()(measurement)
    return x.abs().float() if x.is_complex() else x.float()


# ---------------------------------------------------------------------------- reconstructor
class Reconstructor:
    """Encode one batch of sensor data once; decode it for any global λ or λ map.

    Parameters
    ----------
    model : LoadedModel
    batch : dict
        Collated measurements (``ct_sino``, ``<m>_kspace``, ``<m>_mask``), on any device.
    geometry, sampling
        CT geometry and MRI sampling of the batch.
    modalities : sequence of str
        Inputs to use (a subset of the model's modalities).
    device : torch.device
    """

    def __init__(
        self,
        model: LoadedModel,
        batch: dict[str, Any],
        geometry: Any,
        sampling: dict[str, Any],
        modalities: Sequence[str],
        device: torch.device,
    ) -> None:
        from .model import build_operators
        from .training.batches import move_batch

        unknown = [m for m in modalities if m not in model.modalities]
        if unknown:
            raise InputError(
                f"modalities {unknown} are not in the checkpoint (it has {list(model.modalities)})"
            )
        self.model = model
        self.device = device
        self.modalities = tuple(modalities)
        self.batch = move_batch(batch, device)
        all_ops = build_operators(self.batch, geometry, sampling, device)
        self.ops = {m: all_ops[m] for m in self.modalities}
        self.measurements = {
            m: self.batch["ct_sino"] if m == "ct" else self.batch[f"{m}_kspace"]
            for m in self.modalities
        }
        with torch.no_grad():
            self.features = model.net.encode(self.measurements, self.ops)

    @property
    def batch_size(self) -> int:
        """Number of slices in the batch."""
        return int(next(iter(self.measurements.values())).shape[0])

    def inputs(self) -> dict[str, torch.Tensor]:
        """Sparse-data images per used modality, ``(B, H, W)`` real."""
        return {m: back_transform(self.ops[m], self.measurements[m], m) for m in self.modalities}

    def decode(self, lam: float | torch.Tensor) -> torch.Tensor:
        """The MSL image for λ (float, ``(B,)``, map ``(B, 1, H, W)``, or simplex for n > 2).

        Returns
        -------
        Tensor, float32, shape ``(B, H, W)``
        """
        if isinstance(lam, torch.Tensor):
            lam = lam.to(self.device)
        with torch.no_grad():
            out = self.model.net.decode(self.features, lam)
        return out[:, 0].float()
