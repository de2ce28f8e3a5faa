"""``ordercopy demo``: seed demo copies, and watch a running worker execute them.

The copies are executed by the worker (``celery -A worker worker`` and beat,
as ``make run`` starts them), never in this process: ``demo`` only writes
them, publishes them after commit and reads their outcome.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated

import typer

from cli import output, process

if TYPE_CHECKING:
    from rich.table import Table

    from cli.demo_seed import Seeded
    from models import OrderCopy

demo_app = typer.Typer(
    rich_markup_mode=None,
    help="Demo order copies: `demo seed` writes them; `demo` (or `demo run`) also waits "
    "for a running worker to execute them and checks each outcome.",
)

POLL_SECONDS = 0.5

TimeoutOption = Annotated[
    float,
    typer.Option(
        "--timeout",
        min=0,
        metavar="SECONDS",
        help="Seconds to wait for the worker to finish the copies.",
    ),
]


@demo_app.callback(invoke_without_command=True)
def demo(ctx: typer.Context, timeout: TimeoutOption = 120.0) -> None:
    """Seed new demo copies, wait for the worker, print their outcomes."""
    if ctx.invoked_subcommand is None:
        run_demo(timeout)


@demo_app.command("run")
def run(timeout: TimeoutOption = 120.0) -> None:
    """Seed new demo copies, wait for the worker, print their outcomes."""
    run_demo(timeout)


@demo_app.command("seed")
def seed_command(
    if_empty: Annotated[
        bool, typer.Option("--if-empty", help="Do nothing when the database holds orders.")
    ] = False,
) -> None:
    """Write demo data in test mode and publish its order copies to the broker."""
    from cli import queries

    if if_empty:
        with process.sessions().begin() as session:
            if queries.has_orders(session):
                typer.echo("demo: the database already holds orders; nothing seeded")
                return
    seeded = _seed()
    typer.echo(
        f"demo: seeded {len(seeded.sku_codes)} SKUs, customer {seeded.customer_id} with "
        f"{len(seeded.wallet_ids)} wallet entries, {len(seeded.order_ids)} source orders and "
        f"{len(seeded.copy_ids)} order copies (batch {seeded.batch}) for the worker to run"
    )


def run_demo(timeout: float) -> None:
    from cli.demo_scenarios import turned_out_as_expected

    seeded = _seed()
    typer.echo(
        f"demo: {len(seeded.copy_ids)} order copies published (batch {seeded.batch}); "
        f"waiting up to {timeout:g} s for the worker (make run, or honcho start worker beat)"
    )
    copies = wait_until_finished(seeded.copy_ids, timeout)
    output.console().print(outcomes_table(copies))
    pending = [copy for copy in copies if not finished(copy)]
    if pending:
        output.fail(
            f"timed out after {timeout:g} s; still pending: "
            + ", ".join(f"{copy.id} ({copy.reference}, {copy.status})" for copy in pending)
            + ". Is a worker running?"
        )
    unexpected = [copy for copy in copies if not turned_out_as_expected(copy)]
    if unexpected:
        output.fail(
            f"{len(unexpected)} of {len(copies)} demo copies did not turn out as expected: "
            + ", ".join(f"{copy.id} ({copy.reference})" for copy in unexpected)
        )
    typer.echo(f"demo: all {len(copies)} order copies turned out as expected")


def _seed() -> Seeded:
    from cli.demo_seed import SeedError, seed

    # The worker's publisher and gateways: importing them builds the Celery app.
    from worker import publisher, runtime

    try:
        return seed(process.sessions(), publisher.publish, runtime.gateways())
    except SeedError as error:
        output.fail(str(error))


def wait_until_finished(copy_ids: Sequence[str], timeout: float) -> list[OrderCopy]:
    """Poll until every copy is completed or failed, or ``timeout`` seconds passed."""
    from cli import queries

    deadline = time.monotonic() + timeout
    while True:
        with process.sessions().begin() as session:
            copies = queries.copies_by_id(session, copy_ids)
        if all(finished(copy) for copy in copies) or time.monotonic() >= deadline:
            return copies
        time.sleep(POLL_SECONDS)


def finished(copy: OrderCopy) -> bool:
    """Whether the worker is done with the copy: completed or failed."""
    from models import CopyStatus

    return copy.status in (CopyStatus.COMPLETED, CopyStatus.FAILED)


def outcomes_table(copies: list[OrderCopy]) -> Table:
    from cli.demo_scenarios import expectation, turned_out_as_expected

    table = output.table(title="demo order copies")
    for name in ("id", "reference", "expected", "actual", "errors", "as expected"):
        table.add_column(name, no_wrap=name in ("id", "expected", "actual", "as expected"))
    for copy in copies:
        status, error_key = expectation(copy)
        expected = f"{status} ({error_key})" if error_key else f"{status}"
        ok = turned_out_as_expected(copy)
        table.add_row(
            copy.id,
            copy.reference or "-",
            expected,
            copy.status.value,
            output.errors_text(copy.errors_log),
            "yes" if ok else "[bold red]NO[/]",
        )
    return table
