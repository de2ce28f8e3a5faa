"""``ordercopy copies abort ID``: a pending copy never runs; anything else is a one-line error."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from cli.main import app
from copying.orders.gateways import Gateways
from copying.runs import Outcome
from models import CopyStatus, Mode, OrderCopy
from tests.factories import copy_events, create_copy, make_shop
from tests.runs import execute_one


@pytest.fixture
def source(committed: sessionmaker[Session]) -> str:
    with committed.begin() as s:
        return make_shop(s).source.id


def test_abort_a_pending_copy(runner: CliRunner, committed, gateways: Gateways, source: str):
    copy_id = create_copy(committed, source).id

    result = runner.invoke(app, ["copies", "abort", copy_id])

    assert result.exit_code == 0, result.output
    assert result.stdout == f"aborted order copy {copy_id}\n"
    assert execute_one(committed, copy_id, gateways=gateways) == Outcome.NOT_CLAIMED
    with committed.begin() as s:
        assert s.get_one(OrderCopy, copy_id).status == CopyStatus.ABORTED
        aborted = copy_events(s, copy_id)[-1]
    assert (aborted.kind, aborted.data) == ("aborted", {"by": "cli"})


def test_a_copy_not_pending_is_a_one_line_error(
    runner: CliRunner, committed, gateways: Gateways, source: str
):
    copy_id = create_copy(committed, source).id
    assert execute_one(committed, copy_id, gateways=gateways) == Outcome.COMPLETED

    result = runner.invoke(app, ["copies", "abort", copy_id])

    assert result.exit_code == 1
    assert result.stderr == (
        f"ordercopy: order copy {copy_id} is completed: only pending copies can be aborted\n"
    )
    assert result.stdout == ""
    with committed.begin() as s:
        assert s.get_one(OrderCopy, copy_id).status == CopyStatus.COMPLETED


def test_an_unknown_copy_or_one_of_the_other_mode_is_not_found(
    runner: CliRunner, committed, source: str
):
    copy_id = create_copy(committed, source).id

    unknown = runner.invoke(app, ["copies", "abort", "nOsUchCopy"])
    other_mode = runner.invoke(app, ["copies", "abort", copy_id, "--mode", "live"])

    assert unknown.exit_code == 1
    assert unknown.stderr == "ordercopy: order copy nOsUchCopy does not exist in test mode\n"
    assert other_mode.exit_code == 1
    assert other_mode.stderr == (f"ordercopy: order copy {copy_id} does not exist in live mode\n")
    with committed.begin() as s:
        assert s.get_one(OrderCopy, copy_id).status == CopyStatus.PENDING
        assert s.get_one(OrderCopy, copy_id).mode == Mode.TEST
