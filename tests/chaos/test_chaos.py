"""The chaos suite, short: 120 copies under every fault, each kind at least once, inside
``make test``.

The run is a subprocess (``python -m tests.chaos.run``) with its own PostgreSQL
cluster and Redis, so its settings and its faults never touch the suite's
database and broker. A random seed is drawn each time and printed in the
table; ``CHAOS_SEED=<seed>`` replays one.
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys

import pytest

from tests.chaos.faults import LABELS
from tests.chaos.promises import PROMISES
from tests.worker.processes import REPO

pytestmark = pytest.mark.slow

#: Every kind of fault is scheduled whatever the window (tests/chaos/faults.py), and 30 s
#: leaves each room to end before the finale; ``make chaos`` runs 2,000 copies over 240 s.
COPIES = 120
DURATION = 30
#: Settling fails after this long with no copy finishing, or SETTLE_LIMIT in all.
QUIESCE_BOUND = 60
SETTLE_LIMIT = 150
TIMEOUT = 300


@pytest.mark.worker
@pytest.mark.xdist_group("worker-processes")
@pytest.mark.timeout(TIMEOUT + 60)
def test_a_short_chaos_run_quiesces_and_keeps_every_invariant(tmp_path):
    seed = os.environ.get("CHAOS_SEED") or str(random.SystemRandom().randrange(10**9))
    report = tmp_path / "chaos.md"
    run = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.chaos.run",
            *("--copies", str(COPIES), "--duration", str(DURATION), "--seed", seed),
            *("--quiesce-timeout", str(QUIESCE_BOUND), "--settle-limit", str(SETTLE_LIMIT)),
            *("--report", str(report)),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        output, _ = run.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        run.send_signal(signal.SIGTERM)  # the runner stops everything it started
        output, _ = run.communicate(timeout=60)
        pytest.fail(f"the chaos run (seed {seed}) took over {TIMEOUT} s:\n{output}")
    assert run.returncode == 0, f"chaos run failed (seed {seed}):\n{output}"
    table = report.read_text()
    print(table)  # shown by pytest -rP
    assert f"seed {seed}: PASS" in table
    assert "| violations | 0 |" in table
    for promise in PROMISES.values():
        assert f"| {promise} | 0 |" in table, table
    injected = {
        kind: re.findall(rf"^\| {re.escape(label)} \| (\d+)", table, re.M)
        for kind, label in LABELS.items()
    }
    assert [kind for kind, count in injected.items() if count in ([], ["0"])] == [], table
    assert "did not quiesce" not in table, table
