"""Shared helpers of the operator benchmark (timing, errors, rows, table, ODL geometry)."""

from __future__ import annotations

import contextlib
import datetime as _dt
import math
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

import geometries as geo

Row = dict[str, Any]

#: ratio columns of a row and how the table labels them (value = reference ms / our ms)
RATIO_LABELS = {
    "vs_astra": "than ASTRA direct",
    "vs_plain": "than plain torchkbnufft",
    "ours_faster": "(ours vs this)",
    "per_slice_vs_odl": "than ODL fbp_op per slice",
    "vs_astra_fbp": "than ASTRA CPU FBP",
}


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


@contextlib.contextmanager
def threads(n: int) -> Any:
    """Run the block with ``n`` torch intra-op threads (restored afterwards).

    On a shared, oversubscribed machine the fork/join of a 2-thread product can cost more than it
    saves, so the benchmark reports both.
    """
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


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


def odl_fan(g: geo.FanBeam2D) -> tuple[Any, Any]:
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


def phantom(g: geo.CTGeometry) -> tuple[np.ndarray, np.ndarray]:
    from operators import phantoms

    fov = g.image_size * g.pixel_size
    ell = phantoms.shepp_logan(fov_mm=fov * 0.9)
    return phantoms.ellipse_image(ell, g), phantoms.ellipse_sinogram(ell, g)


def format_table(rows: list[Row]) -> str:
    lines = [f"{'section':<14} {'what':<62} {'ms':>10}  notes", "-" * 120]
    for r in rows:
        ms = "n/a" if r["ms"] is None else f"{r['ms']:.1f}"
        notes = []
        for k, v in r.items():
            if k in ("section", "what", "ms") or v in (None, ""):
                continue
            if k in RATIO_LABELS:
                label = RATIO_LABELS[k]
                speed = f"{v:.1f}x faster" if v >= 1 else f"{1 / v:.1f}x slower"
                notes.append(f"{speed} {label}")
            elif isinstance(v, float):
                notes.append(f"{k}={v:.3g}")
            else:
                notes.append(f"{k}={v}")
        lines.append(f"{r['section']:<14} {r['what']:<62} {ms:>10}  {'; '.join(notes)}")
    return "\n".join(lines)
