"""The few statements where PostgreSQL and SQLite spell things differently."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date, datetime
from functools import cache
from typing import Any

from sqlalchemy import Table, TextClause, insert, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session


def insert_ignoring_conflicts(dialect: Dialect, table: Any, columns: Sequence[str]) -> Any:
    """``INSERT … ON CONFLICT (columns) DO NOTHING`` (both backends support it)."""
    module: Any = postgresql if dialect.name == "postgresql" else sqlite
    return module.insert(table).on_conflict_do_nothing(index_elements=list(columns))


def insert_rows(
    session: Session,
    table: Table,
    rows: Sequence[dict[str, Any]],
    *,
    skip_conflicts_on: Sequence[str] = (),
) -> None:
    """Insert ``rows`` (keyed by column name, every row with the same keys: ValueError
    otherwise) in one statement, each column left out taking its default, as
    ``insert(table)`` with many rows does; ``skip_conflicts_on``: ``ON CONFLICT (those
    columns) DO NOTHING``. Does not commit.

    PostgreSQL: the rows travel as one JSON document that ``json_populate_recordset`` turns
    into rows of the table's own types, in a statement whose text does not depend on the
    number of rows (psycopg keeps it prepared). An executemany sends, binds and runs one
    INSERT per row: two to four times the cost of a row. SQLite: the executemany. (A None
    in a JSON column is SQL NULL here, where SQLAlchemy's JSON type writes JSON null: no
    caller writes one.)
    """
    if not rows:
        return
    if any(row.keys() != rows[0].keys() for row in rows):
        raise ValueError(f"rows for {table.name} must all have the same keys (columns)")
    if session.get_bind().dialect.name != "postgresql":
        statement = (
            insert_ignoring_conflicts(session.get_bind().dialect, table, skip_conflicts_on)
            if skip_conflicts_on
            else insert(table)
        )
        session.execute(statement, list(rows))
        return
    given = tuple(rows[0])
    per_row = _row_defaults(table, given)
    if per_row:
        rows = [{**row, **{name: make() for name, make in per_row}} for row in rows]
    session.execute(
        _recordset_insert(table, given, tuple(skip_conflicts_on)),
        {"rows": json.dumps(rows, default=json_value)},
    )


@cache
def _row_defaults(table: Table, given: tuple[str, ...]) -> tuple[tuple[str, Any], ...]:
    """The Python-side defaults (a value or a callable, e.g. ids and timestamps) of the
    columns ``given`` leaves out, to compute for each row, as SQLAlchemy computes them;
    found once per table and columns (also by :func:`_recordset_insert`)."""
    made = []
    for column in table.columns:
        default = column.default
        if column.name in given or default is None:
            continue
        if default.is_scalar:
            made.append((column.name, lambda value=default.arg: value))  # type: ignore[attr-defined]
        elif default.is_callable:
            made.append((column.name, lambda make=default.arg: make(None)))  # type: ignore[attr-defined]
    return tuple(made)


@cache
def _recordset_insert(table: Table, given: tuple[str, ...], skip: tuple[str, ...]) -> TextClause:
    """The PostgreSQL statement of :func:`insert_rows`, built once per table and columns:
    the columns given and the Python-side defaults travel in the document; a column whose
    default is SQL (a sequence's ``nextval``) has it evaluated in the SELECT."""
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    quote = dialect.identifier_preparer.quote
    names, values = [], []
    defaulted = {name for name, _ in _row_defaults(table, given)}
    for column in table.columns:
        if column.name in given or column.name in defaulted:
            names.append(quote(column.name))
            values.append(f"r.{quote(column.name)}")
        elif column.default is not None and column.default.is_clause_element:
            names.append(quote(column.name))
            sql = column.default.arg.compile(dialect=dialect)  # type: ignore[attr-defined]
            values.append(str(sql))
    unknown = set(given) - {column.name for column in table.columns}
    if unknown:
        raise ValueError(f"{table.name} has no columns {sorted(unknown)}")
    conflict = f" ON CONFLICT ({', '.join(map(quote, skip))}) DO NOTHING" if skip else ""
    name = quote(table.name)
    return text(
        f"INSERT INTO {name} ({', '.join(names)}) SELECT {', '.join(values)}"
        f" FROM json_populate_recordset(NULL::{name}, CAST(:rows AS json)) AS r{conflict}"
    )


def json_value(value: Any) -> Any:
    """Dates and timezone-aware timestamps as ISO 8601, which PostgreSQL reads back."""
    if isinstance(value, datetime) and value.tzinfo is None:
        raise ValueError(f"naive datetime {value!r}: use timezone-aware UTC")
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} {value!r} cannot be a column value in JSON")
