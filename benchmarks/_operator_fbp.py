"""FBP part of the operator benchmark: speed as users call it, and accuracy against ODL/ASTRA.

Speed is timed the way training calls FBP: ``FBP(g)(y)`` (construction included; it is cached)
on ``y = RayTransform(g)(x)``, whose output is batch-innermost (not contiguous), at batch 4 and
for one slice. References: ODL's ``fbp_op`` (fan beam, one slice per call), ASTRA's CPU ``FBP``
algorithm and ``skimage.transform.iradon`` (parallel beam, one slice per call).

Accuracy is the RMSE against the pixel-averaged phantom, on closed-form (analytic) sinograms and
on discrete sinograms made by ASTRA's ``line`` projectors from the phantom image (``RayTransform``).
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import torch

import geometries as geo
import operators as ops

from ._operator_common import (
    Row,
    not_available,
    odl_fan,
    phantom,
    ratio,
    rmse,
    row,
    threads,
    timeit,
)

__all__ = ["bench_discrete_accuracy", "bench_fan_fbp", "bench_parallel_fbp"]


def _images(g: geo.CTGeometry, batch: int) -> tuple[np.ndarray, np.ndarray, torch.Tensor]:
    """Shepp–Logan image and its analytic sinogram, plus a float32 batch of phantom images."""
    img, sino = phantom(g)
    fov = g.image_size * g.pixel_size
    extra = [
        ops.phantoms.ellipse_image(
            ops.phantoms.random_ellipses(np.random.default_rng(i), fov * 0.9, n=8), g
        )
        for i in range(batch - 1)
    ]
    x = torch.from_numpy(np.stack([img, *extra]).astype(np.float32))
    return img, sino, x


def _odl_fbp(g: geo.FanBeam2D) -> tuple[Any, Any]:
    import odl

    _, ray = odl_fan(g)
    return ray, odl.applications.tomo.fbp_op(ray, filter_type="Ram-Lak")


def _timed_build(g: geo.CTGeometry, y: torch.Tensor) -> float:
    """Seconds to build (or load) the back-projection matrix and run once."""
    t0 = time.perf_counter()
    with torch.no_grad():
        ops.FBP(g)(y)
    return time.perf_counter() - t0


def bench_fan_fbp(g: geo.FanBeam2D, repeats: int, section: str, batch: int = 4) -> list[Row]:
    """Fan FBP speed (batch and one slice) against ODL's ``fbp_op``; RMSE on both sinograms."""
    rows: list[Row] = []
    img, sino, x = _images(g, batch)
    R = ops.RayTransform(g)
    with torch.no_grad():
        yb = R(x)  # batch-innermost, as in training
        y1 = R(x[:1])
    build_s = _timed_build(g, y1)

    def ours_batch() -> torch.Tensor:
        with torch.no_grad():
            return ops.FBP(g)(yb)

    def ours_one() -> torch.Tensor:
        with torch.no_grad():
            return ops.FBP(g)(y1)

    tb = timeit(ours_batch, repeats)
    t1 = timeit(ours_one, repeats)
    tc = timeit(lambda: ops.FBP(g)(yb.contiguous()), repeats)
    with threads(1):
        tb1, t11 = timeit(ours_batch, repeats), timeit(ours_one, repeats)
    try:
        ray, fbp = _odl_fbp(g)
        el = ray.range.element(y1[0].numpy())
        to = timeit(lambda: fbp(el), repeats)
        odl_rmse = {
            "analytic": rmse(fbp(ray.range.element(sino.astype(np.float32))).data, img),
            "discrete": rmse(fbp(el).data, img),
        }
    except Exception as exc:
        to, odl_rmse = None, {}
        rows.append(not_available(section, "  ODL fbp_op", f"{type(exc).__name__}: {exc}"))
    F = ops.FBP(g)
    ours_rmse = {
        "analytic": rmse(F(torch.from_numpy(sino.astype(np.float32))), img),
        "discrete": rmse(F(y1)[0], img),
    }
    n = g.image_size
    rows.append(
        row(
            section,
            f"fan FBP (ours, {n}², batch {batch}, RayTransform output)",
            tb,
            ms_per_slice=tb / batch,
            target_ms_per_slice=5.0,
            per_slice_vs_odl=ratio(to, tb / batch),
            matrix_build_or_load_s=build_s,
            bp_kernel=F.backprojector,
        )
    )
    rows.append(row(section, "  same, contiguous input", tc, ms_per_slice=tc / batch))
    rows.append(
        row(
            section,
            "  same, 1 thread",
            tb1,
            ms_per_slice=tb1 / batch,
            per_slice_vs_odl=ratio(to, tb1 / batch),
        )
    )
    rows.append(
        row(section, f"fan FBP (ours, {n}², one slice)", t1, per_slice_vs_odl=ratio(to, t1))
    )
    rows.append(row(section, "  same, 1 thread", t11, per_slice_vs_odl=ratio(to, t11)))
    if to is not None:
        rows.append(row(section, "  ODL fbp_op (Ram-Lak, one slice)", to))
    for kind in ("analytic", "discrete"):
        ours, theirs = ours_rmse[kind], odl_rmse.get(kind)
        rows.append(
            row(
                section,
                f"fan FBP RMSE, {kind} sinogram (ours vs ODL)",
                None,
                rmse=ours,
                odl_rmse=theirs,
                rmse_ratio_vs_odl=None if theirs is None else ours / theirs,
            )
        )
    return rows


def bench_discrete_accuracy(n: int, n_views: int, section: str) -> list[Row]:
    """RMSE on discrete ``line_fanflat`` sinograms, wide fan (30° half-angle): ours vs ODL."""
    s = n / 96
    sod, sdd = 100.0 * s, 180.0 * s
    width = 2 * sdd * math.tan(math.radians(30.0))
    dc = round(width * sod / sdd)
    g = geo.FanBeam2D(
        image_size=n, pixel_size=1.0, det_count=dc, det_spacing=width / dc, n_views=n_views,
        source_origin=sod, origin_detector=sdd - sod,
    )  # fmt: skip
    rows: list[Row] = []
    ray, fbp = _odl_fbp(g)
    fov = g.image_size * g.pixel_size
    for kind in ("shepp", "random"):
        e = (
            ops.phantoms.shepp_logan(fov * 0.9)
            if kind == "shepp"
            else ops.phantoms.random_ellipses(np.random.default_rng(0), fov * 0.9, n=8)
        )
        img = ops.phantoms.ellipse_image(e, g)
        y = ops.RayTransform(g)(torch.from_numpy(img.astype(np.float32)))
        ours = rmse(ops.FBP(g)(y), img)
        lin = rmse(ops.FBP(g, backprojector="linear")(y), img)
        theirs = rmse(fbp(ray.range.element(y.numpy())).data, img)
        rows.append(
            row(
                section,
                f"wide fan {n}², {n_views} views, discrete, {kind}",
                None,
                rmse=ours,
                odl_rmse=theirs,
                rmse_ratio_vs_odl=ours / theirs,
                linear_kernel_ratio_vs_odl=lin / theirs,
            )
        )
    return rows


def bench_parallel_fbp(n: int, n_views: int, repeats: int, section: str) -> list[Row]:
    """Parallel FBP (one slice, and per slice at batch 4) against ASTRA's CPU FBP and skimage."""
    import astra

    rows: list[Row] = []
    # detector spacing = pixel size = 1 mm and an odd detector count centred on the isocentre,
    # so that skimage's pixel-unit conventions describe the same scan
    d = math.ceil(n * math.sqrt(2)) | 1
    g = geo.ParallelBeam2D(image_size=n, pixel_size=1.0, n_views=n_views, det_count=d)
    img, sino, x = _images(g, 4)
    with torch.no_grad():
        yb = ops.RayTransform(g)(x)
        y1 = ops.RayTransform(g)(x[:1])
    build_s = _timed_build(g, y1)

    def ours_one() -> torch.Tensor:
        with torch.no_grad():
            return ops.FBP(g)(y1)

    t1 = timeit(ours_one, repeats)
    tb = timeit(lambda: ops.FBP(g)(yb), repeats)
    with threads(1):
        t11 = timeit(ours_one, repeats)
    ours_rmse = rmse(ops.FBP(g)(torch.from_numpy(sino.astype(np.float32))), img)

    vol, proj = g.to_astra()
    pid = astra.create_projector("line", proj, vol)
    sid = astra.data2d.create("-sino", proj, y1[0].numpy().astype(np.float32))
    rid = astra.data2d.create("-vol", vol, 0.0)
    cfg = astra.astra_dict("FBP")
    cfg.update(ProjectorId=pid, ProjectionDataId=sid, ReconstructionDataId=rid)
    cfg["option"] = {"FilterType": "ram-lak"}
    alg = astra.algorithm.create(cfg)

    def a() -> np.ndarray:
        astra.algorithm.run(alg)
        return astra.data2d.get(rid)

    ta = timeit(a, repeats)
    astra.data2d.store(sid, sino.astype(np.float32))
    astra_rmse = rmse(a(), img)
    astra.algorithm.delete(alg)
    astra.data2d.delete([sid, rid])
    astra.projector.delete(pid)
    rows.append(
        row(
            section,
            f"parallel FBP (ours, {n}², {n_views} views, one slice)",
            t1,
            rmse=ours_rmse,
            vs_astra_fbp=ratio(ta, t1),
            matrix_build_or_load_s=build_s,
        )
    )
    rows.append(row(section, "  ours, 1 thread", t11, vs_astra_fbp=ratio(ta, t11)))
    rows.append(row(section, "  ours, batch 4 (per slice)", tb / 4, vs_astra_fbp=ratio(ta, tb / 4)))
    rows.append(row(section, "  ASTRA CPU FBP (ram-lak, one slice)", ta, rmse=astra_rmse))
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
                ours_faster=ratio(sms, t1),
            )
        )
    except Exception as exc:
        rows.append(not_available(section, "  skimage iradon", f"{type(exc).__name__}: {exc}"))
    return rows
