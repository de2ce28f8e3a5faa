"""The copy state machine: compare-and-set transitions and the fence."""

from __future__ import annotations

import pytest
from sqlalchemy import update

from copying.copies import copy_states
from copying.errors import ErrorKey, ErrorLog
from copying.runs import RunConfig
from models import CopyStatus, CopyStep, OrderCopy
from tests.factories import create_copy, make_shop

LEASE = RunConfig().lease

ALLOWED = {
    (CopyStatus.PENDING, CopyStatus.IN_PROGRESS),
    (CopyStatus.IN_PROGRESS, CopyStatus.IN_PROGRESS),
    (CopyStatus.IN_PROGRESS, CopyStatus.COMPLETED),
    (CopyStatus.IN_PROGRESS, CopyStatus.FAILED),
    (CopyStatus.FAILED, CopyStatus.PENDING),
    (CopyStatus.PENDING, CopyStatus.ABORTED),
}


@pytest.fixture
def copy(sessions, clock) -> OrderCopy:
    with sessions.begin() as s:
        shop = make_shop(s)
    return create_copy(sessions, shop.source.id, now=clock.now)


def test_the_transition_table():
    table = {(a, b) for a, targets in copy_states.COPY_TRANSITIONS.items() for b in targets}
    assert table == ALLOWED
    assert set(copy_states.COPY_TRANSITIONS) == set(CopyStatus)


@pytest.mark.parametrize(
    ("start", "to"),
    [(a, b) for a in CopyStatus for b in CopyStatus if (a, b) not in ALLOWED],
)
def test_a_move_off_the_table_is_a_bug(sessions, copy, start, to):
    with sessions.begin() as s, pytest.raises(ValueError, match="is not a transition"):
        copy_states.transition(s, copy.id, to, sources=frozenset({start}))


def test_a_transition_from_another_status_changes_nothing(sessions, copy):
    with sessions.begin() as s:
        assert (
            copy_states.transition(
                s, copy.id, CopyStatus.PENDING, sources=frozenset({CopyStatus.FAILED})
            )
            is None
        )
        assert s.get_one(OrderCopy, copy.id).status == CopyStatus.PENDING


def _checkpoint(attempt: int, step: CopyStep | None = None) -> copy_states.Written:
    return copy_states.Written("", attempt, CopyStatus.IN_PROGRESS, step, None, {}, 0)


def test_a_checkpoint_renews_the_lease_and_writes_for_the_current_attempt(sessions, copy, clock):
    with sessions.begin() as s:
        copy_states.claim(s, copy.id, clock.now, LEASE, 8)
    later = clock.advance(10)

    with sessions.begin() as s:
        assert copy_states.lock_many(s, [(copy.id, 1)], later) == {copy.id}
        written = copy_states.write_many(
            s, [_checkpoint(1, CopyStep.TARGET_BUILT)._replace(id=copy.id)], later, LEASE
        )
        assert written == {copy.id}

    with sessions.begin() as s:
        row = s.get_one(OrderCopy, copy.id)
    assert (row.lease_expires_at, row.updated_at, row.step) == (
        later + LEASE,
        later,
        CopyStep.TARGET_BUILT,
    )


def test_a_run_of_an_older_attempt_is_fenced_out(sessions, copy, clock):
    with sessions.begin() as s:
        copy_states.claim(s, copy.id, clock.now, LEASE, 8)
        s.execute(update(OrderCopy).where(OrderCopy.id == copy.id).values(attempt=2))

    stale = _checkpoint(1, CopyStep.TARGET_BUILT)._replace(id=copy.id)
    with sessions.begin() as s:
        assert copy_states.lock_many(s, [(copy.id, 1)], clock.now) == set()
        assert copy_states.write_many(s, [stale], clock.now, LEASE) == set()
        assert copy_states.renew_many(s, [(copy.id, 1)], clock.now, LEASE) == set()

    with sessions.begin() as s:
        assert s.get_one(OrderCopy, copy.id).step is None


@pytest.mark.parametrize("status", [CopyStatus.COMPLETED, CopyStatus.FAILED, CopyStatus.PENDING])
def test_a_run_of_a_copy_no_longer_in_progress_is_fenced_out(sessions, copy, clock, status):
    with sessions.begin() as s:
        copy_states.claim(s, copy.id, clock.now, LEASE, 8)
        s.execute(update(OrderCopy).where(OrderCopy.id == copy.id).values(status=status))

    with sessions.begin() as s:
        assert copy_states.lock_many(s, [(copy.id, 1)], clock.now) == set()
        ended = _checkpoint(1)._replace(id=copy.id, status=CopyStatus.COMPLETED)
        assert copy_states.write_many(s, [ended], clock.now, LEASE) == set()

    with sessions.begin() as s:
        assert s.get_one(OrderCopy, copy.id).status == status


def test_error_log_counts_messages_and_clears_by_key():
    errors = ErrorLog({"line_items": ["a", "b"], "payment": []})
    errors.add(ErrorKey.PAYMENT_SOURCE, "c")

    assert (errors.count, bool(errors)) == (3, True)
    assert errors.as_dict() == {"line_items": ["a", "b"], "payment_source": ["c"]}
    assert errors.has(ErrorKey.PAYMENT, ErrorKey.PAYMENT_SOURCE) is True
    assert errors.has(ErrorKey.PAYMENT) is False

    errors.clear(ErrorKey.LINE_ITEMS, ErrorKey.PAYMENT_SOURCE)

    assert (errors.count, bool(errors), errors.as_dict()) == (0, False, {})
