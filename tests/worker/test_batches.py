"""One message for many copies (the renewals' doorbell): every copy runs once, and one that
meets transient trouble goes on in a message of its own."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from copying.copies import lifecycle
from copying.copies.dispatch import unit_of_work
from copying.copies.options import CopyOptions
from models import CopyStatus, Mode, OrderCopy
from tasks.renewals import publish_renewals
from tests.factories import copy_events, make_shop
from tests.fixtures import Published
from tests.invariants import violations
from tests.worker.processes import WorkerProcess, flush_broker, wait_for

pytestmark = pytest.mark.slow


@pytest.mark.xdist_group("worker-processes")
def test_a_batch_runs_each_copy_once_and_hands_on_a_flaky_one(committed, tmp_path):
    flush_broker()
    with committed.begin() as s:
        shops = [make_shop(s, stock=10) for _ in range(3)]
        flaky = make_shop(s, stock=10, token="tok_flaky")
    with unit_of_work(committed, Published()) as s:  # no doorbell of their own
        ids = [
            lifecycle.create(
                s,
                mode=Mode.TEST,
                source_order_id=shop.source.id,
                options=CopyOptions(place_target_order=True),
            ).id
            for shop in [*shops, flaky]
        ]
    flaky_id = ids[-1]
    publish_renewals([*ids, ids[0]])  # a duplicate in the batch finds its copy finished

    def finished() -> bool:
        with committed.begin() as s:
            statuses = s.scalars(select(OrderCopy.status).where(OrderCopy.id.in_(ids))).all()
            return set(statuses) == {CopyStatus.COMPLETED}

    worker = WorkerProcess(tmp_path, "batcher")
    try:
        wait_for(finished, 90, "every copy of the batch to complete")
    finally:
        worker.stop()
    with committed.begin() as s:
        stock = {shop.sku.code: 10 for shop in [*shops, flaky]}
        assert violations(s, ids, stock) == []
        for copy_id in ids[:-1]:
            kinds = [e.kind for e in copy_events(s, copy_id)]
            assert kinds.count("claimed") == 1, kinds
            assert "transient_error" not in kinds
        kinds = [e.kind for e in copy_events(s, flaky_id)]
        # tok_flaky fails twice per key: the batch hands it on, its own message retries.
        assert kinds.count("transient_error") == 2, kinds
        assert kinds[-1] == "completed"
