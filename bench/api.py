"""``python -m bench.api``: create-copy requests/s and latency, next to a bare FastAPI
endpoint measured in the same run (issue 3).

Both apps run under the same uvicorn (one process) on loopback; the same client
(threads over httpx) sends the same JSON:API document to each, in turn.
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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from statistics import quantiles

import httpx2 as httpx

from bench.environment import configure

RESULTS = Path(__file__).with_name("results")
SMOKE_REQUESTS = 24


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(app: str, port: int) -> subprocess.Popen[bytes]:
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            app,
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        env=dict(os.environ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return server
        except OSError:
            time.sleep(0.1)
    server.kill()
    raise RuntimeError(f"{app} did not start on port {port}")


def load(
    url: str, headers: dict[str, str], documents: list[dict[str, object]], concurrency: int
) -> dict[str, float]:
    """Send every document once, ``concurrency`` at a time; requests/s and latencies (ms)."""
    latencies: list[float] = []
    failures = 0
    with httpx.Client(headers=headers, timeout=30) as client:

        def send(document: dict[str, object]) -> tuple[float, int]:
            began = time.perf_counter()
            status = client.post(url, json=document).status_code
            return (time.perf_counter() - began) * 1000, status

        began = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            for latency, status in pool.map(send, documents):
                latencies.append(latency)
                failures += status != 201
        elapsed = time.perf_counter() - began
    cuts = quantiles(latencies, n=100)
    return {
        "requests_per_s": len(documents) / elapsed,
        "p50_ms": cuts[49],
        "p99_ms": cuts[98],
        "failures": failures,
    }


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.api", description=__doc__)
    parser.add_argument("--requests", type=int, help="requests to each app (2,000)")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument(
        "--smoke",
        action="store_true",
        help=f"{SMOKE_REQUESTS} requests to each app: proves the bench runs (make test runs it)",
    )
    args = parser.parse_args(argv)
    args.requests = args.requests or (SMOKE_REQUESTS if args.smoke else 2000)
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    data_dir = Path(tempfile.mkdtemp(prefix="ordercopy-bench-api-"))
    try:
        measure(args, data_dir)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def measure(args: argparse.Namespace, data_dir: Path) -> None:
    bench = configure(data_dir)

    from api.auth import issue_key
    from bench.broker import flush
    from bench.world import make_sources, throwaway_database
    from models import Mode, db

    with throwaway_database(bench):
        sessions = db.sessions()
        sources = make_sources(sessions, 20, 1, shared_skus=True)
        with sessions.begin() as session:
            _, token = issue_key(session, name="bench", mode=Mode.TEST)
        headers = {
            "Authorization": f"Bearer {token}",
            "Accept": "application/vnd.api+json",
            "Content-Type": "application/vnd.api+json",
        }
        documents: list[dict[str, object]] = [
            {
                "data": {
                    "type": "order_copies",
                    "attributes": {"place_target_order": True},
                    "relationships": {
                        "source_order": {
                            "data": {"type": "orders", "id": sources[n % len(sources)]}
                        }
                    },
                }
            }
            for n in range(args.requests)
        ]
        results = {}
        for name, app in (
            ("bare FastAPI endpoint", "bench.bare_app:app"),
            ("POST /api/order_copies", "api.app:app"),
        ):
            port = free_port()
            server = serve(app, port)
            try:
                url = f"http://127.0.0.1:{port}/api/order_copies"
                warm_up = args.concurrency if args.smoke else max(50, args.requests // 10)
                load(url, headers, documents[:warm_up], args.concurrency)
                results[name] = load(url, headers, documents, args.concurrency)
            finally:
                server.terminate()
                server.wait(10)
        flush(bench.key_prefix)
    ours, bare = results["POST /api/order_copies"], results["bare FastAPI endpoint"]
    print(f"create-copy requests, {args.requests} each, {args.concurrency} at a time")
    print(f"{'':26}{'requests/s':>12}{'p50 ms':>10}{'p99 ms':>10}{'failures':>10}")
    for name, figures in results.items():
        print(
            f"{name:26}{figures['requests_per_s']:>12.0f}{figures['p50_ms']:>10.1f}"
            f"{figures['p99_ms']:>10.1f}{figures['failures']:>10.0f}"
        )
    ratio = ours["requests_per_s"] / bare["requests_per_s"]
    p50, p99 = ours["p50_ms"] / bare["p50_ms"], ours["p99_ms"] / bare["p99_ms"]
    print(
        f"ratio (ours / bare): {ratio:.2f} of the requests/s, {p50:.1f}x the p50, "
        f"{p99:.1f}x the p99"
    )
    # A smoke run's figures measure nothing: they never replace a real run's.
    out = data_dir if args.smoke else RESULTS
    out.mkdir(exist_ok=True)
    (out / "api.json").write_text(json.dumps({"results": results, "ratio": ratio}, indent=2))
    failed = {name: figures["failures"] for name, figures in results.items() if figures["failures"]}
    if failed:  # a rate of failed requests measures nothing
        raise SystemExit(f"requests failed: {failed}")


if __name__ == "__main__":
    main()
