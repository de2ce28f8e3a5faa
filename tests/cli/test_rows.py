"""The listings' reads through the driver (cli/rows.py) give what the models give.

On PostgreSQL (psycopg) and on the embedded SQLite (sqlite3, its values converted by the
declared column types): every column of the copies, orders and subscriptions listed equals
the mapped row's, and prints as the same JSON (``true``, not ``1``; times in UTC).
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import make_url, select
from sqlalchemy.orm import Session, sessionmaker

from cli import records, rows
from models import Mode, Order, OrderCopy, OrderSubscription, utcnow
from tests.factories import Line, create_copy, make_order, make_sku, make_subscription

MODELS: dict[str, Any] = {
    "order_copies": OrderCopy,
    "orders": Order,
    "order_subscriptions": OrderSubscription,
}


@pytest.fixture(params=["postgresql", "sqlite"])
def store(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> tuple[sessionmaker[Session], str]:
    """A session factory on a database, and its URL as the settings would give it; a
    PostgreSQL session in another time zone than UTC (libpq's ``PGTZ``)."""
    monkeypatch.setenv("PGTZ", "Asia/Kolkata")
    if request.param == "postgresql":
        sessions = request.getfixturevalue("committed")
    else:
        sessions, _ = request.getfixturevalue("sqlite")
    return sessions, sessions.kw["bind"].url.render_as_string(hide_password=False)


@pytest.fixture
def listed(store: tuple[sessionmaker[Session], str]) -> None:
    """Records with every kind of value: JSON nested and empty, true and false, NULL, times."""
    sessions, _ = store
    with sessions.begin() as session:
        order = make_order(session, [Line(make_sku(session, stock=5), 2)])
        order.metadata_ = {"nested": {"list": [1, 2.5, None]}, "text": "café"}
    create_copy(sessions, order.id, place_target_order=True, reference="ref-1")
    create_copy(sessions, order.id, metadata={"batch": "b-1"})
    with sessions.begin() as session:
        make_subscription(
            session, session.get_one(Order, order.id), starts_at=utcnow() + timedelta(days=3)
        )


@pytest.mark.usefixtures("listed")
@pytest.mark.parametrize("table", list(MODELS))
def test_a_listing_reads_every_column_as_the_models_give_it(
    store: tuple[sessionmaker[Session], str], table: str
) -> None:
    sessions, url = store
    model = MODELS[table]
    with sessions.begin() as session:
        mapped = session.scalars(
            select(model).where(model.mode == Mode.TEST).order_by(model.created_at.desc(), model.id)
        )
        expected = [records.columns(row) for row in mapped]

    with rows.reading(url) as reader:
        found = reader.newest(table, mode="test", status=None, page=1, limit=50)

    assert expected  # the fixture wrote some
    assert [vars(record) for record in found] == expected
    printed = json.dumps(records.rows_json(found), default=records.plain, sort_keys=True)
    assert printed == json.dumps(expected, default=records.plain, sort_keys=True)


@pytest.mark.usefixtures("listed")
def test_order_numbers_are_read_for_the_ids_asked(
    store: tuple[sessionmaker[Session], str],
) -> None:
    sessions, url = store
    with sessions.begin() as session:
        numbers = {
            order_id: number for order_id, number in session.execute(select(Order.id, Order.number))
        }

    with rows.reading(url) as reader:
        assert reader.order_numbers([*numbers, "unknown"]) == numbers
        assert reader.order_numbers([]) == {}


def test_only_the_listed_tables_can_be_read(store: tuple[sessionmaker[Session], str]) -> None:
    _, url = store
    with rows.reading(url) as reader, pytest.raises(ValueError, match="api_keys"):
        reader.newest("api_keys", mode="test", status=None, page=1, limit=1)


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:////srv/ordercopy/ordercopy.db", "/srv/ordercopy/ordercopy.db"),
        ("sqlite:///var/ordercopy.db", "var/ordercopy.db"),
        ("sqlite:////srv/my%20shop/ordercopy.db?timeout=5", "/srv/my shop/ordercopy.db"),
    ],
)
def test_a_sqlite_url_names_its_file_as_sqlalchemy_reads_it(url: str, path: str) -> None:
    assert rows.sqlite_path(url) == Path(path)


def test_a_postgresql_url_becomes_libpq_keywords_its_escapes_decoded() -> None:
    url = (
        "postgresql+psycopg://ops:p%2Fa%25ss%40@db.internal:6432/shop"
        "?sslmode=require&host=db2.internal&host=db3.internal"
    )

    assert rows.postgresql_params(url) == {
        "user": "ops",
        "password": "p/a%ss@",
        "host": "db2.internal,db3.internal",
        "port": "6432",
        "dbname": "shop",
        "sslmode": "require",
    }


def test_a_password_that_libpq_could_not_read_in_a_url_still_connects(
    committed: sessionmaker[Session],
) -> None:
    """A ``%`` not followed by two hex digits: SQLAlchemy (and so every other command) takes
    it as it is, where libpq refuses the whole URL. Trust authentication here ignores the
    password, so connecting is the test."""
    url = committed.kw["bind"].url
    written = f"postgresql+psycopg://{url.username}:50%off@{url.host}:{url.port}/{url.database}"
    assert make_url(written).password == "50%off"
    with rows.reading(written) as reader:
        assert reader.order_numbers(["none"]) == {}


def test_a_port_that_is_not_a_number_is_a_bad_url_not_a_traceback() -> None:
    with pytest.raises(rows.BadUrl, match="not valid"):
        rows.postgresql_params("postgresql+psycopg://ops@db:port/shop")


def test_an_option_libpq_refuses_is_a_bad_url_naming_it_not_the_url(
    committed: sessionmaker[Session],
) -> None:
    url = committed.kw["bind"].url.update_query_dict({"bogus": "1"})
    written = url.set(password="s3cret").render_as_string(hide_password=False)
    with pytest.raises(rows.BadUrl, match='invalid connection option "bogus"') as refused:
        rows.reading(written).__enter__()
    assert "s3cret" not in str(refused.value)
