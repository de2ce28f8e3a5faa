"""``python -m bench.large``: the API's lists and ``/metrics`` on a large table (issue 20).

Seeds copies and their history by SQL (``generate_series``, not the domain: the bench
measures reads) in a database of its own, then asks one uvicorn process, one request at a
time over keep-alive, for the first page of every documented filter and sort, deep pages
and ``/metrics``: the median of 5 after one warm-up request, next to the hand-written SQL
that answers the same question (psycopg, same database, median of 5).

Two sizes, as the issue asks: ``/metrics`` at 200,000 copies and 1,000,000 history events,
then everything at 1,000,000 copies (the events stay 1,000,000).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx2 as httpx
import psycopg

from bench.environment import BenchEnvironment, configure

RESULTS = Path(__file__).with_name("results")
REPEAT = 5
PAGE = 10
#: The API's listing at its largest page, with both to-one includes (issue 20's list target).
INCLUDED = {"page[size]": "25", "include": "source_order,target_order"}
#: Seconds between two seeded copies' created_at: a million copies span about two years.
SPACING = 60


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(port: int) -> subprocess.Popen[bytes]:
    """The API as the Procfile's web runs it, one process, on loopback ``port``."""
    server = subprocess.Popen(
        [
            *(sys.executable, "-m", "uvicorn", "api.app:app", "--port", str(port)),
            *("--log-level", "warning", "--no-access-log"),
        ],
        env=dict(os.environ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return server
        except OSError:
            time.sleep(0.1)
    server.kill()
    raise RuntimeError(f"the API did not start on port {port}")


@dataclass(frozen=True)
class Size:
    copies: int
    events: int
    sources: int
    subscriptions: int


FULL = (Size(200_000, 1_000_000, 200, 1_000), Size(1_000_000, 1_000_000, 200, 1_000))
SMOKE = (Size(2_000, 5_000, 10, 10), Size(4_000, 5_000, 10, 10))


@dataclass(frozen=True)
class World:
    """What the seeded copies point at, and the newest copy's creation time."""

    sources: list[str]
    targets: list[str]
    subscriptions: list[str]
    newest: datetime


# The seeded copies, the n-th of a series: a status mix like a shop's history (most
# completed, some failed with errors, a few pending, in progress or aborted), half with an
# ERP reference, a fifth renewals, one in twenty in live mode.
SEED_COPIES = """
INSERT INTO order_copies (
    id, mode, status, source_order_id, target_order_id, order_subscription_id, period_key,
    place_target_order, cancel_source_order, reuse_wallet, skip_errors, apply_promotions,
    ignore_invalid_coupon, errors_log, errors_count, started_at, completed_at, failed_at,
    reference, reference_origin, metadata, attempt, claims, retries, dispatches,
    dispatched_at, created_at, updated_at)
SELECT
    'L' || lpad(to_hex(n), 9, '0'),
    CASE WHEN n %% 20 = 7 THEN 'live' ELSE 'test' END,
    s.status, (%(sources)s::text[])[1 + n %% cardinality(%(sources)s::text[])],
    CASE WHEN s.status IN ('completed', 'failed')
        THEN (%(targets)s::text[])[1 + n %% cardinality(%(targets)s::text[])] END,
    CASE WHEN n %% 5 = 0
        THEN (%(subscriptions)s::text[])[1 + n %% cardinality(%(subscriptions)s::text[])] END,
    CASE WHEN n %% 5 = 0 THEN 'p' || n END,
    true, false, true, false, false, false,
    CASE WHEN s.status = 'failed' THEN '{"line_items": ["SKU GONE is discontinued"]}'::jsonb
        ELSE '{}'::jsonb END,
    CASE WHEN s.status = 'failed' THEN 1 + n %% 3 ELSE 0 END,
    CASE WHEN s.status <> 'pending' AND s.status <> 'aborted' THEN c.at + interval '1 second' END,
    CASE WHEN s.status = 'completed' THEN c.at + (n %% 900) * interval '10 ms' + interval '1 s' END,
    CASE WHEN s.status = 'failed' THEN c.at + interval '3 seconds' END,
    CASE WHEN n %% 2 = 0 THEN 'ERP-' || n END,
    CASE WHEN n %% 2 = 0 THEN 'erp' END,
    '{}'::jsonb, 1, 1, 0, 0, c.at, c.at, c.at
FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS n,
    LATERAL (SELECT %(newest)s::timestamptz - (%(last_n)s - n) * %(spacing)s * interval '1 second'
             AS at) AS c,
    LATERAL (SELECT CASE
        WHEN n %% 100 < 85 THEN 'completed' WHEN n %% 100 < 93 THEN 'failed'
        WHEN n %% 100 < 96 THEN 'aborted' WHEN n %% 100 < 98 THEN 'pending'
        ELSE 'in_progress' END AS status) AS s
"""

#: History: the events of the first copies, five kinds in turn, up to ``events`` rows.
SEED_EVENTS = """
INSERT INTO order_copy_events (order_copy_id, mode, attempt, kind, data, created_at, updated_at)
SELECT c.id, c.mode, 1, k.kind, '{}'::jsonb, c.created_at, c.created_at
FROM (SELECT id, mode, created_at FROM order_copies ORDER BY id LIMIT %(copies)s) AS c,
    (VALUES ('created'), ('claimed'), ('target_built'), ('completed'), ('failed')) AS k(kind)
LIMIT %(events)s
"""


def seed(bench: BenchEnvironment, world: World, first: int, last: int, last_n: int) -> None:
    with psycopg.connect(bench.psycopg_url, autocommit=True) as conn:
        conn.execute(
            SEED_COPIES,
            {
                "sources": world.sources,
                "targets": world.targets,
                "subscriptions": world.subscriptions,
                "first": first,
                "last": last,
                "last_n": last_n,
                "newest": world.newest,
                "spacing": SPACING,
            },
        )


def seed_events(bench: BenchEnvironment, events: int) -> None:
    with psycopg.connect(bench.psycopg_url, autocommit=True) as conn:
        conn.execute(SEED_EVENTS, {"copies": -(-events // 5), "events": events})


def vacuum(bench: BenchEnvironment) -> None:
    """A table in use is vacuumed and analyzed by autovacuum: its visibility map lets
    counts read indexes alone, and the planner has statistics."""
    with psycopg.connect(bench.psycopg_url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")


def median_ms(call: Callable[[], Any]) -> tuple[float, Any]:
    result = call()  # warm-up: plans cached, pages in memory
    times = []
    for _ in range(REPEAT):
        began = time.perf_counter()
        result = call()
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times), result


@dataclass(frozen=True)
class Row:
    name: str
    api_ms: float | None
    sql_ms: float | None
    status: int
    records: int
    note: str = ""


def queries(world: World, size: Size) -> list[tuple[str, dict[str, str], str, dict[str, Any]]]:
    """(name, API query parameters, the SQL that answers it by hand, its parameters)."""
    day_ago = world.newest - timedelta(days=1)
    middle = world.newest - timedelta(seconds=SPACING * size.copies // 2)
    some = size.copies // 3 * 2  # an even n: it has a reference
    base = "SELECT * FROM order_copies WHERE mode = 'test'"
    order = f"ORDER BY created_at DESC, id LIMIT {PAGE}"
    return [
        ("first page (sort=-created_at)", {}, f"{base} {order}", {}),
        (
            "status_eq=failed",
            {"filter[q][status_eq]": "failed"},
            f"{base} AND status = 'failed' {order}",
            {},
        ),
        (
            "reference_eq",
            {"filter[q][reference_eq]": f"ERP-{some}"},
            f"{base} AND reference = %(v)s {order}",
            {"v": f"ERP-{some}"},
        ),
        (
            "reference_cont",
            {"filter[q][reference_cont]": f"RP-{some // 10}"},
            f"{base} AND reference ILIKE %(v)s {order}",
            {"v": f"%RP-{some // 10}%"},
        ),
        (
            "source_order_id_eq",
            {"filter[q][source_order_id_eq]": world.sources[1]},
            f"{base} AND source_order_id = %(v)s {order}",
            {"v": world.sources[1]},
        ),
        (
            "/api/order_subscriptions/{id}/order_copies",
            {"subscription": world.subscriptions[0]},
            f"{base} AND order_subscription_id = %(v)s {order}",
            {"v": world.subscriptions[0]},
        ),
        (
            "created_at a day's range",
            {
                "filter[q][created_at_gteq]": (middle - timedelta(days=1)).isoformat(),
                "filter[q][created_at_lt]": middle.isoformat(),
            },
            f"{base} AND created_at >= %(a)s AND created_at < %(b)s {order}",
            {"a": middle - timedelta(days=1), "b": middle},
        ),
        (
            "completed_at_gt a day ago",
            {"filter[q][completed_at_gt]": day_ago.isoformat()},
            f"{base} AND completed_at > %(v)s {order}",
            {"v": day_ago},
        ),
        (
            "completed_at_lt, sort=-completed_at",
            {"filter[q][completed_at_lt]": middle.isoformat(), "sort": "-completed_at"},
            f"{base} AND completed_at < %(v)s ORDER BY completed_at DESC, id LIMIT {PAGE}",
            {"v": middle},
        ),
        (
            "errors_count_gt=0",
            {"filter[q][errors_count_gt]": "0"},
            f"{base} AND errors_count > 0 {order}",
            {},
        ),
        (
            "errors_count_eq=2, sort=-errors_count",
            {"filter[q][errors_count_eq]": "2", "sort": "-errors_count"},
            f"{base} AND errors_count = 2 ORDER BY errors_count DESC, id LIMIT {PAGE}",
            {},
        ),
        (
            "page[number]=400 (records 3,991-4,000)",
            {"page[number]": "400"},
            f"{base} ORDER BY created_at DESC, id LIMIT {PAGE} OFFSET {399 * PAGE}",
            {},
        ),
        (
            "page[number]=20000 (records 199,991-200,000)",
            {"page[number]": "20000"},
            f"{base} ORDER BY created_at DESC, id LIMIT {PAGE} OFFSET {19999 * PAGE}",
            {},
        ),
        (
            "page[size]=25, include=source_order,target_order",
            INCLUDED,
            "",  # three selects: see included_sql
            {},
        ),
    ]


def included_sql(conn: psycopg.Connection[Any]) -> Callable[[], Any]:
    """The three selects behind a page of 25 copies with both orders included."""

    def run() -> Any:
        copies = conn.execute(
            "SELECT * FROM order_copies WHERE mode = 'test' ORDER BY created_at DESC, id LIMIT 25"
        ).fetchall()
        sources = list({c[3] for c in copies})
        targets = list({c[4] for c in copies if c[4] is not None})
        conn.execute(
            "SELECT * FROM orders WHERE id = ANY(%s) AND mode = 'test'", [sources]
        ).fetchall()
        return conn.execute(
            "SELECT * FROM orders WHERE id = ANY(%s) AND mode = 'test'", [targets]
        ).fetchall()

    return run


def measure_api(
    bench: BenchEnvironment, world: World, size: Size, base_url: str, token: str, full: bool
) -> list[Row]:
    rows: list[Row] = []
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/vnd.api+json"}
    with (
        httpx.Client(base_url=base_url, headers=headers, timeout=60) as client,
        psycopg.connect(bench.psycopg_url, autocommit=True) as conn,
    ):
        metrics_ms, metrics = median_ms(lambda: client.get("/metrics"))
        # The scrape's old way: the six aggregates over the tables, by hand.
        sql_ms, _ = median_ms(lambda: [conn.execute(q).fetchall() for q in METRICS_SQL])
        rows.append(
            Row(
                f"/metrics ({size.copies:,} copies, {size.events:,} events)",
                metrics_ms,
                sql_ms,
                metrics.status_code,
                0,
                "SQL: the whole-table aggregates a scrape ran before",
            )
        )
        if "metric_counts" in table_names(conn):
            scrape_ms, _ = median_ms(lambda: [conn.execute(q).fetchall() for q in SCRAPE_SQL])
            rows.append(
                Row(
                    "  the scrape's statements now, by hand",
                    None,
                    scrape_ms,
                    200,
                    0,
                    "SQL: metric_counts' sums, the oldest pending copy, renewals, webhooks",
                )
            )
        if not full:
            return rows
        for name, params, sql, values in queries(world, size):
            path = "/api/order_copies"
            if "subscription" in params:  # a subscription's renewals: its related list
                path = f"/api/order_subscriptions/{params['subscription']}/order_copies"
                params = {}
            api_ms, response = median_ms(lambda p=params, u=path: client.get(u, params=p))
            run = (
                included_sql(conn)
                if not sql
                else (lambda s=sql, v=values: conn.execute(s, v).fetchall())
            )
            raw_ms, _ = median_ms(run)
            document = response.json() if response.status_code == 200 else {}
            meta = document.get("meta", {})
            note = f"record_count {meta.get('record_count')}" if meta else ""
            if meta.get("record_count_estimated"):
                note += " (estimated)"
            if response.status_code != 200:
                note = (document or response.json())["errors"][0]["detail"][:70]
            rows.append(
                Row(
                    name,
                    api_ms,
                    raw_ms,
                    response.status_code,
                    len(document.get("data", [])),
                    note,
                )
            )
        rows.extend(cursor_rows(client, conn))
    return rows


def cursor_rows(client: httpx.Client, conn: psycopg.Connection[Any]) -> list[Row]:
    """Following ``links.next`` deep into the list: a page half a million records in."""
    import api

    if not (Path(api.__file__).parent / "cursors.py").exists():  # the code before cursors
        return []
    from api.cursors import Cursor

    rows = []
    depth = int(conn.execute("SELECT count(*) FROM order_copies WHERE mode = 'test'").fetchone()[0])
    depth //= 2
    created_at, copy_id = conn.execute(
        "SELECT created_at, id FROM order_copies WHERE mode = 'test' "
        "ORDER BY created_at DESC, id OFFSET %s LIMIT 1",
        [depth],
    ).fetchone()
    after = Cursor("-created_at", (created_at, copy_id)).encode()
    api_ms, response = median_ms(
        lambda: client.get("/api/order_copies", params={"page[after]": after})
    )
    sql = (
        "SELECT * FROM order_copies WHERE mode = 'test' AND created_at <= %(at)s "
        "AND (created_at < %(at)s OR id > %(id)s) ORDER BY created_at DESC, id LIMIT 10"
    )
    raw_ms, _ = median_ms(lambda: conn.execute(sql, {"at": created_at, "id": copy_id}).fetchall())
    document = response.json()
    rows.append(
        Row(
            f"page[after] {depth:,} records in (links.next)",
            api_ms,
            raw_ms,
            response.status_code,
            len(document.get("data", [])),
            "SQL: the same keyset by hand",
        )
    )
    return rows


METRICS_SQL = (
    "SELECT mode, status, count(*) FROM order_copies GROUP BY mode, status",
    "SELECT mode, kind, count(*) FROM order_copy_events "
    "WHERE kind IN ('created', 'completed', 'failed') GROUP BY kind, mode",
    "SELECT mode, count(*), sum(extract(epoch FROM completed_at - started_at)) "
    "FROM order_copies WHERE completed_at IS NOT NULL AND started_at IS NOT NULL GROUP BY mode",
    "SELECT created_at FROM order_copies WHERE mode = 'test' AND status = 'pending' "
    "ORDER BY created_at LIMIT 1",
    "SELECT mode, count(*) FROM order_subscriptions "
    "WHERE status IN ('active', 'running') AND next_run_at <= now() GROUP BY mode",
    "SELECT mode, min(created_at) FROM webhook_events WHERE status = 'pending' GROUP BY mode",
)


#: What a scrape reads since metric_counts: no table of copies or events is counted.
SCRAPE_SQL = (
    "SELECT mode, name, label, sum(value) FROM metric_counts GROUP BY mode, name, label",
    METRICS_SQL[3],
    METRICS_SQL[4],
    METRICS_SQL[5],
)


def table_names(conn: psycopg.Connection[Any]) -> set[str]:
    found = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    return {str(name) for (name,) in found.fetchall()}


def build_world(bench: BenchEnvironment, size: Size) -> tuple[World, str]:
    from sqlalchemy import select

    from api.auth import issue_key
    from bench.storm import make_subscriptions
    from bench.world import make_sources
    from models import Mode, OrderSubscription, db, utcnow

    sessions = db.sessions()
    sources = make_sources(sessions, size.sources, 1, shared_skus=True)
    targets = make_sources(sessions, size.sources, 1, shared_skus=True)
    make_subscriptions(sessions, sources, size.subscriptions, utcnow() + timedelta(days=30))
    with sessions.begin() as session:
        subscriptions = list(session.scalars(select(OrderSubscription.id)))
        _, token = issue_key(session, name="bench-large", mode=Mode.TEST)
    newest = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    return World(sources, targets, subscriptions, newest), token


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.large", description=__doc__)
    parser.add_argument(
        "--smoke", action="store_true", help="a few thousand copies: proves the bench runs"
    )
    args = parser.parse_args(argv)
    data_dir = Path(tempfile.mkdtemp(prefix="ordercopy-bench-large-"))
    try:
        failed = run(args.smoke, data_dir)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    if failed:
        raise SystemExit(f"requests failed: {failed}")


def run(smoke: bool, data_dir: Path) -> list[str]:
    bench = configure(data_dir)

    from bench.world import throwaway_database

    sizes = SMOKE if smoke else FULL
    report: list[tuple[Size, list[Row], float]] = []
    with throwaway_database(bench):
        world, token = build_world(bench, sizes[0])
        seeded = 0
        last_n = sizes[-1].copies
        for index, size in enumerate(sizes):
            began = time.monotonic()
            seed(bench, world, seeded + 1, size.copies, last_n)
            seeded = size.copies
            if index == 0:
                seed_events(bench, size.events)
            vacuum(bench)
            seeding = time.monotonic() - began
            port = free_port()
            server = serve(port)
            try:
                full = index == len(sizes) - 1
                rows = measure_api(bench, world, size, f"http://127.0.0.1:{port}", token, full)
            finally:
                server.terminate()
                server.wait(10)
            report.append((size, rows, seeding))
            print_report([report[-1]], header=index == 0)
    out = data_dir if smoke else RESULTS
    out.mkdir(exist_ok=True)
    (out / "large.json").write_text(
        json.dumps(
            [
                {"copies": s.copies, "events": s.events, "rows": [r.__dict__ for r in rows]}
                for s, rows, _ in report
            ],
            indent=2,
        )
    )
    # A refused deep page number is the documented limit, not a failure.
    return [
        r.name
        for _, rows, _ in report
        for r in rows
        if r.status != 200 and not (r.status == 400 and "page[number]" in r.name)
    ]


def print_report(report: list[tuple[Size, list[Row], float]], *, header: bool) -> None:
    if header:
        print(
            "large-table bench: one client, one uvicorn process, median of "
            f"{REPEAT} (ms); SQL: the hand-written query on the same database"
        )
        print(f"{'query':52}{'API ms':>9}{'SQL ms':>9}{'API/SQL':>9}{'status':>8}{'rows':>6}  note")
    for size, rows, seeding in report:
        print(f"-- {size.copies:,} copies, {size.events:,} events (seeded in {seeding:.0f} s)")
        for r in rows:
            api = f"{r.api_ms:9.1f}" if r.api_ms is not None else f"{'':9}"
            sql = f"{r.sql_ms:9.1f}" if r.sql_ms is not None else f"{'':9}"
            ratio = f"{r.api_ms / r.sql_ms:8.1f}x" if r.api_ms and r.sql_ms else f"{'':9}"
            print(f"{r.name:52}{api}{sql}{ratio}{r.status:>8}{r.records:>6}  {r.note}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
