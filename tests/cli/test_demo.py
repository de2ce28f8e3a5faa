"""``ordercopy demo seed`` and ``ordercopy demo`` (run): what they write, wait for and report."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from cli.demo_scenarios import SCENARIOS
from cli.main import app
from copying.errors import TransientError
from copying.orders.gateways import Gateways
from models import (
    CopyStatus,
    CustomerPaymentSource,
    Order,
    OrderCopy,
    OrderStatus,
    PaymentStatus,
    Sku,
    utcnow,
)
from tests.fixtures import Published
from tests.runs import execute_one

FAILURE_CAUSES = {
    "out of stock",
    "discontinued SKU",
    "expired wallet entry",
    "declined card",
    "source not cancellable (never placed)",
    "empty source order",
    "zero-total order placed without a payment source",
    "flaky gateway: placed after two transient failures",
}


def demo_copies(sessions: sessionmaker[Session]) -> list[OrderCopy]:
    with sessions.begin() as session:
        return list(session.scalars(select(OrderCopy).order_by(OrderCopy.created_at)))


def count(sessions: sessionmaker[Session], model: type) -> int:
    with sessions.begin() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def options(copy: OrderCopy) -> tuple[bool, bool, bool, bool]:
    return (copy.place_target_order, copy.cancel_source_order, copy.reuse_wallet, copy.skip_errors)


def test_seed_writes_the_demo_it_describes(
    runner: CliRunner, committed: sessionmaker[Session], broker: Published
):
    result = runner.invoke(app, ["demo", "seed"])

    assert result.exit_code == 0, result.output
    assert f"{len(SCENARIOS)} order copies" in result.stdout
    copies = demo_copies(committed)
    assert len(copies) == len(SCENARIOS)
    assert broker == [copy.id for copy in copies]  # announced once each, after commit
    assert {copy.status for copy in copies} == {CopyStatus.PENDING}
    assert all(copy.reference == f"demo: {copy.metadata_['demo']}" for copy in copies)
    assert {copy.metadata_["expect"] for copy in copies} == {"completed", "failed"}
    assert {copy.metadata_["demo"] for copy in copies} >= FAILURE_CAUSES
    every_option = {options(copy) for copy in copies}
    alone = {
        (True, False, True, False),  # place_target_order
        (False, True, True, False),  # cancel_source_order
        (False, False, False, False),  # reuse_wallet off (it is on by default)
        (False, False, True, True),  # skip_errors
    }
    combined = {(True, True, True, False), (True, True, True, True), (True, False, True, True)}
    assert alone | combined <= every_option
    with committed.begin() as session:
        skus = {sku.code: sku for sku in session.scalars(select(Sku))}
        wallet = list(session.scalars(select(CustomerPaymentSource)))
        sources = {copy.id: session.get_one(Order, copy.source_order_id) for copy in copies}
    assert [sku.code for sku in skus.values() if sku.discontinued] == ["CAP-RETRO"]
    assert [sku.code for sku in skus.values() if sku.do_not_ship] == ["EBOOK-CARE"]
    assert {code for code, sku in skus.items() if sku.stock_quantity <= 3} == {
        "POSTER-A2",
        "LAMP-DESK",
    }
    assert {"tok_visa", "tok_declined", "tok_flaky"} <= {e.payment_source_token for e in wallet}
    assert [e.expires_on < utcnow().date() for e in wallet if e.expires_on].count(True) == 1
    assert len({e.customer_id for e in wallet}) == 1
    for copy in copies:
        source = sources[copy.id]
        if copy.cancel_source_order and copy.metadata_["expect"] == "completed":
            # placed through copying.orders.placing.place_order, so the copy can cancel it
            assert (source.status, source.payment_status) == (
                OrderStatus.PLACED,
                PaymentStatus.AUTHORIZED,
            )
        else:
            assert source.status in (OrderStatus.PENDING, OrderStatus.DRAFT)


def test_seed_if_empty_does_nothing_the_second_time(
    runner: CliRunner, committed: sessionmaker[Session], broker: Published
):
    first = runner.invoke(app, ["demo", "seed", "--if-empty"])
    counts = [count(committed, model) for model in (Sku, Order, OrderCopy)]
    second = runner.invoke(app, ["demo", "seed", "--if-empty"])

    assert first.exit_code == 0, first.output
    assert counts[2] == len(SCENARIOS)
    assert second.exit_code == 0, second.output
    assert "already holds orders; nothing seeded" in second.stdout
    assert [count(committed, model) for model in (Sku, Order, OrderCopy)] == counts
    assert len(broker) == len(SCENARIOS)


def test_seed_again_restocks_the_same_catalog(
    runner: CliRunner, committed: sessionmaker[Session], broker: Published
):
    def stock() -> dict[str, int]:
        with committed.begin() as session:
            return {sku.code: sku.stock_quantity for sku in session.scalars(select(Sku))}

    assert runner.invoke(app, ["demo", "seed"]).exit_code == 0
    after_first = stock()
    result = runner.invoke(app, ["demo", "seed"])

    assert result.exit_code == 0, result.output
    assert stock() == after_first
    assert count(committed, OrderCopy) == 2 * len(SCENARIOS)


@pytest.fixture
def worker(
    monkeypatch: pytest.MonkeyPatch, committed: sessionmaker[Session], gateways: Gateways
) -> Callable[[Callable[[], None]], None]:
    """Stands in for the running worker: executes each copy as soon as it is announced.

    ``make_worker(before)`` runs ``before`` first (to change the world under the demo).
    """
    from worker import publisher

    def make_worker(before: Callable[[], None] = lambda: None) -> None:
        def execute(copy_ids: Sequence[str]) -> None:
            before()
            for copy_id in copy_ids:
                for _ in range(5):  # what Celery's autoretry would do for tok_flaky
                    try:
                        execute_one(committed, copy_id, gateways=gateways)
                        break
                    except TransientError:
                        continue

        monkeypatch.setattr(publisher, "publish", execute)

    return make_worker


def test_demo_reports_every_outcome_and_passes_when_all_are_as_expected(
    runner: CliRunner, committed: sessionmaker[Session], worker: Callable[..., None]
):
    worker()

    result = runner.invoke(app, ["demo", "--timeout", "10"])

    assert result.exit_code == 0, result.output
    assert f"all {len(SCENARIOS)} order copies turned out as expected" in result.stdout
    copies = demo_copies(committed)
    for copy in copies:
        (row,) = [line for line in result.stdout.splitlines() if copy.id in line]
        assert f" {copy.metadata_['expect']} " in row
        assert row.rstrip(" │").endswith("yes")
    assert {copy.status for copy in copies} == {CopyStatus.COMPLETED, CopyStatus.FAILED}


def test_demo_run_fails_naming_a_copy_that_turned_out_otherwise(
    runner: CliRunner, committed: sessionmaker[Session], worker: Callable[..., None]
):
    def sell_the_last_lamp() -> None:
        with committed.begin() as session:
            session.execute(update(Sku).where(Sku.code == "LAMP-DESK").values(stock_quantity=0))

    worker(sell_the_last_lamp)

    result = runner.invoke(app, ["demo", "run", "--timeout", "10"])

    assert result.exit_code == 1
    (lamp,) = [c for c in demo_copies(committed) if "lamp" in c.metadata_["demo"]]
    assert lamp.status == CopyStatus.FAILED
    assert result.stderr == (
        f"ordercopy: 1 of {len(SCENARIOS)} demo copies did not turn out as expected: "
        f"{lamp.id} ({lamp.reference})\n"
    )
    (row,) = [line for line in result.stdout.splitlines() if lamp.id in line]
    assert "NO" in row
    assert "out of stock" in row


def test_demo_run_times_out_naming_the_copies_still_pending(
    runner: CliRunner, committed: sessionmaker[Session], broker: Published
):
    result = runner.invoke(app, ["demo", "run", "--timeout", "0"])

    assert result.exit_code == 1
    assert len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith("ordercopy: timed out after 0 s; still pending: ")
    for copy_id in broker:
        assert f"{copy_id} (demo: " in result.stderr
    assert result.stdout.count(" pending ") == len(SCENARIOS)
