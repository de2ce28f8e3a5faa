"""The status report: exact numbers at a fixed ``now``, window edges included."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest
from sqlalchemy.orm import Session, sessionmaker

from copying.copies import copy_states, lifecycle, status
from copying.copies.status import ErrorCount, InProgress, OldestPending, StatusReport, Throughput
from copying.orders.gateways import Gateways
from copying.runs import Outcome
from models import CopyStatus, Mode, OrderCopy
from tests.copying.clock import T0, FixedClock
from tests.factories import Line, create_copy, make_order, make_shop, make_sku
from tests.runs import execute_one

NOW = T0 + timedelta(hours=1)
LEASE = timedelta(seconds=30)
DISCONTINUED = "SKU GONE-TEE is discontinued"
OUT_OF_STOCK = "SKU SHORT-TEE is out of stock (2 requested, 0 left)"


def minutes(n: float) -> timedelta:
    return timedelta(minutes=n)


@dataclass
class Sources:
    good: str
    gone: str  # its SKU is discontinued
    short: str  # its SKU is out of stock
    live_gone: str


@pytest.fixture
def sources(sessions) -> Sources:
    with sessions.begin() as s:
        return Sources(
            good=make_shop(s).source.id,
            gone=make_order(s, [Line(make_sku(s, "GONE-TEE", discontinued=True), 1)]).id,
            short=make_order(s, [Line(make_sku(s, "SHORT-TEE", stock=0), 2)]).id,
            live_gone=make_order(
                s,
                [Line(make_sku(s, "GONE-TEE", discontinued=True, mode=Mode.LIVE), 1)],
                mode=Mode.LIVE,
            ).id,
        )


class Copies:
    """Copies made to the minute, through the engine (create, execute, claim, retry, abort)."""

    def __init__(self, sessions: sessionmaker[Session], gateways: Gateways) -> None:
        self.sessions = sessions
        self.gateways = gateways

    def pending(self, source: str, created: datetime, mode: Mode = Mode.TEST) -> str:
        return create_copy(self.sessions, source, mode=mode, now=created).id

    def finished(self, source: str, at: datetime, outcome: Outcome, mode: Mode = Mode.TEST) -> str:
        copy_id = self.pending(source, at - minutes(1), mode)
        result = execute_one(self.sessions, copy_id, gateways=self.gateways, clock=FixedClock(at))
        assert result == outcome
        return copy_id

    def in_progress(self, source: str, claimed: datetime) -> str:
        copy_id = self.pending(source, claimed - minutes(1))
        with self.sessions.begin() as s:
            assert copy_states.claim(s, copy_id, claimed, LEASE, max_claims=8) is not None
        return copy_id

    def retried(self, source: str, created: datetime, not_before: datetime) -> str:
        """Failed when created, then retried by a failure policy to run at ``not_before``."""
        copy_id = self.finished(source, created + minutes(1), Outcome.FAILED)
        with self.sessions.begin() as s:
            lifecycle.retry(
                s,
                copy_id,
                Mode.TEST,
                by="failure_policy",
                now=created + minutes(2),
                not_before=not_before,
            )
        return copy_id

    def aborted(self, source: str, created: datetime) -> str:
        copy_id = self.pending(source, created)
        with self.sessions.begin() as s:
            lifecycle.abort(s, copy_id, Mode.TEST, by="ops", now=created)
        return copy_id


@pytest.fixture
def copies(sessions, gateways) -> Copies:
    return Copies(sessions, gateways)


def report(sessions: sessionmaker[Session], mode: Mode = Mode.TEST) -> StatusReport:
    with sessions.begin() as s:
        return status.status_report(s, mode, now=NOW)


def test_every_number_at_a_fixed_now(sessions, sources, copies):
    completed_at = [NOW - minutes(1), NOW - minutes(5), NOW - minutes(30), NOW - minutes(120)]
    for at in completed_at:
        copies.finished(sources.good, at, Outcome.COMPLETED)
    for at in (NOW - minutes(3), NOW - minutes(20), NOW - timedelta(hours=23)):
        copies.finished(sources.gone, at, Outcome.FAILED)
    copies.finished(sources.short, NOW - minutes(40), Outcome.FAILED)
    copies.finished(sources.short, NOW - timedelta(hours=24), Outcome.FAILED)  # a day ago: out
    copies.pending(sources.good, NOW - minutes(20))
    copies.pending(sources.good, NOW - minutes(2))
    copies.retried(sources.gone, NOW - minutes(150), not_before=NOW + minutes(60))  # not due
    oldest = copies.retried(sources.gone, NOW - minutes(90), not_before=NOW - minutes(10))
    fresh = copies.in_progress(sources.good, NOW - timedelta(seconds=10))
    dead = copies.in_progress(sources.good, NOW - minutes(2))
    ending = copies.in_progress(sources.good, NOW - LEASE)  # its lease ends right now
    copies.aborted(sources.good, NOW - minutes(7))
    # Live copies are in another report.
    copies.finished(sources.live_gone, NOW - minutes(1), Outcome.FAILED, Mode.LIVE)
    copies.pending(sources.live_gone, NOW - timedelta(hours=3), Mode.LIVE)

    result = report(sessions)

    assert result.mode == Mode.TEST
    assert result.now == NOW
    assert result.counts == {
        CopyStatus.PENDING: 4,
        CopyStatus.IN_PROGRESS: 3,
        CopyStatus.COMPLETED: 4,
        CopyStatus.FAILED: 5,
        CopyStatus.ABORTED: 1,
    }
    assert result.scheduled == 1
    assert result.oldest_pending == OldestPending(oldest, NOW - minutes(90), 5400.0)
    assert result.in_progress == [
        InProgress(dead, 1, None, NOW - minutes(2), NOW - minutes(1.5), lease_expired=True),
        InProgress(ending, 1, None, NOW - LEASE, NOW, lease_expired=True),  # over at its end
        InProgress(fresh, 1, None, NOW - timedelta(seconds=10), NOW + timedelta(seconds=20), False),
    ]
    assert result.top_errors == [
        ErrorCount("line_items", DISCONTINUED, 3),
        ErrorCount("line_items", OUT_OF_STOCK, 1),
    ]
    # Windows are (now - window, now]: the copy completed 5 minutes ago is in the hour only.
    assert result.throughput == [
        Throughput(5, completed=1, failed=1, completed_per_minute=0.2, failed_per_minute=0.2),
        Throughput(60, completed=3, failed=3, completed_per_minute=0.05, failed_per_minute=0.05),
    ]


def test_the_other_mode_has_its_own_report(sessions, sources, copies):
    copies.finished(sources.good, NOW - minutes(1), Outcome.COMPLETED)
    copies.finished(sources.live_gone, NOW - minutes(1), Outcome.FAILED, Mode.LIVE)
    waiting = copies.pending(sources.live_gone, NOW - timedelta(hours=3), Mode.LIVE)

    result = report(sessions, Mode.LIVE)

    assert result.counts == {
        CopyStatus.PENDING: 1,
        CopyStatus.IN_PROGRESS: 0,
        CopyStatus.COMPLETED: 0,
        CopyStatus.FAILED: 1,
        CopyStatus.ABORTED: 0,
    }
    assert result.oldest_pending == OldestPending(waiting, NOW - timedelta(hours=3), 10800.0)
    assert result.top_errors == [ErrorCount("line_items", DISCONTINUED, 1)]
    assert [(t.completed, t.failed) for t in result.throughput] == [(0, 1), (0, 1)]


def test_nothing_yet_is_all_zeros(sessions):
    result = report(sessions)

    assert result.counts == dict.fromkeys(CopyStatus, 0)
    assert (result.scheduled, result.oldest_pending) == (0, None)
    assert (result.in_progress, result.top_errors) == ([], [])
    assert result.throughput == [Throughput(5, 0, 0, 0.0, 0.0), Throughput(60, 0, 0, 0.0, 0.0)]


def test_a_message_counts_each_failed_copy_once(sessions, copies):
    with sessions.begin() as s:
        # Two lines of one discontinued SKU: the copy says the same thing twice.
        twice = make_order(s, [Line(make_sku(s, "OLD-TEE", discontinued=True), 1)] * 2).id
    copy_id = copies.finished(twice, NOW - minutes(1), Outcome.FAILED)
    with sessions.begin() as s:
        errors_log = s.get_one(OrderCopy, copy_id).errors_log
    assert errors_log == {"line_items": ["SKU OLD-TEE is discontinued"] * 2}

    result = report(sessions)

    assert result.top_errors == [ErrorCount("line_items", "SKU OLD-TEE is discontinued", 1)]


def test_top_errors_most_copies_first_then_by_message_capped(sessions, copies, monkeypatch):
    with sessions.begin() as s:
        gone = [
            make_order(s, [Line(make_sku(s, f"GONE-{n}", discontinued=True), 1)]).id
            for n in range(3)
        ]
    for source, ago in ((gone[2], 1), (gone[1], 1), (gone[0], 1), (gone[2], 2)):
        copies.finished(source, NOW - minutes(ago), Outcome.FAILED)
    monkeypatch.setattr(status, "TOP_ERRORS", 2)

    result = report(sessions)

    assert result.top_errors == [
        ErrorCount("line_items", "SKU GONE-2 is discontinued", 2),
        ErrorCount("line_items", "SKU GONE-0 is discontinued", 1),
    ]


def test_in_progress_shows_the_leases_ending_first(sessions, sources, copies, monkeypatch):
    claimed = [copies.in_progress(sources.good, NOW - timedelta(seconds=s)) for s in (5, 50, 20)]
    monkeypatch.setattr(status, "IN_PROGRESS_SHOWN", 2)

    result = report(sessions)

    assert result.counts[CopyStatus.IN_PROGRESS] == 3
    assert [(c.id, c.lease_expired) for c in result.in_progress] == [
        (claimed[1], True),
        (claimed[2], False),
    ]
