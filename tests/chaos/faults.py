"""Faults: a seeded schedule of what goes wrong when, and the injector that does it.

The schedule is drawn from the run's seed before anything starts, so a seed
replays the same faults at the same moments of the window (what they hit
depends on timing, as in production). A fault that lasts (an outage, a
zombie, a restart delay) is undone by a follow-up action the injector
schedules for later, or by ``Stack.heal`` when the window ends. The window
always ends with Redis flushed and a worker killed, so that there is
stranded work to recover once the faults stop.
"""

from __future__ import annotations

import enum
import heapq
import itertools
import os
import random
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from copying.testing import failpoints
from tests.chaos.processes import Process, connections_to, local_tcp_ports
from tests.chaos.stack import Stack


class Kind(enum.StrEnum):
    KILL_CHILD = "kill_child"
    KILL_WORKER = "kill_worker"
    ZOMBIE = "zombie"
    FAILPOINT = "failpoint"
    REDIS_FLUSH = "redis_flush"
    REDIS_OUTAGE = "redis_outage"
    PG_RESTART = "pg_restart"
    SECOND_BEAT = "second_beat"
    KILL_WEB = "kill_web"
    FREEZE = "freeze"
    KILL_ENDPOINT = "kill_endpoint"


LABELS = {
    Kind.KILL_CHILD: "SIGKILL of a worker's pool child",
    Kind.KILL_WORKER: "SIGKILL of a whole worker (restarted 1-4 s later)",
    Kind.ZOMBIE: "SIGSTOP of a worker past its lease, then SIGCONT",
    Kind.FAILPOINT: "worker dying (exit) or hanging then SIGKILLed at a failpoint",
    Kind.REDIS_FLUSH: "Redis SIGKILLed and restarted empty (messages lost)",
    Kind.REDIS_OUTAGE: "Redis down 3-6 s while copies are created",
    Kind.PG_RESTART: "PostgreSQL crashed (immediate stop), restarted 0.5-3 s later",
    Kind.SECOND_BEAT: "a second beat started beside the first",
    Kind.KILL_WEB: "SIGKILL of a web process (restarted 1-3 s later)",
    Kind.FREEZE: "finale: every worker SIGSTOPped for the last 3 s, then one SIGKILLed",
    Kind.KILL_ENDPOINT: (
        "SIGKILL of the external gateway's endpoint (examples/external_gateway), restarted"
        " 0.5-3 s later"
    ),
}

#: Faults per minute of window (at least one of each per run).
RATES = {
    Kind.KILL_CHILD: 4.0,
    Kind.KILL_WORKER: 1.5,
    Kind.ZOMBIE: 1.5,
    Kind.FAILPOINT: 2.5,
    Kind.REDIS_FLUSH: 0.7,
    Kind.REDIS_OUTAGE: 0.7,
    Kind.PG_RESTART: 0.7,
    Kind.KILL_WEB: 1.5,
    Kind.KILL_ENDPOINT: 2.0,
}


#: Seconds after which a fault that found nothing to hit is tried again.
RETRY_SKIPPED_AFTER = 1.0


@dataclass(frozen=True)
class Fault:
    at: float  # seconds into the window
    kind: Kind
    pick: float  # which worker, in [0, 1)
    hold: float  # seconds it lasts (0: instant)
    failpoint: str = ""  # NAME=exit|hang, for FAILPOINT


def schedule(
    rng: random.Random, duration: float, lease: float, *, endpoint: bool = True
) -> list[Fault]:
    """The faults of a window of ``duration`` seconds, in time order (no
    ``KILL_ENDPOINT`` when the run has no external gateway endpoint)."""
    faults = []
    for kind, rate in RATES.items():
        if kind == Kind.KILL_ENDPOINT and not endpoint:
            continue
        count = max(1, round(rate * duration / 60))
        slot = (duration - 6) / count  # one fault of a kind per slot: they seldom overlap
        for n in range(count):
            hold = {
                Kind.KILL_CHILD: 0.0,
                Kind.KILL_WORKER: rng.uniform(1, 4),
                Kind.ZOMBIE: lease + rng.uniform(1.5, 4),
                Kind.FAILPOINT: rng.uniform(4, 8),
                Kind.REDIS_FLUSH: 0.0,
                Kind.REDIS_OUTAGE: rng.uniform(3, 6),
                Kind.PG_RESTART: rng.uniform(0.5, 3),
                Kind.KILL_WEB: rng.uniform(1, 3),
                Kind.KILL_ENDPOINT: rng.uniform(0.5, 3),
            }[kind]
            failpoint = ""
            if kind == Kind.FAILPOINT:
                action = "exit" if rng.random() < 0.7 else "hang"
                failpoint = f"{rng.choice(failpoints.NAMES)}={action}"
            # Over before the finale (the last 4 s), so that it meets the stack whole.
            at = min(2 + n * slot + rng.uniform(0, slot), duration - 4 - hold)
            faults.append(Fault(at, kind, rng.random(), hold, failpoint))
    faults.append(Fault(rng.uniform(2, duration / 2), Kind.SECOND_BEAT, 0.0, 0.0))
    # The finale leaves stranded work for the system to recover on its own once the
    # faults stop: the workers freeze while the last copies are created, their
    # doorbells are flushed with Redis, and one frozen worker dies mid-run.
    faults.append(Fault(duration - 3, Kind.FREEZE, rng.random(), 2.7))
    faults.append(Fault(duration - 0.8, Kind.REDIS_FLUSH, 0.0, 0.0))
    return sorted(faults, key=lambda f: f.at)


FollowUps = list[tuple[float, Callable[[], object]]]


class Skipped(Exception):
    """The fault could not be injected now, and why."""


Action = Callable[[], FollowUps]


class Injector:
    """Runs a schedule against a stack; counts what it injected and what it had to skip."""

    def __init__(
        self, stack: Stack, faults: list[Fault], ports_in_transaction: Callable[[], set[int]]
    ) -> None:
        self.stack = stack
        self.faults = faults
        #: The client ports of the database connections inside a transaction now.
        self.ports_in_transaction = ports_in_transaction
        self.injected: Counter[Kind] = Counter()
        self.skipped: Counter[Kind] = Counter()
        #: Faults that hit a pool child inside a database transaction (mid-way through a run).
        self.mid_run: Counter[Kind] = Counter()
        self.failpoints: list[str] = []
        self.redis_down = threading.Event()
        self.errors: list[str] = []
        #: (seconds into the window, what happened), for the run's logs.
        self.timeline: list[tuple[float, str]] = []
        self._order = itertools.count()
        self.start = time.monotonic()
        #: When a fault must have begun to end before the finale (the freeze).
        self.last_start = (
            min((f.at for f in faults if f.kind == Kind.FREEZE), default=float("inf")) - 1
        )

    def run(self, stop: threading.Event) -> None:
        start = self.start = time.monotonic()
        queue: list[tuple[float, int, Callable[[], object]]] = [
            (f.at, next(self._order), self._injection(f)) for f in self.faults
        ]
        heapq.heapify(queue)
        while queue and not stop.is_set():
            at, _, action = queue[0]
            wait = start + at - time.monotonic()
            if wait > 0:
                stop.wait(min(wait, 0.5))
                self.stack.supervise()
                continue
            heapq.heappop(queue)
            try:
                follow = action()
            except Exception as error:  # a harness failure: say so, heal() undoes the rest
                self.errors.append(f"{getattr(action, '__name__', 'action')}: {error!r}")
                continue
            for delay, then in follow if isinstance(follow, list) else []:
                heapq.heappush(queue, (time.monotonic() - start + delay, next(self._order), then))

    def _injection(self, fault: Fault) -> Action:
        def inject() -> FollowUps:
            try:
                with self.stack.lock:
                    follow: FollowUps = getattr(self, f"_{fault.kind.value}")(fault)
            except Skipped as why:
                self.skipped[fault.kind] += 1
                self.note(f"{fault.kind} skipped: {why}")
                # Tried again a second later while it still ends before the finale, so that
                # a short window injects every kind (a worker restarting has nothing to hit).
                retry = RETRY_SKIPPED_AFTER
                if time.monotonic() - self.start + retry + fault.hold < self.last_start:
                    return [(retry, inject)]
                return []
            self.injected[fault.kind] += 1
            self.note(f"{fault.kind} {fault.failpoint}".strip())
            return follow

        return inject

    def note(self, what: str) -> None:
        self.timeline.append((time.monotonic() - self.start, what))

    # --- the faults: each returns its follow-ups, or raises Skipped ---

    def _worker(self, fault: Fault) -> Process:
        healthy = self.stack.healthy_workers()
        if not healthy:
            raise Skipped("no worker running")
        return healthy[int(fault.pick * len(healthy))]

    def _busy_worker(self, fault: Fault) -> tuple[Process, list[int]]:
        """A worker whose pool child is inside a database transaction (a copy run's step,
        most likely), and that child; within 1.5 s, else any worker and its whole pool."""
        deadline = time.monotonic() + 1.5
        while True:
            workers = [w for w in self.stack.healthy_workers() if w.children()]
            if not workers:
                raise Skipped("no worker running")
            first = int(fault.pick * len(workers))
            workers = workers[first:] + workers[:first]
            try:
                ports = self.ports_in_transaction()
            except Exception:  # the database is down: aim anywhere
                ports = set()
            for worker in workers if ports else []:
                inside = [c for c in worker.children() if local_tcp_ports(c) & ports]
                if inside:
                    self.mid_run[fault.kind] += 1
                    return worker, inside
            if time.monotonic() > deadline:
                return workers[0], workers[0].children()
            time.sleep(0.01)

    def _kill_child(self, fault: Fault) -> FollowUps:
        pool = self._busy_worker(fault)[1]
        if not pool:
            raise Skipped("no pool child")
        try:
            os.kill(pool[int(fault.pick * 1000) % len(pool)], signal.SIGKILL)
        except ProcessLookupError:
            raise Skipped("the pool child exited first") from None
        return []

    def _kill_for(self, fault: Fault, process: Process) -> FollowUps:
        """SIGKILL ``process``, and start it again once ``fault.hold`` has passed."""
        self.stack.wanted.discard(process.name)
        process.kill()

        def restart() -> None:
            self.stack.start(process)
            self.note(f"{process.name} restarted")

        return [(fault.hold, restart)]

    def _kill_worker(self, fault: Fault) -> FollowUps:
        worker = self._worker(fault)
        return self._kill_for(fault, worker)

    def _kill_web(self, fault: Fault) -> FollowUps:
        """SIGKILL a web process, inside a request's transaction if one comes within 1.5 s."""
        deadline = time.monotonic() + 1.5
        while True:
            webs = self.stack.healthy_webs()
            if not webs:
                raise Skipped("no web process running")
            try:
                ports = self.ports_in_transaction()
            except Exception:  # the database is down: aim anywhere
                ports = set()
            inside = [w for w in webs if w.pid and local_tcp_ports(w.pid) & ports]
            if inside:
                self.mid_run[fault.kind] += 1
                web = inside[int(fault.pick * len(inside))]
                break
            if time.monotonic() > deadline:
                web = webs[int(fault.pick * len(webs))]
                break
            time.sleep(0.01)
        return self._kill_for(fault, web)

    def _kill_endpoint(self, fault: Fault) -> FollowUps:
        """SIGKILL the merchant's endpoint, while it answers a request if one comes within
        1.5 s: requests in flight are cut off (some after it recorded the transaction),
        new ones refused until it is back."""
        endpoint = self.stack.healthy_endpoint()
        if endpoint is None or endpoint.port is None:
            raise Skipped("the endpoint is not running")
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            if connections_to(endpoint.port):
                self.mid_run[fault.kind] += 1
                break
            time.sleep(0.005)
        return self._kill_for(fault, endpoint)

    def _zombie(self, fault: Fault) -> FollowUps:
        worker = self._busy_worker(fault)[0]
        worker.signal_group(signal.SIGSTOP)

        def wake() -> None:
            worker.signal_group(signal.SIGCONT)
            self.note(f"{worker.name} woken (SIGCONT)")

        return [(fault.hold, wake)]

    def _failpoint(self, fault: Fault) -> FollowUps:
        name = f"fp{len(self.failpoints) + 1}"
        worker = self.stack.failpoint_worker(name, fault.failpoint)
        self.failpoints.append(fault.failpoint)

        def end() -> None:
            worker.kill()
            self.note(f"{name} killed")

        return [(fault.hold, end)]

    def _redis_flush(self, fault: Fault) -> FollowUps:
        if not self.stack.redis.up:
            raise Skipped("Redis is down already")
        self.stack.redis.kill()
        self.stack.redis.start()
        return []

    def _redis_outage(self, fault: Fault) -> FollowUps:
        if not self.stack.redis.up:
            raise Skipped("Redis is down already")
        self.stack.redis.kill()
        self.redis_down.set()

        def back() -> None:
            with self.stack.lock:
                self.stack.redis.start()
            self.redis_down.clear()
            self.note("redis back")

        return [(fault.hold, back)]

    def _pg_restart(self, fault: Fault) -> FollowUps:
        if not self.stack.pg.started:
            raise Skipped("PostgreSQL is down already")
        self.stack.pg.stop("immediate")

        def back() -> None:
            with self.stack.lock:
                self.stack.pg.start()
            self.note("postgres back")

        return [(fault.hold, back)]

    def _freeze(self, fault: Fault) -> FollowUps:
        frozen = [w for w in self.stack.workers if w.alive]
        if not frozen:
            raise Skipped("no worker running")
        for worker in frozen:
            worker.signal_group(signal.SIGSTOP)
        doomed = frozen[int(fault.pick * len(frozen))]

        def end() -> None:
            with self.stack.lock:
                self.stack.wanted.discard(doomed.name)  # Stack.heal starts it again
                doomed.kill()
                for worker in frozen:
                    if worker is not doomed:
                        worker.signal_group(signal.SIGCONT)
            self.note(f"{doomed.name} killed while frozen, the others woken")

        return [(fault.hold, end)]

    def _second_beat(self, fault: Fault) -> FollowUps:
        self.stack.add_beat()
        return []
