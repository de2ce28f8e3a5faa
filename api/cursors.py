"""Keyset pages: ``page[after]`` and ``page[before]`` (JSON:API's cursor pagination profile).

A cursor names a row by its values of the list's sort keys, the id last (every sort ends
with it, so the order is total), and the sort it was made for. The next page is the rows
strictly after those values, found by an index from there whatever the depth, where an
``OFFSET`` reads and drops every row before the page. A cursor is opaque to clients
(URL-safe base64 of JSON) and carries no mode or filter: the request's own still apply.

Order: PostgreSQL's, on every database: ``NULL`` sorts after every value ascending and
before every value descending (``NULLS LAST``/``NULLS FIRST``, written out for SQLite,
whose default is the opposite).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, false, or_

from api.errors import ApiError
from api.lookups import BIGINT_MAX, BIGINT_MIN
from api.spec import Kind
from models.base import storable

#: The page parameters that take a cursor.
AFTER, BEFORE = "page[after]", "page[before]"


@dataclass(frozen=True)
class SortKey:
    """One key of a list's order: the column (or expression), its direction, its kind."""

    name: str
    column: Any
    descending: bool
    kind: Kind
    nullable: bool

    def order(self, *, reverse: bool = False) -> Any:
        """The ``ORDER BY`` item; ``reverse``: the opposite order, nulls included."""
        if self.descending != reverse:
            return self.column.desc().nulls_first()
        return self.column.asc().nulls_last()

    def value_of(self, row: Any) -> Any:
        return getattr(row, self.name)


@dataclass(frozen=True)
class Cursor:
    """A row's place in a sort: ``sort`` as the request spelled it (``-created_at``),
    ``values`` its sort keys' values then its id."""

    sort: str
    values: tuple[Any, ...]

    def encode(self) -> str:
        document = json.dumps([self.sort, [_json(v) for v in self.values]], separators=(",", ":"))
        return base64.urlsafe_b64encode(document.encode()).decode().rstrip("=")

    @classmethod
    def of(cls, sort: str, keys: Sequence[SortKey], row: Any) -> Cursor:
        return cls(sort, tuple(key.value_of(row) for key in keys))

    @classmethod
    def decode(cls, raw: str, parameter: str, sort: str, keys: Sequence[SortKey]) -> Cursor:
        """The cursor of ``raw``, made for ``sort`` (the request's): a 400 otherwise."""
        try:
            padded = raw + "=" * (-len(raw) % 4)
            made_for, values = json.loads(base64.urlsafe_b64decode(padded.encode()))
        except (ValueError, TypeError, binascii.Error, RecursionError):
            raise invalid_cursor(
                parameter, "is not a cursor this API made (take links.next)"
            ) from None
        if made_for != sort:
            raise invalid_cursor(
                parameter,
                f"was made for sort={made_for!r}, not {sort!r}: give the same sort, or start "
                "again from the first page",
            )
        if not isinstance(values, list) or len(values) != len(keys):
            raise invalid_cursor(parameter, "is not a cursor this API made (take links.next)")
        return cls(
            sort, tuple(_value(v, key, parameter) for v, key in zip(values, keys, strict=True))
        )

    def beyond(self, keys: Sequence[SortKey], *, reverse: bool = False) -> ColumnElement[bool]:
        """Rows strictly after this one in the order of ``keys`` (before it, ``reverse``)."""
        alternatives = []
        for index, key in enumerate(keys):
            equal = [_equal(k, v) for k, v in zip(keys[:index], self.values[:index], strict=True)]
            alternatives.append(and_(*equal, _after(key, self.values[index], reverse=reverse)))
        condition = or_(*alternatives)
        # The first key's bound on its own too, that an index on it can start from there.
        bound = _bound(keys[0], self.values[0], reverse=reverse)
        return condition if bound is None else and_(bound, condition)


def invalid_cursor(parameter: str, detail: str) -> ApiError:
    """A cursor the API did not make, or cursors given together: no schema can say so."""
    return ApiError(400, detail, parameter=parameter, code="INVALID_CURSOR")


def _json(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return value.value if hasattr(value, "value") else value  # an enum member


def _value(raw: Any, key: SortKey, parameter: str) -> Any:
    """``raw`` (from JSON) as a value of ``key``'s kind."""
    if raw is None and key.nullable:
        return None
    try:
        if key.kind == "datetime" and isinstance(raw, str):
            moment = datetime.fromisoformat(raw)
            if moment.tzinfo is not None:
                return moment.astimezone(UTC)
        elif key.kind == "date" and isinstance(raw, str):
            return date.fromisoformat(raw)
        elif key.kind == "integer" and isinstance(raw, int) and not isinstance(raw, bool):
            if BIGINT_MIN <= raw <= BIGINT_MAX:
                return raw
        elif (key.kind == "boolean" and isinstance(raw, bool)) or (
            key.kind == "string" and isinstance(raw, str) and storable(raw)
        ):
            return raw
    except (ValueError, OverflowError):  # not a date; a moment outside years 1 to 9999 in UTC
        pass
    raise invalid_cursor(parameter, "is not a cursor this API made (take links.next)")


def _equal(key: SortKey, value: Any) -> ColumnElement[bool]:
    return key.column.is_(None) if value is None else key.column == value  # type: ignore[no-any-return]


def _after(key: SortKey, value: Any, *, reverse: bool) -> ColumnElement[bool]:
    """Strictly after ``value`` in ``key``'s order (reversed: before it)."""
    descending = key.descending != reverse
    nulls_last = not descending  # ascending: NULLs at the end; descending: at the start
    if value is None:
        return false() if nulls_last else key.column.is_not(None)
    beyond = key.column < value if descending else key.column > value
    return or_(beyond, key.column.is_(None)) if key.nullable and nulls_last else beyond


def _bound(key: SortKey, value: Any, *, reverse: bool) -> ColumnElement[bool] | None:
    """``key >= value`` (or ``<=``) when that alone holds for every row after the cursor:
    a range an index scan starts from. None where NULLs could follow."""
    descending = key.descending != reverse
    if value is None:
        return None
    if key.nullable and not descending:
        return None
    return key.column <= value if descending else key.column >= value  # type: ignore[no-any-return]
