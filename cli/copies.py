"""``ordercopy copies``: list order copies, show one with its history, create, retry, abort.

``retry`` is thin: the selection and the retries are :mod:`copying.copies.bulk`'s; this
module parses the criteria, shows the progress and prints the summary.
"""

from __future__ import annotations

import enum
import json
import logging
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cli import output, process, records
from cli.choices import CopyStatusName, ModeOption

if TYPE_CHECKING:
    from rich.progress import Progress
    from rich.table import Table

    from cli.rows import Record
    from copying.copies.bulk import RetrySummary
    from models import OrderCopy, OrderCopyEvent

copies_app = typer.Typer(
    no_args_is_help=True,
    rich_markup_mode=None,
    help="Order copies: list them, show one, create one, retry failed ones, abort one.",
)


@copies_app.command("list")
def list_copies(
    status: Annotated[
        CopyStatusName | None, typer.Option("--status", help="Only copies in this status.")
    ] = None,
    page: records.PageOption = 1,
    limit: records.LimitOption = 20,
    as_json: records.JsonOption = False,
    quiet: records.QuietOption = False,
    mode: ModeOption = "test",
) -> None:
    """The newest order copies first."""
    from cli import rows

    with rows.reading(process.database_url()) as reader:
        copies = reader.newest("order_copies", mode=mode, status=status, page=page, limit=limit)
        numbers = reader.order_numbers(_order_ids(copies))
    if as_json:
        records.print_json(records.rows_json(copies))
    elif quiet:
        records.print_ids(copies)
    else:
        console = output.console()
        console.print(copies_table(copies, numbers, mode))
        console.print(records.footer(len(copies), page, limit))


@copies_app.command("show")
def show_copy(
    copy_id: Annotated[str, typer.Argument(metavar="ID", help="The order copy's id.")],
    as_json: records.JsonOption = False,
    mode: ModeOption = "test",
) -> None:
    """Every field of one order copy, then its events, oldest first."""
    from cli import queries
    from models import Mode

    with process.sessions().begin() as session:
        copy = queries.get_copy(session, copy_id, Mode(mode))
        if copy is None:
            output.fail(f"order copy {copy_id} does not exist in {mode} mode")
        events = queries.copy_events(session, copy.id)
        numbers = queries.order_numbers(session, _order_ids([copy]))
    if as_json:
        document = records.rows_json([copy])[0]
        document["events"] = records.rows_json(events)
        records.print_json(document)
        return
    console = output.console()
    console.print(fields_table(copy, numbers))
    console.print(events_table(events))


@copies_app.command("create")
def create_copy(
    source_order: Annotated[
        str, typer.Argument(metavar="SOURCE_ORDER", help="The id of the order to copy.")
    ],
    place: Annotated[
        bool, typer.Option("--place", help="Place the target order (authorize its payment).")
    ] = False,
    cancel_source: Annotated[
        bool, typer.Option("--cancel-source", help="Cancel the source order once copied.")
    ] = False,
    no_wallet: Annotated[
        bool, typer.Option("--no-wallet", help="Do not reuse the source's wallet entry.")
    ] = False,
    skip_errors: Annotated[
        bool,
        typer.Option("--skip-errors", help="Complete with errors recorded, if a target exists."),
    ] = False,
    reference: Annotated[
        str | None, typer.Option(metavar="TEXT", help="Your reference for the copy.")
    ] = None,
    mode: ModeOption = "test",
) -> None:
    """Create a pending copy of SOURCE_ORDER; a worker runs it. Prints the copy's id."""
    from copying.copies import lifecycle
    from copying.copies.dispatch import unit_of_work
    from copying.copies.options import CopyOptions
    from copying.errors import CopyInputError
    from models import Mode

    # The worker's publisher: importing it builds the Celery app.
    from worker import publisher

    try:
        with unit_of_work(process.sessions(), publisher.publish) as session:
            copy = lifecycle.create(
                session,
                mode=Mode(mode),
                source_order_id=source_order,
                options=CopyOptions(
                    place_target_order=place,
                    cancel_source_order=cancel_source,
                    reuse_wallet=not no_wallet,
                    skip_errors=skip_errors,
                ),
                reference=reference,
                reference_origin="cli",
            )
            copy_id = copy.id
    except CopyInputError as error:
        output.fail(str(error))
    output.error_line(f"created order copy {copy_id} of order {source_order} (pending)")
    typer.echo(copy_id)


def parse_moment(value: str) -> datetime:
    """An ISO 8601 date or date-time; without an offset it is read as UTC."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is not an ISO 8601 date or time, like 2026-11-20 or 2026-11-20T09:30:00Z"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


@copies_app.command("retry")
def retry_copies(
    ids: Annotated[
        list[str] | None,
        typer.Option("--id", metavar="ID", help="This failed copy (repeat for more)."),
    ] = None,
    since: Annotated[
        datetime | None,
        typer.Option(
            parser=parse_moment,
            metavar="WHEN",
            help="Failed at or after WHEN (ISO 8601; UTC unless an offset is given).",
        ),
    ] = None,
    until: Annotated[
        datetime | None,
        typer.Option(
            parser=parse_moment,
            metavar="WHEN",
            help="Failed before WHEN (ISO 8601; UTC unless an offset is given).",
        ),
    ] = None,
    reference_origin: Annotated[
        str | None,
        typer.Option(metavar="ORIGIN", help="Copies whose reference_origin is exactly ORIGIN."),
    ] = None,
    subscription: Annotated[
        str | None, typer.Option(metavar="ID", help="Renewals of this order subscription.")
    ] = None,
    error_contains: Annotated[
        str | None,
        typer.Option(metavar="TEXT", help="errors_log mentions TEXT (in any case)."),
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option(min=1, metavar="N", help="At most N copies, the oldest failures first."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print what would be retried; change nothing.")
    ] = False,
    every: Annotated[
        bool, typer.Option("--all", help="With no criterion: really retry every failed copy.")
    ] = False,
    mode: ModeOption = "test",
) -> None:
    """Retry failed copies matching every criterion given, each once.

    Each copy is put back to pending in its own transaction and announced to the
    workers after commit; it resumes from its last checkpoint. A copy another
    retry (or anyone) already moved on is skipped, so two runs at once retry
    each copy once.
    """
    from cli import queries
    from copying.copies import bulk
    from copying.copies.bulk import RetryCriteria, RetryOutcome
    from models import Mode

    criteria = RetryCriteria(
        ids=tuple(ids or ()),
        since=since,
        until=until,
        reference_origin=reference_origin,
        subscription_id=subscription,
        error_contains=error_contains,
        limit=limit,
    )
    if criteria == RetryCriteria() and not (every or dry_run):
        output.fail("name the copies to retry (--id, --since, --error-contains, …), or pass --all")
    with process.sessions().begin() as session:
        if dry_run:
            copies = queries.failed_copies(session, Mode(mode), criteria)
            selected = [copy.id for copy in copies]
        else:
            selected = bulk.select_failed(session, Mode(mode), criteria)
    chosen = set(selected)
    unmatched = [copy_id for copy_id in dict.fromkeys(criteria.ids) if copy_id not in chosen]
    if unmatched and criteria.limit is None:
        output.error_line(
            f"not failed in {mode} mode, or not matching the other criteria: {', '.join(unmatched)}"
        )
    if not selected:
        typer.echo(f"no failed copies in {mode} mode match; nothing to retry")
        return
    if dry_run:
        output.console().print(would_retry_table(copies, mode))
        typer.echo(f"dry run: {failed_copies(len(copies))} would be retried; nothing changed")
        return
    # The worker's publisher: importing it builds the Celery app.
    from worker import publisher

    with _progress_bar() as progress:
        task = progress.add_task(f"retrying {failed_copies(len(selected))}", total=len(selected))

        def advance(_copy_id: str, _outcome: RetryOutcome) -> None:
            progress.advance(task)

        summary = bulk.retry_each(
            process.sessions(),
            selected,
            Mode(mode),
            by="cli",
            publish=publisher.publish,
            progress_callback=advance,
        )
    console = output.console()
    console.print(summary_table(summary, mode))
    if summary.errors:
        console.print(errors_table(summary))
        output.fail(
            f"{len(summary.errors)} of {summary.total} retries failed; see the errors above"
        )


@copies_app.command("abort")
def abort_copy(
    copy_id: Annotated[str, typer.Argument(metavar="ID", help="The pending order copy's id.")],
    mode: ModeOption = "test",
) -> None:
    """Abort a pending copy: it will never run."""
    from copying.copies import lifecycle
    from copying.errors import CopyStateError, NotFoundError
    from models import Mode

    try:
        with process.sessions().begin() as session:
            lifecycle.abort(session, copy_id, Mode(mode), by="cli")
    except (CopyStateError, NotFoundError) as error:
        output.fail(str(error))
    typer.echo(f"aborted order copy {copy_id}")


@contextmanager
def _progress_bar() -> Iterator[Progress]:
    """A progress bar on stderr (stdout stays for the summary); log lines print above it."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=output.console(sys.stderr),
    )
    with progress:
        terminal = progress.console.file
        # On a terminal rich swaps sys.stderr for a proxy that prints above the bar;
        # the log handler still holds the real stream and would tear the bar apart.
        handlers = [
            handler
            for handler in logging.getLogger().handlers
            if isinstance(handler, logging.StreamHandler) and handler.stream is terminal
        ]
        if progress.console.is_terminal and sys.stderr is not terminal:
            for handler in handlers:
                handler.setStream(sys.stderr)
        try:
            yield progress
        finally:
            for handler in handlers:
                handler.setStream(terminal)


def failed_copies(count: int) -> str:
    return f"{count} failed {'copy' if count == 1 else 'copies'}"


def would_retry_table(copies: list[OrderCopy], mode: str) -> Table:
    table = output.table(title=f"failed order copies that would be retried ({mode})")
    for name in ("id", "failed_at", "errors"):
        table.add_column(name, no_wrap=name != "errors")
    for copy in copies:
        table.add_row(copy.id, output.when(copy.failed_at), output.errors_text(copy.errors_log))
    return table


def summary_table(summary: RetrySummary, mode: str) -> Table:
    table = output.table(title=f"retry summary ({mode})")
    table.add_column("outcome", no_wrap=True)
    table.add_column("copies", justify="right")
    table.add_row("retried", str(len(summary.retried)))
    table.add_row("skipped: no longer failed", str(len(summary.skipped)))
    table.add_row("errors", str(len(summary.errors)))
    return table


def errors_table(summary: RetrySummary) -> Table:
    table = output.table(title="unexpected errors")
    table.add_column("id", no_wrap=True)
    table.add_column("error")
    for copy_id, error in summary.errors.items():
        table.add_row(copy_id, error)
    return table


def copies_table(copies: list[Record], numbers: dict[str, int], mode: str) -> Table:
    table = output.table(title=f"order copies ({mode})")
    for name in ("id", "status", "source", "target", "errors_count", "created_at"):
        table.add_column(name, no_wrap=name != "target")
    for copy in copies:
        table.add_row(
            copy.id,
            copy.status,
            _order(copy.source_order_id, numbers),
            _order(copy.target_order_id, numbers),
            str(copy.errors_count),
            output.when(copy.created_at),
        )
    return table


def fields_table(copy: OrderCopy, numbers: dict[str, int]) -> Table:
    """Every column of the copy, in declaration order, internal ones included."""
    from sqlalchemy import inspect

    from models import OrderCopy

    table = output.table(title=f"order copy {copy.id}", show_header=False)
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
    table = output.table(title="events (oldest first)")
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


def _order_ids(copies: Sequence[OrderCopy | Record]) -> set[str]:
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
