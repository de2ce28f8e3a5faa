"""Bulk retry: selecting failed copies by criteria, and retrying each once, even twice at once."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from copying.copies import bulk, lifecycle
from copying.copies.bulk import RetryCriteria, RetryOutcome, RetrySummary
from copying.orders.gateways import Gateways
from copying.runs import Outcome, execute
from models import CopyStatus, Mode, OrderCopy, OrderCopyEvent
from tests.copying.clock import T0, FixedClock
from tests.factories import (
    Line,
    copy_events,
    make_customer,
    make_order,
    make_sku,
)
from tests.failures import HOUR, Failures, fail_copy, make_failures
from tests.fixtures import Published


@pytest.fixture
def failures(sessions, gateways) -> Failures:
    return make_failures(sessions, gateways)


def selected(sessions: sessionmaker[Session], mode: Mode = Mode.TEST, **criteria: object) -> list:
    with sessions.begin() as s:
        return bulk.select_failed(s, mode, RetryCriteria(**criteria))


# --- selection ----------------------------------------------------------------------------


def test_without_criteria_every_failed_copy_of_the_mode_oldest_failure_first(sessions, failures):
    assert selected(sessions) == [failures.a, failures.b, failures.c]
    assert selected(sessions, Mode.LIVE) == [failures.live]


def test_by_id_only_the_failed_ones_of_the_ids_given(sessions, failures):
    ids = (
        failures.c,
        failures.a,
        failures.completed,
        failures.pending,
        failures.live,
        "nOsUchCopy",
    )

    assert selected(sessions, ids=ids) == [failures.a, failures.c]


def test_since_is_inclusive_and_until_exclusive_on_failed_at(sessions, failures):
    assert selected(sessions, since=T0 + HOUR) == [failures.b, failures.c]
    assert selected(sessions, until=T0 + HOUR) == [failures.a]
    assert selected(sessions, since=T0 + HOUR, until=T0 + 2 * HOUR) == [failures.b]
    assert selected(sessions, since=T0 + 3 * HOUR) == []


def test_by_reference_origin(sessions, failures):
    assert selected(sessions, reference_origin="ops") == [failures.b]
    assert selected(sessions, reference_origin="app") == [failures.a]
    assert selected(sessions, reference_origin="op") == []


def test_by_subscription(sessions, failures):
    assert selected(sessions, subscription_id=failures.subscription_id) == [failures.c]
    assert selected(sessions, subscription_id="nOsUchSubs") == []


def test_error_contains_matches_the_errors_log_in_any_case(sessions, failures):
    assert selected(sessions, error_contains="DISCONTINUED") == [failures.a, failures.c]
    assert selected(sessions, error_contains="Out Of Stock (2 requested") == [failures.b]
    assert selected(sessions, error_contains="short-tee") == [failures.b]
    assert selected(sessions, error_contains="declined") == []


def test_error_contains_takes_like_wildcards_literally(sessions, failures):
    assert selected(sessions, error_contains="%") == []
    assert selected(sessions, error_contains="GONE%TEE") == []


def test_limit_keeps_the_oldest_failures(sessions, failures):
    assert selected(sessions, limit=2) == [failures.a, failures.b]


def test_criteria_combine(sessions, failures):
    assert selected(sessions, error_contains="discontinued", since=T0 + HOUR) == [failures.c]
    assert selected(sessions, error_contains="discontinued", reference_origin="ops") == []
    assert selected(sessions, ids=(failures.a, failures.b), limit=1) == [failures.a]


def test_selection_changes_nothing(sessions, failures):
    def state() -> tuple[list, list]:
        with sessions.begin() as s:
            copies = s.execute(
                select(OrderCopy.id, OrderCopy.status, OrderCopy.updated_at).order_by(OrderCopy.id)
            ).all()
            events = s.scalars(select(OrderCopyEvent.id).order_by(OrderCopyEvent.id)).all()
        return list(copies), list(events)

    before = state()

    assert selected(sessions, error_contains="discontinued") == [failures.a, failures.c]

    assert state() == before


# The JSON text of errors_log escapes quotes, and SQLite's JSON escapes non-ASCII:
# a needle with either still matches, on both backends.


@pytest.fixture(params=["postgresql", "sqlite"])
def backend(request) -> Iterator[tuple[sessionmaker[Session], Gateways]]:
    if request.param == "postgresql":
        yield request.getfixturevalue("sessions"), request.getfixturevalue("gateways")
        return
    yield request.getfixturevalue("sqlite")


def test_error_contains_on_both_backends_quotes_and_non_ascii_included(backend):
    sessions, gateways = backend
    with sessions.begin() as s:
        gone = make_order(s, [Line(make_sku(s, "GONE-TEE", discontinued=True), 1)])
    discontinued = fail_copy(sessions, gateways, gone.id, T0)
    quoted = fail_copy(sessions, gateways, gone.id, T0 + HOUR)
    # Written directly: this test is about selection, and no engine message has both yet.
    with sessions.begin() as s:
        s.get_one(OrderCopy, quoted).errors_log = {
            "payment": ['payment declined: wallet entry "Visa •••• 4242" refused \\ 50%']
        }

    assert selected(sessions, error_contains="gone-tee IS DISCONTINUED") == [discontinued]
    assert selected(sessions, error_contains='entry "visa') == [quoted]
    assert selected(sessions, error_contains="Visa •••• 4242") == [quoted]
    assert selected(sessions, error_contains="refused \\ 50%") == [quoted]
    assert selected(sessions, error_contains="•••• 4243") == []


# --- retrying -----------------------------------------------------------------------------


def test_retry_each_retries_and_announces_every_copy_after_its_commit(sessions, failures):
    published = Published()
    seen: list[tuple[str, RetryOutcome]] = []

    summary = bulk.retry_each(
        sessions,
        [failures.a, failures.b],
        Mode.TEST,
        by="cli",
        publish=published,
        progress_callback=lambda copy_id, outcome: seen.append((copy_id, outcome)),
    )

    assert summary == RetrySummary(retried=[failures.a, failures.b])
    assert published == [failures.a, failures.b]
    assert seen == [(failures.a, RetryOutcome.RETRIED), (failures.b, RetryOutcome.RETRIED)]
    with sessions.begin() as s:
        for copy_id in (failures.a, failures.b):
            copy = s.get_one(OrderCopy, copy_id)
            assert (copy.status, copy.retries, copy.errors_log) == (CopyStatus.PENDING, 1, {})
            [retried] = [e for e in copy_events(s, copy_id) if e.kind == "retried"]
            assert retried.data["by"] == "cli"
        assert s.get_one(OrderCopy, failures.c).status == CopyStatus.FAILED


def test_copies_no_longer_failed_or_gone_are_skipped_not_retried(sessions, failures):
    published = Published()
    seen: list[RetryOutcome] = []
    ids = [failures.completed, failures.a, failures.pending, "nOsUchCopy", failures.live]

    summary = bulk.retry_each(
        sessions,
        ids,
        Mode.TEST,
        by="cli",
        publish=published,
        progress_callback=lambda _id, outcome: seen.append(outcome),
    )

    assert summary.retried == [failures.a]
    assert summary.skipped == {
        failures.completed: "now completed",
        failures.pending: "now pending",
        "nOsUchCopy": "gone",
        failures.live: "gone",  # not in test mode
    }
    assert summary.errors == {}
    assert published == [failures.a]
    assert seen == [RetryOutcome.SKIPPED, RetryOutcome.RETRIED] + [RetryOutcome.SKIPPED] * 3
    with sessions.begin() as s:
        assert s.get_one(OrderCopy, failures.live).status == CopyStatus.FAILED


def test_an_unexpected_error_is_named_and_the_run_goes_on(sessions, failures, monkeypatch):
    real_retry = lifecycle.retry

    def retry(session, copy_id, mode, **kwargs):
        if copy_id == failures.b:
            raise RuntimeError("boom\nsecond line")
        return real_retry(session, copy_id, mode, **kwargs)

    monkeypatch.setattr(lifecycle, "retry", retry)
    published = Published()
    seen: list[RetryOutcome] = []

    summary = bulk.retry_each(
        sessions,
        [failures.a, failures.b, failures.c],
        Mode.TEST,
        by="cli",
        publish=published,
        progress_callback=lambda _id, outcome: seen.append(outcome),
    )

    assert summary.retried == [failures.a, failures.c]
    assert summary.errors == {failures.b: "RuntimeError: boom"}
    assert summary.total == 3
    assert published == [failures.a, failures.c]
    assert seen == [RetryOutcome.RETRIED, RetryOutcome.ERROR, RetryOutcome.RETRIED]
    with sessions.begin() as s:
        assert s.get_one(OrderCopy, failures.b).status == CopyStatus.FAILED


# --- two bulk retries at once -------------------------------------------------------------

#: A few hundred: the two runs go through them in step (see the test), each copy raced.
MANY = 200
#: Seconds a run waits at a copy for the other run: a bound, not a measurement.
IN_STEP_WITHIN = 60


def test_two_concurrent_bulk_retries_over_the_same_failed_copies_retry_each_once(
    committed, gateways
):
    with committed.begin() as s:
        gone = make_order(
            s,
            [Line(make_sku(s, "GONE-TEE", discontinued=True), 1), Line(make_sku(s, "OK-TEE"), 1)],
            customer=make_customer(s),
        )
    with committed.begin() as s:
        copy_ids = [
            lifecycle.create(s, mode=Mode.TEST, source_order_id=gone.id, now=T0).id
            for _ in range(MANY)
        ]
    for start in range(0, MANY, 200):  # as a worker runs them: a chunk at a time
        chunk = copy_ids[start : start + 200]
        ran = execute(committed, chunk, gateways=gateways, clock=FixedClock(T0))
        assert ran.outcome == dict.fromkeys(chunk, Outcome.FAILED)
    with committed.begin() as s:
        ids = bulk.select_failed(s, Mode.TEST, RetryCriteria(error_contains="discontinued"))
        targets = dict(s.execute(select(OrderCopy.id, OrderCopy.target_order_id)).all())
    assert sorted(ids) == sorted(copy_ids)
    assert all(targets.values())

    # The runs keep step: neither goes on to its next copy before the other has done
    # this one, so both ask for every copy at once. They overlap by construction: a run
    # left alone waits for the other in vain (BrokenBarrierError, a crash). Left free,
    # under load one run took all the copies before the other started.
    in_step = threading.Barrier(2, timeout=IN_STEP_WITHIN)
    summaries: list[RetrySummary] = []
    announced: list[Published] = []
    crashes: list[BaseException] = []

    def bulk_retry() -> None:
        published = Published()
        announced.append(published)
        try:
            in_step.wait()
            summaries.append(
                bulk.retry_each(
                    committed,
                    ids,
                    Mode.TEST,
                    by="cli",
                    publish=published,
                    progress_callback=lambda _id, _outcome: in_step.wait(),
                )
            )
        except BaseException as error:  # reported by the main thread
            in_step.abort()  # the other run stops waiting
            crashes.append(error)

    threads = [threading.Thread(target=bulk_retry) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert crashes == []
    first, second = summaries
    assert first.errors == second.errors == {}
    # In step, each copy goes to whichever run's change comes first: both won some.
    assert first.retried, second.skipped
    assert second.retried, first.skipped
    assert len(first.retried) + len(second.retried) == MANY
    assert set(first.retried) | set(second.retried) == set(copy_ids)
    # What one run retried, the other found no longer failed (and the reverse).
    assert set(first.skipped) == set(second.retried)
    assert set(second.skipped) == set(first.retried)
    assert set(first.skipped.values()) | set(second.skipped.values()) == {"now pending"}
    # Each copy was announced once, by the run that retried it.
    assert sorted(announced[0] + announced[1]) == sorted(copy_ids)
    with committed.begin() as s:
        retried_events = dict(
            s.execute(
                select(OrderCopyEvent.order_copy_id, func.count())
                .where(OrderCopyEvent.kind == "retried")
                .group_by(OrderCopyEvent.order_copy_id)
            ).all()
        )
        rows = s.execute(
            select(OrderCopy.id, OrderCopy.status, OrderCopy.retries, OrderCopy.target_order_id)
        ).all()
    assert retried_events == dict.fromkeys(copy_ids, 1)
    assert {(status, retries) for _, status, retries, _ in rows} == {(CopyStatus.PENDING, 1)}
    # The retry resumes from the checkpoint: the same target order, not a second one.
    assert {copy_id: target for copy_id, _, _, target in rows} == targets
