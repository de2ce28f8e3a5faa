"""Run the chaos suite: ``python -m tests.chaos.run --copies N --seed S --duration SECONDS``.

It starts its own PostgreSQL cluster and Redis, migrates, builds a seeded world
(tests/chaos/world.py), issues an API key and starts the workers (prefork), a beat and the
web (uvicorn), every process with each doorbell published twice (the ``publish_twice``
switch). Then, for ``--duration`` seconds, clients create copies over HTTP, ops retry
failed ones over HTTP and in bulk, and a second client double-clicks ``_place``, edits
orders and line items, and captures and refunds placed orders while the copies run
(tests/chaos/traffic.py), while faults hit at seeded moments (tests/chaos/faults.py). Then
the faults stop: the system must finish every copy on its own, with no
``--quiesce-timeout`` seconds without a copy finishing (within ``--settle-limit`` in all:
on a loaded machine a backlog takes long, only a stall is a failure), then deliver every
webhook event (one test-mode webhook listens to each ``order_copies`` topic, all posting
to a receiver in the runner that answers 500 at random); some shops pay through an
external gateway whose endpoint (examples/external_gateway) is a process of the stack,
SIGKILLed and restarted at random, and its ledger must agree with our rows
(tests/chaos/external.py); no payment may be left asked for or being voided once the
sweeper has had its turn, and every promise of tests/invariants.py,
tests/chaos/promises.py, tests/money.py, tests/chaos/webhooks.py and
tests/chaos/external.py must hold. It prints a table, and exits 1 if either fails.
Everything it started is stopped and removed at the end (``--keep`` keeps the logs and the
stopped database; a run that fails, or settles slowly, keeps its logs).
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import TypeVar

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from api.auth import issue_key
from config import get_settings
from config.logging import configure_logging
from copying import circuits
from copying.orders import external_gateways
from copying.orders.gateways import TestGateway
from migrations import upgrade
from models import CircuitState, ExternalGateway, Mode, OrderCopy, WebhookEvent, db, utcnow
from tests.chaos import external, faults, probes, webhooks
from tests.chaos import world as worlds
from tests.chaos.promises import check_api
from tests.chaos.report import Results, render
from tests.chaos.stack import Stack
from tests.chaos.traffic import ORIGIN, Traffic
from tests.chaos.web import ApiClient
from tests.invariants import check, install_audit, source_cancellations
from tests.money import check as check_money
from tests.money import settle as settle_money
from tests.services import free_port

T = TypeVar("T")

LEASE_SECONDS = 5
SETTINGS = {
    "LEASE_SECONDS": str(LEASE_SECONDS),
    "SWEEP_INTERVAL_SECONDS": "1",
    # A pending copy not claimed is published again after 5 s, then after twice as long
    # each time up to 40 s (the sweeper's backoff: before it, with workers behind and every
    # doorbell twice, a full run queued 8,800 messages for 1,650 pending copies).
    "REDISPATCH_AFTER_SECONDS": "5",
    "REDISPATCH_MAX_SECONDS": "40",
    "RENEWALS_INTERVAL_SECONDS": "1",
    "MAX_CLAIMS": "8",
    # A payment a killed process left asked for or being voided is voided by the sweeper
    # after this long (the shortest allowed), so that the run can settle on it.
    "ABANDONED_PAYMENT_AFTER_SECONDS": "10",
    # The receiver is on loopback; its random 500s are retried after 0.5 s, 1 s, 2 s, ...
    "WEBHOOKS_ALLOW_PRIVATE": "true",
    "WEBHOOKS_BACKOFF_SECONDS": "0.5",
    "WEBHOOKS_TIMEOUT_SECONDS": "2",
    "WEBHOOKS_POLL_SECONDS": "0.5",
}
#: How long, once the copies settled, payments asked for or being voided may take to settle.
MONEY_SETTLE_SECONDS = 60.0
#: Events counted in the processes' JSON logs.
LOGGED = {
    "copy_lease_lost": "runs fenced off after losing their lease (copy_lease_lost)",
    "copy_transient_error": "transient errors parked for a re-claim (copy_transient_error)",
    "publish_failed": "publishes that failed, left to the sweeper (publish_failed)",
    "api_database_unavailable": "API requests answered 503: the database unreachable",
    "api_crash": "API requests answered 500 (api_crash)",
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos.run", description=__doc__)
    parser.add_argument("--copies", type=int, default=200, help="copies to create (default 200)")
    parser.add_argument("--seed", type=int, default=None, help="replay a run (default: random)")
    parser.add_argument("--duration", type=float, default=45, help="seconds of faults (45)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (2)")
    parser.add_argument("--concurrency", type=int, default=2, help="pool of each worker (2)")
    parser.add_argument("--webs", type=int, default=2, help="web (uvicorn) processes (2)")
    parser.add_argument("--subscriptions", type=int, default=None, help="default: copies/100")
    parser.add_argument(
        "--quiesce-timeout",
        type=float,
        default=90,
        help="settling fails after this long without a copy finishing (90 s)",
    )
    parser.add_argument(
        "--settle-limit", type=float, default=900, help="bound on settling in all (900 s)"
    )
    parser.add_argument("--report", type=Path, default=None, help="also write the table here")
    parser.add_argument("--keep", action="store_true", help="keep logs and the stopped database")
    args = parser.parse_args(argv)
    if args.duration < 20:
        parser.error("--duration must be at least 20 seconds")
    if args.copies < len(worlds.SOURCE_KINDS):  # every source order is copied at least once
        parser.error(f"--copies must be at least {len(worlds.SOURCE_KINDS)}")
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(10**9)
    if args.subscriptions is None:
        args.subscriptions = max(4, args.copies // 100)
    return args


def say(message: str) -> None:
    print(f"chaos: {message}", file=sys.stderr, flush=True)


def _terminate(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # so that the finally clauses stop what we started


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    workdir = Path(tempfile.mkdtemp(prefix="ordercopy-chaos-"))
    stack = Stack(
        workdir,
        workers=args.workers,
        concurrency=args.concurrency,
        webs=args.webs,
        settings=SETTINGS,
    )
    passed = slow = False
    try:
        say(f"seed {args.seed}; working in {workdir}")
        stack.start_services()
        results = _run(args, stack)
        passed = results.passed
        slow = (results.quiesced_after or 0) > args.quiesce_timeout / 4
        table = render(results)
        print(table, flush=True)
        if args.report:
            args.report.write_text(table)
        return 0 if passed else 1
    finally:
        stack.close(keep_database=args.keep)
        if args.keep or not passed or slow:  # a slow settling is worth a look too
            kept = f", database in {stack.pg.root}" if args.keep else ""
            say(f"logs kept in {stack.logs}{kept}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def _point_at(stack: Stack) -> None:
    """Settings are read once per process: point this one at the run's own services."""
    for key in [k for k in os.environ if k.startswith("ORDERCOPY_")]:
        del os.environ[key]
    for key, value in stack.settings.items():
        os.environ[f"ORDERCOPY_{key}"] = value
    get_settings.cache_clear()
    db.dispose()
    configure_logging(get_settings(), force=True)
    runner_log = logging.FileHandler(stack.logs / "runner.log")
    runner_log.setFormatter(logging.getLogger().handlers[0].formatter)
    logging.getLogger().handlers[:] = [runner_log]


def _reading(sessions: sessionmaker[Session], read: Callable[[Session], T]) -> Callable[[], T]:
    def probe() -> T:
        with sessions.begin() as session:
            return read(session)

    return probe


def _retrying(read: Callable[[], T], timeout: float = 60) -> T:
    """``read()``, retried while the database (just restarted) refuses connections."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return read()
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def creation_times(count: int, duration: float) -> list[float]:
    """When to create each copy: evenly until the finale, then a last burst while the
    finale has the workers frozen, whose doorbells Redis then loses."""
    burst = max(5, count // 20)
    paced = count - burst
    return [n * (duration - 3) / paced for n in range(paced)] + [duration - 2.5] * burst


def _run(args: argparse.Namespace, stack: Stack) -> Results:
    with webhooks.running(random.Random(args.seed + 2)) as receiver:
        return _run_with(args, stack, receiver)


def _run_with(args: argparse.Namespace, stack: Stack, receiver: webhooks.FlakyReceiver) -> Results:
    _point_at(stack)
    from worker.external_gateways import ExternalGateway as ExternalGatewayClient
    from worker.publisher import publish  # its Celery app reads the settings on import

    upgrade(stack.settings["DATABASE_URL"])
    with db.engine().begin() as connection:
        install_audit(connection)
    sessions = db.sessions()
    rng = random.Random(args.seed)
    gateway_id = _external_gateway(stack, sessions)
    say(f"building the world for {args.copies} copies")
    world = worlds.build(
        sessions,
        rng,
        {
            "test": TestGateway(db.engine),
            gateway_id: ExternalGatewayClient(gateway_id, db.sessions),
        },
        copies=args.copies,
        subscriptions=args.subscriptions,
        renewals_within=0.6 * args.duration,
        external_gateway=gateway_id,
    )
    with sessions.begin() as session:
        token = issue_key(session, name="chaos", mode=Mode.TEST)[1]
        webhooks.subscribe(session, receiver.url)
    schedule = faults.schedule(rng, args.duration, LEASE_SECONDS, endpoint=True)
    injector = faults.Injector(stack, schedule, _reading(sessions, probes.ports_in_transaction))
    api = ApiClient([web.url for web in stack.webs], token)
    traffic = Traffic(sessions, publish, api, random.Random(args.seed + 1), injector.redis_down)

    say(f"starting {args.workers} workers, a beat and {args.webs} web processes")
    stack.start_processes()
    stack.wait_ready()
    circuit = CircuitWatch(gateway_id)
    progress = probes.Progress(stack.logs / "progress.log", _sampler(stack, sessions, circuit))
    progress.thread.start()
    say(f"{args.duration:g} s of faults, {len(schedule)} scheduled")
    crashed = _drive(args, world, injector, traffic)
    stack.heal()
    injector.note("faults over, stack healed")
    if _retrying(lambda: _reset_circuit(sessions, gateway_id)):
        circuit.resets += 1
        injector.note("the external gateway's circuit was open: reset (_reset_circuit)")
    (stack.logs / "faults.log").write_text(
        "".join(f"{at:7.2f} s  {what}\n" for at, what in injector.timeline)
    )
    for at, what in injector.timeline:
        if "skipped" in what:
            say(f"{at:.1f} s: {what}")
    unsettled = _reading(sessions, probes.unsettled)
    stranded = _retrying(unsettled)
    say(f"faults over; {stranded} copies unfinished: waiting for the system to settle")
    quiesced_after = _settle(stack, unsettled, args.quiesce_timeout, args.settle_limit)
    if quiesced_after is not None:
        say(f"copies settled in {quiesced_after:.1f} s: waiting for the webhook events")
        delivered_after = _settle(
            stack,
            _reading(sessions, webhooks.pending),
            args.quiesce_timeout,
            args.settle_limit - quiesced_after,
        )
        quiesced_after = None if delivered_after is None else quiesced_after + delivered_after
    money_left = _settle_money(sessions)
    progress.stop.set()
    say(
        f"settled in {quiesced_after:.1f} s"
        if quiesced_after is not None
        else "not settled: stalled, or over the limit"
    )
    results = _results(args, stack, sessions, world, injector, traffic, receiver, circuit)
    results.observed = {"copies unfinished when the faults stopped": stranded, **results.observed}
    results.quiesced_after = quiesced_after
    results.problems = [*crashed, *injector.errors, *traffic.problems, *money_left]
    api.close()
    return results


def _settle_money(sessions: sessionmaker[Session]) -> list[str]:
    """Wait for the payments still asked for or being voided (the sweeper voids those a
    killed process left); what is left after ``MONEY_SETTLE_SECONDS``, as problems."""
    try:
        return settle_money(sessions, timeout=MONEY_SETTLE_SECONDS, interval=0.5)
    except Exception as error:  # the database just restarted: the invariants will say more
        return [f"settling the payments failed: {error!r}"]


class CircuitWatch:
    """The external gateway's circuit, as the progress sampler saw it every 2 s."""

    def __init__(self, gateway_id: str) -> None:
        self.gateway_id = gateway_id
        self.most_failures = 0  # the most failed calls in a row seen
        self.resets = 0  # reset by the runner once the faults stopped

    def sample(self, session: Session) -> str:
        row = session.get(ExternalGateway, self.gateway_id)
        if row is None:
            return "circuit=?"
        self.most_failures = max(self.most_failures, row.circuit_failure_count)
        return f"circuit={row.circuit_state}/{row.circuit_failure_count}"


def _external_gateway(stack: Stack, sessions: sessionmaker[Session]) -> str:
    """The external gateway the world's ``external`` shops pay through, written in the
    database as the world is (test mode, loopback allowed by WEBHOOKS_ALLOW_PRIVATE),
    and its endpoint started with the gateway's shared secret."""
    port = free_port()
    urls = {f"{kind}_url": f"http://127.0.0.1:{port}/{kind}" for kind in external.KINDS}
    with sessions.begin() as session:
        gateway = external_gateways.create(
            session, mode=Mode.TEST, name="chaos merchant endpoint", now=utcnow(), **urls
        )
        gateway_id, secret = gateway.id, gateway.shared_secret
    say(f"starting the external gateway's endpoint on port {port}")
    stack.start_endpoint(port, secret)
    return gateway_id


def _reset_circuit(sessions: sessionmaker[Session], gateway_id: str) -> bool:
    """Close the external gateway's circuit if an outage opened it (an operator's
    ``_reset_circuit``), so that what was left asked for can be voided; whether it was."""
    with sessions.begin() as session:
        row = session.get_one(ExternalGateway, gateway_id, with_for_update=True)
        if row.circuit_state != CircuitState.OPEN:
            return False
        circuits.close(row)
        return True


def _sampler(
    stack: Stack, sessions: sessionmaker[Session], circuit: CircuitWatch
) -> Callable[[], str]:
    def sample() -> str:
        with sessions.begin() as session:
            counts = probes.statuses(session)
            breaker = circuit.sample(session)
        queues = probes.queue_lengths(
            stack.redis.url,
            stack.settings["BROKER_KEY_PREFIX"],
            ("copies", "renewals", "maintenance", "webhooks"),
        )
        workers = " ".join(
            f"{w.name}={'stopped' if w.stopped else 'up' if w.alive else 'down'}"
            for w in stack.workers
        )
        done = " ".join(f"{status}={count}" for status, count in sorted(counts.items()))
        return f"{done} | {queues} | {workers} | {breaker}"

    return sample


def _drive(
    args: argparse.Namespace,
    world: worlds.World,
    injector: faults.Injector,
    traffic: Traffic,
) -> list[str]:
    """The fault window: faults, copies created, bulk retries and stray doorbells at once.
    Returns what went wrong in the runner's own threads."""
    stop = threading.Event()
    crashed: list[str] = []

    def record_crash(crash: threading.ExceptHookArgs) -> None:
        name = crash.thread.name if crash.thread else "?"
        crashed.append(f"thread {name} crashed: {crash.exc_type.__name__}: {crash.exc_value}")
        threading.__excepthook__(crash)

    threading.excepthook = record_crash
    times = creation_times(len(world.copies), args.duration)
    threads = [
        threading.Thread(target=injector.run, args=(stop,), name="faults"),
        threading.Thread(
            target=traffic.create_all, args=(world.copies, times, stop), name="clients"
        ),
        threading.Thread(target=traffic.retry_over_http, args=(stop,), name="ops-http"),
        threading.Thread(target=traffic.retry_failed, args=(stop,), name="ops-bulk"),
        threading.Thread(target=traffic.ring_stray, args=(stop,), name="stray"),
        threading.Thread(
            target=traffic.edit_orders, args=(stop, sorted(world.initial_stock)), name="editor"
        ),
    ]
    for thread in threads:
        thread.daemon = True
        thread.start()
    stop.wait(args.duration)
    stop.set()
    for thread in threads:
        thread.join()
    return crashed


def _settle(stack: Stack, unsettled: Callable[[], int], stall: float, limit: float) -> float | None:
    """Seconds until nothing is left to do (the supervisor still restarting what exits),
    or None if ``stall`` seconds pass with nothing finishing (a copy, or a webhook event
    delivered), or ``limit`` in all."""
    start = progress = time.monotonic()
    fewest: int | None = None
    while time.monotonic() - progress < stall and time.monotonic() - start < limit:
        stack.supervise()
        try:
            left = unsettled()
        except Exception as error:  # a connection from before a restart: try again
            say(f"settling check failed: {error!r}")
        else:
            if left == 0:
                return time.monotonic() - start
            if fewest is None or left < fewest:
                fewest, progress = left, time.monotonic()
        time.sleep(0.5)
    return None


def _results(
    args: argparse.Namespace,
    stack: Stack,
    sessions: sessionmaker[Session],
    world: worlds.World,
    injector: faults.Injector,
    traffic: Traffic,
    receiver: webhooks.FlakyReceiver,
    circuit: CircuitWatch,
) -> Results:
    assert stack.endpoint is not None
    ledger_path = Path(stack.endpoint.env["EXTERNAL_GATEWAY_LEDGER"])
    with sessions.begin() as session:
        copies = session.execute(
            select(
                OrderCopy.id,
                OrderCopy.status,
                OrderCopy.errors_log,
                OrderCopy.order_subscription_id,
                OrderCopy.reference,
                OrderCopy.created_at,
            )
        ).all()
        # The ids the clients were told about, and the renewals the ticks created.
        ids = list(dict.fromkeys([*traffic.created, *(c.id for c in copies)]))
        found = check(session, ids, world.initial_stock)
        found |= check_api(
            session,
            ORIGIN,
            traffic.answered,
            traffic.api.malformed,
            traffic.api.crashed,
            traffic.owned_writes,
            traffic.double_places,
        )
        found |= check_money(session, world.initial_stock)
        found |= webhooks.check_webhooks(session, list(receiver.received))
        found |= external.check(session, circuit.gateway_id, ledger_path)
        ours = external.read_ours(session, circuit.gateway_id)
        events = session.scalar(select(func.count()).select_from(WebhookEvent))
        cancelled = sum(source_cancellations(session, ids).values())
        claims, resumed = probes.runs(session)
        audited = probes.audited(session)
    logged = probes.logged(stack.logs, list(LOGGED))
    observed = {LOGGED[event]: count for event, count in logged.items()}
    observed |= {
        "creates whose answer was lost after the copy was committed (the resend got it back)": (
            sum(
                1
                for c in copies
                if c.reference in traffic.resent
                and c.created_at.timestamp() < traffic.resent[c.reference]
            )
        ),
        "runs (claims)": claims,
        "copies resumed by a later run (crash, lost lease or message, transient error)": (resumed),
        "transactions of stopped workers cut by PostgreSQL (idle in transaction)": (
            _postgres_log(stack).count("idle-in-transaction timeout")
        ),
        "sources cancelled by copies (their history)": cancelled,
        "order cancellations written (audit trigger)": audited["order_cancelled"],
        "payments voided (audit trigger: our records and the gateway's)": (
            audited["authorization_voided"] + audited["charge_voided"]
        ),
        "worker, beat or web exits on their own, restarted by the supervisor": len(
            stack.unexpected_exits
        ),
        "webhook events written (one webhook per topic)": events or 0,
        **receiver.counts(),
        **_endpoint_counts(stack, ledger_path, ours, circuit),
    }
    return Results(
        seed=args.seed,
        command=_replay_command(args),
        copies_asked=len(world.copies),
        statuses=Counter(str(c.status) for c in copies),
        renewals=sum(1 for c in copies if c.order_subscription_id),
        subscriptions=len(world.subscriptions),
        stack=(
            f"{args.workers} workers of {args.concurrency} prefork children, "
            f"{len(stack.beats)} beats, {len(stack.webs)} web processes (uvicorn), "
            f"PostgreSQL {stack.pg.version}, "
            f"Redis {_redis_version()} (no persistence)"
        ),
        settings=(
            f"lease {LEASE_SECONDS} s, sweep every {SETTINGS['SWEEP_INTERVAL_SECONDS']} s, "
            f"re-dispatch after {SETTINGS['REDISPATCH_AFTER_SECONDS']} s, doubling up to "
            f"{SETTINGS['REDISPATCH_MAX_SECONDS']} s, "
            f"max claims {SETTINGS['MAX_CLAIMS']}; PostgreSQL "
            "idle_in_transaction_session_timeout 3 s; every doorbell published twice "
            "(publish_twice); aborts over HTTP (PATCH _abort); a second client double-clicks"
            " _place, edits orders and captures and refunds placed ones over HTTP while"
            " copies run; abandoned payments voided after"
            f" {SETTINGS['ABANDONED_PAYMENT_AFTER_SECONDS']} s; webhooks on every"
            " topic, the receiver answering 500 to"
            f" {webhooks.FAILURE_RATE:.0%} at random, retried after"
            f" {SETTINGS['WEBHOOKS_BACKOFF_SECONDS']} s doubling, polled every"
            f" {SETTINGS['WEBHOOKS_POLL_SECONDS']} s"
        ),
        duration=args.duration,
        quiesce_bound=args.quiesce_timeout,
        settle_limit=args.settle_limit,
        quiesced_after=None,
        injected=injector.injected,
        skipped=injector.skipped,
        mid_run=injector.mid_run,
        failpoints=injector.failpoints,
        clients=traffic.counts,
        requests=traffic.api.requests,
        observed=observed,
        causes=Counter(key for c in copies for key in (c.errors_log or {})),
        found=found,
    )


def _endpoint_counts(
    stack: Stack, ledger_path: Path, ours: list[external.Ours], circuit: CircuitWatch
) -> dict[str, int]:
    """What the external gateway's endpoint did, and how its circuit fared."""
    ledger = external.read_ledger(ledger_path)
    holds = [e for e in ledger if e.kind == "authorize"]
    authorizations = Counter(o.status for o in ours if o.kind == "authorize")
    assert stack.endpoint is not None
    return {
        "external gateway: authorizations of ours on it, authorized": (
            authorizations["authorized"]
        ),
        "external gateway: authorizations of ours on it, voided": authorizations["voided"],
        "external gateway: holds the endpoint made (its ledger)": len(holds),
        "external gateway: holds the endpoint voided since": sum(e.voided for e in holds),
        "external gateway: captures and refunds the endpoint made": sum(
            1 for e in ledger if e.kind in ("capture", "refund")
        ),
        "external gateway: endpoint starts (first, restarts after SIGKILL, supervisor's)": (
            stack.endpoint.starts
        ),
        "external gateway: most failed calls in a row seen (sampled every 2 s; opens at 30)": (
            circuit.most_failures
        ),
        "external gateway: circuit found open once the faults stopped, reset": circuit.resets,
    }


def _postgres_log(stack: Stack) -> str:
    try:
        return stack.pg.log_path.read_text(errors="replace")
    except OSError:
        return ""


def _redis_version() -> str:
    program = shutil.which("redis-server") or "redis-server"
    out = subprocess.run([program, "--version"], capture_output=True, text=True, check=False)
    found = re.search(r"v=(\S+)", out.stdout)
    return found.group(1) if found else "?"


def _replay_command(args: argparse.Namespace) -> str:
    return shlex.join(
        [
            "python",
            "-m",
            "tests.chaos.run",
            "--copies",
            str(args.copies),
            "--duration",
            f"{args.duration:g}",
            "--seed",
            str(args.seed),
            "--workers",
            str(args.workers),
            "--concurrency",
            str(args.concurrency),
            "--webs",
            str(args.webs),
        ]
    )


if __name__ == "__main__":
    sys.exit(main())
