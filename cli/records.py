"""What every listing and ``show`` command shares: pages, rows as JSON, ids only, field tables.

Read-only helpers; the caller owns the session. Domain rules stay in ``copying/``.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cli import output
from cli.rows import Record

if TYPE_CHECKING:
    from rich.table import Table

PageOption = Annotated[
    int, typer.Option("--page", min=1, metavar="N", help="Which page of --limit records, from 1.")
]
LimitOption = Annotated[
    int, typer.Option("--limit", min=1, max=1000, metavar="N", help="Records per page.")
]
JsonOption = Annotated[
    bool, typer.Option("--json", help="Print JSON (every column), for scripts and jq.")
]
QuietOption = Annotated[
    bool, typer.Option("--quiet", "-q", help="Print only the ids, one a line, for scripts.")
]


def columns(row: Any) -> dict[str, Any]:
    """Every column of ``row`` by its column name (``metadata``, not ``metadata_``): a
    record a listing read (cli/rows.py) or a mapped row."""
    if isinstance(row, Record):
        return vars(row)
    from sqlalchemy import inspect

    return {
        attribute.columns[0].name: getattr(row, attribute.key)
        for attribute in inspect(type(row)).column_attrs
    }


def plain(value: Any) -> Any:
    """A column's value as JSON has it: enums as their values, times in ISO 8601."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def print_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, sort_keys=True, default=plain))


def rows_json(rows: Sequence[Any]) -> list[dict[str, Any]]:
    return [{name: plain(value) for name, value in columns(row).items()} for row in rows]


def print_ids(rows: Sequence[Any]) -> None:
    for row in rows:
        typer.echo(row.id)


def text(value: Any) -> str:
    """A column's value for a table cell."""
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return output.when(value)
    if isinstance(value, dict | list):
        return json.dumps(value, indent=2, sort_keys=True, default=str)
    return str(plain(value))


def fields_table(title: str, row: Any) -> Table:
    """Every column of ``row``, in declaration order, internal ones included."""
    table = output.table(title=title, show_header=False)
    table.add_column("field", style="bold", no_wrap=True)
    table.add_column("value", overflow="fold")
    for name, value in columns(row).items():
        table.add_row(name, text(value))
    return table


def listing_table(title: str, names: Sequence[str], rows: Sequence[Sequence[str]]) -> Table:
    """A table sized to the terminal: ids and dates never wrap, the rest folds."""
    table = output.table(title=title)
    for name in names:
        wraps = name in ("errors", "data", "email", "target", "frequency")
        table.add_column(name, no_wrap=not wraps, overflow="fold")
    for row in rows:
        table.add_row(*row)
    return table


def footer(shown: int, page_number: int, limit: int) -> str:
    more = f"; --page {page_number + 1} for more" if shown == limit else ""
    return f"page {page_number}: {shown} shown{more}"


def list_newest(
    table: str,
    *,
    title: str,
    mode: str,
    status: str | None,
    page_number: int,
    limit: int,
    as_json: bool,
    quiet: bool,
    cells: Mapping[str, Callable[[Record], str]],
) -> None:
    """Print one page of ``table``'s records of ``mode`` (in ``status``, if given), newest
    first: as a table of ``cells`` (column name → the cell's text), as JSON, or ids."""
    from cli import process, rows

    with rows.reading(process.database_url()) as reader:
        found = reader.newest(table, mode=mode, status=status, page=page_number, limit=limit)
    if as_json:
        print_json(rows_json(found))
    elif quiet:
        print_ids(found)
    else:
        lines = [tuple(cell(row) for cell in cells.values()) for row in found]
        console = output.console()
        console.print(listing_table(f"{title} ({mode})", tuple(cells), lines))
        console.print(footer(len(found), page_number, limit))
