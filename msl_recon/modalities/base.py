"""The modality plug-in contract: everything msl-recon knows about one sensor.

A :class:`Modality` owns one sensor end to end (see ``docs/architecture.md``, "The modality
plug-in contract"):

==========================  ===================================================================
what                        members
==========================  ===================================================================
name and aliases            :attr:`name`, :attr:`aliases`, :attr:`label`, :attr:`family`
keys in batches and files   :attr:`raw_key` (batch key of the raw data), :attr:`h5_group`
                            (HDF5 group of the raw data); ground truth is always ``images/<name>``
physical units              :attr:`units`, :meth:`to_unit`, :meth:`from_unit` ([0, 1] ↔ physical)
metric windows              :attr:`windows` (physical units)
acquisition model           :meth:`validate`, :meth:`file_attrs`, :meth:`simulator`
reading stored data         :meth:`open` → :class:`ModalityReader`
forward operator            :meth:`operator` (from a batch and the stored acquisition)
analytical back-transform   :meth:`back_transform` (the PI-encoder's input image)
training randomisation      :meth:`randomize`
raw files                   :meth:`raw_from_array`
previews                    :meth:`preview_panels`
==========================  ===================================================================

Shared code (simulation, the dataset, batches, the encoders, inference, the CLI and the
benchmarks) only ever iterates over registered modalities (:mod:`msl_recon.modalities`) and calls
these members; it never branches on a modality's name.
"""

from __future__ import annotations

import abc
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import torch

__all__ = ["Modality", "ModalityReader", "ModalitySimulator", "lru_get"]


def lru_get(cache: OrderedDict, key: Any, make: Callable[[], Any], size: int = 16) -> Any:
    """``cache[key]``, built by ``make()`` on a miss; keeps the ``size`` most recent entries
    (the plug-ins cache operators with an expensive set-up this way)."""
    if key in cache:
        cache.move_to_end(key)
        return cache[key]
    value = cache[key] = make()
    while len(cache) > size:
        cache.popitem(last=False)
    return value


class ModalityReader(abc.ABC):
    """Reads one modality's raw data from an open split file (built by :meth:`Modality.open`).

    Attributes
    ----------
    acquisition : object
        The acquisition description after any re-derivation (a CT geometry, a Cartesian mask or
        radial trajectory, a PET acquisition …); what :meth:`Modality.operator` takes.
    """

    acquisition: Any = None

    @abc.abstractmethod
    def read(self, f: Any, i: int) -> dict[str, torch.Tensor]:
        """Raw data of slice ``i`` of the open HDF5 file ``f`` as batch entries (no batch axis)."""

    def has_raw(self, f: Any) -> bool:
        """Whether the file holds this modality's raw data (not only its ground truth)."""
        return True


class ModalitySimulator(abc.ABC):
    """Turns ground-truth images of one modality into its raw data (built by
    :meth:`Modality.simulator`)."""

    @abc.abstractmethod
    def simulate(
        self,
        images: torch.Tensor,
        *,
        subject_index: int,
        slice_indices: Sequence[int],
        generator: torch.Generator,
        context: Mapping[str, torch.Tensor],
    ) -> dict[str, np.ndarray]:
        """Raw data of a batch of slices.

        Parameters
        ----------
        images : Tensor ``(B, N, N)`` float32 in [0, 1]
            Ground truth of this modality, on the simulator's device.
        subject_index : int
            Global subject index (per-slice seeds).
        slice_indices : sequence of int
            Axial index of each slice, length ``B``.
        generator : torch.Generator
            CPU generator of all the noise of this batch (shared by the modalities, drawn in
            the registry's order).
        context : mapping
            Ground truth of every simulated modality ``{m: (B, N, N)}`` (PET uses CT for its
            attenuation map).

        Returns
        -------
        dict
            HDF5 dataset name → array with a leading slice axis.
        """

    def static(self) -> dict[str, np.ndarray]:
        """Arrays written once per file (e.g. coil maps), HDF5 name → array."""
        return {}


class Modality(abc.ABC):
    """One sensor: see the module docstring for the contract.

    Subclasses set the class attributes and implement the abstract methods; an instance is
    registered with :func:`msl_recon.modalities.register`.
    """

    name: str = ""
    aliases: tuple[str, ...] = ()
    label: str = ""
    family: ClassVar[str] = ""
    units: str = ""
    raw_key: str = ""
    h5_group: str = ""
    #: Metric windows in physical units, name → (low, high); the first is the default.
    windows: Mapping[str, tuple[float, float]] = {}
    #: Other modalities whose ground truth the simulator needs (e.g. PET needs CT for its μ
    #: map); simulation loads them even when they are not stored.
    needs: tuple[str, ...] = ()
    #: Name of the analytical input image (the back-transform), e.g. ``"FBP"``.
    input_label: str = "analytical input"
    #: dtype of physical-unit NIfTI outputs (``"float32"``, or ``"int16"`` for CT in HU).
    nifti_dtype: str = "float32"
    #: How physical values map to the stored [0, 1] images (stored in the file attributes).
    intensity: str = ""

    # ------------------------------------------------------------------ units
    def to_unit(self, x: Any) -> Any:
        """Physical values → the [0, 1] range the model trains on (identity by default)."""
        return x

    def from_unit(self, u: Any) -> Any:
        """[0, 1] values → physical units (identity by default)."""
        return u

    # ------------------------------------------------------------------ ground truth
    def from_phantom(
        self, subject: Any, rng: np.random.Generator, *, fine: bool = False
    ) -> np.ndarray | None:
        """Ground truth ``(Z, N, N)`` in [0, 1] of a digital phantom subject
        (:class:`msl_recon.data.phantom.Subject`); ``rng`` draws any per-subject variation.

        ``fine=True`` asks for the same image on the phantom's supersampled grid
        (``subject.fine``, ``(Z, sN, sN)``), which the acquisition simulator projects to avoid
        the inverse crime; a plug-in that simulates on the reconstruction grid returns None."""
        from ..errors import InputError

        raise InputError(f"modality {self.name!r} cannot be simulated from the phantom")

    # ------------------------------------------------------------------ real volumes
    #: Physical value outside the body (fill of resampling and padding), e.g. −1000 HU for CT.
    air_value: float = 0.0

    def volume_to_unit(self, volume: np.ndarray) -> np.ndarray:
        """A whole real volume in physical units → the [0, 1] images (default :meth:`to_unit`;
        MRI normalises per volume)."""
        return np.asarray(self.to_unit(volume), dtype=np.float32)

    def body_mask(self, volume: np.ndarray) -> np.ndarray:
        """Where a real volume (physical units) holds the body (default: > 5 % of the unit
        range)."""
        return self.volume_to_unit(volume) > 0.05

    # ------------------------------------------------------------------ acquisition
    def validate(self, sim: Any, size: int, **flags: Any) -> None:  # noqa: B027 - optional hook
        """Raise ``InputError`` if the simulation settings ``sim`` cannot make this modality's
        data for ``size``² images (``flags``: e.g. ``allow_truncation``)."""

    @abc.abstractmethod
    def file_attrs(self, sim: Any) -> dict[str, Any]:
        """Root attributes this modality adds to a split file (JSON-able; merged by key)."""

    @abc.abstractmethod
    def simulator(self, sim: Any, device: torch.device, **kwargs: Any) -> ModalitySimulator:
        """The acquisition simulator for the settings ``sim``
        (:class:`msl_recon.data.simulate.SimulationSpec`)."""

    def acquisition_to_dict(self, acquisition: Any) -> dict[str, Any] | None:
        """JSON-able form of an acquisition (default: its ``to_dict()``)."""
        return None if acquisition is None else acquisition.to_dict()

    @abc.abstractmethod
    def acquisition_from_dict(self, d: Mapping[str, Any] | None) -> Any:
        """Inverse of :meth:`acquisition_to_dict`."""

    # ------------------------------------------------------------------ files
    @abc.abstractmethod
    def open(
        self,
        attrs: Mapping[str, Any],
        f: Any,
        *,
        n_views: int | None = None,
        acceleration: float | None = None,
        seed: int = 0,
    ) -> ModalityReader:
        """A reader of this modality's raw data in the open split file ``f``.

        ``n_views`` and ``acceleration`` re-derive sparser data; a modality that cannot honour a
        given one ignores it (CT takes views, MRI accelerations).
        """

    def check_file(self, f: Any, attrs: Mapping[str, Any], n_slices: int) -> list[Any]:
        """Check this modality's raw data in the open split file ``f`` (``n_slices`` slices);
        raise ``InputError`` naming what is missing or mis-shaped. Returns the datasets whose
        values the caller then scans for NaN/inf. Default: the group :attr:`h5_group` exists
        and each of its per-slice datasets has ``n_slices`` rows."""
        from ..errors import InputError

        if self.h5_group not in f:
            raise InputError(f"no {self.h5_group} group: the {self.label} measurements")
        out = []
        for ds in f[self.h5_group].values():
            if hasattr(ds, "shape") and len(ds.shape) and ds.shape[0] != n_slices:
                raise InputError(f"{ds.name.lstrip('/')} has {ds.shape[0]} slices, not {n_slices}")
            if hasattr(ds, "shape"):
                out.append(ds)
        return out

    # ------------------------------------------------------------------ physics
    @abc.abstractmethod
    def operator(
        self,
        batch: Mapping[str, Any],
        acquisition: Any,
        device: torch.device | str | None = None,
        image_shape: tuple[int, int] | None = None,
    ) -> Any:
        """The batch's forward operator (a :class:`operators.LinearOperator`)."""

    def measurement(self, batch: Mapping[str, Any]) -> torch.Tensor:
        """The raw data the encoder consumes (``batch[raw_key]``)."""
        return batch[self.raw_key]

    def back_transform(self, y: torch.Tensor, op: Any) -> torch.Tensor:
        """The analytical image of the measurement ``y`` ``(B, …)``: ``(B, N, N)`` real, in the
        [0, 1] units. Default: the operator's pseudo-inverse (magnitude if complex)."""
        x = op.pseudo_inverse()(y)
        return x.abs() if x.is_complex() else x

    # ------------------------------------------------------------------ training / inference
    def randomize(
        self,
        batch: dict[str, Any],
        acquisition: Any,
        gen: np.random.Generator,
        *,
        views: Sequence[int] | None = None,
        accelerations: Sequence[float] | None = None,
    ) -> tuple[dict[str, Any], Any]:
        """Training-time randomisation of this modality's data (default: none)."""
        return batch, acquisition

    def raw_from_array(
        self, a: np.ndarray, acquisition: Any, image_size: int
    ) -> tuple[dict[str, torch.Tensor], Any] | None:
        """Batch entries and acquisition for a raw ``.npy`` array ``(S, …)``, or None if the
        array is not this modality's kind of data."""
        return None

    def preview_panels(
        self, item: Mapping[str, Any], acquisition: Any
    ) -> list[tuple[str, np.ndarray, str]]:
        """Panels ``(title, image, colormap)`` of one dataset item for ``msl-recon preview``."""
        return []

    def __repr__(self) -> str:
        return f"<Modality {self.name} ({self.label}, {self.units})>"
