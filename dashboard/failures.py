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
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
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
    | \b[A-Z][A-Z0-9]*(?:[-_.][A-Z0-9]+)+\b      # codes: BLUE-TEE, SUMMER_SALE
    | \b[A-Z]{2,}\b                              # upper-case words: ABCD (SKU etc. kept)
    | \b(?=\w*[a-z])(?=\w*[A-Z]\w*[A-Z])\w{8,}\b # public ids: XAyRWNUzyN
    """,
    re.VERBOSE,
)
#: How many copies the failures page reads at most (the newest failures).
SCAN_LIMIT = 20_000


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
    failed: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    newest_at: datetime | None = None
    newest_id: str | None = None


def _failed(session: Session, mode: Mode) -> Iterable[tuple[str, datetime | None, Any]]:
    return session.execute(
        select(OrderCopy.id, OrderCopy.failed_at, OrderCopy.errors_log)
        .where(OrderCopy.mode == mode, OrderCopy.status == CopyStatus.FAILED)
        .order_by(OrderCopy.failed_at.desc(), OrderCopy.id)
        .limit(SCAN_LIMIT)
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


def groups(session: Session, mode: Mode) -> list[Group]:
    """The failure groups of ``mode``, the largest first. Read-only."""
    found: dict[tuple[str, str], Group] = {}
    for copy_id, failed_at, errors_log in _failed(session, mode):
        for key, message, example in causes(errors_log or {}):
            group = found.setdefault((key, message), Group(key, message, example))
            group.failed.append(copy_id)
            if group.newest_at is None or (failed_at is not None and failed_at > group.newest_at):
                group.newest_at, group.newest_id = failed_at, copy_id
    for copy_id, errors_log in _retried_pending(session, mode).items():
        for key, message, example in causes(errors_log):
            group = found.setdefault((key, message), Group(key, message, example))
            group.pending.append(copy_id)
    return sorted(found.values(), key=lambda g: (-len(g.failed), -len(g.pending), g.key))


def group(session: Session, mode: Mode, key: str, message: str) -> Group:
    """One group (empty when nothing matches any more). Read-only."""
    for candidate in groups(session, mode):
        if (candidate.key, candidate.message) == (key, message):
            return candidate
    return Group(key, message, example="")
