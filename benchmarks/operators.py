"""Operator benchmark: our torch operators against ASTRA, ODL, scikit-image and torchkbnufft.

Everything is measured side by side in one run, on 2 CPU threads, so the ratios compare like
with like (absolute times depend on the machine and its load):

- fan beam 256², 64 views, 384 detectors, batch 4: ``RayTransform`` forward, adjoint and
  forward+backward (autograd) against ASTRA's CPU projector looping over the batch and ODL's
  torch ``OperatorModule``; the maximum relative difference against ASTRA;
- system matrix: build time (cold, and loaded from the disk cache), bytes, peak RSS;
- fan-beam FBP (ours) against ODL's ``fbp_op``: time and RMSE on a closed-form ellipse sinogram;
- parallel-beam FBP (ours) against ASTRA's CPU ``FBP`` and ``skimage.transform.iradon``;
- NUFFT forward, adjoint and normal against plain torchkbnufft;
- the paper's size (``msl-paper`` preset at 384²): forward and adjoint, build time and bytes.

Run ``python benchmarks/operators.py`` (``--quick`` for fewer repeats). It prints a table and
writes ``benchmarks/results/operators.json`` (machine info, versions, every number).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import json
import math
import os
import platform
import resource
import statistics
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

import numpy as np  # noqa: E402
import torch  # noqa: E402

import geometries as geo  # noqa: E402
import operators as ops  # noqa: E402
from operators import _astra, _matrix_cache  # noqa: E402

RESULTS = _HERE / "results" / "operators.json"

Row = dict[str, Any]


# ---------------------------------------------------------------------- helpers
def timeit(fn: Callable[[], Any], repeats: int, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` in milliseconds."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def rel_diff(a: Any, b: Any) -> float:
    """``max |a - b| / max |b|``."""
    a = a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
    b = b.detach().cpu().numpy() if isinstance(b, torch.Tensor) else np.asarray(b)
    return float(np.abs(a - b).max() / np.abs(b).max())


def rmse(a: Any, b: np.ndarray) -> float:
    a = a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
    return float(np.sqrt(np.mean((a.astype(np.float64) - b) ** 2)))


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MB (Linux reports KB, macOS bytes)."""
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / 1024**2 if sys.platform == "darwin" else r / 1024


def _version(mod: str) -> str:
    try:
        m = __import__(mod)
        return str(getattr(m, "__version__", "?"))
    except Exception as exc:
        return f"unavailable ({type(exc).__name__})"


def machine_info() -> dict[str, Any]:
    cpu = platform.processor()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "date_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average": load,
        "versions": {
            m: _version(m)
            for m in ("torch", "astra", "odl", "skimage", "torchkbnufft", "numpy", "scipy")
        },
    }


def row(section: str, what: str, ms: float | None, **extra: Any) -> Row:
    return {"section": section, "what": what, "ms": ms, **extra}


def ratio(ref_ms: float | None, ms: float | None) -> float | None:
    if ref_ms is None or ms is None or ms <= 0:
        return None
    return ref_ms / ms


def not_available(section: str, what: str, why: str) -> Row:
    return row(section, what, None, note=f"not available: {why}")


# ---------------------------------------------------------------------- ray transform
def _odl_fan(g: geo.FanBeam2D) -> tuple[Any, Any]:
    """ODL space and ray transform equal to ``g`` (ODL's angle = ours + π/2; same image axes)."""
    import odl

    tomo = odl.applications.tomo
    h = g.image_size * g.pixel_size / 2
    space = odl.uniform_discr([-h, -h], [h, h], g.image_shape, dtype="float32")
    a = g.angles_array
    step = float(a[1] - a[0])
    off = math.pi / 2
    apart = odl.uniform_partition(a[0] - step / 2 + off, a[-1] + step / 2 + off, a.size)
    w = g.det_count * g.det_spacing / 2
    dpart = odl.uniform_partition(-w, w, g.det_count)
    geom = tomo.FanBeamGeometry(
        apart, dpart, src_radius=g.source_origin, det_radius=g.origin_detector
    )
    return space, tomo.RayTransform(space, geom, impl="astra_cpu")


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

        _, R = _odl_fan(g)
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


# ---------------------------------------------------------------------- FBP
def _phantom(g: geo.CTGeometry) -> tuple[np.ndarray, np.ndarray]:
    from operators import phantoms

    fov = g.image_size * g.pixel_size
    ell = phantoms.shepp_logan(fov_mm=fov * 0.9)
    return phantoms.ellipse_image(ell, g), phantoms.ellipse_sinogram(ell, g)


def bench_fan_fbp(g: geo.FanBeam2D, repeats: int, section: str) -> list[Row]:
    rows: list[Row] = []
    try:
        img, sino = _phantom(g)
    except Exception as exc:
        return [not_available(section, "fan FBP", f"operators.phantoms: {exc}")]
    y = torch.from_numpy(sino.astype(np.float32))
    try:
        F = ops.FBP(g)

        def ours() -> torch.Tensor:
            with torch.no_grad():
                return F(y)

        ms = timeit(ours, repeats)
        ours_rmse = rmse(ours(), img)
        rows.append(row(section, "fan FBP (ours, ram-lak)", ms, rmse=ours_rmse))
    except Exception as exc:
        rows.append(not_available(section, "fan FBP (ours)", f"{type(exc).__name__}: {exc}"))
        ms, ours_rmse = None, None
    try:
        import odl

        _, R = _odl_fan(g)
        fbp = odl.applications.tomo.fbp_op(R, filter_type="Ram-Lak")
        el = R.range.element(sino.astype(np.float32))

        def o() -> Any:
            return fbp(el)

        oms = timeit(o, repeats)
        rows.append(
            row(
                section,
                "  ODL fbp_op (Ram-Lak)",
                oms,
                rmse=rmse(o().data, img),
                ours_faster=ratio(oms, ms),
            )
        )
    except Exception as exc:
        rows.append(not_available(section, "  ODL fbp_op", f"{type(exc).__name__}: {exc}"))
    return rows


def bench_parallel_fbp(n: int, n_views: int, repeats: int, section: str) -> list[Row]:
    import astra

    rows: list[Row] = []
    # detector spacing = pixel size = 1 mm and an odd detector count centred on the isocentre,
    # so that skimage's pixel-unit conventions describe the same scan
    d = math.ceil(n * math.sqrt(2)) | 1
    g = geo.ParallelBeam2D(image_size=n, pixel_size=1.0, n_views=n_views, det_count=d)
    try:
        img, sino = _phantom(g)
    except Exception as exc:
        return [not_available(section, "parallel FBP", f"operators.phantoms: {exc}")]
    y = torch.from_numpy(sino.astype(np.float32))
    ms = None
    try:
        F = ops.FBP(g)

        def ours() -> torch.Tensor:
            with torch.no_grad():
                return F(y)

        ms = timeit(ours, repeats)
        rows.append(
            row(section, f"parallel FBP (ours, {n}², {n_views} views)", ms, rmse=rmse(ours(), img))
        )
    except Exception as exc:
        rows.append(not_available(section, "parallel FBP (ours)", f"{type(exc).__name__}: {exc}"))

    vol, proj = g.to_astra()
    pid = astra.create_projector("line", proj, vol)
    sid = astra.data2d.create("-sino", proj, sino.astype(np.float32))
    rid = astra.data2d.create("-vol", vol, 0.0)
    cfg = astra.astra_dict("FBP")
    cfg.update(ProjectorId=pid, ProjectionDataId=sid, ReconstructionDataId=rid)
    cfg["option"] = {"FilterType": "ram-lak"}
    alg = astra.algorithm.create(cfg)

    def a() -> np.ndarray:
        astra.algorithm.run(alg)
        return astra.data2d.get(rid)

    ams = timeit(a, repeats)
    rows.append(
        row(
            section,
            "  ASTRA CPU FBP (ram-lak)",
            ams,
            rmse=rmse(a(), img),
            ours_faster=ratio(ams, ms),
        )
    )
    astra.algorithm.delete(alg)
    astra.data2d.delete([sid, rid])
    astra.projector.delete(pid)

    try:
        from skimage.transform import iradon

        # skimage: sinogram (detector, angle), angles in degrees, rotated by 90° vs ASTRA
        theta = np.degrees(g.angles_array) + 90.0
        s = sino.T.astype(np.float64)

        def sk() -> np.ndarray:
            return iradon(s, theta=theta, output_size=n, filter_name="ramp", circle=False)

        sms = timeit(sk, max(1, repeats // 2))
        out = sk()
        # pick the orientation of skimage's output that matches ours (conventions differ)
        cands = [np.rot90(o, k) for o in (out, out.T) for k in range(4)]
        best = min(cands, key=lambda c: rmse(c, img))
        rows.append(
            row(
                section,
                "  skimage iradon (ramp)",
                sms,
                rmse=rmse(best, img),
                ours_faster=ratio(sms, ms),
            )
        )
    except Exception as exc:
        rows.append(not_available(section, "  skimage iradon", f"{type(exc).__name__}: {exc}"))
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
def format_table(rows: list[Row]) -> str:
    lines = [f"{'section':<14} {'what':<62} {'ms':>10}  notes", "-" * 120]
    for r in rows:
        ms = "n/a" if r["ms"] is None else f"{r['ms']:.1f}"
        notes = []
        for k, v in r.items():
            if k in ("section", "what", "ms") or v in (None, ""):
                continue
            if k in ("vs_astra", "vs_plain", "ours_faster"):
                label = {
                    "vs_astra": "than ASTRA direct",
                    "vs_plain": "than plain torchkbnufft",
                    "ours_faster": "(ours vs this)",
                }[k]
                speed = f"{v:.1f}x faster" if v >= 1 else f"{1 / v:.1f}x slower"
                notes.append(f"{speed} {label}")
            elif isinstance(v, float):
                notes.append(f"{k}={v:.3g}")
            else:
                notes.append(f"{k}={v}")
        lines.append(f"{r['section']:<14} {r['what']:<62} {ms:>10}  {'; '.join(notes)}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer repeats, skip nothing")
    p.add_argument("--repeats", type=int, default=None, help="timing repeats (median)")
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2)")
    p.add_argument("--out", type=Path, default=RESULTS, help="JSON output file")
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
        ("fan fbp", lambda: bench_fan_fbp(paper if not args.quick else fan256, repeats, "fan FBP")),
        ("par fbp", lambda: bench_parallel_fbp(256, 180, repeats, "parallel FBP")),
        ("nufft", lambda: bench_nufft(256, 64, 512, 4, repeats, "NUFFT")),
    ]
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
