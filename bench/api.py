"""``python -m bench.api``: the API's requests/s and latency, each endpoint next to a bare
FastAPI endpoint doing the same database and broker work (``bench/bare_app.py``),
measured in the same run, served the same way (issue 20).

Three endpoints, each app in turn, on one uvicorn process and then on two
(``--workers 2``):

- create: ``POST /api/order_copies`` of a valid source order with ``place_target_order``,
  an ``Idempotency-Key`` on every other request;
- get: ``GET /api/order_copies/{id}`` of the copies just created;
- list: ``GET /api/order_copies?page[size]=25&include=source_order,target_order``.

The client is a pool of threads over keep-alive httpx connections in this process.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from statistics import quantiles
from typing import Any

import httpx2 as httpx

from bench.cpu import CpuMeter
from bench.environment import configure

RESULTS = Path(__file__).with_name("results")
SMOKE_REQUESTS = 24
BARE = "bare FastAPI endpoint"
OURS = "ordercopy"
LIST_QUERY = "page[size]=25&include=source_order,target_order"
#: The issue's targets: ours / bare requests/s.
TARGETS = {"create": 0.5, "get": 0.5, "list": 0.3}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(app: str, port: int, workers: int) -> subprocess.Popen[bytes]:
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            app,
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        env=dict(os.environ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with httpx.Client(timeout=1) as client:
                client.get(f"http://127.0.0.1:{port}/api/order_copies")
            return server
        except httpx.HTTPError:
            time.sleep(0.1)
    server.kill()
    raise RuntimeError(f"{app} did not start on port {port}")


@dataclass
class Figures:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    failures: int
    created: list[str]
    #: CPU of the web process tree per request (ms): what other load on the machine
    #: disturbs far less than the rate.
    web_cpu_ms: float = 0.0


Request = Callable[[httpx.Client], httpx.Response]


def load(base: str, headers: dict[str, str], requests: list[Request], concurrency: int) -> Figures:
    """Send every request once, ``concurrency`` at a time."""
    latencies: list[float] = []
    created: list[str] = []
    failures = 0
    with httpx.Client(base_url=base, headers=headers, timeout=30) as client:

        def send(request: Request) -> tuple[float, httpx.Response]:
            began = time.perf_counter()
            response = request(client)
            return (time.perf_counter() - began) * 1000, response

        began = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            for latency, response in pool.map(send, requests):
                latencies.append(latency)
                if response.status_code >= 300:
                    failures += 1
                elif response.request.method == "POST":
                    created.append(response.json()["data"]["id"])
        elapsed = time.perf_counter() - began
    cuts = quantiles(latencies, n=100)
    return Figures(len(requests) / elapsed, cuts[49], cuts[98], failures, created)


def creates(sources: list[str], count: int) -> list[Request]:
    def make(n: int) -> Request:
        document = {
            "data": {
                "type": "order_copies",
                "attributes": {"place_target_order": True},
                "relationships": {
                    "source_order": {"data": {"type": "orders", "id": sources[n % len(sources)]}}
                },
            }
        }
        extra = {"Idempotency-Key": uuid.uuid4().hex} if n % 2 else {}
        body = json.dumps(document)
        return lambda client: client.post("/api/order_copies", content=body, headers=extra)

    return [make(n) for n in range(count)]


def gets(ids: list[str], count: int) -> list[Request]:
    def make(copy_id: str) -> Request:
        return lambda client: client.get(f"/api/order_copies/{copy_id}")

    return [make(ids[n % len(ids)]) for n in range(count)]


def lists(count: int) -> list[Request]:
    return [lambda client: client.get(f"/api/order_copies?{LIST_QUERY}") for _ in range(count)]


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.api", description=__doc__)
    parser.add_argument("--requests", type=int, help="requests per endpoint and app (2,000)")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument(
        "--processes",
        type=int,
        nargs="+",
        help="uvicorn --workers counts to measure (1 2; a smoke run 1)",
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help=f"{SMOKE_REQUESTS} requests each: proves the bench runs (make test runs it)",
    )
    args = parser.parse_args(argv)
    args.requests = args.requests or (SMOKE_REQUESTS if args.smoke else 2000)
    args.processes = args.processes or ([1] if args.smoke else [1, 2])
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    data_dir = Path(tempfile.mkdtemp(prefix="ordercopy-bench-api-"))
    try:
        measure(args, data_dir)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def run_app(
    database: str,
    app: str,
    processes: int,
    headers: dict[str, str],
    phases: dict[str, list[Request]],
    concurrency: int,
    warm_up: int,
) -> dict[str, Figures]:
    port = free_port()
    server = serve(app, port, processes)
    base = f"http://127.0.0.1:{port}"
    try:
        figures = {}
        for name, requests in phases.items():
            load(base, headers, requests[:warm_up], concurrency)
            meter = CpuMeter(server.pid, database)
            meter.start()
            figures[name] = load(base, headers, requests, concurrency)
            meter.stop()
            figures[name].web_cpu_ms = meter.client_seconds * 1000 / len(requests)
        return figures
    finally:
        server.terminate()
        server.wait(10)


def measure(args: argparse.Namespace, data_dir: Path) -> None:
    bench = configure(data_dir)

    from sqlalchemy import text

    from api.auth import issue_key
    from bench.bare_app import TABLE as BARE_TABLE
    from bench.broker import flush
    from bench.world import make_sources, throwaway_database
    from models import Mode, db

    warm_up = args.concurrency if args.smoke else max(50, args.requests // 10)
    results: dict[int, dict[str, dict[str, Figures]]] = {}
    with throwaway_database(bench):
        sessions = db.sessions()
        sources = make_sources(sessions, 20, 1, shared_skus=True)
        with sessions.begin() as session:
            _, token = issue_key(session, name="bench", mode=Mode.TEST)
            session.execute(text(BARE_TABLE))
        headers = {
            "Authorization": f"Bearer {token}",
            "Accept": "application/vnd.api+json",
            "Content-Type": "application/vnd.api+json",
        }
        for processes in args.processes:
            ours = run_app(
                bench.database_name,
                "api.app:app",
                processes,
                headers,
                {"create": creates(sources, args.requests)},
                args.concurrency,
                warm_up,
            )
            ids = ours["create"].created
            reads = {"get": gets(ids, args.requests), "list": lists(args.requests)}
            ours |= run_app(
                bench.database_name,
                "api.app:app",
                processes,
                headers,
                reads,
                args.concurrency,
                warm_up,
            )
            bare = run_app(
                bench.database_name,
                "bench.bare_app:app",
                processes,
                headers,
                {"create": creates(sources, args.requests), **reads},
                args.concurrency,
                warm_up,
            )
            results[processes] = {OURS: ours, BARE: bare}
        flush(bench.key_prefix)
    report(args, results)
    # A smoke run's figures measure nothing: they never replace a real run's.
    out = data_dir if args.smoke else RESULTS
    out.mkdir(exist_ok=True)
    raw: dict[str, Any] = {
        str(processes): {
            app: {
                name: {k: v for k, v in vars(f).items() if k != "created"} for name, f in by.items()
            }
            for app, by in apps.items()
        }
        for processes, apps in results.items()
    }
    (out / "api.json").write_text(json.dumps(raw, indent=2))
    failed = {
        f"{processes}p {app} {name}": f.failures
        for processes, apps in results.items()
        for app, by in apps.items()
        for name, f in by.items()
        if f.failures
    }
    if failed:  # a rate of failed requests measures nothing
        raise SystemExit(f"requests failed: {failed}")


def report(args: argparse.Namespace, results: dict[int, dict[str, dict[str, Figures]]]) -> None:
    load_average = os.getloadavg()[0]
    print(
        f"API requests, {args.requests} per endpoint and app, {args.concurrency} at a time "
        f"(load average {load_average:.1f}); {OURS} vs a {BARE} doing the same database work; "
        "CPU: ms of the web processes' CPU per request"
    )
    print(
        f"{'processes':>9} {'endpoint':8}{'bare req/s':>12}{'ours req/s':>12}{'ratio':>8}"
        f"{'target':>8}{'bare p50':>10}{'ours p50':>10}{'bare p99':>10}{'ours p99':>10}"
        f"{'bare CPU':>10}{'ours CPU':>10}"
    )
    for processes, apps in results.items():
        for name, ours in apps[OURS].items():
            bare = apps[BARE][name]
            ratio = ours.requests_per_s / bare.requests_per_s
            print(
                f"{processes:>9} {name:8}{bare.requests_per_s:>12.0f}{ours.requests_per_s:>12.0f}"
                f"{ratio:>8.2f}{'>= ' + str(TARGETS[name]):>8}{bare.p50_ms:>10.1f}"
                f"{ours.p50_ms:>10.1f}{bare.p99_ms:>10.1f}{ours.p99_ms:>10.1f}"
                f"{bare.web_cpu_ms:>10.2f}{ours.web_cpu_ms:>10.2f}"
            )
    one = results[min(results)]
    create = one[OURS]["create"].requests_per_s / one[BARE]["create"].requests_per_s
    p50 = one[OURS]["create"].p50_ms / one[BARE]["create"].p50_ms
    print(
        f"ratio (ours / bare), POST /api/order_copies: {create:.2f} of the requests/s, "
        f"{p50:.1f}x the p50"
    )


if __name__ == "__main__":
    main()
