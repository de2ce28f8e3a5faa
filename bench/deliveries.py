"""Webhook delivery measured against a no-op drain on the same worker, and the copy drain
with and without webhooks subscribed (issue 15).

The webhooks worker is the Procfile's own ``webhooks:`` command, read from the Procfile
(only its node name is this run's), so the bench follows the Procfile when it changes.
"""

from __future__ import annotations

import secrets
import shlex
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import redis
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from bench import broker, drain, world
from bench.baselines import Rate
from bench.cpu import CpuMeter
from bench.environment import BenchEnvironment
from bench.noop import NOOP_TASK
from bench.workers import CELERY, REPO, WorkerProcess, wait_until, worker_environment
from copying.webhooks.topics import CREATE, TOPICS
from models import EventCallback, EventStatus, Mode, Webhook, WebhookEvent
from worker.app import WEBHOOKS_TASK, app

QUEUE = "webhooks"
PROCFILE = REPO / "Procfile"
POLL = 0.05  # seconds between looks at the broker and the events table


def say(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def procfile_command(process: str, node: str) -> list[str]:
    """The Procfile's command for ``process``, with the virtualenv's ``celery`` and the
    node name ``node@%h``."""
    for line in PROCFILE.read_text().splitlines():
        name, _, command = line.partition(":")
        if name.strip() == process:
            args = shlex.split(command)
            break
    else:
        raise RuntimeError(f"no {process!r} process in {PROCFILE}")
    if args[0] != "celery":
        raise RuntimeError(f"the Procfile's {process!r} process is not celery: {command}")
    args[0] = CELERY
    if "-n" in args:
        args[args.index("-n") + 1] = f"{node}@%h"
    else:
        args += ["-n", f"{node}@%h"]
    return args


class WebhooksWorker(WorkerProcess):
    """The Procfile's ``webhooks`` worker (``-Q webhooks --pool threads --concurrency 2``)."""

    def __init__(self, data_dir: Path, name: str, *, include: str | None = None) -> None:
        self.args = procfile_command("webhooks", name)
        if include:
            self.args += ["--include", include]
        data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = data_dir / f"{name}.log"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            self.args,
            cwd=REPO,
            env=worker_environment(),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def wait_first_taken(
    redis_client: redis.Redis, prefix: str, messages: int, worker: WorkerProcess
) -> float:
    """When the worker took its first of the ``messages`` preloaded on the queue."""
    waiting, _ = broker.queued(redis_client, prefix, (QUEUE,))
    if waiting != messages:
        raise RuntimeError(f"expected {messages} queued messages, found {waiting}")
    wait_until(
        lambda: broker.queued(redis_client, prefix, (QUEUE,))[0] < messages,
        60,
        "the worker to take its first message",
        worker,
        poll=0.01,
    )
    return time.monotonic()


def noop_drain(bench: BenchEnvironment, count: int) -> Rate:
    """``count`` no-op messages preloaded on the webhooks queue, drained by the webhooks
    worker; timed like ``bench.broker.time_drain`` (first taken → nothing queued or
    unacknowledged)."""
    broker.flush(bench.key_prefix)
    with app.producer_or_acquire() as producer:
        for n in range(count):
            app.send_task(NOOP_TASK, args=(f"noop{n:07d}",), queue=QUEUE, producer=producer)
    redis_client = broker.client()
    worker = WebhooksWorker(bench.data_dir, f"noop-threads-{bench.run_id}", include="bench.noop")
    try:
        meter = CpuMeter(worker.pid, bench.database_name)
        started = wait_first_taken(redis_client, bench.key_prefix, count, worker)
        meter.start()
        wait_until(
            lambda: broker.queued(redis_client, bench.key_prefix, (QUEUE,)) == (0, 0),
            max(120, count / 50),
            f"the worker to drain {count} no-op messages",
            worker,
            poll=0.01,
        )
        finished = time.monotonic()
        meter.stop()
    finally:
        worker.stop()
        redis_client.close()
    return Rate(count, finished - started, meter.seconds)


@dataclass(frozen=True)
class DeliveryResult:
    events: int
    webhooks: int
    copies: int
    seconds: float  # first deliver message taken → no event pending
    cpu_seconds: float  # the webhooks worker and its PostgreSQL backends
    statuses: dict[str, int]
    attempts: int  # event callbacks recorded
    received: int  # requests the receiver answered
    distinct_received: int  # distinct event ids among them
    sent_by_bench: int  # deliver messages the bench sent (the first, then when idle)
    tasks_run: int  # deliver tasks the worker ran (the rest were sent by the task itself)

    @property
    def rate(self) -> float:
        return self.events / self.seconds

    @property
    def cpu_ms(self) -> float:
        return self.cpu_seconds / self.events * 1000


def add_webhooks(
    sessions: sessionmaker[Session], topics: Sequence[str], callback_url: str
) -> list[str]:
    """A test-mode webhook per topic in ``topics``, each with a path of its own."""
    with sessions.begin() as session:
        hooks = [
            Webhook(
                mode=Mode.TEST,
                name=f"bench {n} {topic}",
                topic=topic,
                callback_url=f"{callback_url}/hooks/{n}",
                shared_secret=secrets.token_hex(32),
            )
            for n, topic in enumerate(topics)
        ]
        session.add_all(hooks)
        session.flush()
        return [hook.id for hook in hooks]


def remove_webhooks(sessions: sessionmaker[Session]) -> None:
    """Every webhook, with its events and callbacks (``ON DELETE CASCADE``)."""
    with sessions.begin() as session:
        session.execute(delete(Webhook))


def event_statuses(sessions: sessionmaker[Session]) -> dict[str, int]:
    with sessions.begin() as session:
        rows = session.execute(
            select(WebhookEvent.status, func.count()).group_by(WebhookEvent.status)
        ).all()
    return {str(status): count for status, count in rows}


def pending_events(sessions: sessionmaker[Session]) -> int:
    with sessions.begin() as session:
        return (
            session.scalar(select(func.count()).where(WebhookEvent.status == EventStatus.PENDING))
            or 0
        )


def deliveries_run(log_path: Path) -> int:
    """Deliver tasks the worker received, from its log (Celery's ``Task … received``)."""
    return sum(
        1
        for line in log_path.read_text(errors="replace").splitlines()
        if WEBHOOKS_TASK in line and "received" in line
    )


def delivery_drain(
    bench: BenchEnvironment,
    sessions: sessionmaker[Session],
    sources: Sequence[str],
    events: int,
    webhooks: int,
    receiver_url: str,
) -> DeliveryResult:
    """``webhooks`` webhooks listen to ``order_copies.create``; ``events / webhooks`` copies
    are created through ``lifecycle.create``, which writes their events in its own
    transaction (the copies are not announced: nothing copies them). One deliver message is
    preloaded, the webhooks worker started, and the clock runs from that message taken to
    no event left pending. The task sends itself again after a full batch; when the queue
    is idle with events still pending, the bench sends the next one (a beat with no pause)."""
    broker.flush(bench.key_prefix)
    add_webhooks(sessions, [CREATE] * webhooks, receiver_url)
    copies = events // webhooks
    world.create_copies(sessions, sources, copies, lambda ids: None)
    owed = pending_events(sessions)
    if owed != copies * webhooks:
        raise RuntimeError(f"{copies} copies for {webhooks} webhooks wrote {owed} events")
    app.send_task(WEBHOOKS_TASK, queue=QUEUE)
    sent = 1
    redis_client = broker.client()
    worker = WebhooksWorker(bench.data_dir, f"webhooks-{bench.run_id}")
    try:
        meter = CpuMeter(worker.pid, bench.database_name)
        started = wait_first_taken(redis_client, bench.key_prefix, 1, worker)
        meter.start()
        deadline = started + max(300, owed / 5)
        idle = 0
        while pending_events(sessions):
            if time.monotonic() > deadline:
                raise TimeoutError(f"events still pending:\n{worker.tail()}")
            if not worker.running():
                raise RuntimeError(f"the webhooks worker exited:\n{worker.tail()}")
            # Idle twice in a row: a message between the queue and the unacknowledged set
            # is not mistaken for none.
            idle = (
                idle + 1 if broker.queued(redis_client, bench.key_prefix, (QUEUE,)) == (0, 0) else 0
            )
            if idle == 2:
                app.send_task(WEBHOOKS_TASK, queue=QUEUE)
                sent += 1
                idle = 0
            time.sleep(POLL)
        finished = time.monotonic()
        meter.stop()
    finally:
        worker.stop()
        redis_client.close()
    with sessions.begin() as session:
        attempts = session.scalar(select(func.count()).select_from(EventCallback)) or 0
    return DeliveryResult(
        events=owed,
        webhooks=webhooks,
        copies=copies,
        seconds=finished - started,
        cpu_seconds=meter.seconds,
        statuses=event_statuses(sessions),
        attempts=attempts,
        received=0,  # filled in by the caller, who owns the receiver
        distinct_received=0,
        sent_by_bench=sent,
        tasks_run=deliveries_run(worker.log_path),
    )


#: The copy drains, with webhooks or not, in ABBA order: a load that rises or falls
#: linearly during the run (another user's tests, the database growing) weighs on both.
DRAIN_ORDER = (False, True, True, False)
#: ``--smoke``: one drain of each, to prove both paths run.
SMOKE_DRAIN_ORDER = (False, True)


@dataclass(frozen=True)
class Arm:
    """The drains of one side: pooled copies/s and CPU per copy."""

    drains: list[drain.DrainResult]

    @property
    def copies(self) -> int:
        return sum(d.copies for d in self.drains)

    @property
    def rate(self) -> float:
        return self.copies / sum(d.seconds for d in self.drains)

    @property
    def cpu_ms(self) -> float:
        return sum(d.cpu_seconds for d in self.drains) / self.copies * 1000

    @property
    def statuses(self) -> dict[str, int]:
        return dict(sum((Counter(d.statuses) for d in self.drains), Counter()))


@dataclass(frozen=True)
class SubscribedDrains:
    without: Arm
    with_webhooks: Arm
    events_by_topic: dict[str, int]  # written for the copies drained with webhooks
    order: tuple[bool, ...] = DRAIN_ORDER  # with webhooks or not, each drain in turn
    topics: int = len(TOPICS)  # a webhook on each, in the drains with webhooks

    @property
    def ratio(self) -> float:
        return self.with_webhooks.rate / self.without.rate

    def in_order(self) -> list[tuple[bool, float]]:
        """(with webhooks, copies/s) of each drain, in the order they ran."""
        arms = {False: iter(self.without.drains), True: iter(self.with_webhooks.drains)}
        return [(subscribed, next(arms[subscribed]).rate) for subscribed in self.order]


def subscribed_drains(
    bench: BenchEnvironment,
    sessions: sessionmaker[Session],
    sources: Sequence[str],
    copies: int,
    receiver_url: str,
    *,
    order: tuple[bool, ...] = DRAIN_ORDER,
    rss_interval: float = 0.2,
) -> SubscribedDrains:
    """``bench.drain.worker_drain`` (as ``bench.run`` measures it) with no webhook and with
    one webhook listening to each copy topic, in ``order`` (:data:`DRAIN_ORDER`). The events
    are written, not delivered: no webhooks worker runs."""
    arms: dict[bool, list[drain.DrainResult]] = {False: [], True: []}
    topics: Counter[str] = Counter()
    for subscribed in order:
        remove_webhooks(sessions)
        if subscribed:
            add_webhooks(sessions, list(TOPICS), receiver_url)
        which = f"a webhook on each of {len(TOPICS)} topics" if subscribed else "no webhook"
        say(f"copy drain of {copies} copies, {which}")
        result = drain.worker_drain(bench, sessions, sources, copies, rss_interval=rss_interval)
        say(f"  {result.rate:.0f} copies/s {result.statuses}")
        arms[subscribed].append(result)
        if subscribed:
            with sessions.begin() as session:
                topics.update(
                    dict(
                        session.execute(
                            select(WebhookEvent.topic, func.count()).group_by(WebhookEvent.topic)
                        ).all()
                    )
                )
    remove_webhooks(sessions)
    return SubscribedDrains(Arm(arms[False]), Arm(arms[True]), dict(topics), order)
