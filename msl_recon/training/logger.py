"""Training logs: a CSV file (always) and TensorBoard (when ``tensorboard`` is importable)."""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path
from typing import Any

__all__ = ["RunLogger"]


class RunLogger:
    """Append scalar rows to ``<run_dir>/log.csv`` and to TensorBoard event files.

    Rows may have different keys (training rows, validation rows); the CSV has a fixed header of
    every key seen when the file was (re)written: new keys trigger a rewrite of the file with the
    wider header. On resume the existing CSV is kept and rows after the resume iteration are
    dropped, so the log matches the weights.

    Parameters
    ----------
    run_dir : path-like
        Directory of the run.
    enabled : bool
        False on non-zero ranks: nothing is written.
    tensorboard : bool
        Try to write TensorBoard events to ``<run_dir>/tb`` (silently skipped if unavailable).
    resume_iteration : int, optional
        Drop CSV rows with ``iteration > resume_iteration``.
    """

    def __init__(
        self,
        run_dir: str | os.PathLike,
        *,
        enabled: bool = True,
        tensorboard: bool = True,
        resume_iteration: int | None = None,
    ) -> None:
        self.path = Path(run_dir) / "log.csv"
        self.enabled = enabled
        self._rows: list[dict[str, Any]] = []
        self._fields: list[str] = []
        self._tb: Any = None
        if not enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resume_iteration is not None and self.path.is_file():
            with self.path.open(newline="") as fh:
                for row in csv.DictReader(fh):
                    try:
                        if int(float(row.get("iteration", "0") or 0)) <= resume_iteration:
                            self._rows.append({k: v for k, v in row.items() if v != ""})
                    except ValueError:
                        continue
            for r in self._rows:
                for k in r:
                    if k not in self._fields:
                        self._fields.append(k)
            self._rewrite()
        elif self.path.exists():
            self.path.unlink()
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(log_dir=str(Path(run_dir) / "tb"))
            except Exception:  # tensorboard missing or broken: CSV only
                self._tb = None

    @property
    def has_tensorboard(self) -> bool:
        """Whether TensorBoard events are being written."""
        return self._tb is not None

    def _rewrite(self) -> None:
        tmp = self.path.with_suffix(".csv.tmp")
        with tmp.open("w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=self._fields)
            w.writeheader()
            for r in self._rows:
                w.writerow(r)
        os.replace(tmp, self.path)

    def log(self, iteration: int, values: dict[str, float], *, prefix: str = "") -> None:
        """Record scalars for ``iteration`` (keys get ``prefix``; non-finite values kept as nan)."""
        if not self.enabled:
            return
        row: dict[str, Any] = {"iteration": int(iteration)}
        for k, v in values.items():
            row[prefix + k] = float(v)
        self._rows.append(row)
        new = [k for k in row if k not in self._fields]
        if new:
            self._fields.extend(new)
            self._rewrite()
        else:
            with self.path.open("a", newline="") as fh:
                csv.DictWriter(fh, fieldnames=self._fields).writerow(row)
        if self._tb is not None:
            for k, v in row.items():
                if k != "iteration" and math.isfinite(v):
                    self._tb.add_scalar(k, v, iteration)

    def close(self) -> None:
        """Flush and close TensorBoard."""
        if self._tb is not None:
            self._tb.flush()
            self._tb.close()
            self._tb = None
