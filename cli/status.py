"""``ordercopy status``: how the copies of one mode are doing now, as tables or JSON.

The numbers are :func:`copying.copies.status.status_report`'s; this module only renders them.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cli import output, process
from cli.choices import ModeOption

if TYPE_CHECKING:
    from rich.console import Group
    from rich.table import Table

    from copying.copies.status import StatusReport


def status(
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the report as JSON, for scripts.")
    ] = False,
    mode: ModeOption = "test",
) -> None:
    """How the order copies are doing now.

    Copies by status, the oldest pending one, those in progress and their leases,
    the top errors of the last 24 h, and throughput over the last 5 and 60 minutes.
    """
    from copying.copies.status import status_report
    from models import Mode, utcnow

    with process.sessions().begin() as session:
        report = status_report(session, Mode(mode), now=utcnow())
    if as_json:
        typer.echo(report_json(report))
    else:
        output.console().print(render(report))


def report_json(report: StatusReport) -> str:
    """The report as JSON: times in ISO 8601 (UTC), statuses and steps as their names."""

    def convert(value: Any) -> Any:
        if isinstance(value, datetime):
            return value.isoformat()
        raise TypeError(f"{type(value).__name__} is not JSON serializable")

    return json.dumps(dataclasses.asdict(report), indent=2, default=convert)


def render(report: StatusReport) -> Group:
    from rich.console import Group

    in_progress: Table | str = (
        in_progress_table(report) if report.in_progress else "in progress: none"
    )
    top_errors: Table | str = (
        top_errors_table(report)
        if report.top_errors
        else "top errors of copies failed in the last 24 h: none"
    )
    return Group(
        f"order copies in {report.mode} mode at {output.when(report.now)} UTC",
        counts_table(report),
        oldest_pending_line(report),
        in_progress,
        top_errors,
        throughput_table(report),
    )


def counts_table(report: StatusReport) -> Table:
    from models import CopyStatus

    table = output.table(title="by status")
    table.add_column("status", no_wrap=True)
    table.add_column("copies", justify="right")
    for copy_status in CopyStatus:
        count = str(report.counts[copy_status])
        if copy_status == CopyStatus.PENDING and report.scheduled:
            count += f" ({report.scheduled} scheduled for later)"
        table.add_row(copy_status.value, count)
    return table


def oldest_pending_line(report: StatusReport) -> str:
    oldest = report.oldest_pending
    if oldest is None:
        return "oldest pending: none waiting"
    return (
        f"oldest pending: {oldest.id}, created {output.when(oldest.created_at)}, "
        f"waiting {duration(oldest.age_seconds)}"
    )


def in_progress_table(report: StatusReport) -> Table:
    from models import CopyStatus

    total = report.counts[CopyStatus.IN_PROGRESS]
    shown = len(report.in_progress)
    more = f", the {shown} whose lease ends first" if shown < total else ""
    table = output.table(title=f"in progress: {total}{more}")
    for name in ("id", "attempt", "step", "started_at", "lease_expires_at", "lease"):
        table.add_column(name, no_wrap=True)
    for copy in report.in_progress:
        if copy.lease_expires_at is None:
            lease = "-"
        elif copy.lease_expired:
            lease = (
                f"[bold red]expired {duration(_seconds(report.now, copy.lease_expires_at))} ago[/]"
            )
        else:
            lease = f"{duration(_seconds(copy.lease_expires_at, report.now))} left"
        table.add_row(
            copy.id,
            str(copy.attempt),
            copy.step.value if copy.step else "-",
            output.when(copy.started_at),
            output.when(copy.lease_expires_at),
            lease,
        )
    return table


def top_errors_table(report: StatusReport) -> Table:
    table = output.table(title="top errors of copies failed in the last 24 h")
    table.add_column("copies", justify="right", no_wrap=True)
    table.add_column("key", no_wrap=True)
    table.add_column("message")
    for error in report.top_errors:
        table.add_row(str(error.copies), error.key, error.message)
    return table


def throughput_table(report: StatusReport) -> Table:
    table = output.table(title="throughput")
    for name in ("last", "completed", "completed/min", "failed", "failed/min"):
        table.add_column(name, justify="right", no_wrap=True)
    for window in report.throughput:
        table.add_row(
            f"{window.minutes} min",
            str(window.completed),
            f"{window.completed_per_minute:.2f}",
            str(window.failed),
            f"{window.failed_per_minute:.2f}",
        )
    return table


def duration(seconds: float) -> str:
    """``1d 02h 03m``, ``2h 03m 04s``, ``3m 04s`` or ``4s``."""
    whole = max(int(seconds), 0)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours:02d}h {minutes:02d}m"
    if hours:
        return f"{hours}h {minutes:02d}m {secs:02d}s"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def _seconds(later: datetime, earlier: datetime) -> float:
    return (later - earlier).total_seconds()
