"""``ordercopy subscriptions``: list order subscriptions, show one, activate, deactivate, cancel.

The moves are :mod:`copying.subscriptions.subscription_states`' (the same functions as the
API's ``_activate``, ``_deactivate`` and ``_cancel`` triggers), each in one transaction
holding the row's lock.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import typer

from cli import output, process, records
from cli.choices import ModeName, ModeOption, SubscriptionStatusName

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from models import OrderSubscription

subscriptions_app = typer.Typer(
    no_args_is_help=True,
    rich_markup_mode=None,
    help="Order subscriptions: list them, show one, activate, deactivate or cancel one.",
)

IdArgument = Annotated[str, typer.Argument(metavar="ID", help="The order subscription's id.")]


@subscriptions_app.command("list")
def list_subscriptions(
    status: Annotated[
        SubscriptionStatusName | None,
        typer.Option("--status", help="Only those in this status."),
    ] = None,
    page: records.PageOption = 1,
    limit: records.LimitOption = 20,
    as_json: records.JsonOption = False,
    quiet: records.QuietOption = False,
    mode: ModeOption = "test",
) -> None:
    """The newest order subscriptions first."""
    records.list_newest(
        "order_subscriptions",
        title="order subscriptions",
        mode=mode,
        status=status,
        page_number=page,
        limit=limit,
        as_json=as_json,
        quiet=quiet,
        cells={
            "id": lambda subscription: subscription.id,
            "status": lambda subscription: subscription.status,
            "frequency": lambda subscription: subscription.frequency,
            "source": lambda subscription: subscription.source_order_id,
            "next_run_at": lambda subscription: output.when(subscription.next_run_at),
            "renewals": lambda subscription: str(subscription.occurrencies),
            "errors": lambda subscription: str(subscription.errors_count),
        },
    )


@subscriptions_app.command("show")
def show_subscription(
    subscription_id: IdArgument,
    as_json: records.JsonOption = False,
    mode: ModeOption = "test",
) -> None:
    """Every field of one order subscription."""
    with process.sessions().begin() as session:
        subscription = _load(session, subscription_id, mode, lock=False)
        if as_json:
            records.print_json(records.rows_json([subscription])[0])
        else:
            title = f"order subscription {subscription.id}"
            output.console().print(records.fields_table(title, subscription))


def _load(
    session: Session, subscription_id: str, mode: ModeName, *, lock: bool
) -> OrderSubscription:
    from models import Mode, OrderSubscription

    subscription = session.get(OrderSubscription, subscription_id, with_for_update=lock)
    if subscription is None or subscription.mode != Mode(mode):
        output.fail(f"order subscription {subscription_id} does not exist in {mode} mode")
    return subscription


def _move(
    subscription_id: str,
    mode: ModeName,
    move: Callable[[Session, OrderSubscription, datetime], None],
    done: str,
) -> None:
    from copying.errors import CopyInputError
    from copying.subscriptions.subscription_states import SubscriptionStateError
    from models import utcnow

    try:
        with process.sessions().begin() as session:
            subscription = _load(session, subscription_id, mode, lock=True)
            move(session, subscription, utcnow())
            status, next_run = subscription.status.value, subscription.next_run_at
    except (SubscriptionStateError, CopyInputError) as error:
        output.fail(str(error))
    typer.echo(
        f"{done} order subscription {subscription_id}: {status}, next run {output.when(next_run)}"
    )


@subscriptions_app.command("activate")
def activate(subscription_id: IdArgument, mode: ModeOption = "test") -> None:
    """Start renewing (draft or inactive → active); a next run gone by moves to the next one."""
    from copying.subscriptions import subscription_states

    _move(subscription_id, mode, subscription_states.activate, "activated")


@subscriptions_app.command("deactivate")
def deactivate(subscription_id: IdArgument, mode: ModeOption = "test") -> None:
    """Pause renewing (active or running → inactive); activate resumes it."""
    from copying.subscriptions import subscription_states

    _move(subscription_id, mode, subscription_states.deactivate, "deactivated")


@subscriptions_app.command("cancel")
def cancel(subscription_id: IdArgument, mode: ModeOption = "test") -> None:
    """Stop renewing for good (→ cancelled)."""
    from copying.subscriptions import subscription_states

    _move(subscription_id, mode, subscription_states.cancel, "cancelled")


@subscriptions_app.command("skip")
def skip(subscription_id: IdArgument, mode: ModeOption = "test") -> None:
    """Skip the next run once (active only): the next run moves to the one after it."""
    from copying.subscriptions import renewals

    _move(subscription_id, mode, renewals.skip, "skipped the next run of")
