"""The copy task in a real worker process: transient retries and the log context."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from copying.copies import lifecycle
from copying.copies.dispatch import unit_of_work
from copying.copies.options import CopyOptions
from copying.orders import placing
from models import CopyStatus, Mode, OrderCopy, OrderCopyEvent
from tests.factories import Line, make_customer, make_order, make_sku, make_wallet_entry
from tests.invariants import violations
from tests.worker.processes import WorkerProcess, flush_broker, wait_for
from worker.publisher import publish

pytestmark = pytest.mark.slow

# Each claim is a chunk's (of one); once its stock is reserved, each run after a transient
# error goes on from that checkpoint, and the last one completes it.
ENGINE_EVENTS = {"chunk_claimed", "copy_transient_error", "chunk_completed"}


@pytest.mark.xdist_group("worker-processes")
def test_a_flaky_gateway_is_retried_by_celery_until_it_authorizes(committed, gateways, tmp_path):
    flush_broker()
    with committed.begin() as s:
        sku = make_sku(s, "FLAKY-TEE", stock=10)
        customer = make_customer(s)
        visa = make_wallet_entry(s, customer)
        flaky = make_wallet_entry(s, customer, token="tok_flaky")
        source = make_order(s, [Line(sku, 1)], customer=customer, wallet_entry=visa)
    assert placing.place_order(committed, source.id, Mode.TEST, gateways=gateways) == []
    with unit_of_work(committed, publish) as s:
        copy_id = lifecycle.create(
            s,
            mode=Mode.TEST,
            source_order_id=source.id,
            customer_payment_source_id=flaky.id,
            options=CopyOptions(place_target_order=True),
        ).id

    worker = WorkerProcess(tmp_path, "retrier", pool="prefork", log_level="INFO")
    try:

        def finished() -> bool:
            with committed.begin() as s:
                return s.get_one(OrderCopy, copy_id).status in (
                    CopyStatus.COMPLETED,
                    CopyStatus.FAILED,
                )

        wait_for(finished, 60, "the flaky copy to finish")
    finally:
        worker.stop()

    with committed.begin() as s:
        copy = s.get_one(OrderCopy, copy_id)
        assert copy.status == CopyStatus.COMPLETED, copy.errors_log
        kinds = s.scalars(
            select(OrderCopyEvent.kind)
            .where(OrderCopyEvent.order_copy_id == copy_id)
            .order_by(OrderCopyEvent.id)
        ).all()
        assert kinds.count("transient_error") == 2
        assert kinds.count("claimed") == 3
        assert kinds[-1] == "completed"
        assert violations(s, [copy_id], {"FLAKY-TEE": 10}) == []

    lines = [json.loads(line) for line in worker.log().splitlines() if line.startswith("{")]
    engine_lines = [line for line in lines if line.get("event") in ENGINE_EVENTS]
    assert {line["event"] for line in engine_lines} == ENGINE_EVENTS
    for line in engine_lines:
        assert line["task_id"]
        if line["event"].startswith("chunk_"):  # one line per chunk, naming its copies
            assert line["order_copy_ids"] == [copy_id]
            assert line["copies"] == 1
        else:
            assert line["order_copy_id"] == copy_id
            assert isinstance(line["attempt"], int)
    claims = [line for line in engine_lines if line["event"] == "chunk_claimed"]
    assert len(claims) == 3  # as many as the history's claimed events
    # The copy ran in chunks (of one): their checkpoints are logged once per chunk.
    checkpoints = [line for line in lines if line.get("event") == "chunk_checkpoint"]
    assert {line["step"] for line in checkpoints} == {"stock_reserved"}, checkpoints
    assert all(line["task_id"] and line["copies"] == 1 for line in checkpoints)
