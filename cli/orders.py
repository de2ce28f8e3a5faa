"""``ordercopy orders``: list orders and show one with its line items (read-only)."""

from __future__ import annotations

from typing import Annotated

import typer

from cli import output, process, records
from cli.choices import ModeOption, OrderStatusName

orders_app = typer.Typer(
    no_args_is_help=True, rich_markup_mode=None, help="Orders: the sources and targets of copies."
)


@orders_app.command("list")
def list_orders(
    status: Annotated[
        OrderStatusName | None, typer.Option("--status", help="Only orders in this status.")
    ] = None,
    page: records.PageOption = 1,
    limit: records.LimitOption = 20,
    as_json: records.JsonOption = False,
    quiet: records.QuietOption = False,
    mode: ModeOption = "test",
) -> None:
    """The newest orders first."""
    records.list_newest(
        "orders",
        title="orders",
        mode=mode,
        status=status,
        page_number=page,
        limit=limit,
        as_json=as_json,
        quiet=quiet,
        cells={
            "id": lambda order: order.id,
            "number": lambda order: str(order.number),
            "status": lambda order: order.status,
            "payment": lambda order: order.payment_status,
            "email": lambda order: order.customer_email or "-",
            "currency": lambda order: order.currency_code,
            "created_at": lambda order: output.when(order.created_at),
        },
    )


@orders_app.command("show")
def show_order(
    order_id: Annotated[str, typer.Argument(metavar="ID", help="The order's id.")],
    as_json: records.JsonOption = False,
    mode: ModeOption = "test",
) -> None:
    """Every field of one order, then its line items."""
    from sqlalchemy import select

    from models import LineItem, Mode, Order

    with process.sessions().begin() as session:
        order = session.get(Order, order_id)
        if order is None or order.mode != Mode(mode):
            output.fail(f"order {order_id} does not exist in {mode} mode")
        items = list(
            session.scalars(
                select(LineItem).where(LineItem.order_id == order.id).order_by(LineItem.position)
            )
        )
        if as_json:
            document = records.rows_json([order])[0]
            document["line_items"] = records.rows_json(items)
            records.print_json(document)
            return
        console = output.console()
        console.print(records.fields_table(f"order {order.id}", order))
        rows = [
            (
                item.item_type.value,
                item.sku_code or item.bundle_code or "-",
                item.name,
                str(item.quantity),
                str(item.unit_amount_cents),
                str(item.total_amount_cents),
            )
            for item in items
        ]
        names = ("type", "sku / bundle", "name", "quantity", "unit (cents)", "total (cents)")
        console.print(records.listing_table("line items", names, rows))
