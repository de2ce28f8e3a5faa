"""The embedded default end to end: what ``make run`` does, with no server at all.

With ORDERCOPY_DATABASE_URL and ORDERCOPY_BROKER_URL unset, ``ordercopy db
upgrade`` and ``ordercopy demo seed`` write SQLite under ORDERCOPY_DATA_DIR, and
``honcho start worker beat`` (the Procfile) runs the real Celery worker and beat
on Kombu's SQLite broker. Every demo copy must end as its metadata expects.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cli.demo_scenarios import SCENARIOS

pytestmark = [pytest.mark.worker, pytest.mark.xdist_group("embedded"), pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
WAIT_SECONDS = 60
FINISHED = ("completed", "failed")


@dataclass
class Embedded:
    data_dir: Path
    env: dict[str, str]
    copy_ids: list[str]
    honcho: subprocess.Popen[bytes]
    log: Path

    @property
    def database(self) -> Path:
        return self.data_dir / "ordercopy.db"

    def query(self, sql: str, *params: Any) -> list[sqlite3.Row]:
        """Read the worker's SQLite database (WAL: readers never block the writer)."""
        uri = f"file:{self.database}?mode=ro"
        with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=30)) as db:
            db.row_factory = sqlite3.Row
            return db.execute(sql, params).fetchall()

    def copies(self, copy_ids: list[str]) -> list[sqlite3.Row]:
        marks = ",".join("?" * len(copy_ids))
        return self.query(f"SELECT * FROM order_copies WHERE id IN ({marks})", *copy_ids)

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def embedded_env(data_dir: Path) -> dict[str, str]:
    """No ORDERCOPY_* setting but the data dir (the suite's URLs removed): the embedded default."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("ORDERCOPY_")}
    env.update(
        ORDERCOPY_DATA_DIR=str(data_dir),
        ORDERCOPY_LOG_FORMAT="json",
        # The Procfile runs `celery`: the venv's bin must be on PATH (as when it is activated).
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        PYTHONPATH=str(ROOT),  # the code under test, wherever the venv was installed from
    )
    return env


def ordercopy(env: dict[str, str], *args: str, timeout: float = 60) -> str:
    result = subprocess.run(
        [str(BIN / "ordercopy"), *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, f"ordercopy {' '.join(args)}:\n{result.stdout}{result.stderr}"
    return result.stdout


def child_groups(pid: int) -> set[int]:
    """The process groups of ``pid``'s children (honcho gives each process its own)."""
    groups = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = (task / "children").read_text().split()
        except OSError:
            continue
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                groups.add(os.getpgid(int(child)))
    return groups


def stop(honcho: subprocess.Popen[bytes]) -> None:
    """SIGTERM honcho (it stops worker and beat, SIGKILLs them after 5 s); make sure all died."""
    groups = child_groups(honcho.pid)
    try:
        os.killpg(honcho.pid, signal.SIGTERM)
        honcho.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(honcho.pid, signal.SIGKILL)
        honcho.wait(timeout=10)
    except ProcessLookupError:
        pass
    for group in groups:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Embedded]:
    """``make run`` on a fresh data dir: migrate, seed the demo, start worker + beat."""
    data_dir = tmp_path_factory.mktemp("embedded")
    env = embedded_env(data_dir)
    ordercopy(env, "db", "upgrade")
    ordercopy(env, "demo", "seed", "--if-empty")
    log = data_dir / "honcho.log"
    with contextlib.closing(sqlite3.connect(data_dir / "ordercopy.db")) as db:
        copy_ids = [row[0] for row in db.execute("SELECT id FROM order_copies ORDER BY rowid")]
    with log.open("wb") as output:
        honcho = subprocess.Popen(
            # `--env /dev/null`: a developer's .env must not point the test at real services.
            [str(BIN / "honcho"), "start", "--env", os.devnull, "--no-colour", "worker", "beat"],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield Embedded(data_dir, env, copy_ids, honcho, log)
    finally:
        stop(honcho)


def wait_until_finished(embedded: Embedded, copy_ids: list[str]) -> list[sqlite3.Row]:
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        copies = embedded.copies(copy_ids)
        if all(copy["status"] in FINISHED for copy in copies):
            return copies
        if embedded.honcho.poll() is not None:
            pytest.fail(f"honcho exited ({embedded.honcho.returncode}):\n{embedded.log_tail()}")
        if time.monotonic() > deadline:
            pending = [f"{c['id']} {c['reference']} ({c['status']})" for c in copies]
            pytest.fail(
                f"demo copies still unfinished after {WAIT_SECONDS} s: {pending}\n"
                f"{embedded.log_tail()}"
            )
        time.sleep(0.5)


def unexpected(copy: sqlite3.Row) -> str | None:
    """Why ``copy`` did not end as its metadata says it should, or None."""
    metadata, errors_log = json.loads(copy["metadata"]), json.loads(copy["errors_log"])
    expect, error_key = metadata["expect"], metadata.get("expect_error")
    if copy["status"] != expect:
        return f"{copy['reference']}: {copy['status']}, expected {expect}: {errors_log}"
    if error_key is None and copy["errors_count"]:
        return f"{copy['reference']}: errors where none were expected: {errors_log}"
    if error_key is not None and not errors_log.get(error_key):
        return f"{copy['reference']}: no {error_key} error: {errors_log}"
    return None


def test_make_run_executes_every_demo_copy_as_expected(embedded: Embedded):
    copies = wait_until_finished(embedded, embedded.copy_ids)

    assert len(copies) == len(SCENARIOS)
    assert [reason for reason in map(unexpected, copies) if reason] == []
    claimed = embedded.query(
        "SELECT DISTINCT order_copy_id FROM order_copy_events WHERE kind = 'claimed'"
    )
    assert {row[0] for row in claimed} >= set(embedded.copy_ids)  # each run by the worker
    (flaky,) = [c for c in copies if "flaky" in c["reference"]]
    transient = embedded.query(
        "SELECT count(*) FROM order_copy_events WHERE order_copy_id = ? AND kind = ?",
        flaky["id"],
        "transient_error",
    )
    assert transient[0][0] == 2  # retried by Celery through the SQLite broker, then placed
    assert flaky["status"] == "completed"


def test_demo_run_waits_for_the_worker_and_reports_all_as_expected(embedded: Embedded):
    wait_until_finished(embedded, embedded.copy_ids)

    out = ordercopy(embedded.env, "demo", "run", "--timeout", str(WAIT_SECONDS), timeout=90)

    assert f"all {len(SCENARIOS)} order copies turned out as expected" in out
    finished = embedded.query(
        "SELECT count(*) FROM order_copies WHERE status IN ('completed', 'failed')"
    )
    assert finished[0][0] == 2 * len(SCENARIOS)


def test_embedded_databases_are_sqlite_and_the_data_one_is_in_wal_mode(embedded: Embedded):
    (mode,) = embedded.query("PRAGMA journal_mode")

    assert mode[0] == "wal"
    assert (embedded.data_dir / "broker.db").is_file()
    with contextlib.closing(sqlite3.connect(embedded.data_dir / "broker.db")) as broker:
        tables = {row[0] for row in broker.execute("SELECT name FROM sqlite_master")}
    assert {"kombu_queue", "kombu_message"} <= tables


def test_order_numbers_increase_on_sqlite_across_processes(embedded: Embedded):
    wait_until_finished(embedded, embedded.copy_ids)

    # rowid is the order of insertion: by the CLI, then by two worker processes.
    numbers = [row[0] for row in embedded.query("SELECT number FROM orders ORDER BY rowid")]

    assert len(numbers) > len(SCENARIOS)  # sources and targets
    assert numbers[0] == 10000
    assert all(b > a for a, b in itertools.pairwise(numbers))
