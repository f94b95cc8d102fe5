"""On-disk and in-process cache of sparse system matrices (private).

A matrix is stored as one ``.npz`` file holding its CSR arrays (``indptr``, ``indices``, ``data``,
``shape``) plus a ``key`` string for verification. Files are written to a temporary name in the
cache directory and moved into place with :func:`os.replace`, which is atomic on POSIX and
Windows: two processes that build the same matrix at the same time both end up with a complete,
valid file (the last rename wins, and both contents are identical), and a reader never sees a
partial file. Builds are serialised by an exclusive ``fcntl.flock`` on ``<entry>.lock`` beside the
entry: of several processes that miss the same entry one builds it while the others wait and then
load it. Temporary files are named ``.<entry>.<pid>.<random>.tmp``; those of dead writers are
removed by the next build of the same entry. Files get the permissions of the process umask.

The cache directory is, in order: the ``cache_dir`` argument, the ``MSL_RECON_CACHE`` environment
variable, ``~/.cache/msl-recon``.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
import threading
import warnings
import zipfile
from collections import OrderedDict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["cache_path", "clear_memory", "load_or_build", "memory_cached", "resolve_cache_dir"]

logger = logging.getLogger(__name__)

#: Bump when the on-disk layout changes: old files are then simply not found.
FORMAT_VERSION = 1
#: How many matrices the process keeps in memory (least recently used are dropped) ...
MEMORY_SLOTS = 8
#: ... and how many bytes they may hold together (objects with an ``nbytes`` attribute; the
#: most recent one is always kept). Operators still in use keep their own matrix alive.
MEMORY_BYTES = int(float(os.environ.get("MSL_RECON_MATRIX_MEMORY_MB", "2048")) * 2**20)

_MEMORY: OrderedDict[str, Any] = OrderedDict()
_LOCK = threading.RLock()


def resolve_cache_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """Directory of the on-disk matrix cache.

    Parameters
    ----------
    cache_dir : path-like, optional
        Explicit directory. Defaults to ``$MSL_RECON_CACHE``, else ``~/.cache/msl-recon``.
    """
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get("MSL_RECON_CACHE")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "msl-recon"


def cache_path(
    key: str, cache_dir: str | os.PathLike | None = None, *, prefix: str = "matrix"
) -> Path:
    """File name of ``key`` in the cache directory (the key is hashed, so any string works)."""
    digest = hashlib.sha256(f"v{FORMAT_VERSION}|{key}".encode()).hexdigest()[:40]
    return resolve_cache_dir(cache_dir) / f"{prefix}-{digest}.npz"


def _umask() -> int:
    """The process umask (from ``/proc`` where possible: ``os.umask`` changes it briefly)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_stale_temps(path: Path) -> None:
    """Delete ``.<name>.<pid>.*.tmp`` files of ``path`` left by writers that are dead."""
    prefix = f".{path.name}."
    with contextlib.suppress(OSError):
        for p in path.parent.glob(f"{prefix}*.tmp"):
            pid = p.name[len(prefix) :].split(".", 1)[0]
            if pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
                with contextlib.suppress(OSError):
                    p.unlink()


@contextlib.contextmanager
def _build_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``<path>.lock`` (no lock where that is impossible)."""
    try:
        import fcntl

        path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(path.with_name(path.name + ".lock"), "a+b")
    except (ImportError, OSError):  # no fcntl (Windows) or a read-only cache directory
        yield
        return
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        yield
    finally:
        fh.close()  # releases the lock


def _save(path: Path, key: str, mat: Any) -> None:
    """Write the CSR matrix ``mat`` to ``path`` atomically (temporary file + ``os.replace``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(path)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent
    )
    os.chmod(tmp, 0o666 & ~_umask())
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(
                fh,
                key=np.array(key),
                shape=np.asarray(mat.shape, dtype=np.int64),
                indptr=mat.indptr,
                indices=mat.indices,
                data=mat.data,
            )
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _load(path: Path, key: str) -> Any | None:
    """Read a CSR matrix written by :func:`_save`; ``None`` if absent, foreign or damaged."""
    import scipy.sparse as sp

    try:
        with np.load(path, allow_pickle=False) as f:
            if str(f["key"]) != key:
                warnings.warn(
                    f"matrix cache file {path} holds another key; rebuilding", stacklevel=3
                )
                return None
            shape = tuple(int(s) for s in f["shape"])
            mat = sp.csr_matrix((f["data"], f["indices"], f["indptr"]), shape=shape)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as exc:
        warnings.warn(f"matrix cache file {path} is unreadable ({exc}); rebuilding", stacklevel=3)
        return None
    if mat.indptr.size != shape[0] + 1 or mat.indices.size != mat.data.size:
        warnings.warn(f"matrix cache file {path} is inconsistent; rebuilding", stacklevel=3)
        return None
    return mat


def load_or_build(
    key: str,
    build: Callable[[], Any],
    *,
    cache_dir: str | os.PathLike | None = None,
    prefix: str = "matrix",
) -> tuple[Any, str]:
    """Return the CSR matrix for ``key`` from the disk cache, else ``build()`` and store it.

    Parameters
    ----------
    key : str
        Everything that determines the matrix (geometry fingerprint, projector, library version).
    build : callable
        ``build() -> scipy.sparse.csr_matrix``; called only on a cache miss. The result is
        written to disk atomically (a read-only cache directory only gives a warning).
    cache_dir : path-like, optional
        See :func:`resolve_cache_dir`.
    prefix : str
        File name prefix in the cache directory.

    Returns
    -------
    matrix : scipy.sparse.csr_matrix
    source : str
        ``"disk"`` or ``"built"``.
    """
    path = cache_path(key, cache_dir, prefix=prefix)
    mat = _load(path, key)
    if mat is not None:
        logger.debug("system matrix %s loaded from %s", key, path)
        return mat, "disk"
    with _build_lock(path):
        mat = _load(path, key)  # another process may have built it while we waited
        if mat is not None:
            logger.debug("system matrix %s loaded from %s after waiting", key, path)
            return mat, "disk"
        mat = build()
        try:
            _save(path, key, mat)
        except OSError as exc:
            warnings.warn(f"could not write matrix cache {path}: {exc}", stacklevel=2)
    logger.debug("system matrix %s built and saved to %s", key, path)
    return mat, "built"


def memory_cached(key: str, factory: Callable[[], Any]) -> Any:
    """Process-wide LRU cache of ``factory()`` results (see ``MEMORY_SLOTS``, ``MEMORY_BYTES``).

    Used so that building the same operator again (e.g. once per training batch) costs nothing.
    ``factory`` runs under a lock, so two threads never build the same entry twice.
    """
    with _LOCK:
        if key in _MEMORY:
            _MEMORY.move_to_end(key)
            return _MEMORY[key]
        value = factory()
        _MEMORY[key] = value
        while len(_MEMORY) > 1 and (
            len(_MEMORY) > MEMORY_SLOTS
            or sum(int(getattr(v, "nbytes", 0)) for v in _MEMORY.values()) > MEMORY_BYTES
        ):
            _MEMORY.popitem(last=False)
        return value


def clear_memory() -> None:
    """Forget the objects held in memory (the disk cache is untouched)."""
    with _LOCK:
        _MEMORY.clear()
