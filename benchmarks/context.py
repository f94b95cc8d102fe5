"""Shared, cached artefacts of a benchmark run: datasets, trained models, chosen weights.

Everything expensive is built once per run directory (``<out>/cache``) and reused by every
experiment and by a resumed run: simulated datasets, MSL checkpoints, pix2pix/DeepFusion
weights, the compressed-sensing weights chosen on the validation split. Training wall times are
recorded for the cost table.
"""

from __future__ import annotations

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
        self.timings: dict[str, float] = (
            json.loads(self._timing_path.read_text(encoding="utf-8"))
            if self._timing_path.exists()
            else {}
        )
        self._models: dict[str, Any] = {}

    # ------------------------------------------------------------------ bookkeeping
    def record_time(self, key: str, seconds: float) -> None:
        """Remember a wall time (persisted with the cache)."""
        self.timings[key] = float(seconds)
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

        ``main``: the built-in phantom with CT, T1 and T2 at the suite's acquisition.
        ``ood``: a different phantom family for the out-of-distribution test (procedural
        anatomy instead of MNI152, every subject with a lesion), test split only.
        """
        from msl_recon.cli.main import main as cli

        d = self.cache / f"data-{name}"
        if (d / "test.h5").exists():
            return d
        s = self.suite
        t0 = time.perf_counter()
        if name == "main":
            args = [
                "simulate",
                "--out", str(d),
                "--size", str(s.image_size),
                "--subjects", str(s.n_subjects),
                "--slices", str(s.n_slices),
                "--split", ",".join(str(f) for f in s.fractions),
                "--modalities", "ct,t1,t2",
                "--preset", s.preset,
                "--views", str(s.n_views),
                "--acceleration", str(s.acceleration),
                "--center-fraction", str(s.center_fraction),
                "--seed", str(s.seed),
                "--overwrite",
            ]  # fmt: skip
            if not self.progress:
                args.append("--quiet")
            code = cli(args)
            if code != 0:
                raise RuntimeError(f"simulate failed with exit code {code}")
        elif name == "ood":
            self._simulate_ood(d)
        else:
            raise ValueError(f"unknown dataset {name!r}")
        self.record_time(f"simulate/{name}", time.perf_counter() - t0)
        return d

    def _simulate_ood(self, d: Path) -> None:
        import geometries
        from msl_recon.data.phantom import PhantomConfig
        from msl_recon.data.pipeline import SimulationRun, run_simulation
        from msl_recon.data.simulate import SimulationSpec

        s = self.suite
        geom = geometries.preset(s.preset, image_size=s.image_size, n_views=s.n_views)
        mask = geometries.CartesianMask(
            shape=(s.image_size, s.image_size),
            acceleration=s.acceleration,
            center_fraction=s.center_fraction,
            seed=0,
        )
        spec = SimulationSpec(geometry=geom, sampling={m: mask for m in ("t1", "t2")})
        run = SimulationRun(
            out_dir=d,
            spec=spec,
            modalities=("ct", "t1", "t2"),
            size=s.image_size,
            n_subjects=s.ood_subjects,
            n_slices=s.n_slices,
            fractions=(0.0, 0.0, 1.0),
            seed=s.seed + 1000,
            overwrite=True,
            progress=self.progress,
            phantom_config=PhantomConfig(anatomy="procedural", lesion_probability=1.0),
        )
        run_simulation(run)

    def test_set(self, name: str = "main", split: str = "test", **kw: Any) -> Any:
        """An :class:`MSLDataset` of a split (``n_views``, ``acceleration``: sparser data)."""
        from msl_recon.data.dataset import MSLDataset

        return MSLDataset(self.dataset_dir(name) / f"{split}.h5", **kw)

    def test_indices(self, ds: Any) -> list[int]:
        """Test slice indices used by every method (capped by the suite), evenly spread."""
        n = len(ds)
        cap = self.suite.max_test_slices
        if cap is None or n <= cap:
            return list(range(n))
        return sorted({int(i) for i in np.linspace(0, n - 1, cap).round()})

    # ------------------------------------------------------------------ MSL models
    def msl_model(
        self,
        name: str,
        modalities: tuple[str, ...],
        *,
        iterations: int | None = None,
        random_views: tuple[int, ...] | None = None,
        checkpoints: int = 1,
        config: dict[str, Any] | None = None,
    ) -> Path:
        """Train (once) the MSL model ``name``; returns its run directory.

        Parameters
        ----------
        modalities : tuple of str
            Input modalities in config order (λ=0 is the first).
        iterations : int, optional
            Default: the suite's ``iters_main``.
        random_views : tuple of int, optional
            Training-time randomisation of the CT view count (subsets of the stored views).
        checkpoints : int
            Evenly spaced checkpoints to keep along training (for progress curves).
        config : dict, optional
            Config fields to override (e.g. ``{"input_skip": False}``).
        """
        from msl_recon.training.loop import TrainOptions, train

        run_dir = self.cache / f"msl-{name}"
        iters = iterations or self.suite.iters_main
        final = run_dir / "final.pt"
        if final.exists():
            return run_dir
        t0 = time.perf_counter()
        opts = TrainOptions(
            data=self.dataset_dir("main"),
            out=run_dir,
            config=self.config_spec(**(config or {})),
            modalities=modalities,
            iterations=iters,
            batch_size=self.suite.batch_size,
            seed=self.suite.seed,
            device=str(self.device),
            checkpoint_every=max(1, iters // max(1, checkpoints)),
            val_every=max(1, iters // 2),
            random_views=random_views,
            overwrite=True,
            resume=False,
            progress=self.progress,
            tensorboard=False,
        )
        res = train(opts)
        self.record_time(f"train/msl-{name}", time.perf_counter() - t0)
        torch.save(
            {
                "iterations": res.iteration,
                "checkpoint": str(res.checkpoint),
                "seconds": res.seconds,
            },
            final,
        )
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

    def load_msl(self, run_dir: Path, checkpoint: Path | None = None) -> Any:
        """The :class:`~msl_recon.inference.LoadedModel` of a run (its last checkpoint)."""
        from msl_recon.inference import load_model

        if checkpoint is None:
            info = torch.load(run_dir / "final.pt", map_location="cpu", weights_only=False)
            checkpoint = Path(info["checkpoint"])
        key = str(checkpoint)
        if key not in self._models:
            self._models[key] = load_model(checkpoint, device=self.device)
        return self._models[key]

    # ------------------------------------------------------------------ learned baselines
    def pix2pix(self, direction: str) -> Any:
        """A trained pix2pix model for ``"mr2ct"`` or ``"ct2mr"`` (sparse input → GT target)."""
        from msl_recon.baselines import Pix2Pix

        s = self.suite
        path = self.cache / f"pix2pix-{direction}.pt"
        model = Pix2Pix(s.image_size, base=s.p2p_base, device=self.device, seed=s.seed)
        if path.exists():
            model.load_state_dict(torch.load(path, map_location=self.device))
            return model.eval()
        src_m, tgt_m = ("t1", "ct") if direction == "mr2ct" else ("ct", "t1")
        src, tgt = self._training_pairs(src_m, tgt_m)
        t0 = time.perf_counter()
        model.fit(_pair_loader(src, tgt, s.batch_size, s.seed), s.p2p_iters, progress=self.progress)
        self.record_time(f"train/pix2pix-{direction}", time.perf_counter() - t0)
        torch.save(model.state_dict(), path)
        return model.eval()

    def deepfusion(self) -> Any:
        """A trained DeepFusion model (CT and MRI encoder–decoders on sparse images)."""
        from msl_recon.baselines import DeepFusion

        s = self.suite
        path = self.cache / "deepfusion.pt"
        model = DeepFusion(s.image_size, base=s.df_base, device=self.device, seed=s.seed)
        if path.exists():
            model.load_state_dict(torch.load(path, map_location=self.device))
            return model.eval()
        ct_sp, ct_gt = self._training_pairs("ct", "ct")
        mr_sp, mr_gt = self._training_pairs("t1", "t1")
        quads = _QuadLoader(ct_sp, mr_sp, ct_gt, mr_gt, batch=s.batch_size, seed=s.seed)
        t0 = time.perf_counter()
        model.fit(quads, s.df_iters, progress=self.progress)
        self.record_time("train/deepfusion", time.perf_counter() - t0)
        torch.save(model.state_dict(), path)
        return model.eval()

    def _training_pairs(self, src_m: str, tgt_m: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Sparse images of ``src_m`` and ground truth of ``tgt_m`` for the whole train split."""
        from .evaluate import sparse_and_truth

        ds = self.test_set("main", split="train")
        sparse, truth = sparse_and_truth(ds, list(range(len(ds))), self.device)
        return sparse[src_m], truth[tgt_m]


def _pair_loader(src: torch.Tensor, tgt: torch.Tensor, batch: int, seed: int):
    """Endless shuffled mini-batches ``(src, tgt)`` of shape ``(B, 1, H, W)``."""
    gen = torch.Generator().manual_seed(seed)
    n = src.shape[0]
    while True:
        perm = torch.randperm(n, generator=gen)
        for i in range(0, n - batch + 1, batch):
            idx = perm[i : i + batch]
            yield src[idx, None], tgt[idx, None]


class _QuadLoader:
    """Endless shuffled ``(ct_sparse, mr_sparse, ct_target, mr_target)`` mini-batches."""

    def __init__(self, *arrays: torch.Tensor, batch: int, seed: int) -> None:
        self.arrays, self.batch, self.seed = arrays, batch, seed

    def __iter__(self):
        gen = torch.Generator().manual_seed(self.seed)
        n = self.arrays[0].shape[0]
        while True:
            perm = torch.randperm(n, generator=gen)
            for i in range(0, n - self.batch + 1, self.batch):
                idx = perm[i : i + self.batch]
                yield tuple(a[idx, None] for a in self.arrays)
