"""``ordercopy copies list`` and ``ordercopy copies show``."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from cli.main import app
from copying.copies import lifecycle
from copying.copies.dispatch import unit_of_work
from copying.orders.gateways import Gateways
from models import CopyStatus, Mode, Order, OrderCopy
from tests.factories import Line, make_customer, make_order, make_sku, make_wallet_entry
from tests.fixtures import Published
from tests.runs import execute_one


@dataclass
class World:
    completed: OrderCopy
    failed: OrderCopy
    pending: OrderCopy
    live: OrderCopy
    source: Order
    target: Order


@pytest.fixture
def world(committed: sessionmaker[Session], gateways: Gateways, published: Published) -> World:
    """Three test copies (completed, failed, pending, created in that order) and a live one."""
    with committed.begin() as session:
        sku = make_sku(session, stock=10)
        customer = make_customer(session)
        entry = make_wallet_entry(session, customer)
        source = make_order(session, [Line(sku, 2)], customer=customer, wallet_entry=entry)
        gone = make_order(session, [Line(make_sku(session, stock=0), 1)], customer=customer)
        live_source = make_order(session, [Line(make_sku(session, mode=Mode.LIVE))], mode=Mode.LIVE)
    copies = []
    for source_id, mode in ((source.id, Mode.TEST), (gone.id, Mode.TEST), (source.id, Mode.TEST)):
        with unit_of_work(committed, published) as session:
            copies.append(lifecycle.create(session, mode=mode, source_order_id=source_id))
    with unit_of_work(committed, published) as session:
        live = lifecycle.create(session, mode=Mode.LIVE, source_order_id=live_source.id)
    for copy in copies[:2]:
        execute_one(committed, copy.id, gateways=gateways)
    with committed.begin() as session:
        completed, failed, pending = (session.get_one(OrderCopy, c.id) for c in copies)
        target = session.get_one(Order, completed.target_order_id)
    assert (completed.status, failed.status, pending.status) == (
        CopyStatus.COMPLETED,
        CopyStatus.FAILED,
        CopyStatus.PENDING,
    )
    return World(completed, failed, pending, live, source, target)


def lines_with(output: str, text: str) -> list[str]:
    return [line for line in output.splitlines() if text in line]


def event_kinds(output: str) -> list[str]:
    """The ``kind`` cells of the events table (at, attempt, kind, data), top to bottom."""
    rows = [
        [cell.strip() for cell in line.split("│")[1:-1]]
        for line in output.splitlines()
        if line.count("│") == 5
    ]
    return [row[2] for row in rows if row[0]]  # a row with no time continues the one above


def test_list_shows_each_copy_newest_first_with_its_orders(runner: CliRunner, world: World):
    result = runner.invoke(app, ["copies", "list"])

    assert result.exit_code == 0, result.output
    out = result.stdout
    for name in ("id", "status", "source", "target", "errors_count", "created_at"):
        assert name in out
    ids = [world.pending.id, world.failed.id, world.completed.id]
    assert sorted(ids, key=out.index) == ids  # newest first
    (completed_row,) = lines_with(out, world.completed.id)
    assert "completed" in completed_row
    assert f"{world.source.id} (#{world.source.number})" in completed_row
    assert f"{world.target.id} (#{world.target.number})" in completed_row
    assert f"{world.completed.created_at:%Y-%m-%d %H:%M:%S}" in completed_row
    (failed_row,) = lines_with(out, world.failed.id)
    assert "failed" in failed_row
    assert f" {world.failed.errors_count} " in failed_row
    assert world.failed.errors_count == 1
    assert world.live.id not in out


def test_list_filters_by_status_and_limits_the_count(runner: CliRunner, world: World):
    failed = runner.invoke(app, ["copies", "list", "--status", "failed"])
    newest = runner.invoke(app, ["copies", "list", "--limit", "1"])

    assert failed.exit_code == 0, failed.output
    assert world.failed.id in failed.stdout
    assert world.completed.id not in failed.stdout
    assert world.pending.id not in failed.stdout
    assert newest.exit_code == 0, newest.output
    assert world.pending.id in newest.stdout
    assert world.failed.id not in newest.stdout
    assert world.completed.id not in newest.stdout


def test_list_reads_the_mode_asked_for(runner: CliRunner, world: World):
    result = runner.invoke(app, ["copies", "list", "--mode", "live"])

    assert result.exit_code == 0, result.output
    assert world.live.id in result.stdout
    assert world.completed.id not in result.stdout


def test_show_prints_every_field_and_the_events_oldest_first(runner: CliRunner, world: World):
    result = runner.invoke(app, ["copies", "show", world.failed.id])

    assert result.exit_code == 0, result.output
    out = result.stdout
    for column in OrderCopy.__table__.columns:
        assert lines_with(out, f" {column.name} "), f"field {column.name} not shown"
    (status_row,) = lines_with(out, " status ")
    assert "failed" in status_row
    (errors,) = world.failed.errors_log["line_items"]
    assert errors.split("(")[0] in out
    assert '"line_items"' in out
    assert event_kinds(out) == ["created", "claimed", "failed"]


def test_show_completed_copy_names_its_target_order(runner: CliRunner, world: World):
    result = runner.invoke(app, ["copies", "show", world.completed.id])

    assert result.exit_code == 0, result.output
    (target_row,) = lines_with(result.stdout, " target_order_id ")
    assert f"{world.target.id} (#{world.target.number})" in target_row
    assert event_kinds(result.stdout) == ["created", "claimed", "completed"]


def test_show_unknown_id_is_a_one_line_error(runner: CliRunner, world: World):
    result = runner.invoke(app, ["copies", "show", "nOsUchCopy"])

    assert result.exit_code == 1
    assert result.stderr == "ordercopy: order copy nOsUchCopy does not exist in test mode\n"
    assert result.stdout == ""


def test_show_a_copy_of_the_other_mode_is_unknown(runner: CliRunner, world: World):
    result = runner.invoke(app, ["copies", "show", world.completed.id, "--mode", "live"])

    assert result.exit_code == 1
    assert result.stderr == (
        f"ordercopy: order copy {world.completed.id} does not exist in live mode\n"
    )
    assert result.stdout == ""
