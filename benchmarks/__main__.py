"""Run the paper's experiments: ``python -m benchmarks run --suite quick|paper|micro``.

``--acq-preset paper|clinical`` picks the simulated acquisition (the run folder gets a suffix
when it differs from the suite's default), e.g. the main table once more on paper data:
``python -m benchmarks run --suite quick --only main_table --acq-preset paper``.

Finished experiments are stored in ``benchmarks/results/<suite>/results.json`` as they complete;
a second run resumes (skips them) unless ``--redo`` names them. Datasets and trained models are
cached in ``<out>/cache``.
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from pathlib import Path

import torch

from .experiments import EXPERIMENTS
from .report import render_results
from .store import ResultStore
from .suites import SUITES, get_suite


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="run (or resume) a suite")
    r.add_argument("--suite", default="quick", choices=sorted(SUITES), help="suite (default quick)")
    r.add_argument(
        "--out", type=Path, default=None, help="run folder (default benchmarks/results/<suite>)"
    )
    r.add_argument("--only", default=None, help="comma-separated experiments to run (default all)")
    r.add_argument(
        "--redo",
        default=None,
        help="comma-separated experiments to run again ('all' for every one)",
    )
    r.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    r.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    r.add_argument("--quiet", action="store_true", help="no progress bars")
    r.add_argument(
        "--acq-preset",
        default=None,
        choices=("paper", "clinical"),
        help="acquisition preset of the simulated data (default: the suite's)",
    )
    sub.add_parser("list", help="list experiments and suites")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.cmd == "list":
        for name, fn in EXPERIMENTS.items():
            print(f"{name:22s} {(fn.__doc__ or '').strip().splitlines()[0]}")
        print("suites:", ", ".join(SUITES))
        return 0
    from .context import Context

    suite = get_suite(args.suite, acq_preset=args.acq_preset)
    default_out = Path(__file__).resolve().parent / "results" / suite.name
    if args.acq_preset and args.acq_preset != get_suite(args.suite).acq_preset:
        default_out = default_out.with_name(f"{suite.name}-{args.acq_preset}")
    out = args.out or default_out
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if args.threads:
        torch.set_num_threads(args.threads)
    names = list(EXPERIMENTS) if not args.only else [s.strip() for s in args.only.split(",")]
    unknown = [n for n in names if n not in EXPERIMENTS]
    if unknown:
        print(
            f"error: unknown experiments {unknown}; see `python -m benchmarks list`",
            file=sys.stderr,
        )
        return 2
    store = ResultStore(out / "results.json", suite.name, suite.to_dict())
    redo = set(EXPERIMENTS) if args.redo == "all" else set((args.redo or "").split(",")) - {""}
    for n in redo:
        store.forget(n)
    ctx = Context(suite, out, device, progress=not args.quiet)
    failures = 0
    for name in names:
        if store.done(name) and "error" not in store.get(name):
            print(f"[skip] {name} (done)")
            continue
        print(f"[run ] {name}", flush=True)
        t0 = time.perf_counter()
        try:
            fn = EXPERIMENTS[name]
            res = fn(ctx, store.data["experiments"]) if name == "cost" else fn(ctx)
        except Exception as exc:
            traceback.print_exc()
            res = {"error": f"{type(exc).__name__}: {exc}"}
            failures += 1
        res["seconds"] = time.perf_counter() - t0
        store.put(name, res)
        render_results(store.data, out / "RESULTS.md")
        print(f"[done] {name} in {res['seconds']:.0f} s", flush=True)
    render_results(store.data, out / "RESULTS.md")
    print(f"results: {out / 'results.json'}\nreport:  {out / 'RESULTS.md'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
