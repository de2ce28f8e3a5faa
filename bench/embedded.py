"""``python -m bench.embedded`` (``make bench-embedded``): the embedded default as ``make run``
runs it.

No PostgreSQL, no Redis: SQLite for data and Kombu's SQLAlchemy transport on another
SQLite file as the broker, in a temporary data directory, with the Procfile's web,
worker (prefork, 2 processes) and beat on a free port. It creates ``--copies``
order copies over HTTP (``--clients`` threads) and times the drain: from the first
create sent to the last copy finished. Then it leaves the stack idle and reads the
CPU its processes use (web, worker and its pool, beat) from /proc.

It runs the stack twice, one after the other: with the worker's transport
(``worker/broker.py``: a consumer whose prefetch slots are full looks again within
milliseconds) and with Kombu's own (one second between looks), the baseline. Both start
from copies of one data directory, migrated and seeded once. ``--together`` (set by
``--smoke``) runs the two stacks at once: quicker, but their figures then share the machine.
Nothing here asserts a timing; it prints figures and ratios.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx2 as httpx

from bench.cpu import cpu_seconds
from bench.memory import children

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parent.parent
MEDIA_TYPE = "application/vnd.api+json"
#: The Celery app with Kombu's own SQLAlchemy transport (the baseline).
KOMBU_APP = "bench.kombu_transport"
START_SECONDS = 180


@dataclass(frozen=True)
class Result:
    transport: str
    copies: int
    created_seconds: float
    drained_seconds: float
    finished: dict[str, int]
    idle_cpu_percent: float
    completed: int  # of the copies this run created

    @property
    def problem(self) -> str | None:
        """A copy the bench created that did not complete: its rate would measure nothing."""
        if self.completed == self.copies:
            return None
        return f"{self.transport}: {self.completed} of {self.copies} copies completed"

    @property
    def drained_per_second(self) -> float:
        return self.copies / self.drained_seconds


class Stack:
    """The Procfile's web, worker and beat on the embedded default in ``data_dir``."""

    def __init__(self, data_dir: Path, port: int, celery_app: str) -> None:
        self.data_dir = data_dir
        self.port = port
        self.env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith("ORDERCOPY_") or key == "ORDERCOPY_TEST_ADMIN_URL"
        }
        self.env.update(
            ORDERCOPY_DATA_DIR=str(data_dir),
            ORDERCOPY_LOG_LEVEL="WARNING",
            PATH=f"{BIN}:{os.environ.get('PATH', '')}",
        )
        self.celery_app = celery_app
        self.processes: list[subprocess.Popen[bytes]] = []

    def ordercopy(self, *args: str) -> str:
        return subprocess.run(
            [str(BIN / "ordercopy"), *args],
            env=self.env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout

    def prepare(self) -> str:
        """Migrate and seed the demo in the data directory; the test API key."""
        self.ordercopy("db", "upgrade")
        self.ordercopy("demo", "seed", "--if-empty")
        return self.ordercopy("api-keys", "create", "--name", "bench").strip().splitlines()[-1]

    def start(self) -> None:
        """Start the processes on the prepared data directory; return once the web answers."""
        commands = [
            ["uvicorn", "api.app:app", "--host", "127.0.0.1", "--port", str(self.port)],
            ["celery", "-A", self.celery_app, "worker", "--loglevel", "WARNING", "-c", "2"],
            ["celery", "-A", self.celery_app, "beat", "--loglevel", "WARNING"],
        ]
        for command in commands:
            self.processes.append(
                subprocess.Popen(
                    [str(BIN / command[0]), *command[1:]],
                    env=self.env,
                    cwd=ROOT,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        # Importing the API takes seconds of CPU, shared with the worker's and beat's start
        # (and, in make test, with the rest of the suite).
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            try:
                httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=1).raise_for_status()
                return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise RuntimeError(f"the web process did not answer within {START_SECONDS} s")

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()

    def pids(self) -> list[int]:
        pids = [process.pid for process in self.processes]
        return pids + [child for pid in pids for child in children(pid)]

    def counts(self) -> dict[str, int]:
        database = sqlite3.connect(f"file:{self.data_dir / 'ordercopy.db'}?mode=ro", uri=True)
        try:
            rows = database.execute("SELECT status, count(*) FROM order_copies GROUP BY status")
            return {status: count for status, count in rows}
        finally:
            database.close()

    def wait_idle(self, timeout: float) -> dict[str, int]:
        """Wait until no copy is pending or in progress; the counts by status."""
        deadline = time.monotonic() + timeout
        while True:
            counts = self.counts()
            if not counts.get("pending") and not counts.get("in_progress"):
                return counts
            if time.monotonic() > deadline:
                raise RuntimeError(f"copies still unfinished after {timeout:.0f} s: {counts}")
            time.sleep(0.05)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def source_order(client: httpx.Client) -> str:
    """A placed order of the demo, to copy."""
    response = client.get("/api/orders", params={"filter[q][status_eq]": "placed"})
    response.raise_for_status()
    return str(response.json()["data"][0]["id"])


def create_copies(client: httpx.Client, order_id: str, count: int, clients: int) -> None:
    body = {
        "data": {
            "type": "order_copies",
            "relationships": {"source_order": {"data": {"type": "orders", "id": order_id}}},
        }
    }

    def create(_: int) -> None:
        client.post("/api/order_copies", json=body).raise_for_status()

    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(create, range(count)))


def idle_cpu_percent(pids: list[int], seconds: float) -> float:
    """CPU used by ``pids`` over ``seconds``, in percent of one core."""
    before = {pid: cpu_seconds(pid) for pid in pids}
    time.sleep(seconds)
    used = 0.0
    for pid, start in before.items():
        end = cpu_seconds(pid)
        if start is not None and end is not None:
            used += end - start
    return 100 * used / seconds


def measure(
    transport: str, celery_app: str, args: argparse.Namespace, prepared: Path, key: str
) -> Result:
    """One stack on a copy of the ``prepared`` data directory, whose API key is ``key``."""
    with tempfile.TemporaryDirectory(prefix="ordercopy-embedded-") as scratch:
        data_dir = Path(scratch) / "data"
        shutil.copytree(prepared, data_dir)
        stack = Stack(data_dir, free_port(), celery_app)
        try:
            stack.start()
            stack.wait_idle(timeout=120)  # the demo's own copies
            headers = {
                "Authorization": f"Bearer {key}",
                "Accept": MEDIA_TYPE,
                "Content-Type": MEDIA_TYPE,
            }
            with httpx.Client(
                base_url=f"http://127.0.0.1:{stack.port}", headers=headers, timeout=30
            ) as client:
                order_id = source_order(client)
                before = stack.counts()
                started = time.monotonic()
                create_copies(client, order_id, args.copies, args.clients)
                created = time.monotonic() - started
                finished = stack.wait_idle(timeout=args.timeout)
                drained = time.monotonic() - started
            if sum(finished.values()) != sum(before.values()) + args.copies:
                raise RuntimeError(f"{args.copies} copies created, counts {before} -> {finished}")
            completed = finished.get("completed", 0) - before.get("completed", 0)
            time.sleep(args.settle)
            idle = idle_cpu_percent(stack.pids(), args.idle_seconds)
        finally:
            stack.stop()
    return Result(transport, args.copies, created, drained, finished, idle, completed)


def report(results: list[Result]) -> None:
    print(
        f"embedded default (SQLite + Kombu SQLAlchemy transport), {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    header = f"{'transport':<34} {'created':>9} {'drained':>9} {'copies/s':>9} {'idle CPU':>9}"
    print(header)
    for result in results:
        print(
            f"{result.transport:<34} {result.created_seconds:>8.1f}s"
            f" {result.drained_seconds:>8.1f}s {result.drained_per_second:>9.1f}"
            f" {result.idle_cpu_percent:>8.1f}%"
        )
    if len(results) == 2:
        ours, kombu = results
        print(
            f"ratio: {ours.drained_per_second / kombu.drained_per_second:.1f}x the copies/s of "
            f"Kombu's own polling; idle CPU {ours.idle_cpu_percent:.1f}% against "
            f"{kombu.idle_cpu_percent:.1f}% of one core"
        )
    for result in results:
        print(f"final statuses ({result.transport}): {result.finished}")


#: ``--smoke``: a few copies and a short idle window, both transports: proves the bench runs.
SMOKE = {"copies": 8, "idle_seconds": 1.0, "settle": 0.5, "timeout": 120.0, "together": True}


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.embedded", description=__doc__)
    parser.add_argument("--copies", type=int, default=1000, help="copies to create (1000)")
    parser.add_argument("--clients", type=int, default=4, help="HTTP clients at once (4)")
    parser.add_argument("--idle-seconds", type=float, default=30, help="idle CPU window (30)")
    parser.add_argument("--settle", type=float, default=20, help="wait before it (20 s)")
    parser.add_argument("--timeout", type=float, default=900, help="drain timeout (900 s)")
    parser.add_argument(
        "--no-baseline", action="store_true", help="skip the run on Kombu's own transport"
    )
    parser.add_argument(
        "--together",
        action="store_true",
        help="run the two stacks at once (quicker; their figures then share the machine)",
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help=f"{SMOKE['copies']} copies, a {SMOKE['idle_seconds']:.0f} s idle window, both "
        "transports at once: proves the bench runs (make test runs it)",
    )
    args = parser.parse_args(argv)
    if args.smoke:
        parser.set_defaults(**SMOKE)
        args = parser.parse_args(argv)  # what the command line names still wins
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    runs = [("worker/broker.py (two-speed polling)", "worker")]
    if not args.no_baseline:
        runs.append(("Kombu's SQLAlchemy transport (1 s)", KOMBU_APP))
    with tempfile.TemporaryDirectory(prefix="ordercopy-embedded-prepared-") as prepared:
        key = Stack(Path(prepared), 0, "worker").prepare()
        with ThreadPoolExecutor(len(runs) if args.together else 1) as pool:
            results = list(pool.map(lambda run: measure(*run, args, Path(prepared), key), runs))
    report(results)
    failed = [result.problem for result in results if result.problem]
    for problem in failed:
        print(f"bench failed: {problem}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
