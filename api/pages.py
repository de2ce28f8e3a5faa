"""One page of a list: its rows, ``meta.record_count``, ``meta.page_count`` and ``links``.

What a page costs does not grow with the list:

- ``record_count`` is exact up to :data:`EXACT_COUNT` records, counted by reading at most
  one more (an index range, usually). Beyond, PostgreSQL's planner estimates it from its
  statistics, ``meta.record_count_estimated`` says so, ``page_count`` follows it and there
  is no ``links.last``. (SQLite, the embedded default, always counts.)
- ``page[number]`` reads and drops the records before its page (``OFFSET``), so it may
  start only within the first :data:`EXACT_COUNT` records of a longer list (400 past
  that). ``links.next`` beyond them is a keyset page (``page[after]``, ``api/cursors.py``)
  that costs the same at any depth; ``links.prev`` of a keyset page is ``page[before]``.
- ``links.next`` is there when a record follows the page: the page reads one more row
  than it shows, so an estimated count never hides one.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import ClauseElement, Engine, Executable, func, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.compiler import SQLCompiler

from api.cursors import AFTER, BEFORE, Cursor
from api.errors import ApiError
from api.query import Query
from models import db

#: Lists count exactly, and ``page[number]`` reaches, this many records.
EXACT_COUNT = 10_000


@dataclass(frozen=True)
class Page:
    rows: Sequence[Any]
    #: Whether records come before the page and after it.
    earlier: bool
    later: bool
    record_count: int
    exact: bool

    def meta(self, page_size: int) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "record_count": self.record_count,
            "page_count": math.ceil(self.record_count / page_size),
        }
        if not self.exact:
            meta["record_count_estimated"] = True
        return meta


class Explain(Executable, ClauseElement):
    """``EXPLAIN (FORMAT JSON) <statement>``: the planner's estimate, nothing run."""

    inherit_cache = False

    def __init__(self, statement: Any) -> None:
        self.statement = statement


@compiles(Explain, "postgresql")
def _explain(element: Explain, compiler: SQLCompiler, **kw: Any) -> str:
    return "EXPLAIN (FORMAT JSON) " + compiler.process(element.statement, **kw)


@cache
def _autocommit(engine: Engine) -> Engine:
    return engine.execution_options(isolation_level="AUTOCOMMIT")


@contextmanager
def reading() -> Iterator[Session]:
    """A session for a request that only reads. On PostgreSQL it runs each statement on
    its own (autocommit): under READ COMMITTED each statement of a transaction sees a
    snapshot of its own anyway, so a BEGIN and a COMMIT would add two round trips and no
    consistency. (SQLite's transactions take its write lock; reads there stay in one.)"""
    engine = db.engine()
    if engine.dialect.name != "postgresql":
        with db.sessions().begin() as session:
            yield session
        return
    with Session(_autocommit(engine), expire_on_commit=False) as session:
        yield session


def _counted(statement: Any, model: Any) -> Any:
    """``statement``'s records, counted to one past :data:`EXACT_COUNT` at most."""
    inner = statement.with_only_columns(model.id).limit(EXACT_COUNT + 1).subquery()
    return select(func.count()).select_from(inner).scalar_subquery()


def _count(session: Session, statement: Any, model: Any) -> int:
    return session.scalar(select(_counted(statement, model))) or 0


def _estimate(session: Session, statement: Any, model: Any, counted: int) -> tuple[int, bool]:
    """``counted`` if exact; else the planner's estimate (PostgreSQL) or a full count."""
    if counted <= EXACT_COUNT:
        return counted, True
    inner = statement.with_only_columns(model.id)
    if session.get_bind().dialect.name != "postgresql":
        return session.scalar(select(func.count()).select_from(inner.subquery())) or 0, True
    plan = session.execute(Explain(inner)).scalar_one()
    estimate = int(plan[0]["Plan"]["Plan Rows"])
    return max(estimate, EXACT_COUNT + 1), False


def fetch(session: Session, statement: Any, model: Any, parsed: Query) -> Page:
    """The page ``parsed`` asks for of the rows (of ``model``) ``statement`` selects: the
    page and its count in one statement (the count again on its own when the page is
    empty)."""
    size = parsed.page_size
    counted = _counted(statement, model).label("record_count")
    backwards = False
    if parsed.cursor is None:
        offset = (parsed.page_number - 1) * size
        if offset >= EXACT_COUNT and _count(session, statement, model) > EXACT_COUNT:
            raise ApiError(
                400,
                f"pages by number reach the first {EXACT_COUNT:,} records of a longer list; "
                "follow links.next (page[after]) to go further",
                parameter="page[number]",
            )
        paged = statement.order_by(*parsed.order_by).offset(offset)
    else:
        parameter, raw = parsed.cursor
        cursor = Cursor.decode(raw, parameter, parsed.sort, parsed.keys)
        backwards = parameter == BEFORE
        paged = statement.where(cursor.beyond(parsed.keys, reverse=backwards)).order_by(
            *(key.order(reverse=backwards) for key in parsed.keys)
        )
    found = session.execute(paged.add_columns(counted).limit(size + 1)).all()
    rows = [row[0] for row in found[:size]]
    at_most = found[0][1] if found else _count(session, statement, model)
    total, exact = _estimate(session, statement, model, at_most)
    more = len(found) > size
    if parsed.cursor is None:
        return Page(rows, parsed.page_number > 1, more, total, exact)
    if backwards:
        return Page(rows[::-1], more, True, total, exact)
    return Page(rows, True, more, total, exact)


def links(url: str, params: Iterable[tuple[str, str]], parsed: Query, page: Page) -> dict[str, str]:
    """``first`` always, ``last`` when the count is exact, ``prev``/``next`` when records
    come before/after the page; every other query parameter (filters, sort, page size)
    kept."""
    others = [(k, v) for k, v in params if k not in ("page[number]", AFTER, BEFORE)]
    pages = max(math.ceil(page.record_count / parsed.page_size), 1)

    def to(parameter: str, value: str) -> str:
        return f"{url}?{urlencode([*others, (parameter, value)])}"

    def at(row: Any) -> str:
        return Cursor.of(parsed.sort, parsed.keys, row).encode()

    found: dict[str, str] = {"first": to("page[number]", "1")}
    if page.exact:
        found["last"] = to("page[number]", str(pages))
    number = parsed.page_number
    if parsed.cursor is None:
        if number > 1:
            found["prev"] = to("page[number]", str(min(number - 1, pages)))
        if page.later:
            within = number * parsed.page_size < EXACT_COUNT
            found["next"] = (
                to("page[number]", str(number + 1)) if within else to(AFTER, at(page.rows[-1]))
            )
        return found
    if page.earlier and page.rows:
        found["prev"] = to(BEFORE, at(page.rows[0]))
    if page.later and page.rows:
        found["next"] = to(AFTER, at(page.rows[-1]))
    return found
