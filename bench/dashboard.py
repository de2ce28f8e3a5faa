"""The ops dashboard's pages timed at scale: ``python -m bench.dashboard`` (200,000 copies),
``--smoke`` (2,000: proves the bench runs; ``make test`` runs it). Nothing is asserted.

A throwaway PostgreSQL database (like every bench) is seeded by SQL: source orders from
the test factories, then copies in one ``INSERT … SELECT generate_series`` (70% completed,
15% failed with varied errors, 10% pending, 5% aborted, created over 7 days; a tenth in
live mode) and two history events each. Each page is then asked ``--runs`` times through
the app in this process (``TestClient``, a Bearer key: the app's own time, rendering
included, without a network), after one warm-up; the median and the slowest are printed
beside the 200 ms budget.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

SQL_COPIES = """
INSERT INTO order_copies (
    id, mode, created_at, updated_at, status, source_order_id, place_target_order,
    cancel_source_order, reuse_wallet, skip_errors, errors_log, errors_count, attempt, claims,
    retries, dispatches, started_at, completed_at, failed_at, reference, reference_origin,
    metadata, apply_promotions, ignore_invalid_coupon)
SELECT substr(md5('copy' || i), 1, 10), mode, t, t, s, sources[1 + i % cardinality(sources)],
    false, false, true, false,
    CASE WHEN s <> 'failed' THEN '{}'::jsonb
         WHEN i % 3 = 0 THEN jsonb_build_object('line_items', jsonb_build_array(
             'SKU SKU-' || (i % 97) || ' is out of stock ('
             || (i % 5 + 1) || ' requested, 0 left)'))
         WHEN i % 3 = 1 THEN jsonb_build_object('payment', jsonb_build_array(
             'payment declined: card declined'))
         ELSE jsonb_build_object('payment_source', jsonb_build_array(
             'wallet entry ' || substr(md5('w' || i), 1, 10) || ' expired on 2026-10-31')) END,
    CASE WHEN s = 'failed' THEN 1 ELSE 0 END, 1, 1, 0, 0,
    CASE WHEN s IN ('completed', 'failed') THEN t END,
    CASE WHEN s = 'completed' THEN t + interval '2 seconds' END,
    CASE WHEN s = 'failed' THEN t + interval '2 seconds' END,
    'ref-' || (i % 5000), 'bench', '{}'::jsonb, false, false
FROM (
    SELECT i, now() - (i * interval '7 days' / :n) AS t,
        CASE WHEN i % 10 = 0 THEN 'live' ELSE 'test' END AS mode,
        CASE WHEN i % 20 < 14 THEN 'completed' WHEN i % 20 < 17 THEN 'failed'
             WHEN i % 20 < 19 THEN 'pending' ELSE 'aborted' END AS s,
        CAST(:sources AS text[]) AS sources
    FROM generate_series(1, :n) AS i
) AS g
"""
SQL_EVENTS = """
INSERT INTO order_copy_events (order_copy_id, mode, created_at, updated_at, attempt, kind, data)
SELECT id, mode, created_at, created_at, 0, 'created', '{}'::jsonb FROM order_copies
UNION ALL
SELECT id, mode, updated_at, updated_at, 1, status, '{}'::jsonb FROM order_copies
WHERE status IN ('completed', 'failed')
"""
BUDGET_MS = 200.0


def seed(copies: int, sources: int) -> str:
    """Source orders, copies and events; a test-mode key's token."""
    from sqlalchemy import text

    from api.auth import issue_key
    from bench.world import make_sources
    from models import Mode, db

    sessions = db.sessions()
    source_ids = make_sources(sessions, sources, 2, shared_skus=True)
    with sessions.begin() as session:
        session.execute(text(SQL_COPIES), {"n": copies, "sources": source_ids})
        session.execute(text(SQL_EVENTS))
        _, token = issue_key(session, name="bench", mode=Mode.TEST)
    with db.engine().connect() as connection:
        # As autovacuum leaves a database in use: statistics, and the visibility map that
        # lets counts read an index alone.
        connection.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE"))
    return token


def pages(token: str) -> dict[str, str]:
    """The pages to time, by name: each kind of page, and the copies list's filters."""
    from fastapi.testclient import TestClient

    from api.app import app

    client = TestClient(app)
    headers = {"Authorization": f"Bearer {token}"}
    listing = client.get("/dashboard/copies?status=failed", headers=headers).text
    copy_id = listing.split('class="copy-link">', 1)[1].split("<", 1)[0]
    order_id = listing.split('href="/dashboard/orders/', 1)[1].split('"', 1)[0]
    group = {"key": "line_items", "message": "SKU … is out of stock (… requested, … left)"}
    return {
        "overview": "/dashboard",
        "copies": "/dashboard/copies",
        "copies, status": "/dashboard/copies?status=failed",
        "copies, error key": "/dashboard/copies?error_key=payment",
        "copies, error text": "/dashboard/copies?error_text=declined",
        "copies, reference": "/dashboard/copies?reference=ref-42",
        "copies, customer email": "/dashboard/copies?customer_email=nobody%40example.com",
        "copies, source order number": "/dashboard/copies?source_order_number=1",
        "copies, created between": (
            "/dashboard/copies?created_from=2020-01-01&created_to=2020-01-02"
        ),
        "copies, page 40, by failure": "/dashboard/copies?sort=-failed_at&page=40",
        "copy detail": f"/dashboard/copies/{copy_id}",
        "order": f"/dashboard/orders/{order_id}",
        "failures": "/dashboard/failures",
        "failure group": f"/dashboard/failures/group?{urlencode(group)}&action=retry",
        "subscriptions": "/dashboard/subscriptions",
    }


def time_pages(token: str, runs: int) -> dict[str, list[float]]:
    from fastapi.testclient import TestClient

    from api.app import app

    client = TestClient(app)
    headers = {"Authorization": f"Bearer {token}"}
    timings: dict[str, list[float]] = {}
    for name, path in pages(token).items():
        answer = client.get(path, headers=headers)
        if answer.status_code != 200:
            raise SystemExit(f"{name}: {path} answered {answer.status_code}")
        timings[name] = []
        for _ in range(runs):
            began = time.perf_counter()
            client.get(path, headers=headers)
            timings[name].append((time.perf_counter() - began) * 1000)
    return timings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.dashboard", description=__doc__)
    parser.add_argument("--copies", type=int, help="copies to seed (200,000; smoke 2,000)")
    parser.add_argument("--runs", type=int, help="timed requests per page (20; smoke 3)")
    parser.add_argument("--smoke", action="store_true", help="a small run: proves it runs")
    args = parser.parse_args(argv)
    copies = args.copies or (2_000 if args.smoke else 200_000)
    runs = args.runs or (3 if args.smoke else 20)
    data_dir = Path(tempfile.mkdtemp(prefix="ordercopy-bench-dashboard-"))
    try:
        from bench.environment import configure

        bench = configure(data_dir)
        from bench.world import throwaway_database

        with throwaway_database(bench):
            began = time.perf_counter()
            token = seed(copies, 20 if args.smoke else 500)
            print(f"seeded {copies:,} copies in {time.perf_counter() - began:.1f} s")
            timings = time_pages(token, runs)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    print(
        f"dashboard pages at {copies:,} copies, {runs} requests each (ms; budget {BUDGET_MS:.0f})"
    )
    print(f"{'page':<32} {'median':>8} {'slowest':>8}")
    for name, values in timings.items():
        median, slowest = statistics.median(values), max(values)
        flag = "  over budget" if median > BUDGET_MS else ""
        print(f"{name:<32} {median:>8.1f} {slowest:>8.1f}{flag}")


if __name__ == "__main__":
    main()
