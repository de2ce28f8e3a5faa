"""``python -m bench.run [--quick]`` (``make bench``): the whole bench, one table, one JSON.

Every run makes its own PostgreSQL database and Redis key prefix and removes
them afterwards, so it can run beside the test suite. Absolute figures drift
with the machine's load: read the ratios, which compare runs side by side.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

from bench import environment

RESULTS = Path(__file__).resolve().parent / "results" / "latest.json"


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="about 500 copies instead of 5,000")
    size.add_argument(
        "--smoke",
        action="store_true",
        help="every phase on a few copies: proves the bench runs (make test runs it)",
    )
    parser.add_argument("--copies", type=int, help="copies (and no-op messages) to drain")
    parser.add_argument(
        "--storm", type=int, help="due subscriptions in the renewal storm (issue 7: 100,000)"
    )
    parser.add_argument(
        "--out",
        type=Path,
        help=f"where to write the JSON ({RESULTS}; --smoke: the run's temporary directory)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the worker logs")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    options = parse(argv)
    # A SIGTERM (``timeout``, CI) unwinds like Ctrl-C: workers, database and keys are removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    data_dir = Path(tempfile.mkdtemp(prefix="ordercopy-bench-"))
    bench = environment.configure(data_dir)
    # Only now may anything read the settings: import the project after configure().
    from bench import report, suite
    from config import get_settings
    from config.logging import configure_logging

    configure_logging(get_settings())
    bench_log = (data_dir / "bench.log").open("a")
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(bench_log)

    size = "smoke" if options.smoke else "quick" if options.quick else "full"
    plan = {"smoke": suite.SMOKE, "quick": suite.QUICK, "full": suite.FULL}[size]
    # A smoke run's figures measure nothing: they never replace a real run's.
    out = options.out or (data_dir / "latest.json" if options.smoke else RESULTS)
    if options.copies:
        plan = replace(plan, copies=options.copies)
    if options.storm:
        plan = replace(plan, storm=options.storm)
    ok = False
    load_before = os.getloadavg()
    try:
        results = suite.run(bench, plan)
        load = (load_before[0], os.getloadavg()[0])
        table = report.rows(results)
        title = (
            f"ordercopy bench ({size}, {plan.copies:,} copies, "
            f"{results['seconds']:.0f} s, {os.cpu_count()} CPUs, load average "
            f"{load[0]:.1f} -> {load[1]:.1f}): every ratio compares figures from this run"
        )
        print(report.render(table, title))
        meta = {
            "plan": plan.__dict__,
            "run_id": bench.run_id,
            "quick": options.quick,
            "smoke": options.smoke,
            "cpus": os.cpu_count(),
            "load_average_1min": {"before": load[0], "after": load[1]},
        }
        report.write_json(out, table, results, meta)
        kept = (
            " (the run's temporary directory: --keep keeps it)"
            if options.out is None and options.smoke
            else ""
        )
        print(f"\nwritten to {out}{kept}")
        failed = suite.problems(results)
        for problem in failed:
            print(f"bench failed: {problem}", file=sys.stderr)
        ok = not failed
    finally:
        bench_log.close()
        if ok and not options.keep:
            shutil.rmtree(data_dir, ignore_errors=True)
        else:
            print(f"worker and bench logs kept in {data_dir}", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
