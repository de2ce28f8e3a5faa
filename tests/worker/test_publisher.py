"""The web process's publisher thread (``worker.publisher.Doorbells``): what is handed
over is sent, one message for whatever gathered while it was busy, and nothing stops it."""

from __future__ import annotations

import contextlib
import threading
from typing import Any

import pytest

import worker.publisher
from worker.app import COPY_BATCH_TASK, COPY_TASK
from worker.publisher import Doorbells


class Broker:
    """Records each message; the first send waits until ``release`` is set, so that the
    ids handed over meanwhile gather."""

    def __init__(self, *, fail_first: bool = False) -> None:
        self.messages: list[tuple[str, list[str]]] = []
        self.sending = threading.Event()
        self.release = threading.Event()
        self.fail_first = fail_first

    def producer_or_acquire(self) -> Any:
        return contextlib.nullcontext()

    def send_task(self, name: str, args: tuple[Any, ...], **options: Any) -> None:
        first = not self.messages and not self.sending.is_set()
        self.sending.set()
        if first:
            assert self.release.wait(10)
            if self.fail_first:
                raise ConnectionError("the broker is away")
        ids = args[0] if name == COPY_BATCH_TASK else [args[0]]
        self.messages.append((name, list(ids)))


@pytest.fixture
def broker(monkeypatch: pytest.MonkeyPatch) -> Broker:
    sent = Broker()
    monkeypatch.setattr(worker.publisher, "app", sent)
    return sent


def test_ids_handed_over_while_a_send_runs_go_out_together(broker: Broker) -> None:
    doorbells = Doorbells()
    doorbells.ring(["a"])
    assert broker.sending.wait(10)
    doorbells.ring(["b"])
    doorbells.ring(["c", "d"])
    broker.release.set()

    assert doorbells.flush()
    assert broker.messages == [(COPY_TASK, ["a"]), (COPY_BATCH_TASK, ["b", "c", "d"])]


def test_flush_waits_for_the_send_in_progress(broker: Broker) -> None:
    doorbells = Doorbells()
    doorbells.ring(["a"])
    assert broker.sending.wait(10)

    assert not doorbells.flush(timeout=0.05)
    broker.release.set()
    assert doorbells.flush()
    assert broker.messages == [(COPY_TASK, ["a"])]


def test_a_failed_send_is_logged_and_the_thread_goes_on(monkeypatch: pytest.MonkeyPatch) -> None:
    broker = Broker(fail_first=True)
    monkeypatch.setattr(worker.publisher, "app", broker)
    doorbells = Doorbells()
    doorbells.ring(["lost"])
    broker.release.set()
    assert doorbells.flush()

    doorbells.ring(["next"])

    assert doorbells.flush()
    assert broker.messages == [(COPY_TASK, ["next"])]


def test_nothing_handed_over_flushes_at_once(broker: Broker) -> None:
    assert Doorbells().flush(timeout=0)
    assert broker.messages == []
