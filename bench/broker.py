"""The run's broker keys: publishing straight to a queue, timing its drain, flushing it.

A drain is timed from the broker's side, the same way for the no-op baseline
and for real copies: from the first message a worker takes off the queue to
the moment the queue is empty and no message is left unacknowledged
(``acks_late``: a message is acknowledged after its task ran).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import redis

from bench.cpu import CpuMeter
from bench.workers import WorkerProcess, wait_until
from config import get_settings
from worker.app import app

QUEUE = "copies"


@dataclass(frozen=True)
class Drain:
    messages: int
    started: float  # time.monotonic() of the first message taken
    finished: float  # time.monotonic() when nothing was left queued or unacknowledged

    @property
    def seconds(self) -> float:
        return self.finished - self.started

    @property
    def rate(self) -> float:
        return self.messages / self.seconds


def client() -> redis.Redis:
    return redis.Redis.from_url(get_settings().resolved_broker_url)


def send(task_name: str, ids: Sequence[str]) -> None:
    """Publish one message per id to the copies queue, as ``worker.publisher`` does."""
    with app.producer_or_acquire() as producer:
        for message_id in ids:
            app.send_task(task_name, args=(message_id,), queue=QUEUE, producer=producer)


def queued(
    redis_client: redis.Redis, prefix: str, queues: Sequence[str] = (QUEUE,)
) -> tuple[int, int]:
    """(messages waiting in ``queues``, messages taken but not yet acknowledged)."""
    pipe = redis_client.pipeline(transaction=False)
    for queue in queues:
        pipe.llen(f"{prefix}{queue}")
    pipe.hlen(f"{prefix}unacked")
    *waiting, unacked = pipe.execute()
    return sum(int(w) for w in waiting), int(unacked)


def time_drain(
    prefix: str,
    messages: int,
    worker: WorkerProcess,
    *,
    timeout: float,
    meter: CpuMeter | None = None,
    poll: float = 0.01,
) -> Drain:
    """Watch a queue preloaded with ``messages`` until ``worker`` has drained it;
    ``meter`` measures the CPU spent in between."""
    redis_client = client()
    try:
        waiting, _ = queued(redis_client, prefix)
        if waiting != messages:
            raise RuntimeError(f"expected {messages} queued messages, found {waiting}")
        wait_until(
            lambda: queued(redis_client, prefix)[0] < messages,
            60,
            "the worker to take its first message",
            worker,
            poll=poll,
        )
        started = time.monotonic()
        if meter is not None:
            meter.start()
        wait_until(
            lambda: queued(redis_client, prefix) == (0, 0),
            timeout,
            f"the worker to drain {messages} messages",
            worker,
            poll=poll,
        )
        finished = time.monotonic()
        if meter is not None:
            meter.stop()
        return Drain(messages, started, finished)
    finally:
        redis_client.close()


def task_pending(redis_client: redis.Redis, prefix: str, queue: str, task_name: str) -> bool:
    """Whether a message of ``task_name`` waits in ``queue`` or was taken and not yet
    acknowledged (``acks_late``: its task is still running). The unacknowledged messages
    are one per busy pool process: cheap to read every few milliseconds."""
    if redis_client.llen(f"{prefix}{queue}"):
        return True
    name = task_name.encode()
    return any(name in message for message in redis_client.hvals(f"{prefix}unacked"))


def flush(prefix: str) -> None:
    """Delete every broker key of this run (queues, unacknowledged messages, bindings)."""
    redis_client = client()
    try:
        keys = list(redis_client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            redis_client.delete(*keys)
    finally:
        redis_client.close()
