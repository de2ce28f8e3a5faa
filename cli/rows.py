"""The listings' records, read through the database's driver alone.

``copies list``, ``orders list`` and ``subscriptions list`` are what an operator runs again
and again, and scripts run in loops. Importing SQLAlchemy and the ORM models costs more
than the rest of such a command (issue 20), and a listing is one SELECT of one table (the
copies' listing adds one for the orders' numbers): so the listings send it through the
driver, :mod:`sqlite3` for the embedded default and psycopg for PostgreSQL, and every other
command reads through the models.

A record's values are what the models give: times timezone-aware in UTC, JSON decoded,
booleans as ``bool`` (SQLite's converted by each column's declared type, which the
migrations wrote); enums are their values (``"failed"``), as the models' JSON has them.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import closing, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

#: The tables the listings read, each newest first with its id breaking ties.
LISTED = ("order_copies", "orders", "order_subscriptions")

#: SQLite's declared column types (as the migrations wrote them) → the value the models give.
SQLITE_TYPES: dict[str, Callable[[Any], Any]] = {
    "DATETIME": lambda value: datetime.fromisoformat(value).replace(tzinfo=UTC),
    "JSON": json.loads,
    "BOOLEAN": bool,
}


class NoDatabase(LookupError):
    """The embedded database's file does not exist (``ordercopy db upgrade`` makes it)."""


class BadUrl(ValueError):
    """The database URL cannot be connected with as it is written (never quoted back: it
    may hold a password)."""


class Record(SimpleNamespace):
    """One row, its columns as attributes (``record.status``); ``vars(record)`` has them
    all by name."""


class Reader:
    """One connection to read from; :func:`reading` opens it."""

    def __init__(self, connection: Any, *, sqlite: bool) -> None:
        self._connection = connection
        self._sqlite = sqlite

    def newest(
        self, table: str, *, mode: str, status: str | None, page: int, limit: int
    ) -> list[Record]:
        """Page ``page`` of ``limit`` records of ``table`` in ``mode`` (and ``status``, if
        given), newest first."""
        if table not in LISTED:
            raise ValueError(f"{table!r} is not a listed table")
        where, values = "mode = %s", [mode]
        if status is not None:
            where, values = f"{where} AND status = %s", [*values, status]
        return self._select(
            table,
            f"SELECT * FROM {table} WHERE {where} ORDER BY created_at DESC, id LIMIT %s OFFSET %s",
            [*values, limit, (page - 1) * limit],
        )

    def order_numbers(self, order_ids: Iterable[str]) -> dict[str, int]:
        """Order id → order number, for the ids given."""
        ids = sorted(set(order_ids))
        if not ids:
            return {}
        marks = ", ".join(["%s"] * len(ids))
        found = self._select("orders", f"SELECT id, number FROM orders WHERE id IN ({marks})", ids)
        return {record.id: record.number for record in found}

    def _select(self, table: str, sql: str, values: Sequence[Any]) -> list[Record]:
        if self._sqlite:
            sql = sql.replace("%s", "?")
        with closing(self._connection.cursor()) as cursor:
            cursor.execute(sql, values)
            names = [column[0] for column in cursor.description]
            found = cursor.fetchall()
        convert = self._converters(table, names)
        return [
            Record(
                **{
                    name: value if value is None else to(value)
                    for name, value, to in zip(names, row, convert, strict=True)
                }
            )
            for row in found
        ]

    def _converters(self, table: str, names: Sequence[str]) -> list[Callable[[Any], Any]]:
        if not self._sqlite:
            return [_as_utc] * len(names)
        with closing(self._connection.cursor()) as cursor:
            declared = {row[1]: row[2] for row in cursor.execute(f"PRAGMA table_info({table})")}
        return [SQLITE_TYPES.get(declared.get(name, "").upper(), _same) for name in names]


@contextmanager
def reading(url: str) -> Iterator[Reader]:
    """A reader of the database at ``url`` (a SQLAlchemy URL of the settings' schemes)."""
    if url.startswith("sqlite:"):
        path = sqlite_path(url)
        if not path.is_file():  # never create the file a listing was pointed at by mistake
            raise NoDatabase(f"no database at {path}")
        import sqlite3

        with closing(sqlite3.connect(path, timeout=30)) as connection:
            yield Reader(connection, sqlite=True)
        return
    import psycopg
    from psycopg.conninfo import make_conninfo

    try:
        conninfo = make_conninfo("", **postgresql_params(url))
        # Autocommit: each SELECT is its own statement, as a read-only transaction would be.
        server = psycopg.connect(conninfo, connect_timeout=5, autocommit=True)
    except psycopg.ProgrammingError as error:  # libpq refused an option of the URL's query
        from copying.errors import one_line  # here: a listing that connects never needs it

        raise BadUrl(f"the database URL's options: {one_line(error)}") from None
    with server:
        yield Reader(server, sqlite=False)


def sqlite_path(url: str) -> Path:
    """The file of a SQLite URL (``sqlite:////absolute`` or ``sqlite:///relative``), its
    percent-escapes decoded as SQLAlchemy decodes them."""
    rest = url.partition("://")[2].removeprefix("/")
    return Path(unquote(rest.split("?", 1)[0]))


def postgresql_params(url: str) -> dict[str, str]:
    """psycopg's connection keywords for a SQLAlchemy PostgreSQL URL: its user, password
    (percent-escapes decoded, as SQLAlchemy does), host, port and database, and its query's
    libpq options; a repeated option (``host=a&host=b``, several hosts) joined by commas."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise BadUrl(f"the database URL is not valid ({error})") from None
    params = {
        "user": unquote(parts.username or ""),
        "password": unquote(parts.password or ""),
        "host": unquote(parts.hostname or ""),
        "port": "" if port is None else str(port),
        "dbname": unquote(parts.path.removeprefix("/")),
    }
    options: dict[str, list[str]] = {}
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        options.setdefault(name, []).append(value)
    params |= {name: ",".join(values) for name, values in options.items()}
    return {name: value for name, value in params.items() if value}


def is_driver_error(error: BaseException) -> bool:
    """Whether ``error`` is one of the drivers' (DB-API) errors, a driver loaded or not."""
    return any(
        name in sys.modules and isinstance(error, sys.modules[name].Error)
        for name in ("sqlite3", "psycopg")
    )


def _as_utc(value: Any) -> Any:
    return value.astimezone(UTC) if isinstance(value, datetime) else value


def _same(value: Any) -> Any:
    return value
