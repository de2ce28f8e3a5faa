"""``python -m bench.webhooks [--quick] [--events N]``: webhook delivery throughput against
a no-op Celery drain on the same worker, and the copy drain with webhooks subscribed
against the same drain without, all in one run (issue 15).

Like ``bench.run``, it makes its own database and Redis key prefix and removes them; the
receiver is a loopback HTTP server in this process (``bench.receiver``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING

from bench import environment

if TYPE_CHECKING:  # the project's modules are imported only once configure() ran
    from bench.baselines import Rate
    from bench.deliveries import DeliveryResult, SubscribedDrains
    from config import Settings

RESULTS = Path(__file__).resolve().parent / "results" / "webhooks.json"
WEBHOOKS = 10  # listening to order_copies.create, so two per webhook do not serialize all
SOURCES = 100
LINES = 10
#: ``--smoke``: events and copies, source orders, memory sampling (drains of a fraction of
#: a second).
SMOKE = 20
SMOKE_SOURCES = 10
SMOKE_RSS_INTERVAL = 0.005


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.webhooks", description=__doc__)
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="500 events and copies, not 5,000")
    size.add_argument(
        "--smoke",
        action="store_true",
        help=f"{SMOKE} events and copies, two copy drains (without, with): "
        "proves the bench runs (make test runs it)",
    )
    parser.add_argument("--events", type=int, help="webhook events to deliver (and no-op tasks)")
    parser.add_argument("--copies", type=int, help="copies in each of the four copy drains")
    parser.add_argument("--webhooks", type=int, default=WEBHOOKS, help="receiving the events")
    parser.add_argument(
        "--out",
        type=Path,
        help=f"where to write the JSON ({RESULTS}; --smoke: the run's temporary directory)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the worker logs")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    options = parse(argv)
    size = SMOKE if options.smoke else 500 if options.quick else 5000
    events, copies = options.events or size, options.copies or size
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    data_dir = Path(tempfile.mkdtemp(prefix="ordercopy-bench-webhooks-"))
    # A smoke run's figures measure nothing: they never replace a real run's.
    out = options.out or (data_dir / "webhooks.json" if options.smoke else RESULTS)
    bench = environment.configure(data_dir)
    # Loopback callback URLs; every process started from here inherits it.
    os.environ["ORDERCOPY_WEBHOOKS_ALLOW_PRIVATE"] = "true"

    from bench import broker, deliveries, world
    from bench.receiver import Receiver
    from config import get_settings
    from config.logging import configure_logging
    from models import db

    settings = get_settings()
    configure_logging(settings)
    bench_log = (data_dir / "bench.log").open("a")
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(bench_log)

    ok = False
    load_before = os.getloadavg()[0]
    began = time.monotonic()
    try:
        with world.throwaway_database(bench), Receiver() as receiver:
            sessions = db.sessions()
            deliveries.say(f"database {bench.database_name}, broker prefix {bench.key_prefix!r}")
            sources = world.make_sources(
                sessions, SMOKE_SOURCES if options.smoke else SOURCES, LINES
            )
            world.analyze(bench)

            deliveries.say(f"no-op drain of {events} messages on the webhooks worker")
            noop = deliveries.noop_drain(bench, events)
            deliveries.say(f"  {noop.per_second:.0f} tasks/s")

            deliveries.say(f"delivery of {events} events to {options.webhooks} webhooks")
            delivered = deliveries.delivery_drain(
                bench, sessions, sources, events, options.webhooks, receiver.url
            )
            delivered = replace(
                delivered,
                received=receiver.requests,
                distinct_received=len(receiver.event_ids),
            )
            deliveries.say(f"  {delivered.rate:.0f} events/s {delivered.statuses}")
            deliveries.remove_webhooks(sessions)

            drains = deliveries.subscribed_drains(
                bench,
                sessions,
                sources,
                copies,
                receiver.url,
                order=deliveries.SMOKE_DRAIN_ORDER if options.smoke else deliveries.DRAIN_ORDER,
                rss_interval=SMOKE_RSS_INTERVAL if options.smoke else 0.2,
            )
        broker.flush(bench.key_prefix)
        seconds = time.monotonic() - began
        load = (load_before, os.getloadavg()[0])
        title = (
            f"webhooks bench ({events:,} events, {copies:,} copies, {seconds:.0f} s, "
            f"{os.cpu_count()} CPUs, load average {load[0]:.1f} -> {load[1]:.1f}): "
            "every ratio compares figures from this run"
        )
        rows = table(noop, delivered, drains, settings)
        print(render(rows, title))
        out.parent.mkdir(exist_ok=True)
        out.write_text(
            json.dumps(
                {
                    "table": [
                        dict(zip(("measure", "value", "ratio", "target"), r, strict=True))
                        for r in rows
                    ],
                    "noop": {**asdict(noop), "per_second": noop.per_second},
                    "delivery": {**asdict(delivered), "rate": delivered.rate},
                    "copy_drains": {
                        "order": [{"with_webhooks": w, "rate": r} for w, r in drains.in_order()],
                        "without": {**asdict(drains.without), "rate": drains.without.rate},
                        "with_webhooks": {
                            **asdict(drains.with_webhooks),
                            "rate": drains.with_webhooks.rate,
                        },
                        "events_by_topic": drains.events_by_topic,
                        "ratio": drains.ratio,
                    },
                    "meta": {
                        "run_id": bench.run_id,
                        "events": events,
                        "copies": copies,
                        "webhooks": options.webhooks,
                        "batch_size": settings.webhooks_batch_size,
                        "concurrency": settings.webhooks_concurrency,
                        "cpus": os.cpu_count(),
                        "load_average_1min": {"before": load[0], "after": load[1]},
                        "seconds": seconds,
                    },
                },
                indent=2,
                default=str,
            )
        )
        kept = (
            " (the run's temporary directory: --keep keeps it)"
            if options.out is None and options.smoke
            else ""
        )
        print(f"\nwritten to {out}{kept}")
        failed = problems(delivered, drains)
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


def problems(delivered: DeliveryResult, drains: SubscribedDrains) -> list[str]:
    """What went wrong in a run that finished: an event not delivered, or delivered to the
    receiver other than once, or a drained copy that did not complete. Rates of failures
    measure nothing, and a bench that stops working must not pass unseen."""
    found = []
    if delivered.statuses != {"delivered": delivered.events}:
        found.append(f"{delivered.events} events, {delivered.statuses}: not all delivered")
    if delivered.distinct_received != delivered.events:
        found.append(
            f"the receiver saw {delivered.distinct_received} distinct events of {delivered.events}"
        )
    for arm in (drains.without, drains.with_webhooks):
        if arm.statuses != {"completed": arm.copies}:
            found.append(f"copy drains: {arm.copies} copies, {arm.statuses}: not all completed")
    return found


Row = tuple[str, str, str, str]


def table(
    noop: Rate, delivered: DeliveryResult, drains: SubscribedDrains, settings: Settings
) -> list[Row]:
    without, with_webhooks = drains.without, drains.with_webhooks
    each = without.drains[0].copies
    runs = len(without.drains)
    chained = delivered.tasks_run - delivered.sent_by_bench
    during = {t: n for t, n in sorted(drains.events_by_topic.items()) if not t.endswith("create")}
    return [
        (
            "no-op Celery task drain (Procfile webhooks worker: threads -c 2)",
            f"{noop.per_second:,.0f} tasks/s",
            f"{noop.cpu_ms:.2f} ms CPU/task",
            "",
        ),
        (
            f"webhook delivery: {delivered.events:,} events, {delivered.webhooks} webhooks,"
            " loopback 204",
            f"{delivered.rate:,.0f} events/s",
            f"{delivered.rate / noop.per_second:.2f} x no-op; {delivered.cpu_ms:.2f} ms CPU/event",
            "",
        ),
        (
            f"  deliver tasks: {delivered.tasks_run} run, {chained} sent by the task itself"
            f" (batch {settings.webhooks_batch_size}, 2 per webhook)",
            f"{delivered.events / max(delivered.tasks_run, 1):.1f} events/task",
            f"{delivered.sent_by_bench} sent by the bench when idle",
            "",
        ),
        (
            "  receiver: requests, distinct events; attempts recorded",
            f"{delivered.received:,}, {delivered.distinct_received:,}",
            f"{delivered.attempts:,} attempts; {delivered.statuses}",
            "",
        ),
        (
            f"copy drain: {runs} x {each:,} copies, no webhook",
            f"{without.rate:,.0f} copies/s",
            f"{without.cpu_ms:.1f} ms CPU/copy",
            "",
        ),
        (
            f"copy drain: {runs} x {each:,} copies, a webhook on each of {drains.topics} topics",
            f"{with_webhooks.rate:,.0f} copies/s",
            f"{drains.ratio:.2f} x without; {with_webhooks.cpu_ms:.1f} ms CPU/copy"
            f" ({with_webhooks.cpu_ms / without.cpu_ms:.2f} x)",
            ">= 0.85",
        ),
        (
            "  each drain in the order run ("
            + "".join("B" if subscribed else "A" for subscribed in drains.order)
            + ")",
            ", ".join(f"{'with' if w else 'without'} {r:,.0f}" for w, r in drains.in_order()),
            "copies/s",
            "",
        ),
        (
            "  events written during those drains (not delivered)",
            f"{sum(during.values()):,}",
            ", ".join(f"{t.split('.')[-1]} {n:,}" for t, n in during.items()),
            "",
        ),
    ]


def render(rows: list[Row], title: str) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = [title, ""]
    for row in rows:
        lines.append(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
