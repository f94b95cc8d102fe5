"""Results store of a benchmark run: one JSON file, updated after every experiment (resumable)."""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["ResultStore", "environment_info"]


def _git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).resolve().parent,
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            cwd=Path(__file__).resolve().parent,
        ).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def environment_info() -> dict[str, Any]:
    """Machine, package versions and git commit, for the record of a run."""
    import importlib.metadata as md

    versions = {}
    for pkg in (
        "msl-recon",
        "torch",
        "numpy",
        "astra-toolbox",
        "torchkbnufft",
        "scikit-image",
        "h5py",
        "SimpleITK",
        "odl",
    ):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            versions[pkg] = None
    import torch

    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "versions": versions,
        "git_commit": _git_commit(),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


class ResultStore:
    """``results.json`` of a suite: ``{"suite", "config", "environment", "experiments": {...}}``.

    Each finished experiment is written immediately (atomically), so a run that is interrupted
    resumes where it stopped: :meth:`done` tells which experiments to skip.
    """

    def __init__(self, path: Path, suite: str, config: dict[str, Any]) -> None:
        self.path = Path(path)
        if self.path.exists():
            self.data = json.loads(self.path.read_text(encoding="utf-8"))
            if self.data.get("suite") != suite:
                raise ValueError(
                    f"{self.path} belongs to suite {self.data.get('suite')!r}, not {suite!r}"
                )
            old = json.loads(json.dumps(self.data.get("config"), default=_json_default))
            if old != json.loads(json.dumps(config, default=_json_default)):
                # results of another configuration must not be mixed with (or resumed into)
                # this one's: start over
                changed = sorted(
                    k for k in set(old or {}) | set(config) if (old or {}).get(k) != config.get(k)
                )
                print(
                    f"note: {self.path.name} was written with another suite configuration "
                    f"(changed: {', '.join(changed)}); its results are discarded",
                    file=sys.stderr,
                )
                self.data = {"suite": suite, "config": config, "experiments": {}}
        else:
            self.data = {"suite": suite, "config": config, "experiments": {}}
        self.data["environment"] = environment_info()

    def done(self, name: str) -> bool:
        """Whether experiment ``name`` has a stored result."""
        return name in self.data["experiments"]

    def get(self, name: str) -> dict[str, Any]:
        """The stored result of ``name``."""
        return self.data["experiments"][name]

    def put(self, name: str, result: dict[str, Any]) -> None:
        """Store (and write) the result of ``name``."""
        self.data["experiments"][name] = result
        self.save()

    def forget(self, name: str) -> None:
        """Drop a stored result so that the experiment runs again."""
        self.data["experiments"].pop(name, None)
        self.save()

    def save(self) -> None:
        """Write ``results.json`` atomically."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".results.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(self.data, f, indent=1, default=_json_default)
        os.replace(tmp, self.path)


def _json_default(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
