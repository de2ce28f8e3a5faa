"""Failed copies grouped by cause: their error key and the message with its particulars
(numbers, codes, ids, dates, quoted values) replaced by ``…``, so that "SKU BLUE-TEE is out
of stock (2 requested, 0 left)" and "SKU RED-CAP is out of stock (5 requested, 1 left)"
are one group, "SKU … is out of stock (… requested, … left)".

A group's *pending* copies are those retried from it and not yet run again (a retry moves
the errors into the copy's ``retried`` event, and the copy's ``retries`` counts it), so
that "abort all pending" can stop them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from copying.copies.history import EventKind
from models import CopyStatus, Mode, OrderCopy, OrderCopyEvent

ELLIPSIS = "…"
#: Upper-case words that are vocabulary, not particulars.
WORDS = frozenset({"SKU", "SKUS", "API", "ID", "URL", "HTTP"})
PARTICULARS = re.compile(
    r"""
      '[^']*' | "[^"]*"                          # quoted values
    | \b[\w.:/+-]*\d[\w.:/+-]*                   # anything with a digit (amounts, dates, ids)
    | \b(?=[\w.-]*(?:\d|\w[A-Z]))[A-Za-z0-9]+(?:[-_.][A-Za-z0-9]+)+\b
                                               # codes: BLUE-TEE, SKU-xYzAbc, SUMMER_SALE
    | \b[A-Z]{2,}\b                              # upper-case words: ABCD (SKU etc. kept)
    | \b(?=\w*[a-z])(?=\w*[A-Z]\w*[A-Z])\w{8,}\b # public ids: XAyRWNUzyN
    """,
    re.VERBOSE,
)
#: How many retried pending copies the failures page reads at most.
SCAN_LIMIT = 20_000


@lru_cache(maxsize=65_536)
def normalize(message: str) -> str:
    """``message`` with its particulars replaced by ``…`` (runs of them by one)."""

    def particular(match: re.Match[str]) -> str:
        return match.group(0) if match.group(0) in WORDS else ELLIPSIS

    text = PARTICULARS.sub(particular, message)
    return re.sub(rf"{ELLIPSIS}(?:[\s,]*{ELLIPSIS})+", ELLIPSIS, text)


def causes(errors_log: Mapping[str, Any]) -> Iterator[tuple[str, str, str]]:
    """Each (key, normalized message, message) of an ``errors_log``, once per cause."""
    seen: set[tuple[str, str]] = set()
    for key, messages in errors_log.items():
        for message in messages if isinstance(messages, list) else [messages]:
            cause = (str(key), normalize(str(message)))
            if cause not in seen:
                seen.add(cause)
                yield (*cause, str(message))


@dataclass
class Group:
    key: str
    message: str
    example: str
    failed: int = 0
    pending: int = 0
    newest_at: datetime | None = None
    #: The copies' ids: the failed ones, and the pending ones retried from this group.
    failed_ids: list[str] = field(default_factory=list)
    pending_ids: list[str] = field(default_factory=list)


def _ids(session: Session) -> Any:
    """The ids of a group of rows, aggregated as this database can."""
    if session.get_bind().dialect.name == "postgresql":
        return func.array_agg(OrderCopy.id)
    return func.group_concat(OrderCopy.id, ",")


def _split(ids: Any) -> list[str]:
    return list(ids) if isinstance(ids, list) else str(ids).split(",")


def _failed(session: Session, mode: Mode) -> Iterable[tuple[Any, int, datetime | None, Any]]:
    """The failed copies of ``mode`` by their ``errors_log``: each distinct log with how
    many copies have it, the newest failure and their ids. Copies failing
    for the same reasons share a log, so this is far fewer rows than copies."""
    columns = [
        OrderCopy.errors_log,
        func.count(),
        func.max(OrderCopy.failed_at),
        _ids(session),
    ]
    return session.execute(
        select(*columns)
        .where(OrderCopy.mode == mode, OrderCopy.status == CopyStatus.FAILED)
        .group_by(OrderCopy.errors_log)
    )


def _retried_pending(session: Session, mode: Mode) -> dict[str, dict[str, Any]]:
    """Pending copies that were retried: copy id → the errors their last retry cleared."""
    last: dict[str, dict[str, Any]] = {}
    rows = session.execute(
        select(OrderCopyEvent.order_copy_id, OrderCopyEvent.data)
        .join(OrderCopy, OrderCopy.id == OrderCopyEvent.order_copy_id)
        .where(
            OrderCopy.mode == mode,
            OrderCopy.status == CopyStatus.PENDING,
            OrderCopy.retries > 0,
            OrderCopyEvent.kind == EventKind.RETRIED,
        )
        .order_by(OrderCopyEvent.id)
        .limit(SCAN_LIMIT)
    )
    for copy_id, data in rows:
        last[copy_id] = dict(data.get("previous_errors") or {})
    return last


def _fingerprint(session: Session, mode: Mode) -> tuple[Any, ...]:
    """What changes whenever the failed copies of ``mode`` do: how many there are, and
    their failure times (a copy fails, is retried, fails again: its time moves). Read from
    the indexes alone (``failed_at`` is set exactly while a copy is failed)."""
    failed = session.execute(
        select(func.count(), func.max(OrderCopy.failed_at), func.min(OrderCopy.failed_at)).where(
            OrderCopy.mode == mode, OrderCopy.failed_at.is_not(None)
        )
    ).one()
    by_status = session.scalar(
        select(func.count()).where(OrderCopy.mode == mode, OrderCopy.status == CopyStatus.FAILED)
    )
    return (str(session.get_bind().engine.url), mode, *failed, by_status)


#: The failed copies' groups, by mode, as last counted: (fingerprint, groups).
_counted: dict[tuple[str, Mode], tuple[tuple[Any, ...], dict[tuple[str, str], Group]]] = {}


def _failed_groups(session: Session, mode: Mode) -> dict[tuple[str, str], Group]:
    """The groups of the failed copies, ids included; counted again only when the failed
    copies changed (their fingerprint), as the page refreshes every few seconds."""
    fingerprint = _fingerprint(session, mode)
    key = (str(fingerprint[0]), mode)
    cached = _counted.get(key)
    if cached is not None and cached[0] == fingerprint:
        return cached[1]
    found: dict[tuple[str, str], Group] = {}
    for errors_log, count, newest_at, ids in _failed(session, mode):
        for cause_key, message, example in causes(errors_log or {}):
            group = found.setdefault((cause_key, message), Group(cause_key, message, example))
            group.failed += count
            group.failed_ids.extend(_split(ids))
            if newest_at is not None and (group.newest_at is None or newest_at > group.newest_at):
                group.newest_at, group.example = newest_at, example
    _counted[key] = (fingerprint, found)
    return found


def groups(session: Session, mode: Mode) -> list[Group]:
    """The failure groups of ``mode``, the largest first, with their copies' ids. Read-only."""
    found = {
        cause: replace(group, failed_ids=list(group.failed_ids), pending_ids=[])
        for cause, group in _failed_groups(session, mode).items()
    }
    for copy_id, errors_log in _retried_pending(session, mode).items():
        for key, message, example in causes(errors_log):
            group = found.setdefault((key, message), Group(key, message, example))
            group.pending += 1
            group.pending_ids.append(copy_id)
    return sorted(found.values(), key=lambda g: (-g.failed, -g.pending, g.key, g.message))


def group(session: Session, mode: Mode, key: str, message: str) -> Group:
    """One group with its copies' ids (empty when nothing matches any more). Read-only."""
    for candidate in groups(session, mode):
        if (candidate.key, candidate.message) == (key, message):
            return candidate
    return Group(key, message, example="")
