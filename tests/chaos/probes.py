"""What a chaos run reads from its database and logs, besides the invariants."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import redis
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from copying.subscriptions.subscription_states import RENEWING
from models import CopyStatus, OrderCopy, OrderCopyEvent, OrderSubscription, utcnow
from tests.invariants import AUDIT_TABLE


def unsettled(session: Session) -> int:
    """Copies not finished, plus subscriptions due and not yet renewed: 0 once quiet."""
    copies = session.scalar(
        select(func.count())
        .select_from(OrderCopy)
        .where(OrderCopy.status.in_([CopyStatus.PENDING, CopyStatus.IN_PROGRESS]))
    )
    due = session.scalar(
        select(func.count())
        .select_from(OrderSubscription)
        .where(OrderSubscription.status.in_(RENEWING), OrderSubscription.next_run_at <= utcnow())
    )
    return (copies or 0) + (due or 0)


def ports_in_transaction(session: Session) -> set[int]:
    """The client ports of the other connections now inside a transaction."""
    return set(
        session.scalars(
            text(
                "SELECT client_port FROM pg_stat_activity WHERE xact_start IS NOT NULL"
                " AND pid <> pg_backend_pid() AND client_port IS NOT NULL"
            )
        )
    )


def runs(session: Session) -> tuple[int, int]:
    """Claims in all, and copies claimed again without a retry asking for it (resumed
    after a crash, a lost lease or message, or a transient error)."""
    counts: dict[str, Counter[str]] = {}
    for copy_id, kind, count in session.execute(
        select(OrderCopyEvent.order_copy_id, OrderCopyEvent.kind, func.count())
        .where(OrderCopyEvent.kind.in_(["claimed", "retried"]))
        .group_by(OrderCopyEvent.order_copy_id, OrderCopyEvent.kind)
    ):
        counts.setdefault(copy_id, Counter())[kind] = count
    claims = sum(c["claimed"] for c in counts.values())
    resumed = sum(1 for c in counts.values() if c["claimed"] > c["retried"] + 1)
    return claims, resumed


def audited(session: Session) -> Counter[str]:
    """Writes the audit triggers recorded, by kind (a check that they fired at all)."""
    rows = session.execute(text(f"SELECT kind, count(*) FROM {AUDIT_TABLE} GROUP BY kind"))
    return Counter({kind: count for kind, count in rows})


def logged(logs: Path, events: list[str]) -> Counter[str]:
    """How often each of ``events`` shows in the JSON logs of every process."""
    counts: Counter[str] = Counter({event: 0 for event in events})
    for path in logs.glob("*.log"):
        with path.open(errors="replace") as lines:
            for line in lines:
                if not line.startswith("{"):
                    continue
                try:
                    event = json.loads(line).get("event")
                except ValueError:
                    continue
                if event in counts:
                    counts[event] += 1
    return counts


def statuses(session: Session) -> Counter[str]:
    return Counter(
        {
            str(status): count
            for status, count in session.execute(
                select(OrderCopy.status, func.count()).group_by(OrderCopy.status)
            )
        }
    )


def queue_lengths(redis_url: str, prefix: str, queues: tuple[str, ...]) -> str:
    """``copies=12 renewals=0 …`` from the broker, or why it cannot say."""
    client = redis.Redis.from_url(redis_url, socket_connect_timeout=0.5, socket_timeout=0.5)
    try:
        return " ".join(f"{q}={client.llen(prefix + q)}" for q in queues)
    except redis.RedisError as error:
        return f"redis: {type(error).__name__}"
    finally:
        client.close()


class Progress:
    """Every 2 s, one line in ``progress.log``: copies by status, queue lengths, workers."""

    def __init__(self, path: Path, sample: Callable[[], str]) -> None:
        self.path = path
        self.sample = sample
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="progress", daemon=True)
        self.start = time.monotonic()

    def _run(self) -> None:
        with self.path.open("a") as out:
            while not self.stop.wait(2):
                try:
                    line = self.sample()
                except Exception as error:  # the database is down
                    line = f"({type(error).__name__})"
                out.write(f"{time.monotonic() - self.start:7.1f} s  {line}\n")
                out.flush()
