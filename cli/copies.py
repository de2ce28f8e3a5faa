"""``ordercopy copies``: list order copies and show one with its history."""

from __future__ import annotations

import enum
import json
from datetime import datetime
from typing import Annotated, Any

import typer
from rich.table import Table
from sqlalchemy import inspect

from cli import output, queries
from models import CopyStatus, Mode, OrderCopy, OrderCopyEvent, db

copies_app = typer.Typer(no_args_is_help=True, help="Order copies: list them, show one.")

ModeOption = Annotated[
    Mode, typer.Option("--mode", help="Which records to read: test or live.", case_sensitive=False)
]


@copies_app.command("list")
def list_copies(
    status: Annotated[
        CopyStatus | None, typer.Option("--status", help="Only copies in this status.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many.")] = 20,
    mode: ModeOption = Mode.TEST,
) -> None:
    """The newest order copies first."""
    with db.sessions().begin() as session:
        copies = queries.list_copies(session, mode, status=status, limit=limit)
        numbers = queries.order_numbers(session, _order_ids(copies))
    output.console().print(copies_table(copies, numbers, mode))


@copies_app.command("show")
def show_copy(
    copy_id: Annotated[str, typer.Argument(metavar="ID", help="The order copy's id.")],
    mode: ModeOption = Mode.TEST,
) -> None:
    """Every field of one order copy, then its events, oldest first."""
    with db.sessions().begin() as session:
        copy = queries.get_copy(session, copy_id, mode)
        if copy is None:
            output.fail(f"order copy {copy_id} does not exist in {mode} mode")
        events = queries.copy_events(session, copy.id)
        numbers = queries.order_numbers(session, _order_ids([copy]))
    console = output.console()
    console.print(fields_table(copy, numbers))
    console.print(events_table(events))


def copies_table(copies: list[OrderCopy], numbers: dict[str, int], mode: Mode) -> Table:
    table = Table(title=f"order copies ({mode})")
    for name in ("id", "status", "source", "target", "errors_count", "created_at"):
        table.add_column(name, no_wrap=name != "target")
    for copy in copies:
        table.add_row(
            copy.id,
            copy.status.value,
            _order(copy.source_order_id, numbers),
            _order(copy.target_order_id, numbers),
            str(copy.errors_count),
            output.when(copy.created_at),
        )
    return table


def fields_table(copy: OrderCopy, numbers: dict[str, int]) -> Table:
    """Every column of the copy, in declaration order, internal ones included."""
    table = Table(title=f"order copy {copy.id}", show_header=False)
    table.add_column("field", style="bold", no_wrap=True)
    table.add_column("value")
    for attribute in inspect(OrderCopy).column_attrs:
        value = getattr(copy, attribute.key)
        name = attribute.columns[0].name  # ``metadata``, not the attribute's ``metadata_``
        if attribute.key in ("source_order_id", "target_order_id"):
            table.add_row(name, _order(value, numbers))
        else:
            table.add_row(name, _value(value))
    return table


def events_table(events: list[OrderCopyEvent]) -> Table:
    table = Table(title="events (oldest first)")
    for name in ("at", "attempt", "kind", "data"):
        table.add_column(name, no_wrap=name != "data")
    for event in events:
        table.add_row(
            output.when(event.created_at),
            str(event.attempt),
            event.kind,
            output.as_json(event.data),
        )
    return table


def _order_ids(copies: list[OrderCopy]) -> set[str]:
    ids = {copy.source_order_id for copy in copies}
    return ids | {copy.target_order_id for copy in copies if copy.target_order_id}


def _order(order_id: str | None, numbers: dict[str, int]) -> str:
    if order_id is None:
        return "-"
    number = numbers.get(order_id)
    return f"{order_id} (#{number})" if number is not None else order_id


def _value(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict | list):
        return json.dumps(value, indent=2, sort_keys=True, default=str)
    return str(value)
