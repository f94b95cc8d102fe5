"""Small file helpers: atomic writes, multi-file commits, orphan clean-up.

Every writer of msl-recon goes through :func:`atomic_path` (one file) or :func:`staged_outputs`
(several files that belong together), so a killed run never leaves a partial output file.

Temporary names carry the writer's process id, ``.<name>.<pid>.<random>.tmp``, so that a later
command can tell its own orphans (writer dead) from the files of a run still in progress and
remove only the former (:func:`remove_stale_temps`, :func:`recover_staged`). Files are created
with the permissions of the process umask (like ``open``), not the owner-only mode of
:func:`tempfile.mkstemp`.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

from .errors import InputError

__all__ = [
    "atomic_path",
    "check_output_dir",
    "check_output_path",
    "pid_alive",
    "process_umask",
    "recover_staged",
    "remove_stale_temps",
    "staged_outputs",
]

#: ``.<name>.<pid>.<random>.tmp`` (optionally followed by an extension a library appended)
_TMP_RE = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[A-Za-z0-9_]+\.tmp(\..*)?$")
_STAGE_NAME = "staging"
_COMMIT = "COMMIT.json"


def process_umask() -> int:
    """The umask of this process (read without changing it where ``/proc`` allows)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def pid_alive(pid: int) -> bool:
    """Whether a process with id ``pid`` exists on this machine."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _tmp_prefix(name: str) -> str:
    return f".{name}.{os.getpid()}."


def remove_stale_temps(directory: str | os.PathLike, name: str | None = None) -> list[Path]:
    """Delete orphaned temporary files in ``directory`` whose writer process is dead.

    Parameters
    ----------
    directory : path-like
        Folder to clean (not recursive). A missing folder is fine.
    name : str, optional
        Only temporaries of this target file name (e.g. ``"last.pt"``); default: all.

    Returns
    -------
    list of Path
        The files removed. Temporaries of live processes (a run in progress) are kept.
    """
    d = Path(directory)
    removed: list[Path] = []
    if not d.is_dir():
        return removed
    for p in d.iterdir():
        m = _TMP_RE.match(p.name)
        if m is None or (name is not None and m["name"] != name) or m["name"] == _STAGE_NAME:
            continue
        if int(m["pid"]) == os.getpid() or pid_alive(int(m["pid"])):
            continue
        with contextlib.suppress(OSError):
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()
            removed.append(p)
    return removed


def check_output_path(path: str | os.PathLike, *, overwrite: bool) -> Path:
    """Validate an output path: refuse to clobber an existing file unless ``overwrite``.

    Raises
    ------
    InputError
        If ``path`` exists (without ``overwrite``), is a directory, or a parent of it is a file.
    """
    p = Path(path)
    for parent in p.parents:
        if parent.exists():
            if not parent.is_dir():
                raise InputError(f"cannot write {p}: {parent} is a file, not a directory")
            break
    if p.exists() and p.is_dir():
        raise InputError(f"{p} is a directory, expected a file path")
    if p.exists() and not overwrite:
        raise InputError(f"{p} exists; pass --overwrite to replace it")
    return p


def check_output_dir(path: str | os.PathLike) -> Path:
    """Validate a path that will be a directory: neither it nor a parent may be a file.

    Raises
    ------
    InputError
        Naming the offending file.
    """
    p = Path(path)
    for q in (p, *p.parents):
        if q.exists():
            if not q.is_dir():
                what = "exists and is not a directory" if q == p else "is a file"
                raise InputError(f"cannot use {p} as output directory: {q} {what}")
            break
    return p


def _make_temp(directory: Path, name: str) -> Path:
    fd, tmp = tempfile.mkstemp(prefix=_tmp_prefix(name), suffix=".tmp", dir=directory)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~process_umask())
    return Path(tmp)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only on success.

    If the block raises, ``path`` is untouched and the temporary file is removed. If the process
    is killed, the temporary ``.<name>.<pid>.<random>.tmp`` stays behind (no reader picks it up)
    and the next write of the same target removes it.
    """
    target = Path(path)
    check_output_dir(target.parent)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(target.parent, target.name)
    tmp_path = _make_temp(target.parent, target.name)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


# ------------------------------------------------------------------ multi-file outputs
def _finish_commit(stage: Path, out_dir: Path) -> list[Path]:
    """Roll a committed stage forward: move its files into ``out_dir``; remove the stage."""
    manifest = json.loads((stage / _COMMIT).read_text(encoding="utf-8"))
    done: list[Path] = []
    for name in manifest.get("remove", []):
        with contextlib.suppress(FileNotFoundError):
            (out_dir / name).unlink()
    for name in manifest["files"]:
        src = stage / name
        if src.exists():  # else: moved before the interruption
            os.replace(src, out_dir / name)
        done.append(out_dir / name)
    (stage / _COMMIT).unlink()
    shutil.rmtree(stage, ignore_errors=True)
    return done


def recover_staged(out_dir: str | os.PathLike) -> list[Path]:
    """Finish or discard the staged outputs of killed runs in ``out_dir``.

    A stage whose commit record was written (the run finished its work and was killed while
    moving files) is rolled forward, so the set of outputs is complete again; a stage without
    one is deleted. Stages of live processes are left alone.

    Returns
    -------
    list of Path
        Output files completed by a roll-forward (a warning names them).
    """
    d = Path(out_dir)
    done: list[Path] = []
    if not d.is_dir():
        return done
    for p in sorted(d.iterdir()):
        m = _TMP_RE.match(p.name)
        if m is None or m["name"] != _STAGE_NAME or not p.is_dir():
            continue
        if int(m["pid"]) == os.getpid() or pid_alive(int(m["pid"])):
            continue
        if (p / _COMMIT).is_file():
            files = _finish_commit(p, d)
            done.extend(files)
            warnings.warn(
                "completed the interrupted write of an earlier run: "
                + ", ".join(f.name for f in files),
                stacklevel=2,
            )
        else:
            shutil.rmtree(p, ignore_errors=True)
    return done


@contextlib.contextmanager
def staged_outputs(
    out_dir: str | os.PathLike, names: Sequence[str], *, remove: Sequence[str] = ()
) -> Iterator[dict[str, Path]]:
    """Write several files that belong together and publish them as one.

    Yields ``{name: path}`` inside a hidden stage directory in ``out_dir``. When the block
    succeeds, a commit record (the list of files) is written into the stage atomically, and the
    files are then moved into ``out_dir``. A kill before the record leaves the old outputs as
    they were; a kill after it is completed by the next :func:`recover_staged`. On an exception
    the stage is deleted.

    Parameters
    ----------
    out_dir : path-like
        Destination folder (created).
    names : sequence of str
        File names of the outputs.
    remove : sequence of str
        Files of ``out_dir`` that the commit deletes (outputs of an earlier run that this run
        replaces but does not write).
    """
    d = check_output_dir(out_dir)
    d.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=_tmp_prefix(_STAGE_NAME), suffix=".tmp", dir=d))
    os.chmod(stage, 0o777 & ~process_umask())
    try:
        yield {n: stage / n for n in names}
        missing = [n for n in names if not (stage / n).is_file()]
        if missing:
            raise RuntimeError(f"staged outputs {missing} were not written")
        record = {"files": list(names), "remove": [r for r in remove if r not in names]}
        tmp = _make_temp(stage, _COMMIT)
        tmp.write_text(json.dumps(record), encoding="utf-8")
        os.replace(tmp, stage / _COMMIT)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    _finish_commit(stage, d)
