"""``ordercopy copies retry``: selection, dry run, a live run's progress bar and summary."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from cli.main import app
from copying.copies import bulk, lifecycle
from copying.copies.dispatch import unit_of_work
from copying.orders.gateways import Gateways
from models import CopyStatus, Mode, OrderCopy, OrderCopyEvent
from tests.failures import Failures, make_failures
from tests.fixtures import Published

HOUR = timedelta(hours=1)
DISCONTINUED = "SKU GONE-TEE is discontinued"
OUT_OF_STOCK = "SKU SHORT-TEE is out of stock (2 requested, 0 left)"


@pytest.fixture
def world(committed: sessionmaker[Session], gateways: Gateways) -> Failures:
    return make_failures(committed, gateways)


def statuses(sessions: sessionmaker[Session]) -> dict[str, CopyStatus]:
    with sessions.begin() as s:
        return dict(s.execute(select(OrderCopy.id, OrderCopy.status)).all())


def retried_by(sessions: sessionmaker[Session]) -> dict[str, str]:
    """Copy id → who retried it, from the history."""
    with sessions.begin() as s:
        events = s.scalars(select(OrderCopyEvent).where(OrderCopyEvent.kind == "retried")).all()
    return {event.order_copy_id: event.data["by"] for event in events}


def table_rows(output: str, columns: int) -> list[list[str]]:
    """The cells of every body row (not the header) of the tables with ``columns`` columns."""
    return [
        [cell.strip() for cell in line.split("│")[1:-1]]
        for line in output.splitlines()
        if line.count("│") == columns + 1
    ]


def summary(output: str) -> dict[str, int]:
    return {row[0]: int(row[1]) for row in table_rows(output, 2) if row[1].isdigit()}


def test_dry_run_prints_what_would_be_retried_and_changes_nothing(
    runner: CliRunner, committed, world: Failures, broker: Published
):
    before = statuses(committed)

    result = runner.invoke(app, ["copies", "retry", "--dry-run"])

    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "failed order copies that would be retried (test)" in out
    assert "┃ id " in out
    assert table_rows(out, 3) == [
        [world.a, "2026-11-20 09:00:00", f"line_items: {DISCONTINUED}"],
        [world.b, "2026-11-20 10:00:00", f"line_items: {OUT_OF_STOCK}"],
        [world.c, "2026-11-20 11:00:00", f"line_items: {DISCONTINUED}"],
    ]
    assert out.splitlines()[-1] == "dry run: 3 failed copies would be retried; nothing changed"
    assert world.live not in out
    assert statuses(committed) == before
    assert retried_by(committed) == {}
    assert broker == []


def test_retry_puts_the_selected_copies_back_to_pending_and_announces_them(
    runner: CliRunner, committed, world: Failures, broker: Published
):
    result = runner.invoke(app, ["copies", "retry", "--error-contains", "discontinued"])

    assert result.exit_code == 0, result.output
    assert "retry summary (test)" in result.stdout
    assert summary(result.stdout) == {
        "retried": 2,
        "skipped: no longer failed": 0,
        "errors": 0,
    }
    # The progress bar, on stderr, as it ended.
    assert "retrying 2 failed copies" in result.stderr
    assert "2/2" in result.stderr
    assert broker == [world.a, world.c]
    now = statuses(committed)
    assert (now[world.a], now[world.b], now[world.c]) == (
        CopyStatus.PENDING,
        CopyStatus.FAILED,
        CopyStatus.PENDING,
    )
    assert retried_by(committed) == {world.a: "cli", world.c: "cli"}


def test_a_second_run_finds_nothing_left_to_retry(
    runner: CliRunner, committed, world: Failures, broker: Published
):
    first = runner.invoke(app, ["copies", "retry", "--all"])
    second = runner.invoke(app, ["copies", "retry", "--all"])

    assert first.exit_code == 0, first.output
    assert summary(first.stdout)["retried"] == 3
    assert second.exit_code == 0, second.output
    assert second.stdout == "no failed copies in test mode match; nothing to retry\n"
    assert broker == [world.a, world.b, world.c]


Args = Callable[[Failures], list[str]]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        pytest.param(lambda w: ["--id", w.c, "--id", w.a], "ac", id="id"),
        pytest.param(lambda w: ["--since", "2026-11-20T10:00:00Z"], "bc", id="since"),
        pytest.param(lambda w: ["--until", "2026-11-20T10:00:00+00:00"], "a", id="until"),
        pytest.param(
            # 11:00+01:00 is 10:00 UTC; a time without an offset is UTC.
            lambda w: ["--since", "2026-11-20T11:00:00+01:00", "--until", "2026-11-20 11:00"],
            "b",
            id="since-until-offsets",
        ),
        pytest.param(lambda w: ["--since", "2026-11-21"], "", id="since-a-date"),
        pytest.param(lambda w: ["--reference-origin", "ops"], "b", id="reference-origin"),
        pytest.param(lambda w: ["--subscription", w.subscription_id], "c", id="subscription"),
        pytest.param(lambda w: ["--error-contains", "OUT OF STOCK"], "b", id="error-contains"),
        pytest.param(lambda w: ["--limit", "2"], "ab", id="limit"),
        pytest.param(lambda w: ["--mode", "live", "--all"], "L", id="mode"),
    ],
)
def test_each_criterion_selects_what_is_retried(
    runner: CliRunner, world: Failures, broker: Published, args: Args, expected: str
):
    names = {"a": world.a, "b": world.b, "c": world.c, "L": world.live}

    result = runner.invoke(app, ["copies", "retry", *args(world)])

    assert result.exit_code == 0, result.output
    assert broker == [names[letter] for letter in expected]
    if expected:
        assert summary(result.stdout)["retried"] == len(expected)


def test_ids_not_failed_are_named_on_stderr(runner: CliRunner, world: Failures, broker: Published):
    result = runner.invoke(app, ["copies", "retry", "--id", world.completed, "--id", world.a])

    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines()[0] == (
        f"ordercopy: not failed in test mode, or not matching the other criteria: {world.completed}"
    )
    assert broker == [world.a]


def test_a_bad_time_is_a_usage_error(runner: CliRunner, world: Failures, broker: Published):
    result = runner.invoke(app, ["copies", "retry", "--since", "yesterday"])

    assert result.exit_code == 2
    assert "'yesterday' is not an ISO 8601 date or time" in result.stderr
    assert broker == []


def test_a_copy_retried_by_someone_else_meanwhile_is_skipped(
    runner: CliRunner, committed, world: Failures, broker: Published, monkeypatch
):
    select_failed = bulk.select_failed
    elsewhere = Published()

    def selected_then_retried_elsewhere(session, mode, criteria):
        ids = select_failed(session, mode, criteria)
        with unit_of_work(committed, elsewhere) as other:
            lifecycle.retry(other, world.b, Mode.TEST, by="api")
        return ids

    monkeypatch.setattr(bulk, "select_failed", selected_then_retried_elsewhere)

    result = runner.invoke(app, ["copies", "retry", "--all"])

    assert result.exit_code == 0, result.output
    assert summary(result.stdout) == {"retried": 2, "skipped: no longer failed": 1, "errors": 0}
    assert broker == [world.a, world.c]
    assert elsewhere == [world.b]
    assert retried_by(committed) == {world.a: "cli", world.b: "api", world.c: "cli"}


def test_unexpected_errors_are_counted_and_named_and_the_run_goes_on(
    runner: CliRunner, committed, world: Failures, broker: Published, monkeypatch
):
    real_retry = lifecycle.retry

    def retry(session, copy_id, mode, **kwargs):
        if copy_id == world.b:
            raise RuntimeError("boom")
        return real_retry(session, copy_id, mode, **kwargs)

    monkeypatch.setattr(lifecycle, "retry", retry)

    result = runner.invoke(app, ["copies", "retry", "--all"])

    assert result.exit_code == 1
    assert summary(result.stdout) == {"retried": 2, "skipped: no longer failed": 0, "errors": 1}
    assert "unexpected errors" in result.stdout
    assert [world.b, "RuntimeError: boom"] in table_rows(result.stdout, 2)
    assert result.stderr.splitlines()[-1] == (
        "ordercopy: 1 of 3 retries failed; see the errors above"
    )
    assert broker == [world.a, world.c]
    assert statuses(committed)[world.b] == CopyStatus.FAILED


def test_a_retry_naming_nothing_asks_for_all(committed):
    result = CliRunner().invoke(app, ["copies", "retry"])
    assert result.exit_code == 1
    assert "or pass --all" in result.stderr
