"""Shared, cached artefacts of a benchmark run: datasets, trained models, validation choices.

Everything expensive is built once per run directory (``<out>/cache``) and reused by every
experiment and by a resumed run. Learned models are trained for a wall-time budget (see
:mod:`benchmarks.budget`); every choice is made on the validation split.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .suites import Suite

__all__ = ["Context"]

_MICRO_CONFIG = """
base = "small"
image_size = 32
enc_channels = [4, 8, 8]
enc_res_blocks = 1
patch_size = 4
width = 32
depth = 1
heads = 2
head_dim = 16
mlp_dim = 32
up_channels = [8, 8]
dec_res_blocks = 1
dec_channels = [8, 4]
lambda_embed = 8
"""


class Context:
    """Artefacts of one suite run, built lazily and cached on disk.

    Parameters
    ----------
    suite : Suite
    out : Path
        Run directory (``benchmarks/results/<suite>``).
    device : torch.device
    progress : bool
        Show progress bars.
    """

    def __init__(
        self, suite: Suite, out: Path, device: torch.device, progress: bool = True
    ) -> None:
        self.suite = suite
        self.out = Path(out)
        self.cache = self.out / "cache"
        self.cache.mkdir(parents=True, exist_ok=True)
        self.figures = self.out / "figures"
        self.figures.mkdir(parents=True, exist_ok=True)
        self.device = device
        self.progress = progress
        self._timing_path = self.cache / "timings.json"
        self.timings: dict[str, Any] = (
            json.loads(self._timing_path.read_text(encoding="utf-8"))
            if self._timing_path.exists()
            else {}
        )
        self._models: dict[str, Any] = {}

    # ------------------------------------------------------------------ bookkeeping
    def record(self, key: str, value: Any) -> None:
        """Remember a training record (seconds, iterations, lr…), persisted with the cache."""
        self.timings[key] = value
        self._timing_path.write_text(json.dumps(self.timings, indent=1), encoding="utf-8")

    def config_spec(self, **overrides: Any) -> str:
        """The MSL config of this suite (name or TOML path), with optional field overrides."""
        if self.suite.config == "tiny":
            text = _MICRO_CONFIG
        elif overrides:
            text = f'base = "{self.suite.config}"\n'
        else:
            return self.suite.config
        for k, v in overrides.items():
            text += f"{k} = {json.dumps(v)}\n"
        name = "-".join(f"{k}-{v}" for k, v in overrides.items()) or "base"
        path = self.cache / f"config-{name}.toml"
        path.write_text(text, encoding="utf-8")
        return str(path)

    # ------------------------------------------------------------------ data
    def dataset_dir(self, name: str = "main") -> Path:
        """Folder with ``train/val/test.h5`` of dataset ``name`` (simulated on first use).

        ``main``: the built-in phantom with CT, T1 and T2 at the suite's acquisition preset
        (``paper`` or ``clinical``). ``ood``: a real distribution shift, test split only:
        procedural anatomy with a lesion in every subject, a quarter of the CT dose and another
        scanner geometry (:mod:`benchmarks.acquisition`). ``ood-train``: the training side of
        that shift, CT and T1 of MNI152-derived subjects only (every split), routine dose, the
        main scanner. ``pet``: CT, T1 and PET of other subjects (same split fractions).
        """
        d = self.cache / f"data-{name}"
        if (d / "test.h5").exists():
            return d
        t0 = time.perf_counter()
        if name not in ("main", "ood", "ood-train", "pet"):
            raise ValueError(f"unknown dataset {name!r}")
        self._simulate(name, d)
        self.record(f"simulate/{name}", time.perf_counter() - t0)
        return d

    def _simulate(self, name: str, d: Path) -> None:
        import geometries
        from msl_recon.data.pipeline import SimulationRun, run_simulation

        from .acquisition import get_preset, ood_geometry, ood_preset, simulation_spec

        s = self.suite
        preset = get_preset(s.acq_preset)
        mask = geometries.CartesianMask(
            shape=(s.image_size, s.image_size),
            acceleration=s.acceleration,
            center_fraction=s.center_fraction,
            seed=0,
        )
        mods: tuple[str, ...] = ("ct", "t1", "t2")
        fractions, n_subj, seed = s.fractions, s.n_subjects, s.seed
        geometry, scale = None, 1.0
        if name == "ood":
            # another anatomy family, a quarter of the dose, another scanner
            geometry, scale = ood_geometry(preset), 0.25
            preset = ood_preset(preset)
            fractions, n_subj, seed = (0.0, 0.0, 1.0), s.ood_subjects, s.seed + 1000
        elif name == "ood-train":
            # one anatomy family (MNI152 warps) in every split: the OOD set's procedural brains
            # are then a family its model never saw
            preset = dataclasses.replace(preset, anatomy="auto", heldout_procedural_fraction=0.0)
            mods, seed = ("ct", "t1"), s.seed + 3000
        elif name == "pet":
            mods, n_subj, seed = ("ct", "t1", "pet"), s.pet_subjects, s.seed + 2000
        spec = simulation_spec(
            preset,
            image_size=s.image_size,
            n_views=s.n_views,
            masks={"t1": mask, "t2": mask},
            geometry=geometry,
            ct_i0_scale=scale,
        )
        run_simulation(
            SimulationRun(
                out_dir=d,
                spec=spec,
                modalities=mods,
                size=s.image_size,
                n_subjects=n_subj,
                n_slices=s.n_slices,
                fractions=fractions,
                seed=seed,
                overwrite=True,
                progress=self.progress,
            )
        )

    def test_set(self, name: str = "main", split: str = "test", **kw: Any) -> Any:
        """An :class:`MSLDataset` of a split (``n_views``, ``acceleration``: sparser data)."""
        from msl_recon.data.dataset import MSLDataset

        return MSLDataset(self.dataset_dir(name) / f"{split}.h5", **kw)

    def test_indices(self, ds: Any) -> list[int]:
        """Every slice of the split (the test split is scored whole)."""
        return list(range(len(ds)))

    def one_per_subject(self, ds: Any) -> list[int]:
        """The middle slice of every subject of a split (for the costly CS sweeps)."""
        by: dict[str, list[int]] = {}
        for i, sid in enumerate(ds.subject_ids()):
            by.setdefault(sid, []).append(i)
        return sorted(v[len(v) // 2] for v in by.values())

    def val_indices(self, ds: Any, n: int | None = None) -> list[int]:
        """``n`` validation slices spread over the validation subjects (default ``val_slices``)."""
        n = self.suite.val_slices if n is None else n
        if len(ds) <= n:
            return list(range(len(ds)))
        return sorted({int(i) for i in np.linspace(0, len(ds) - 1, n).round()})

    def val_indices_of(self, split: str = "val", name: str = "main") -> list[int]:
        """:meth:`val_indices` of a split of dataset ``name``."""
        return self.val_indices(self.test_set(name, split=split))

    # ------------------------------------------------------------------ MSL models
    def msl_model(
        self,
        name: str,
        modalities: tuple[str, ...],
        *,
        budget_s: float | None = None,
        seed: int | None = None,
        lr: float | None = None,
        random_views: tuple[int, ...] | None = None,
        config: dict[str, Any] | None = None,
        data: str = "main",
        shift_augment: dict[str, float] | None = None,
    ) -> Path:
        """Train (once) the MSL model ``name`` for a wall-time budget; returns its run directory.

        The budget is enforced by the training loop's clock (``TrainOptions.time_budget_s``),
        as for the baselines, and it includes choosing the checkpoint: ``checkpoints``
        checkpoints are written at even times and the best on validation is used
        (:meth:`load_msl`). The loop gets the budget minus the selection time measured on the
        previous run of the same modalities (10 % of the budget for the first); the recorded
        ``seconds`` are training plus selection. ``lr`` defaults to the one chosen on validation
        (:func:`benchmarks.budget.msl_lr`).
        """
        from msl_recon.training.loop import TrainOptions, train

        s = self.suite
        run_dir = self.cache / f"msl-{name}"
        final = run_dir / "final.pt"
        if final.exists():
            return run_dir
        budget = s.budget_s if budget_s is None else budget_s
        sel_key = f"select_s/{len(modalities)}"
        reserve = min(0.5 * budget, float(self.timings.get(sel_key, 0.1 * budget)))
        train_s = budget - reserve
        opts = TrainOptions(
            data=self.dataset_dir(data),
            out=run_dir,
            config=self.config_spec(**(config or {})),
            modalities=modalities,
            time_budget_s=train_s,
            batch_size=s.batch_size,
            lr=lr,
            seed=s.seed if seed is None else seed,
            device=str(self.device),
            checkpoint_every=0,
            checkpoint_every_s=train_s / max(1, s.checkpoints),
            checkpoint_minutes=1e9,
            val_every=0,
            random_views=random_views,
            shift_augment=shift_augment,
            overwrite=True,
            resume=False,
            progress=self.progress,
            tensorboard=False,
        )
        res = train(opts)
        t_sel = time.perf_counter()
        best = self.select_checkpoint(run_dir, modalities, data)
        sel_s = time.perf_counter() - t_sel
        self.record(sel_key, sel_s)
        info = {
            "iterations": res.iteration,
            "seconds": res.seconds + sel_s,
            "train_s": res.seconds,
            "select_s": sel_s,
            "lr": lr,
            "budget_s": budget,
        }
        self.record(f"train/msl-{name}", info)
        torch.save({**info, "checkpoint": str(best)}, final)
        return run_dir

    def msl_checkpoints(self, run_dir: Path) -> list[tuple[int, Path]]:
        """``(iteration, path)`` of every checkpoint of a run, sorted."""
        from msl_recon.training.checkpoint import load_checkpoint

        by_iter: dict[int, Path] = {}
        for p in sorted(run_dir.glob("*.pt")):
            if p.name == "final.pt":
                continue
            try:
                it = int(load_checkpoint(p, map_location="cpu").get("iteration", -1))
            except Exception:
                continue
            if it not in by_iter or p.name.startswith("ckpt"):
                by_iter[it] = p
        return sorted(by_iter.items())

    def select_checkpoint(self, run_dir: Path, modalities: tuple[str, ...], data: str) -> Path:
        """The checkpoint of a run with the lowest validation MAE (mean over its end points)."""
        from .evaluate import msl_val_score

        val = self.test_set(data, split="val", modalities=None)
        idx = self.val_indices(val)
        scored = []
        for it, path in self.msl_checkpoints(run_dir):
            model = self.load_msl(run_dir, path)
            scored.append((msl_val_score(model, val, idx, modalities, self.device), it, path))
        if not scored:
            raise RuntimeError(f"{run_dir} has no checkpoint")
        return min(scored, key=lambda t: (t[0], -t[1]))[2]

    def run_info(self, run_dir: Path) -> dict[str, Any]:
        """``iterations``, ``seconds``, ``lr``, ``budget_s`` and the chosen ``checkpoint``."""
        return torch.load(run_dir / "final.pt", map_location="cpu", weights_only=False)

    def load_msl(self, run_dir: Path, checkpoint: Path | None = None) -> Any:
        """The :class:`~msl_recon.inference.LoadedModel` of a run (its validation-best one)."""
        from msl_recon.inference import load_model

        if checkpoint is None:
            checkpoint = Path(self.run_info(run_dir)["checkpoint"])
        key = str(checkpoint)
        if key not in self._models:
            self._models[key] = load_model(checkpoint, device=self.device)
        return self._models[key]
