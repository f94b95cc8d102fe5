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
    acquisition : dict
        The training acquisition of each modality (CT geometry, MRI sampling …; used for raw
        ``.npy`` inputs).
    iteration : int
        Training iterations of the checkpoint.
    """

    net: torch.nn.Module
    config: Any
    modalities: tuple[str, ...]
    acquisition: dict[str, Any]
    iteration: int

    @property
    def geometry(self) -> Any:
        """The training CT geometry (``acquisition["ct"]``), or None."""
        return self.acquisition.get("ct")


def load_model(path: str | os.PathLike, device: torch.device | str = "cpu") -> LoadedModel:
    """Rebuild the network of a training checkpoint (tensors mapped to CPU first).

    Raises
    ------
    InputError
        Missing or unreadable checkpoint.
    """
    from .modalities.acquisition import acquisition_from_dict
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
    acq = ckpt.get("acquisition")
    if acq is None:  # checkpoints before the modality plug-ins: CT geometry + MRI sampling
        acq = {**({"ct": ckpt["geometry"]} if ckpt.get("geometry") else {})}
        acq.update(ckpt.get("sampling") or {})
    try:
        acquisition = acquisition_from_dict(acq)
    except (KeyError, ValueError, TypeError) as exc:
        raise InputError(f"checkpoint {path} stores an invalid acquisition: {exc}") from exc
    return LoadedModel(
        net=net,
        config=cfg,
        modalities=tuple(ckpt.get("modalities") or cfg.modalities),
        acquisition=acquisition,
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
    path: str | os.PathLike,
    model: LoadedModel,
    modality: str | Sequence[str] | None = None,
) -> tuple[str, dict[str, torch.Tensor], Any]:
    """Read a raw ``.npy`` measurement into a batch for the model.

    Each of the model's modalities (in order, or those of ``modality``) is asked whether the array
    is its kind of data (:meth:`msl_recon.modalities.Modality.raw_from_array`): a real array is
    a CT sinogram ``(V, D)`` or ``(S, V, D)`` in the checkpoint's geometry (a different ``V``
    selects evenly spaced views over the same arc); a complex array is masked Cartesian k-space
    ``(H, W)`` or ``(S, H, W)`` whose mask is the set of non-zero columns.

    Returns
    -------
    modality, batch, acquisition
        The modality, a batch dict of its raw data, and its acquisition.
    """
    from . import modalities

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
    if modality is None:
        candidates = list(model.modalities)
    else:
        candidates = [modality] if isinstance(modality, str) else list(modality)
    unknown = [m for m in candidates if m not in model.modalities]
    if unknown:
        raise InputError(f"the model has no modality {unknown} (it has {model.modalities})")
    n = int(model.config.image_size)
    for m in candidates:
        try:
            got = modalities.get(m).raw_from_array(a, model.acquisition.get(m), n)
        except InputError as exc:
            raise InputError(f"{p}: {exc}") from exc
        if got is not None:
            return m, got[0], got[1]
    kind = "complex" if np.iscomplexobj(a) else "real"
    raise InputError(
        f"{p} holds {kind} data that none of the model's modalities {candidates} reads "
        "(CT takes real sinograms, MRI complex k-space)"
    )


def back_transform(op: Any, measurement: torch.Tensor) -> torch.Tensor:
    """The analytical sparse-data image ``op.pseudo_inverse()(y)`` (magnitude if complex).

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
        Collated measurements (each modality's raw data and extras), on any device.
    acquisition : dict
        Acquisition of each modality of the batch (``MSLDataset.acquisition``).
    modalities : sequence of str
        Inputs to use (a subset of the model's modalities).
    device : torch.device
    """

    def __init__(
        self,
        model: LoadedModel,
        batch: dict[str, Any],
        acquisition: dict[str, Any],
        modalities: Sequence[str],
        device: torch.device,
    ) -> None:
        from . import modalities as registry
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
        all_ops = build_operators(self.batch, acquisition, device)
        missing = [m for m in self.modalities if m not in all_ops]
        if missing:
            raise InputError(f"the input holds no raw data of {missing}")
        self.ops = {m: all_ops[m] for m in self.modalities}
        self.measurements = {m: registry.get(m).measurement(self.batch) for m in self.modalities}
        with torch.no_grad():
            self.features = model.net.encode(self.measurements, self.ops)

    @property
    def batch_size(self) -> int:
        """Number of slices in the batch."""
        return int(next(iter(self.measurements.values())).shape[0])

    def inputs(self) -> dict[str, torch.Tensor]:
        """Sparse-data images per used modality, ``(B, H, W)`` real."""
        from . import modalities as registry

        with torch.no_grad():
            return {
                m: registry.get(m).back_transform(self.measurements[m], self.ops[m]).float()
                for m in self.modalities
            }

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
