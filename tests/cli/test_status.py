"""``ordercopy status``: the report as tables, and as JSON for scripts."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from cli.main import app
from copying.copies import copy_states, lifecycle
from copying.orders.gateways import Gateways
from copying.runs import Outcome
from models import Mode, utcnow
from tests.factories import Line, create_copy, make_order, make_shop, make_sku
from tests.runs import execute_one

DISCONTINUED = "SKU GONE-TEE is discontinued"
LEASE = timedelta(seconds=30)


@dataclass
class World:
    """Copies in every status, finished just now (the command reads the real clock)."""

    pending: str
    fresh: str  # in progress, its lease running
    dead: str  # in progress, its lease expired
    live_failed: str


@pytest.fixture
def world(committed: sessionmaker[Session], gateways: Gateways) -> World:
    with committed.begin() as s:
        good = make_shop(s).source.id
        gone = make_order(s, [Line(make_sku(s, "GONE-TEE", discontinued=True), 1)]).id
        live_gone = make_order(
            s, [Line(make_sku(s, "GONE-TEE", discontinued=True, mode=Mode.LIVE))], mode=Mode.LIVE
        ).id

    def run(source: str, outcome: Outcome, mode: Mode = Mode.TEST) -> str:
        copy_id = create_copy(committed, source, mode=mode).id
        assert execute_one(committed, copy_id, gateways=gateways) == outcome
        return copy_id

    def claimed(at: datetime) -> str:
        copy_id = create_copy(committed, good, now=at).id
        with committed.begin() as s:
            assert copy_states.claim(s, copy_id, at, LEASE, max_claims=8) is not None
        return copy_id

    run(good, Outcome.COMPLETED)
    run(gone, Outcome.FAILED)
    aborted = create_copy(committed, good).id
    with committed.begin() as s:
        lifecycle.abort(s, aborted, Mode.TEST, by="ops")
    return World(
        pending=create_copy(committed, good).id,
        fresh=claimed(utcnow()),
        dead=claimed(utcnow() - timedelta(minutes=5)),
        live_failed=run(live_gone, Outcome.FAILED, Mode.LIVE),
    )


def table_rows(output: str) -> dict[str, list[str]]:
    """Every table body row, by its first cell."""
    rows = (
        [cell.strip() for cell in line.split("│")[1:-1]]
        for line in output.splitlines()
        if "│" in line
    )
    return {cells[0]: cells[1:] for cells in rows}


def test_json_is_the_whole_report(runner: CliRunner, world: World):
    result = runner.invoke(app, ["status", "--json"])

    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["mode"] == "test"
    now = datetime.fromisoformat(report["now"])
    assert now.utcoffset() == timedelta(0)
    assert report["counts"] == {
        "pending": 1,
        "in_progress": 2,
        "completed": 1,
        "failed": 1,
        "aborted": 1,
    }
    assert report["scheduled"] == 0
    oldest = report["oldest_pending"]
    assert oldest["id"] == world.pending
    assert (
        oldest["age_seconds"]
        == (now - datetime.fromisoformat(oldest["created_at"])).total_seconds()
    )
    assert [(c["id"], c["attempt"], c["lease_expired"]) for c in report["in_progress"]] == [
        (world.dead, 1, True),
        (world.fresh, 1, False),
    ]
    assert report["top_errors"] == [{"key": "line_items", "message": DISCONTINUED, "copies": 1}]
    assert report["throughput"] == [
        {
            "minutes": 5,
            "completed": 1,
            "failed": 1,
            "completed_per_minute": 0.2,
            "failed_per_minute": 0.2,
        },
        {
            "minutes": 60,
            "completed": 1,
            "failed": 1,
            "completed_per_minute": 1 / 60,
            "failed_per_minute": 1 / 60,
        },
    ]


def test_tables_show_each_part_of_the_report(runner: CliRunner, world: World):
    result = runner.invoke(app, ["status"])

    assert result.exit_code == 0, result.output
    out = result.stdout
    assert out.startswith("order copies in test mode at ")
    rows = table_rows(out)
    for status, count in (
        ("pending", "1"),
        ("in_progress", "2"),
        ("completed", "1"),
        ("failed", "1"),
        ("aborted", "1"),
    ):
        assert rows[status] == [count]
    assert f"oldest pending: {world.pending}, created " in out
    assert rows[world.dead][0:2] == ["1", "-"]
    assert rows[world.dead][-1].startswith("expired ")
    assert rows[world.dead][-1].endswith(" ago")
    assert rows[world.fresh][-1].endswith(" left")
    assert rows["1"] == ["line_items", DISCONTINUED]
    assert rows["5 min"] == ["1", "0.20", "1", "0.20"]
    assert rows["60 min"] == ["1", "0.02", "1", "0.02"]
    assert world.live_failed not in out


def test_the_mode_asked_for(runner: CliRunner, world: World):
    result = runner.invoke(app, ["status", "--json", "--mode", "live"])

    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["mode"] == "live"
    assert report["counts"] == {
        "pending": 0,
        "in_progress": 0,
        "completed": 0,
        "failed": 1,
        "aborted": 0,
    }
    assert (report["oldest_pending"], report["in_progress"]) == (None, [])


def test_nothing_yet(runner: CliRunner, committed):
    result = runner.invoke(app, ["status"])

    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "oldest pending: none waiting" in out
    assert "in progress: none" in out
    assert "top errors of copies failed in the last 24 h: none" in out
    rows = table_rows(out)
    assert rows["pending"] == rows["failed"] == ["0"]
    assert rows["5 min"] == rows["60 min"] == ["0", "0.00", "0", "0.00"]
