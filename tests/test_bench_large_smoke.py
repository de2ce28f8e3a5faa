"""``python -m bench.large --smoke`` runs in ``make test`` as ``make bench`` runs it: a few
thousand copies seeded by SQL, every list query and ``/metrics`` asked over HTTP of a real
uvicorn. Its figures measure nothing; the test asserts that it exits 0 (every request
answered, a deep ``page[number]`` refused as documented) and prints each row of its table.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.test_bench_smoke import ROOT, TIMEOUT, bench_environment

#: Every row the table prints: /metrics at both sizes, each list query, the keyset page.
LINES = (
    "/metrics (2,000 copies, 5,000 events)",
    "/metrics (4,000 copies, 5,000 events)",
    "the scrape's statements now, by hand",
    "first page (sort=-created_at)",
    "status_eq=failed",
    "reference_eq",
    "reference_cont",
    "source_order_id_eq",
    "/api/order_subscriptions/{id}/order_copies",
    "created_at a day's range",
    "completed_at_gt a day ago",
    "completed_at_lt, sort=-completed_at",
    "errors_count_gt=0",
    "errors_count_eq=2, sort=-errors_count",
    "page[number]=400",
    "page[size]=25, include=source_order,target_order",
    "page[after]",
)


@pytest.mark.slow
@pytest.mark.timeout(TIMEOUT + 60)
def test_the_large_table_bench_runs_and_prints_every_query() -> None:
    ran = subprocess.run(
        [sys.executable, "-m", "bench.large", "--smoke"],
        cwd=ROOT,
        env=bench_environment(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    report = f"stdout:\n{ran.stdout}\nstderr (end):\n{ran.stderr[-4000:]}"
    assert ran.returncode == 0, report
    missing = [line for line in LINES if line not in ran.stdout]
    assert missing == [], report
