"""CLI tests: the ``ordercopy`` app run in-process by Typer's CliRunner.

The commands open their own units of work on the process's engine, so rows
they must see are written through the ``committed`` fixture.
"""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from config import get_settings
from config.logging import configure_logging
from tests.fixtures import Published


@pytest.fixture(scope="session", autouse=True)
def _logging_configured_once() -> None:
    """Configure logging before any command does, so no handler keeps a runner's stderr."""
    configure_logging(get_settings())


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def broker(monkeypatch: pytest.MonkeyPatch) -> Published:
    """Stands in for the worker's publisher: records the ids the CLI announced."""
    from worker import publisher

    announced = Published()
    monkeypatch.setattr(publisher, "publish", announced)
    return announced
