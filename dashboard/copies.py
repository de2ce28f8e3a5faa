"""The copies table: its filters, sorting and pages, read from the query string leniently
(what it does not know or cannot read is ignored and named in a note, never an error);
and everything the copy detail page shows."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session, aliased

from copying.copies.bulk import errors_contain
from copying.errors import ErrorKey
from models import (
    CopyStatus,
    LineItem,
    Mode,
    Order,
    OrderCopy,
    OrderCopyEvent,
    PaymentAuthorization,
)

PAGE_SIZE = 25
MAX_PAGE = 10_000
#: The longest value a filter takes (a reference is at most 255 characters).
MAX_TEXT = 255
FILTERS = (
    "status",
    "error_key",
    "error_text",
    "reference",
    "source_order_number",
    "customer_email",
    "created_from",
    "created_to",
)
#: The sorts, each served by an index: ``failed_at`` and ``completed_at`` list only the
#: copies that have one (the partial indexes of failed and of completed copies).
SORTS: dict[str, Any] = {
    "created_at": OrderCopy.created_at,
    "status": OrderCopy.status,
    "failed_at": OrderCopy.failed_at,
    "completed_at": OrderCopy.completed_at,
}
ONLY_SET = ("failed_at", "completed_at")
#: The error keys a filter can name.
ERROR_KEYS: tuple[str, ...] = tuple(key.value for key in ErrorKey)
#: Parameters that are not filters but are known.
OTHERS = ("sort", "page", "notice")


def is_id(value: str) -> bool:
    """Could ``value`` be a public id? (Anything else finds nothing, without asking.)"""
    return value.isascii() and value.isalnum() and 0 < len(value) <= 64


@dataclass
class CopyQuery:
    filters: dict[str, str] = field(default_factory=dict)
    sort: str = "-created_at"
    page: int = 1
    #: What was ignored, in words, for the page to show.
    ignored: list[str] = field(default_factory=list)

    def url(self, **changes: Any) -> str:
        """This query's URL with ``changes`` (a None value drops the parameter)."""
        params: dict[str, Any] = {**self.filters, "sort": self.sort, "page": self.page}
        params.update(changes)
        kept = {k: v for k, v in params.items() if v not in (None, "")}
        if kept.get("page") == 1:
            kept.pop("page")
        if kept.get("sort") == "-created_at":
            kept.pop("sort")
        return "/dashboard/copies" + (f"?{urlencode(kept)}" if kept else "")

    def sorted_by(self, column: str) -> str:
        """The URL that sorts by ``column``: descending first, then ascending."""
        return self.url(sort=column if self.sort == f"-{column}" else f"-{column}", page=None)


def _day(value: str, name: str, ignored: list[str]) -> datetime | None:
    try:
        if len(value) == 10:
            return datetime.combine(date.fromisoformat(value), time(), UTC)
        moment = datetime.fromisoformat(value)
    except ValueError:
        ignored.append(f"{name}={value!r} is not a date (YYYY-MM-DD) or a moment")
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse(params: Mapping[str, str]) -> CopyQuery:
    """The copies query that ``params`` ask for; what cannot be used goes to ``ignored``."""
    query = CopyQuery()
    for name, value in params.items():
        value = value.strip()
        if "\x00" in value or len(value) > MAX_TEXT:
            query.ignored.append(f"{name}: not a value a filter can use")
            continue
        if name in FILTERS:
            if value:
                query.filters[name] = value
        elif name not in OTHERS:
            query.ignored.append(f"unknown filter {name!r}")
    status = query.filters.get("status")
    if status is not None and status not in CopyStatus.__members__.values():
        query.ignored.append(f"status={status!r} is not one of {', '.join(CopyStatus)}")
        del query.filters["status"]
    error_key = query.filters.get("error_key")
    if error_key is not None and error_key not in ERROR_KEYS:
        query.ignored.append(f"error_key={error_key!r} is not one of {', '.join(ERROR_KEYS)}")
        del query.filters["error_key"]
    number = query.filters.get("source_order_number")
    if number is not None and not (number.isdigit() and len(number) < 18):
        query.ignored.append(f"source_order_number={number!r} is not an order number")
        del query.filters["source_order_number"]
    for name in ("created_from", "created_to"):
        if name in query.filters and _day(query.filters[name], name, query.ignored) is None:
            del query.filters[name]
    sort = params.get("sort", "-created_at").strip()
    if sort.removeprefix("-") in SORTS:
        query.sort = sort
    else:
        query.ignored.append(f"sort={sort!r}: sort by one of {', '.join(SORTS)}")
    page = params.get("page", "1").strip()
    if page.isdigit() and 1 <= int(page) <= MAX_PAGE:
        query.page = int(page)
    else:
        query.ignored.append(f"page={page!r} is not a page number")
    return query


def _conditions(query: CopyQuery, mode: Mode) -> list[ColumnElement[bool]]:
    f = query.filters
    where: list[ColumnElement[bool]] = [OrderCopy.mode == mode]
    if "status" in f:
        where.append(OrderCopy.status == CopyStatus(f["status"]))
    if "error_key" in f:
        where.append(OrderCopy.errors_log[f["error_key"]].is_not(None))
    if "error_text" in f:
        where.append(errors_contain(f["error_text"]))
    if "reference" in f:
        where.append(OrderCopy.reference.icontains(f["reference"], autoescape=True))
    source = select(Order.id).where(Order.mode == mode)
    if "source_order_number" in f:
        number = source.where(Order.number == int(f["source_order_number"]))
        where.append(OrderCopy.source_order_id.in_(number))
    if "customer_email" in f:
        email = source.where(func.lower(Order.customer_email) == f["customer_email"].lower())
        where.append(OrderCopy.source_order_id.in_(email))
    if "created_from" in f:
        where.append(OrderCopy.created_at >= _day(f["created_from"], "", []))
    if "created_to" in f:
        end = _day(f["created_to"], "", [])
        assert end is not None
        # A day given alone includes the whole of it.
        where.append(OrderCopy.created_at < end + timedelta(days=len(f["created_to"]) == 10))
    return where


@dataclass
class CopyRow:
    copy: OrderCopy
    source_number: int | None
    source_email: str | None
    target_number: int | None


def page(session: Session, query: CopyQuery, mode: Mode) -> tuple[list[CopyRow], bool]:
    """The page's copies and whether another page follows. Read-only."""
    name = query.sort.removeprefix("-")
    descending = query.sort.startswith("-")
    where = _conditions(query, mode)
    if name in ONLY_SET:
        where.append(SORTS[name].is_not(None))
    keys = [SORTS[name], OrderCopy.created_at, OrderCopy.id]
    if name == "created_at":
        keys = keys[1:]
    order = [key.desc() if descending else key.asc() for key in keys]
    source, target = aliased(Order), aliased(Order)
    statement = (
        select(OrderCopy, source.number, source.customer_email, target.number)
        .join(source, source.id == OrderCopy.source_order_id)
        .outerjoin(target, target.id == OrderCopy.target_order_id)
        .where(*where)
        .order_by(*order)
        .offset((query.page - 1) * PAGE_SIZE)
        .limit(PAGE_SIZE + 1)
    )
    rows = [CopyRow(*row) for row in session.execute(statement)]
    return rows[:PAGE_SIZE], len(rows) > PAGE_SIZE


@dataclass
class OrderView:
    order: Order
    lines: list[LineItem]
    authorizations: list[PaymentAuthorization]


def order_view(session: Session, order_id: str | None, mode: Mode) -> OrderView | None:
    order = session.get(Order, order_id) if order_id and is_id(order_id) else None
    if order is None or order.mode != mode:
        return None
    lines = session.scalars(
        select(LineItem).where(LineItem.order_id == order.id).order_by(LineItem.position)
    )
    authorizations = session.scalars(
        select(PaymentAuthorization)
        .where(PaymentAuthorization.order_id == order.id)
        .order_by(PaymentAuthorization.created_at)
    )
    return OrderView(order, list(lines), list(authorizations))


@dataclass
class CopyDetail:
    copy: OrderCopy
    fields: list[tuple[str, Any]]
    events: list[OrderCopyEvent]
    source: OrderView | None
    target: OrderView | None


def detail(session: Session, copy_id: str, mode: Mode) -> CopyDetail | None:
    """Everything about one copy of ``mode`` (None: no such copy in this mode). Read-only."""
    copy = session.get(OrderCopy, copy_id, populate_existing=True) if is_id(copy_id) else None
    if copy is None or copy.mode != mode:
        return None
    fields = [
        (column.name, getattr(copy, attribute.key))
        for attribute in OrderCopy.__mapper__.column_attrs
        for column in attribute.columns
    ]
    events = session.scalars(
        select(OrderCopyEvent)
        .where(OrderCopyEvent.order_copy_id == copy.id)
        .order_by(OrderCopyEvent.id)
    )
    return CopyDetail(
        copy,
        fields,
        list(events),
        order_view(session, copy.source_order_id, mode),
        order_view(session, copy.target_order_id, mode),
    )


def copies_of_order(session: Session, order_id: str, mode: Mode) -> list[OrderCopy]:
    """The copies made from or into an order, newest first (at most a page)."""
    return list(
        session.scalars(
            select(OrderCopy)
            .where(
                OrderCopy.mode == mode,
                (OrderCopy.source_order_id == order_id) | (OrderCopy.target_order_id == order_id),
            )
            .order_by(OrderCopy.created_at.desc())
            .limit(PAGE_SIZE)
        )
    )
