"""A database error in the middle of a run gives the lease back, so a retry claims at once."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import OperationalError

from copying.runs import Outcome
from copying.testing import failpoints
from models import CopyStatus, OrderCopy
from tests.factories import copy_events, create_copy, make_shop
from tests.runs import execute_one


def test_a_database_error_releases_the_lease_and_the_retry_resumes(sessions, gateways, clock):
    with sessions.begin() as s:
        shop = make_shop(s)
    copy = create_copy(sessions, shop.source.id, place_target_order=True, now=clock.now)
    with failpoints.enabled("after_build", "dberror"), pytest.raises(OperationalError):
        execute_one(sessions, copy.id, gateways=gateways, clock=clock)
    with sessions.begin() as s:
        stalled = s.get_one(OrderCopy, copy.id)
        assert stalled.status == CopyStatus.IN_PROGRESS
        assert stalled.lease_expires_at == clock.now  # given back, not held for 30 s
        assert stalled.step == "stock_reserved"  # built and reserved in one transaction
        assert copy_events(s, copy.id)[-1].kind == "transient_error"
    # The same instant: no need to wait for the lease to expire.
    assert execute_one(sessions, copy.id, gateways=gateways, clock=clock) == Outcome.COMPLETED
    with sessions.begin() as s:
        done = s.get_one(OrderCopy, copy.id)
        assert done.attempt == 2
        assert done.target_order_id == stalled.target_order_id
