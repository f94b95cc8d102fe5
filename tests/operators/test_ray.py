"""RayTransform: equality with raw ASTRA, units, adjoint, disk cache, backends, errors."""

from __future__ import annotations

import dataclasses
import math
import pickle
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import geometries as geo
import operators as ops
from operators import _astra, _matrix_cache
from operators.ray import RayTransform

astra = pytest.importorskip("astra")

ASTRA_TYPES = {("par", "line"): "line", ("par", "strip"): "strip"}
ASTRA_TYPES.update({("fan", "line"): "line_fanflat", ("fan", "strip"): "strip_fanflat"})


def _fan(**kw) -> geo.FanBeam2D:
    args = dict(
        image_size=32,
        pixel_size=0.5,
        n_views=24,
        det_count=48,
        det_spacing=0.6,
        source_origin=60.0,
        origin_detector=30.0,
    )
    args.update(kw)
    return geo.FanBeam2D(**args)


def _par(**kw) -> geo.ParallelBeam2D:
    args = dict(image_size=32, pixel_size=0.5, n_views=20, det_count=40, det_spacing=0.5)
    args.update(kw)
    return geo.ParallelBeam2D(**args)


def _short_scan() -> geo.FanBeam2D:
    g = _fan()
    span = math.pi + 2 * g.fan_half_angle
    return _fan(n_views=None, angles=np.linspace(0.3, 0.3 + span, 20))


def _raw_astra(g: geo.CTGeometry, kind: str, projector: str):
    """Raw ASTRA projector on the physical-unit geometry (docs/architecture.md), by hand."""
    n, p = g.image_size, g.pixel_size
    vol = astra.create_vol_geom(n, n, -n * p / 2, n * p / 2, -n * p / 2, n * p / 2)
    if kind == "fan":
        proj = astra.create_proj_geom(
            "fanflat",
            g.det_spacing,
            g.det_count,
            g.angles_array,
            g.source_origin,
            g.origin_detector,
        )
    else:
        proj = astra.create_proj_geom("parallel", g.det_spacing, g.det_count, g.angles_array)
    return astra.create_projector(ASTRA_TYPES[(kind, projector)], proj, vol)


def _astra_fp_bp(g, kind, projector, image: np.ndarray, sino: np.ndarray):
    pid = _raw_astra(g, kind, projector)
    try:
        sid, s = astra.create_sino(image.astype(np.float32), pid)
        astra.data2d.delete(sid)
        bid, b = astra.create_backprojection(sino.astype(np.float32), pid)
        astra.data2d.delete(bid)
    finally:
        astra.projector.delete(pid)
    return s, b


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / np.abs(b).max())


CASES = {
    "parallel-line": (lambda: _par(), "par", "line"),
    "parallel-strip": (lambda: _par(), "par", "strip"),
    "fan-line": (lambda: _fan(), "fan", "line"),
    "fan-strip": (lambda: _fan(), "fan", "strip"),
    "fan-short-scan": (_short_scan, "fan", "line"),
    "fan-subset": (lambda: _fan(n_views=40).subset([0, 3, 4, 9, 17, 31, 39]), "fan", "line"),
    "fan-with-views": (lambda: _fan(n_views=48).with_views(12), "fan", "strip"),
    "parallel-subset": (lambda: _par(n_views=30).subset(np.arange(30) % 4 == 1), "par", "line"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_equals_raw_astra(case: str, dtype: torch.dtype, rng: np.random.Generator) -> None:
    make, kind, projector = CASES[case]
    g = make()
    A = RayTransform(g, projector=projector)
    img = rng.random(g.image_shape).astype(np.float32)
    sino = rng.random(g.sino_shape).astype(np.float32)
    ref_fp, ref_bp = _astra_fp_bp(g, kind, projector, img, sino)
    y = A(torch.from_numpy(img).to(dtype))
    bp = A.H(torch.from_numpy(sino).to(dtype))
    assert y.dtype == dtype and bp.dtype == dtype
    assert y.shape == ref_fp.shape == g.sino_shape
    assert _rel(y.numpy(), ref_fp) <= 1e-5
    assert _rel(bp.numpy(), ref_bp) <= 1e-5


def test_short_scan_and_subset_are_not_the_full_scan(rng: np.random.Generator) -> None:
    # guards the cases above against silently ignoring the angles
    full = RayTransform(_fan(n_views=40))
    sub = RayTransform(_fan(n_views=40).subset([3, 9, 17]))
    x = torch.from_numpy(rng.random((32, 32)))
    assert torch.allclose(sub(x), full(x)[[3, 9, 17]], rtol=1e-6, atol=1e-9)
    assert not torch.allclose(sub(x), full(x)[:3], rtol=1e-3)


@pytest.mark.parametrize("kind", ["par", "fan"])
def test_units_central_ray_is_image_width(kind: str) -> None:
    # architecture Conventions: ones, 0.5 mm pixels -> a central ray of about the image width (mm)
    n, p = 40, 0.5
    if kind == "par":
        g = geo.ParallelBeam2D(
            image_size=n, pixel_size=p, angles=[0.0, math.pi / 2], det_count=61, det_spacing=0.5
        )
    else:
        g = geo.FanBeam2D(
            image_size=n,
            pixel_size=p,
            angles=np.arange(4) * math.pi / 2,  # axis-aligned central rays
            det_count=61,
            det_spacing=0.7,
            source_origin=80.0,
            origin_detector=40.0,
        )
    y = RayTransform(g)(torch.ones(n, n, dtype=torch.float64))
    central = y[:, g.det_count // 2]
    assert torch.allclose(central, torch.full_like(central, n * p), rtol=0.02)
    # doubling the pixel size doubles the line integrals (values are in mm, not pixels)
    scaled = {"pixel_size": 2 * p, "det_spacing": 2 * g.det_spacing, "n_views": None}
    if kind == "fan":
        scaled.update(source_origin=2 * g.source_origin, origin_detector=2 * g.origin_detector)
    g2 = dataclasses.replace(g, **scaled)
    y2 = RayTransform(g2)(torch.ones(n, n, dtype=torch.float64))
    assert torch.allclose(y2, 2 * y, rtol=1e-5, atol=1e-6)


def test_batch_and_autograd_match_adjoint(torch_gen: torch.Generator) -> None:
    A = RayTransform(_fan())
    x = torch.randn(2, 3, 32, 32, generator=torch_gen, dtype=torch.float64, requires_grad=True)
    y = A(x)
    assert y.shape == (2, 3, *A.range_shape)
    for i in range(2):
        for j in range(3):
            assert torch.allclose(y[i, j], A(x[i, j].detach()), rtol=1e-12, atol=1e-12)
    w = torch.randn(y.shape, generator=torch_gen, dtype=torch.float64)
    (g,) = torch.autograd.grad((y * w).sum(), x)
    assert torch.allclose(g, A.H(w), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", ["fan-line", "parallel-strip", "fan-short-scan"])
def test_astra_direct_equals_matrix(case: str, torch_gen: torch.Generator) -> None:
    make, _, projector = CASES[case]
    g = make()
    A = RayTransform(g, projector=projector)
    D = RayTransform(g, projector=projector, backend="astra-direct")
    x = torch.rand(3, *A.domain_shape, generator=torch_gen)
    s = torch.rand(2, 1, *A.range_shape, generator=torch_gen)
    yd, ya = D(x), A(x)
    assert yd.shape == ya.shape and yd.dtype == torch.float32
    assert float((yd - ya).abs().max() / ya.abs().max()) <= 1e-5
    bd, ba = D.H(s), A.H(s)
    assert bd.shape == (2, 1, *A.domain_shape)
    assert float((bd - ba).abs().max() / ba.abs().max()) <= 1e-5
    # no matrix was built for the direct operator
    assert D.matrix_source is None


def test_device_and_dtype(device: torch.device, dtype: torch.dtype, torch_gen) -> None:
    A = RayTransform(_par())
    x = torch.rand(2, 32, 32, generator=torch_gen, dtype=dtype)
    y = A(x.to(device))
    assert y.device.type == device.type and y.dtype == dtype
    assert torch.allclose(y.cpu(), A(x), rtol=1e-5, atol=1e-5)
    # half precision is computed in float32 and handed back in the input's dtype
    yh = A(x.to(device=device, dtype=torch.bfloat16))
    assert yh.dtype == torch.bfloat16
    assert torch.allclose(yh.float().cpu(), A(x.float()), rtol=0.05, atol=0.1)


def test_empty_batch() -> None:
    A = RayTransform(_par())
    assert A(torch.zeros(0, 32, 32)).shape == (0, *A.range_shape)


# ---------------------------------------------------------------------------- disk cache
def test_disk_cache_second_construction_loads(tmp_path: Path, monkeypatch, rng) -> None:
    g = _fan(n_views=7)
    x = torch.from_numpy(rng.random(g.image_shape))
    A = RayTransform(g, cache_dir=tmp_path)
    y = A(x)
    assert A.matrix_source == "built"
    files = list(tmp_path.glob("ray-*.npz"))
    assert len(files) == 1
    assert not list(tmp_path.glob("*.tmp"))

    # same process, new operator: shared from memory, no disk access at all
    monkeypatch.setattr(_matrix_cache, "_load", _raise)
    monkeypatch.setattr(_astra, "build_system_matrix", _raise)
    B = RayTransform(g, cache_dir=tmp_path)
    assert torch.equal(B(x), y) and B.matrix_source == "built"

    # a fresh process (memory cleared): loaded from disk, the builder is never called
    monkeypatch.undo()
    monkeypatch.setattr(_astra, "build_system_matrix", _raise)
    _matrix_cache.clear_memory()
    C = RayTransform(g, cache_dir=tmp_path)
    assert torch.equal(C(x), y)
    assert C.matrix_source == "disk"
    # another projector is another key, so it must be built
    with pytest.raises(RuntimeError, match="builder called"):
        RayTransform(g, cache_dir=tmp_path, projector="strip")(x)


def _raise(*args, **kwargs):
    raise RuntimeError("builder called")


def test_cache_dir_from_environment(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("MSL_RECON_CACHE", str(tmp_path / "env-cache"))
    A = RayTransform(_par(n_views=3))
    A(torch.zeros(32, 32))
    assert len(list((tmp_path / "env-cache").glob("ray-*.npz"))) == 1
    assert _matrix_cache.resolve_cache_dir(None) == tmp_path / "env-cache"


def test_corrupt_cache_file_is_rebuilt(tmp_path: Path) -> None:
    g = _par(n_views=5)
    A = RayTransform(g, cache_dir=tmp_path)
    ref = A.system_matrix().toarray()
    (path,) = tmp_path.glob("ray-*.npz")
    path.write_bytes(path.read_bytes()[:100])  # truncated, as if a writer had been killed
    _matrix_cache.clear_memory()
    with pytest.warns(UserWarning, match="unreadable"):
        B = RayTransform(g, cache_dir=tmp_path)
        mat = B.system_matrix()
    assert B.matrix_source == "built"
    np.testing.assert_array_equal(mat.toarray(), ref)
    _matrix_cache.clear_memory()
    assert RayTransform(g, cache_dir=tmp_path).system_matrix().nnz == mat.nnz


def _worker(cache: str, barrier, queue) -> None:
    """Child process: build the matrix of the same geometry as its sibling, at the same time."""
    try:
        _matrix_cache.clear_memory()  # a forked child inherits the parent's memory cache
        A = RayTransform(_race_geometry(), cache_dir=cache)
        barrier.wait(timeout=60)
        m = A.system_matrix()
        queue.put((A.matrix_source, m.nnz, float(m.data.astype(np.float64).sum())))
    except BaseException as exc:  # report instead of hanging the parent
        queue.put(("error", repr(exc), 0.0))


def _race_geometry() -> geo.FanBeam2D:
    return _fan(image_size=48, n_views=40, det_count=64)


@pytest.mark.skipif(sys.platform == "win32", reason="needs the fork start method")
def test_two_processes_build_the_same_key(tmp_path: Path) -> None:
    import multiprocessing as mp

    ctx = mp.get_context("fork")  # fork: no second torch import, so this test stays fast
    cache = tmp_path / "cache"
    barrier, queue = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(str(cache), barrier, queue)) for _ in range(2)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert all(p.exitcode == 0 for p in procs)
    ref = _astra.build_system_matrix(_race_geometry(), "line")
    for source, nnz, total in results:
        assert source in ("built", "disk"), nnz
        assert nnz == ref.nnz and total == float(ref.data.astype(np.float64).sum())
    assert len(list(cache.glob("ray-*.npz"))) == 1
    assert not list(cache.glob("*.tmp"))
    # the file left behind is complete and valid
    _matrix_cache.clear_memory()
    A = RayTransform(_race_geometry(), cache_dir=cache)
    assert (A.system_matrix() != ref).nnz == 0 and A.matrix_source == "disk"


def test_pickle_round_trip(rng) -> None:
    A = RayTransform(_par(n_views=6))
    x = torch.from_numpy(rng.random((32, 32)))
    y = A(x)
    B = pickle.loads(pickle.dumps(A))
    assert B.matrix_source is None  # matrices are not pickled, only rebuilt from the caches
    assert torch.equal(B(x), y)


def test_matrix_properties() -> None:
    A = RayTransform(_fan(n_views=5))
    m = A.system_matrix()
    assert m.shape == (5 * 48, 32 * 32)
    assert m.indices.dtype == np.int32 and m.data.dtype == np.float32
    assert A.matrix_nbytes == m.data.nbytes + m.indices.nbytes + m.indptr.nbytes
    assert "fan" in A.matrix_key or A.geometry.fingerprint() in A.matrix_key


# ---------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"backend": "cuda"}, "backend"),
        ({"projector": "linear"}, "projector"),
        ({"projector": "line_fanflat"}, "projector"),
        ({"projector": None}, "projector"),
        ({"cache_dir": 3}, "cache_dir"),
    ],
)
def test_bad_arguments(kwargs: dict, param: str) -> None:
    with pytest.raises(ValueError, match=param):
        RayTransform(_fan(), **kwargs)


@pytest.mark.parametrize("bad", [None, "fan", {"image_size": 8}, 42])
def test_not_a_geometry(bad) -> None:
    with pytest.raises(ValueError, match="geometry"):
        RayTransform(bad)  # type: ignore[arg-type]


def test_wrong_shapes_name_operator() -> None:
    A = RayTransform(_par())
    with pytest.raises(ValueError, match=r"RayTransform.*\(32, 32\).*\(31, 32\)"):
        A(torch.zeros(31, 32))
    with pytest.raises(ValueError, match="RayTransform"):
        A.H(torch.zeros(32, 32))
    with pytest.raises(TypeError, match="complex"):
        A(torch.zeros(32, 32, dtype=torch.complex64))


def test_pseudo_inverse_is_fbp() -> None:
    fbp = pytest.importorskip("operators.fbp")
    g = _fan()
    P = RayTransform(g).pseudo_inverse()
    assert isinstance(P, fbp.FBP)
    assert P.domain_shape == g.sino_shape and P.range_shape == g.image_shape


def test_exported() -> None:
    assert ops.RayTransform is RayTransform
    assert {"ray-parallel-line", "ray-fan-strip", "ray-fan-direct"} <= set(ops.examples())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        RayTransform(_par(n_views=2))(torch.zeros(32, 32))  # no beta/invariant warnings leak


def test_failed_write_leaves_no_file(tmp_path: Path, monkeypatch) -> None:
    def broken_savez(fh, **arrays):
        fh.write(b"PK\x03\x04 partial")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    g = _par(n_views=3)
    with pytest.warns(UserWarning, match="could not write"):
        A = RayTransform(g, cache_dir=tmp_path)
        A(torch.zeros(32, 32))  # the computation goes on without the disk cache
    assert A.matrix_source == "built"
    # no matrix file and no temporary (the build lock file stays, empty, for the next build)
    assert [p.name for p in tmp_path.iterdir() if p.suffix != ".lock"] == []


def test_memory_cache_is_bounded(monkeypatch) -> None:
    from collections import OrderedDict
    from types import SimpleNamespace

    monkeypatch.setattr(_matrix_cache, "_MEMORY", OrderedDict())
    monkeypatch.setattr(_matrix_cache, "MEMORY_SLOTS", 2)
    monkeypatch.setattr(_matrix_cache, "MEMORY_BYTES", 100)
    calls: list[str] = []

    def get(key: str, nbytes: int = 0):
        def make():
            calls.append(key)
            return SimpleNamespace(nbytes=nbytes)

        return _matrix_cache.memory_cached(key, make)

    a = get("a")
    assert get("a") is a and calls == ["a"]  # a hit builds nothing
    get("b"), get("c")  # three entries in two slots: "a" (least recently used) goes
    get("a")
    assert calls == ["a", "b", "c", "a"]
    get("big1", 60), get("big2", 60)  # 120 bytes > 100: only the newest stays
    assert list(_matrix_cache._MEMORY) == ["big2"]


@pytest.mark.slow
@pytest.mark.parametrize("projector", ["line", "strip"])
def test_design_geometry_equals_raw_astra(projector: str, rng: np.random.Generator) -> None:
    # the architecture doc's example at full size: 256², 64 views, 384 detectors, batch 4
    g = geo.FanBeam2D(
        image_size=256,
        pixel_size=1.0,
        n_views=64,
        det_count=384,
        det_spacing=2.0,
        source_origin=500.0,
        origin_detector=500.0,
    )
    A = RayTransform(g, projector=projector)
    imgs = rng.random((4, 256, 256)).astype(np.float32)
    sinos = rng.random((4, *g.sino_shape)).astype(np.float32)
    y, bp = A(torch.from_numpy(imgs)), A.H(torch.from_numpy(sinos))
    for i in range(4):
        ref_fp, ref_bp = _astra_fp_bp(g, "fan", projector, imgs[i], sinos[i])
        assert _rel(y[i].numpy(), ref_fp) <= 1e-5
        assert _rel(bp[i].numpy(), ref_bp) <= 1e-5
