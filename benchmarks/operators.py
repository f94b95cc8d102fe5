"""Operator benchmark: our torch operators against ASTRA, ODL, scikit-image and torchkbnufft.

Everything is measured side by side in one run, on 2 CPU threads, so the ratios compare like
with like (absolute times depend on the machine and its load):

- fan beam 256², 64 views, 384 detectors, batch 4: ``RayTransform`` forward, adjoint and
  forward+backward (autograd) against ASTRA's CPU projector looping over the batch and ODL's
  torch ``OperatorModule``; the maximum relative difference against ASTRA;
- system matrix: build time (cold, and loaded from the disk cache), bytes, peak RSS;
- fan-beam FBP (ours, batch 4 and one slice, on ``RayTransform`` output) against ODL's
  ``fbp_op``: time per slice and RMSE on analytic and discrete sinograms; the RMSE on discrete
  wide-fan sinograms against ODL (:mod:`benchmarks._operator_fbp`);
- parallel-beam FBP (ours) against ASTRA's CPU ``FBP`` and ``skimage.transform.iradon``;
- NUFFT forward, adjoint and normal against plain torchkbnufft;
- the paper's size (``msl-paper`` preset at 384²): forward and adjoint, build time and bytes.

Run ``python benchmarks/operators.py`` (``--quick`` for fewer repeats). It prints a table and
writes ``benchmarks/results/operators.json`` (machine info, versions, every number).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

# run as a script, this file's directory comes first on sys.path and its name would shadow the
# ``operators`` package: drop it before importing the package
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
# ... and put this checkout first, ahead of any installed copy of the packages
sys.path.insert(0, str(_HERE.parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import geometries as geo  # noqa: E402
import operators as ops  # noqa: E402
from benchmarks._operator_common import (  # noqa: E402
    Row,
    format_table,
    machine_info,
    not_available,
    odl_fan,
    peak_rss_mb,
    ratio,
    rel_diff,
    row,
    timeit,
)
from benchmarks._operator_fbp import (  # noqa: E402
    bench_discrete_accuracy,
    bench_fan_fbp,
    bench_parallel_fbp,
)
from operators import _astra, _matrix_cache  # noqa: E402

RESULTS = _HERE / "results" / "operators.json"


# ---------------------------------------------------------------------- helpers
# ---------------------------------------------------------------------- ray transform
def bench_ray(g: geo.FanBeam2D, batch: int, repeats: int, section: str) -> list[Row]:
    rows: list[Row] = []
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(batch, *g.image_shape, generator=gen)
    w = torch.rand(batch, *g.sino_shape, generator=gen)

    # matrix: cold build (fresh cache dir), then a load from the disk cache
    _astra.astra_version()  # import ASTRA outside the timed build
    with tempfile.TemporaryDirectory() as cache:
        _matrix_cache.clear_memory()
        rss0 = peak_rss_mb()
        t0 = time.perf_counter()
        A = ops.RayTransform(g, cache_dir=cache)
        A.system_matrix()
        build_s = time.perf_counter() - t0
        _matrix_cache.clear_memory()
        t0 = time.perf_counter()
        A2 = ops.RayTransform(g, cache_dir=cache)
        A2.system_matrix()
        load_s = time.perf_counter() - t0
        assert A2.matrix_source == "disk"
        A = A2
        A._system().get(torch.device("cpu"), torch.float32)  # first-use conversion
        nbytes = A.matrix_nbytes
    rows.append(
        row(
            section,
            "system matrix build (cold) / load (disk cache)",
            1e3 * build_s,
            load_ms=1e3 * load_s,
            matrix_mb=nbytes / 2**20,
            with_transpose_mb=2 * nbytes / 2**20,
            nnz=int(A.system_matrix().nnz),
            peak_rss_mb=peak_rss_mb(),
            peak_rss_before_mb=rss0,
        )
    )

    # ours
    def fwd() -> torch.Tensor:
        with torch.no_grad():
            return A(x)

    def adj() -> torch.Tensor:
        with torch.no_grad():
            return A.H(w)

    def fwd_bwd() -> torch.Tensor:
        xr = x.clone().requires_grad_(True)
        (A(xr) * w).sum().backward()
        return xr.grad

    ours = {"forward": timeit(fwd, repeats), "adjoint": timeit(adj, repeats)}
    ours["forward+backward"] = timeit(fwd_bwd, repeats)

    # ASTRA direct, looping over the batch (objects created once, as the astra-direct backend)
    eng = _astra.AstraDirect(g, "line")
    xn, wn = x.numpy(), w.numpy()

    def a_fwd() -> np.ndarray:
        return np.stack([eng.forward(xi) for xi in xn])

    def a_adj() -> np.ndarray:
        return np.stack([eng.backward(wi) for wi in wn])

    ref = {"forward": timeit(a_fwd, repeats), "adjoint": timeit(a_adj, repeats)}
    ref["forward+backward"] = ref["forward"] + ref["adjoint"]
    diffs = {"forward": rel_diff(fwd(), a_fwd()), "adjoint": rel_diff(adj(), a_adj())}
    diffs["forward+backward"] = rel_diff(fwd_bwd(), a_adj())

    # ODL OperatorModule
    odl_ms: dict[str, float | None] = {}
    odl_note = ""
    odl_diff: dict[str, float | None] = {}
    odl_scale: dict[str, float] = {}
    try:
        from odl.contrib.torch import OperatorModule

        _, R = odl_fan(g)
        mf, ma = OperatorModule(R), OperatorModule(R.adjoint)

        def o_fwd() -> torch.Tensor:
            with torch.no_grad():
                return mf(x)

        def o_adj() -> torch.Tensor:
            with torch.no_grad():
                return ma(w)

        def o_fb() -> torch.Tensor:
            xr = x.clone().requires_grad_(True)
            (mf(xr) * w).sum().backward()
            return xr.grad

        odl_ms = {"forward": timeit(o_fwd, repeats), "adjoint": timeit(o_adj, repeats)}
        odl_ms["forward+backward"] = timeit(o_fb, repeats)
        # ODL's adjoint is the adjoint for *weighted* inner products (cell volumes), a fixed
        # multiple of the transpose: compare after fitting that one scalar, and report it
        odl_diff = {"forward": rel_diff(o_fwd(), a_fwd())}
        for k, (got, want) in {
            "adjoint": (o_adj(), a_adj()),
            "forward+backward": (o_fb(), a_adj()),
        }.items():
            got_np, want_np = got.detach().numpy().ravel(), want.ravel()
            odl_scale[k] = float(got_np @ want_np / (got_np @ got_np))
            odl_diff[k] = rel_diff(odl_scale[k] * got, want)
    except Exception as exc:
        odl_note = f"not available: {type(exc).__name__}: {str(exc)[:120]}"

    eng.close()
    # the same products on one thread: on a shared, oversubscribed machine the fork/join of a
    # 2-thread product can cost more than it saves, so both are reported
    n_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        one = {"forward": timeit(fwd, repeats), "adjoint": timeit(adj, repeats)}
        one["forward+backward"] = timeit(fwd_bwd, repeats)
    finally:
        torch.set_num_threads(n_threads)
    for k in ("forward", "adjoint", "forward+backward"):
        rows.append(
            row(
                section,
                f"RayTransform {k} (ours, batch {batch})",
                ours[k],
                vs_astra=ratio(ref[k], ours[k]),
                max_rel_diff_vs_astra=diffs[k],
            )
        )
        rows.append(
            row(
                section,
                f"  RayTransform {k} (ours, 1 thread)",
                one[k],
                vs_astra=ratio(ref[k], one[k]),
            )
        )
        note = "forward + adjoint loops" if k == "forward+backward" else ""
        rows.append(row(section, f"  ASTRA direct {k} (loop over batch)", ref[k], note=note))
        if odl_ms:
            rows.append(
                row(
                    section,
                    f"  ODL OperatorModule {k}",
                    odl_ms[k],
                    ours_faster=ratio(odl_ms[k], ours[k]),
                    max_rel_diff_vs_astra=odl_diff.get(k),
                    fitted_scale=odl_scale.get(k),
                    note=odl_note,
                )
            )
        else:
            rows.append(row(section, f"  ODL OperatorModule {k}", None, note=odl_note))
    fa = ref["forward"] + ref["adjoint"]
    rows.append(
        row(
            section,
            "forward+adjoint speed-up vs ASTRA direct (target >= 10x)",
            ours["forward"] + ours["adjoint"],
            vs_astra=ratio(fa, ours["forward"] + ours["adjoint"]),
        )
    )
    rows.append(
        row(
            section,
            "forward+adjoint speed-up vs ASTRA direct, ours on 1 thread",
            one["forward"] + one["adjoint"],
            vs_astra=ratio(fa, one["forward"] + one["adjoint"]),
        )
    )
    return rows


# ---------------------------------------------------------------------- NUFFT
def bench_nufft(
    n: int, spokes: int, samples: int, batch: int, repeats: int, section: str
) -> list[Row]:
    rows: list[Row] = []
    try:
        traj = geo.RadialTrajectory(n_spokes=spokes, n_samples=samples)
        N = ops.NUFFT(traj, image_shape=(n, n))
        Nn = N.normal()
    except Exception as exc:
        return [not_available(section, "NUFFT", f"{type(exc).__name__}: {exc}")]
    import torchkbnufft as tkbn

    gen = torch.Generator().manual_seed(1)
    x = torch.complex(
        torch.randn(batch, n, n, generator=gen), torch.randn(batch, n, n, generator=gen)
    )
    k = N(x)
    ktraj = N.ktraj.to(torch.float32)
    grid = tuple(N.grid_shape)
    fw = tkbn.KbNufft(im_size=(n, n), grid_size=grid, numpoints=N.kernel_width)
    ad = tkbn.KbNufftAdjoint(im_size=(n, n), grid_size=grid, numpoints=N.kernel_width)
    toep = tkbn.ToepNufft()
    kern = tkbn.calc_toeplitz_kernel(
        ktraj, im_size=(n, n), grid_size=grid, numpoints=N.kernel_width
    )
    x4, k4 = x[:, None], k[:, None]
    # ours is the orthonormal DFT convention, 1/sqrt(H W) x torchkbnufft's unnormalised NUFFT
    # (torchkbnufft's norm="ortho" divides by the oversampled grid size instead)
    c = 1.0 / math.sqrt(n * n)

    def run(f: Callable[[], Any]) -> Callable[[], Any]:
        def g() -> Any:
            with torch.no_grad():
                return f()

        return g

    pairs = {
        "forward": (run(lambda: N(x)), run(lambda: fw(x4, ktraj)[:, 0]), c),
        "adjoint": (run(lambda: N.H(k)), run(lambda: ad(k4, ktraj)[:, 0]), c),
        "normal (Toeplitz)": (run(lambda: Nn(x)), run(lambda: toep(x4, kern)[:, 0]), c * c),
    }
    for name, (ours, plain, scale) in pairs.items():
        oms, pms = timeit(ours, repeats), timeit(plain, repeats)
        rows.append(
            row(
                section,
                f"NUFFT {name} (ours, {n}², {spokes}x{samples}, batch {batch})",
                oms,
                vs_plain=ratio(pms, oms),
                max_rel_diff_vs_plain=rel_diff(ours(), scale * plain()),
            )
        )
        rows.append(row(section, f"  torchkbnufft {name}", pms))
    return rows


# ---------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer repeats, skip nothing")
    p.add_argument("--repeats", type=int, default=None, help="timing repeats (median)")
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2)")
    p.add_argument("--out", type=Path, default=RESULTS, help="JSON output file")
    p.add_argument(
        "--only",
        default="",
        help="comma-separated sections to run (ray, fbp, nufft, or a step name such as 'fan fbp')",
    )
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    repeats = args.repeats or (3 if args.quick else 10)
    warnings.filterwarnings("ignore", category=UserWarning)

    fan256 = geo.FanBeam2D(
        image_size=256,
        pixel_size=1.0,
        n_views=64,
        det_count=384,
        det_spacing=2.0,
        source_origin=500.0,
        origin_detector=500.0,
    )
    paper = geo.preset("msl-paper", image_size=384)
    rows: list[Row] = []
    steps: list[tuple[str, Callable[[], list[Row]]]] = [
        ("ray 256", lambda: bench_ray(fan256, 4, repeats, "ray 256²")),
        ("ray 384", lambda: bench_ray(paper, 4, max(2, repeats // 2), "ray 384²")),
        ("fan fbp", lambda: bench_fan_fbp(paper, repeats, "fan FBP 384²")),
        ("fbp rmse", lambda: bench_discrete_accuracy(128, 360, "FBP accuracy")),
        ("par fbp", lambda: bench_parallel_fbp(256, 180, repeats, "parallel FBP")),
        ("nufft", lambda: bench_nufft(256, 64, 512, 4, repeats, "NUFFT")),
    ]
    wanted = [w.strip() for w in args.only.split(",") if w.strip()]
    if wanted:
        steps = [(name, fn) for name, fn in steps if any(w in name for w in wanted)]
    try:
        from tqdm import tqdm

        it = tqdm(steps, desc="benchmarks", file=sys.stderr)
    except ImportError:  # pragma: no cover
        it = steps
    for _, fn in it:
        try:
            rows.extend(fn())
        except Exception as exc:
            rows.append(not_available(_, "section failed", f"{type(exc).__name__}: {exc}"))
    table = format_table(rows)
    print(table)
    result = {
        "machine": machine_info(),
        "settings": {
            "repeats": repeats,
            "quick": args.quick,
            "threads": args.threads,
            "fan256": fan256.to_dict() | {"angles": "64 uniform over [0, 2π)"},
            "paper": {k: v for k, v in paper.to_dict().items() if k != "angles"},
        },
        "rows": rows,
        "table": table,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{args.out.name}.", suffix=".tmp", dir=args.out.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(result, fh, indent=1, default=str)
    os.replace(tmp, args.out)
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
