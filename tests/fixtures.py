"""Shared fixtures: sessions (rolled back, or committed for real workers), gateways, a worker."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from copying import failpoints
from copying.engine import EngineConfig
from copying.gateways import Gateways, TestGateway
from models import Base, db


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
    tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
    with db.engine().begin() as connection:
        connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


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
def config() -> EngineConfig:
    return EngineConfig()


@pytest.fixture(autouse=True)
def _no_failpoints() -> Iterator[None]:
    failpoints.disable_all()
    yield
    failpoints.disable_all()
