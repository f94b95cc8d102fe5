"""The system-matrix disk cache: one build for concurrent misses, orphan clean-up, file modes."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading
import time

import numpy as np
import scipy.sparse as sp

from operators import _matrix_cache as mc


def test_concurrent_misses_build_once(tmp_path) -> None:
    calls: list[float] = []
    ref = sp.random(40, 30, density=0.1, format="csr", random_state=0)

    def build():
        calls.append(time.monotonic())
        time.sleep(0.3)  # long enough for the other thread to miss and wait on the lock
        return ref

    results: list[tuple[object, str]] = []

    def worker() -> None:
        results.append(mc.load_or_build("k", build, cache_dir=tmp_path))

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1
    assert sorted(src for _, src in results) == ["built", "disk", "disk"]
    for mat, _ in results:
        assert (mat != ref).nnz == 0
    assert (tmp_path / (mc.cache_path("k", tmp_path).name + ".lock")).is_file()


def test_orphans_of_dead_builders_are_removed_and_mode_follows_umask(tmp_path) -> None:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    path = mc.cache_path("k2", tmp_path)
    tmp_path.mkdir(exist_ok=True)
    orphan = tmp_path / f".{path.name}.{p.pid}.abc.tmp"
    orphan.write_bytes(b"partial")
    old = os.umask(0o022)
    try:
        mc.load_or_build("k2", lambda: sp.identity(5, format="csr"), cache_dir=tmp_path)
    finally:
        os.umask(old)
    assert not orphan.exists()
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert np.array_equal(mc._load(path, "k2").toarray(), np.eye(5))
