"""Small file helpers: atomic writes (never a partial output file)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .errors import InputError

__all__ = ["atomic_path", "check_output_path"]


def check_output_path(path: str | os.PathLike, *, overwrite: bool) -> Path:
    """Validate an output path: refuse to clobber an existing file unless ``overwrite``."""
    p = Path(path)
    if p.exists() and not overwrite:
        raise InputError(f"{p} exists; pass --overwrite to replace it")
    if p.exists() and p.is_dir():
        raise InputError(f"{p} is a directory, expected a file path")
    return p


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only on success.

    If the block raises (or the process is killed), ``path`` is untouched and the temporary
    file is removed (on exceptions) or left with a ``.tmp`` name that no reader picks up.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise
