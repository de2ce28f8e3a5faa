"""Wallet reuse: charge the target order to the entry the source order used."""

from __future__ import annotations

from datetime import date
from typing import Protocol

from sqlalchemy.orm import Session

from models import CustomerPaymentSource, Mode, Order

ERROR_KEY = "payment_source"


class Payer(Protocol):
    """Whose wallet entry it must be: an order, or a subscription renewing one."""

    @property
    def mode(self) -> Mode: ...
    @property
    def customer_id(self) -> str | None: ...


class WalletPayer(Payer, Protocol):
    """A source order, as far as reusing its wallet entry goes."""

    @property
    def customer_payment_source_id(self) -> str | None: ...


def check_wallet_entry(
    entry: CustomerPaymentSource | None, entry_id: str, source: Payer, today: date
) -> str | None:
    """Why the wallet entry cannot be charged (again) for ``source``, or None when it can."""
    if entry is None or entry.mode != source.mode:
        return f"wallet entry {entry_id} no longer exists"
    if entry.customer_id != source.customer_id:
        return f"wallet entry {entry_id} belongs to another customer"
    if entry.disabled:
        return f"wallet entry {entry_id} is disabled"
    if entry.expires_on is not None and entry.expires_on < today:
        return f"wallet entry {entry_id} expired on {entry.expires_on.isoformat()}"
    return None


def entry_to_reuse(
    session: Session, source: WalletPayer, override_id: str | None, today: date
) -> tuple[CustomerPaymentSource | None, str | None]:
    """The wallet entry to charge the target to (``override_id``, else the source's), or why
    it cannot be charged. ``(None, None)``: the source was paid without the wallet, which
    leaves nothing to reuse and is no error."""
    entry_id = override_id or source.customer_payment_source_id
    if entry_id is None:
        return None, None
    entry = session.get(CustomerPaymentSource, entry_id)
    problem = check_wallet_entry(entry, entry_id, source, today)
    if problem is not None or entry is None:
        return None, problem or f"wallet entry {entry_id} no longer exists"
    return entry, None


def payment_fields(entry: CustomerPaymentSource | None) -> dict[str, str | None]:
    """An order's columns that charge it to ``entry`` (all None: to no wallet entry)."""
    return {
        "customer_payment_source_id": entry.id if entry else None,
        "payment_method": entry.payment_method if entry else None,
        "payment_gateway": entry.gateway if entry else None,
        "payment_source_token": entry.payment_source_token if entry else None,
    }


def attach_wallet_entry(order: Order, entry: CustomerPaymentSource) -> None:
    """Use ``entry`` as ``order``'s payment source (the API's ``_customer_payment_source_id``)."""
    for column, value in payment_fields(entry).items():
        setattr(order, column, value)
