"""Shared fixtures: sessions (rolled back, or committed for real workers), gateways, a worker."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from unittest import mock

import pytest
from sqlalchemy.orm import Session, sessionmaker

from config import get_settings
from copying.orders.gateways import Gateways, TestGateway
from copying.runs import RunConfig
from copying.testing import failpoints
from migrations import upgrade
from models import Base, MetricCount, db
from models.db import make_engine


class Published(list[str]):
    """The caller-side ``publish`` callable, recording what the domain announced."""

    def __call__(self, copy_ids: Sequence[str]) -> None:
        self.extend(copy_ids)


@pytest.fixture
def sessions() -> Iterator[sessionmaker[Session]]:
    """A session factory whose every unit of work is a savepoint, rolled back after the test."""
    with db.engine().connect() as connection:
        outer = connection.begin()
        yield sessionmaker(
            bind=connection, expire_on_commit=False, join_transaction_mode="create_savepoint"
        )
        outer.rollback()


def truncate_all() -> None:
    """Empty every table, children first, in one round trip (it runs before and after
    every test that commits: a statement at a time took most of its time in round trips).

    DELETE, not TRUNCATE: for the few rows a test writes it is about 70 times
    faster (TRUNCATE makes new files for every table).
    """
    with db.engine().begin() as connection:
        quote = connection.dialect.identifier_preparer.format_table
        # The deletes write their counts' deltas (PostgreSQL's triggers), whichever comes
        # first: with every table empty, no count is left, so metric_counts goes last.
        tables = [*reversed(Base.metadata.sorted_tables), MetricCount.__table__]
        connection.exec_driver_sql("".join(f"DELETE FROM {quote(table)};" for table in tables))


@pytest.fixture
def committed() -> Iterator[sessionmaker[Session]]:
    """The process's real session factory, for tests where other processes must see the rows.

    Every table is emptied afterwards.
    """
    truncate_all()
    yield db.sessions()
    truncate_all()


@pytest.fixture
def gateways() -> Gateways:
    return {"test": TestGateway(db.engine)}


@pytest.fixture
def published() -> Published:
    return Published()


@pytest.fixture
def config() -> RunConfig:
    return RunConfig()


@pytest.fixture(autouse=True)
def _no_failpoints() -> Iterator[None]:
    failpoints.disable_all()
    yield
    failpoints.disable_all()


@pytest.fixture(scope="session")
def _migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The embedded default's database migrated once per run, for ``sqlite`` to copy."""
    path = tmp_path_factory.mktemp("sqlite-migrated") / "ordercopy.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture
def sqlite(
    tmp_path: Path, _migrated_sqlite: Path
) -> Iterator[tuple[sessionmaker[Session], Gateways]]:
    """The embedded default's database, migrated, in a temp dir: a session factory on it
    and a test gateway writing its ledger there too. A copy of one migrated database
    (SQLite's backup: the pages as committed, whatever is still in its WAL): migrating
    SQLite took a second or more per test."""
    path = tmp_path / "ordercopy.db"
    with (
        contextlib.closing(sqlite3.connect(_migrated_sqlite)) as migrated,
        contextlib.closing(sqlite3.connect(path)) as fresh,
    ):
        migrated.backup(fresh)
    sqlite_engine = make_engine(f"sqlite:///{path}")
    yield (
        sessionmaker(sqlite_engine, expire_on_commit=False),
        {"test": TestGateway(lambda: sqlite_engine)},
    )
    sqlite_engine.dispose()


@pytest.fixture
def settings_env() -> Iterator[dict[str, str]]:
    """Environment changes for this test only, seen by the next ``get_settings()``."""
    with mock.patch.dict(os.environ) as environ:
        get_settings.cache_clear()
        yield environ
    get_settings.cache_clear()
