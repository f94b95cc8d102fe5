"""Benchmark: slices per second to simulate CT + MRI sensor data, batched pipeline vs ASTRA direct.

Work per slice: a fan-beam sinogram (``msl-paper`` preset, 64 views) of the CT image and the
Cartesian k-space (acceleration 4, centre fraction 0.1) of the T1 image.

* ``batched``: :class:`msl_recon.data.simulate.Simulator` — ``RayTransform`` with ASTRA's system
  matrix as one sparse multiply per batch, ``CartesianFourier`` on the batch.
* ``astra-direct``: per slice, ASTRA's own CPU forward projector (``astra.create_sino``) and a
  numpy centred FFT + mask.

Each configuration runs in a fresh subprocess, so the peak resident memory (``ru_maxrss``) is its
own. ``setup_s`` is the one-off cost (system matrix from the on-disk cache, or built when cold).

Usage::

    python benchmarks/simulate.py [--sizes 256 384] [--slices 32] [--batch 16]

Writes ``benchmarks/results/simulate.json`` and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

# run as a script, this folder is sys.path[0] and benchmarks/operators.py would shadow the
# ``operators`` package
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

RESULTS = Path(__file__).resolve().parent / "results" / "simulate.json"


def _images(n: int, count: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:n, :n] - (n - 1) / 2
    head = ((xx / (0.42 * n)) ** 2 + (yy / (0.36 * n)) ** 2 < 1).astype(np.float32)
    return (head[None] * (0.2 + 0.8 * rng.random((count, n, n)))).astype(np.float32)


def _one(method: str, n: int, slices: int, batch: int) -> dict:
    import torch

    import geometries as geo
    from msl_recon.data.simulate import SimulationSpec, Simulator

    g = geo.preset("msl-paper", image_size=n, n_views=64)
    mask = geo.CartesianMask(shape=(n, n), acceleration=4, center_fraction=0.1, seed=0)
    ct, t1 = _images(n, slices, 0), _images(n, slices, 1)
    if method == "batched":
        t0 = time.perf_counter()
        sim = Simulator(SimulationSpec(geometry=g, sampling={"t1": mask}))
        sim.simulate(
            {"ct": ct[:1], "t1": t1[:1]},
            subject_index=0,
            slice_indices=[0],
            generator=torch.Generator().manual_seed(0),
        )
        setup = time.perf_counter() - t0
        t0 = time.perf_counter()
        for b in range(0, slices, batch):
            sim.simulate(
                {"ct": ct[b : b + batch], "t1": t1[b : b + batch]},
                subject_index=0,
                slice_indices=list(range(b, min(b + batch, slices))),
                generator=torch.Generator().manual_seed(0),
            )
        run = time.perf_counter() - t0
    else:
        import astra

        t0 = time.perf_counter()
        vol, proj = g.to_astra()
        pid = astra.create_projector("line_fanflat", proj, vol)
        m = mask.mask
        setup = time.perf_counter() - t0
        t0 = time.perf_counter()
        for i in range(slices):
            sid, _sino = astra.create_sino(ct[i], pid)
            astra.data2d.delete(sid)
            k = np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(t1[i]), norm="ortho"))
            _k = (k * m).astype(np.complex64)
        run = time.perf_counter() - t0
        astra.projector.delete(pid)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return {
        "method": method,
        "size": n,
        "slices": slices,
        "batch": batch,
        "setup_s": setup,
        "run_s": run,
        "slices_per_s": slices / run,
        "peak_rss_mb": rss_mb,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 384])
    ap.add_argument("--slices", type=int, default=32)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--one", nargs=2, metavar=("METHOD", "SIZE"), help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    if args.one:
        print(json.dumps(_one(args.one[0], int(args.one[1]), args.slices, args.batch)))
        return 0
    rows = []
    for n in args.sizes:
        for method in ("batched", "astra-direct"):
            cmd = [
                sys.executable,
                __file__,
                "--one",
                method,
                str(n),
                "--slices",
                str(args.slices),
                "--batch",
                str(args.batch),
            ]
            res = subprocess.run(cmd, capture_output=True, text=True, check=True)
            rows.append(json.loads(res.stdout.strip().splitlines()[-1]))
            r = rows[-1]
            print(f"{method:13s} {n}²: {r['slices_per_s']:.1f} slices/s", file=sys.stderr)
    import torch

    meta = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "machine": platform.machine(),
        "note": "shared 2-core machine; timings are noisy",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2), encoding="utf-8")
    print("| size | method | slices/s | setup s | peak RSS MB |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['size']}² | {r['method']} | {r['slices_per_s']:.1f} | {r['setup_s']:.2f} | "
            f"{r['peak_rss_mb']:.0f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
