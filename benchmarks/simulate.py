"""Benchmark: slices per second to simulate CT + MRI sensor data, batched pipeline vs ASTRA direct.

Work per slice: a fan-beam sinogram (``msl-paper`` preset, 64 views) of the CT image and the
Cartesian k-space (acceleration 4, centre fraction 0.1) of the T1 image, in one of two
acquisition presets (:mod:`msl_recon.data.acquisition.presets`):

* ``paper``: same grid, noise-free, single coil.
* ``clinical``: CT projected from the 2N² image on the 2× detector, binned, Poisson + electronic
  noise at the routine dose; MRI from the 2N² image with a random phase, 12 loop coils, central
  k-space block, correlated complex noise at SNR 30. The coil maps (per subject) are set-up cost.

Methods:

* ``batched``: ``paper``: :class:`msl_recon.data.simulate.Simulator`; ``clinical``:
  :func:`~msl_recon.data.acquisition.ct.simulate_ct_sinogram` and
  :func:`~msl_recon.data.acquisition.mri.simulate_mri_kspace` on the batch — ``RayTransform``
  with ASTRA's system matrix as one sparse multiply per batch; for MRI torch FFTs pruned to the
  mask's sampled columns (:func:`~msl_recon.data.acquisition.mri.fine_cartesian_columns`: FFT
  along the phase-encode axis, then along the readout only for the sampled columns), coil noise
  drawn in float32 only for those columns.
* ``astra-direct``: per slice, ASTRA's own CPU forward projector (``astra.create_sino``, on the
  fine geometry for ``clinical``) and numpy for the rest (binning, noise, FFTs: the full fine
  FFT of every coil, cropped and masked; numpy's FFT is single-threaded).

Each configuration runs in a fresh subprocess, so the peak resident memory (``ru_maxrss``) is its
own. ``setup_s`` is the one-off cost (system matrix from the on-disk cache, or built when cold).

Usage::

    python benchmarks/simulate.py [--presets paper clinical] [--sizes 256 384] [--slices 32]

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


def _clinical(method: str, n: int, slices: int, batch: int) -> tuple[float, float, float]:
    """Set-up time, run time and the CT part of the run time of the ``clinical`` preset."""
    import torch

    import geometries as geo
    from msl_recon.data.acquisition import coils, ct, mri
    from msl_recon.data.acquisition.presets import CLINICAL as P

    f = P.supersample
    g = geo.preset("msl-paper", image_size=n, n_views=64)
    mask = geo.CartesianMask(shape=(n, n), acceleration=4, center_fraction=0.1, seed=0)
    ct_f, t1_f = _images(f * n, slices, 0), _images(f * n, slices, 1)
    gen = torch.Generator().manual_seed(0)
    t0 = time.perf_counter()
    maps = coils.loop_coil_maps((f * n, f * n), P.n_coils, fov_mm=220.0, seed=0)
    psi = mri.coil_noise_covariance(P.n_coils, P.coil_noise_correlation, gen)
    if method == "batched":
        ct.simulate_ct_sinogram(torch.from_numpy(ct_f[:1]), g, P.dose(), gen)  # matrix (cache)
        setup = time.perf_counter() - t0
        t0 = time.perf_counter()
        t_ct = 0.0
        for b in range(0, slices, batch):
            t1 = time.perf_counter()
            x = torch.from_numpy(ct_f[b : b + batch])
            ct.simulate_ct_sinogram(x, g, P.dose(), gen)
            t_ct += time.perf_counter() - t1
            m = torch.from_numpy(t1_f[b : b + batch])
            ph = mri.random_phase((f * n, f * n), gen, batch=m.shape[0])
            mri.simulate_mri_kspace(
                m, mask, generator=gen, maps_fine=maps, phase_fine=ph, snr=P.mr_snr, covariance=psi
            )
        return setup, time.perf_counter() - t0, t_ct
    import astra

    fg = ct.fine_geometry(g, f)
    vol, proj = fg.to_astra()
    pid = astra.create_projector("line_fanflat", proj, vol)
    rng = np.random.default_rng(0)
    maps_np = maps.numpy()
    chol = np.linalg.cholesky(psi.numpy())
    msk = mask.mask
    lo = f * n // 2 - n // 2
    kk = (np.arange(n) - n // 2) * (2 * np.pi / (f * n))
    ramp = np.exp(0.5j * (f - 1) * (kk[:, None] + kk[None, :])) / f
    setup = time.perf_counter() - t0
    t0 = time.perf_counter()
    t_ct = 0.0
    for i in range(slices):
        t1 = time.perf_counter()
        sid, p = astra.create_sino(ct_f[i], pid)
        astra.data2d.delete(sid)
        tr = np.exp(-ct.MU_PER_UNIT * p).reshape(p.shape[0], -1, f).mean(-1)
        cnt = rng.poisson(P.ct_i0 * tr) + P.ct_sigma_e * rng.standard_normal(tr.shape)
        _s = -np.log(np.maximum(cnt, 1.0) / P.ct_i0) / ct.MU_PER_UNIT
        t_ct += time.perf_counter() - t1
        ph = mri.random_phase((f * n, f * n), gen)[0].numpy()
        x = maps_np * (t1_f[i] * np.exp(1j * ph))
        k = np.fft.fftshift(
            np.fft.fft2(np.fft.ifftshift(x, axes=(-2, -1)), norm="ortho"), axes=(-2, -1)
        )
        k = k[:, lo : lo + n, lo : lo + n] * ramp * msk
        z = (rng.standard_normal(k.shape) + 1j * rng.standard_normal(k.shape)) / np.sqrt(2)
        gt = t1_f[i].reshape(n, f, n, f).mean(axis=(1, 3))
        sigma = gt[gt >= 0.1 * gt.max()].mean() / P.mr_snr
        _k = (k + sigma * np.einsum("ij,j...->i...", chol, z) * msk).astype(np.complex64)
    astra.projector.delete(pid)
    return setup, time.perf_counter() - t0, t_ct


def _one(method: str, n: int, slices: int, batch: int, preset: str = "paper") -> dict:
    import torch

    import geometries as geo
    from msl_recon.data.simulate import SimulationSpec, Simulator

    g = geo.preset("msl-paper", image_size=n, n_views=64)
    mask = geo.CartesianMask(shape=(n, n), acceleration=4, center_fraction=0.1, seed=0)
    ct, t1 = _images(n, slices, 0), _images(n, slices, 1)
    run_ct = None
    if preset == "clinical":
        setup, run, run_ct = _clinical(method, n, slices, batch)
    elif method == "batched":
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
        "preset": preset,
        "method": method,
        "size": n,
        "slices": slices,
        "batch": batch,
        "setup_s": setup,
        "run_s": run,
        "slices_per_s": slices / run,
        "ct_slices_per_s": slices / run_ct if run_ct else None,
        "peak_rss_mb": rss_mb,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--presets", nargs="+", default=["paper", "clinical"])
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 384])
    ap.add_argument("--slices", type=int, default=32)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--one", nargs=3, metavar=("METHOD", "SIZE", "PRESET"), help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    if args.one:
        m, size, pre = args.one
        print(json.dumps(_one(m, int(size), args.slices, args.batch, pre)))
        return 0
    rows = []
    for pre in args.presets:
        for n in args.sizes:
            for method in ("batched", "astra-direct"):
                cmd = [sys.executable, __file__, "--one", method, str(n), pre]
                cmd += ["--slices", str(args.slices), "--batch", str(args.batch)]
                res = subprocess.run(cmd, capture_output=True, text=True, check=True)
                rows.append(json.loads(res.stdout.strip().splitlines()[-1]))
                r = rows[-1]
                print(
                    f"{pre:8s} {method:13s} {n}²: {r['slices_per_s']:.1f} slices/s",
                    file=sys.stderr,
                )
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
    ref = {(r["preset"], r["size"]): r for r in rows if r["method"] == "astra-direct"}
    print(
        "| preset | size | method | slices/s | vs ASTRA | CT part slices/s | CT vs ASTRA "
        "| setup s | peak RSS MB |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        base = ref.get((r["preset"], r["size"]))
        ratio = f"{r['slices_per_s'] / base['slices_per_s']:.1f}×" if base else ""
        cts, ct_ratio = "", ""
        if r.get("ct_slices_per_s"):
            cts = f"{r['ct_slices_per_s']:.1f}"
            ct_ratio = f"{r['ct_slices_per_s'] / base['ct_slices_per_s']:.1f}×"
        print(
            f"| {r['preset']} | {r['size']}² | {r['method']} | {r['slices_per_s']:.1f} | {ratio} | "
            f"{cts} | {ct_ratio} | {r['setup_s']:.2f} | {r['peak_rss_mb']:.0f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
