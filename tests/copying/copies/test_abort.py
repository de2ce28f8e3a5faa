"""Aborting a pending copy: it never runs, and nothing else can be aborted."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from copying.copies import lifecycle
from copying.errors import CopyStateError, NotFoundError
from copying.runs import Outcome
from models import CopyStatus, Mode, OrderCopy, OrderCopyEvent
from tests.factories import create_copy, make_shop
from tests.runs import execute_one


@pytest.fixture
def pending(sessions):
    with sessions.begin() as s:
        shop = make_shop(s)
    return create_copy(sessions, shop.source.id, place_target_order=True)


def test_an_aborted_copy_is_never_claimed(sessions, gateways, pending):
    with sessions.begin() as s:
        aborted = lifecycle.abort(s, pending.id, Mode.TEST, by="ops")
        assert aborted.status == CopyStatus.ABORTED
    assert execute_one(sessions, pending.id, gateways=gateways) == Outcome.NOT_CLAIMED
    with sessions.begin() as s:
        copy = s.get_one(OrderCopy, pending.id)
        assert copy.status == CopyStatus.ABORTED
        assert copy.target_order_id is None
        assert copy.started_at is None
        kinds = s.scalars(
            select(OrderCopyEvent.kind)
            .where(OrderCopyEvent.order_copy_id == pending.id)
            .order_by(OrderCopyEvent.id)
        ).all()
        assert kinds == ["created", "aborted"]


@pytest.mark.parametrize(
    "status", [CopyStatus.IN_PROGRESS, CopyStatus.COMPLETED, CopyStatus.FAILED, CopyStatus.ABORTED]
)
def test_only_pending_copies_can_be_aborted(sessions, pending, status):
    with sessions.begin() as s:
        s.get_one(OrderCopy, pending.id).status = status
    with sessions.begin() as s, pytest.raises(CopyStateError, match=f"is {status}"):
        lifecycle.abort(s, pending.id, Mode.TEST, by="ops")


def test_aborting_an_unknown_or_other_mode_copy_is_not_found(sessions, pending):
    with sessions.begin() as s, pytest.raises(NotFoundError):
        lifecycle.abort(s, pending.id, Mode.LIVE, by="ops")
    with sessions.begin() as s, pytest.raises(NotFoundError):
        lifecycle.abort(s, "nope", Mode.TEST, by="ops")
