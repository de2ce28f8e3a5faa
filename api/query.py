"""Query parameters: ``filter[q][attr_predicate]``, ``sort``, ``page[…]``, ``include``,
``fields[…]``.

Anything else is a 400, never silently ignored. ``api/parameters.py`` describes
the same grammar in the OpenAPI document, from the same tables.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, cast

from sqlalchemy import BigInteger, ColumnElement, String, false, func, not_, or_, type_coerce
from sqlalchemy.orm import InstrumentedAttribute

from api.cursors import AFTER, BEFORE, SortKey, invalid_cursor
from api.errors import ApiError
from api.lookups import BIGINT_MAX, BIGINT_MIN, integer_key
from api.spec import Attribute, Kind, Resource
from models.base import storable

ORDERING = ("lt", "lteq", "gt", "gteq")
TEXT = ("cont", "start", "end")
#: The predicates each kind of attribute takes (Ransack's names).
PREDICATES: dict[Kind, tuple[str, ...]] = {
    "string": ("eq", "not_eq", "in", "not_in", *ORDERING, "null", "present", *TEXT),
    "integer": ("eq", "not_eq", "in", "not_in", *ORDERING, "null", "present"),
    "datetime": ("eq", "not_eq", "in", "not_in", *ORDERING, "null", "present"),
    "date": ("eq", "not_eq", "in", "not_in", *ORDERING, "null", "present"),
    "boolean": ("eq", "not_eq", "null", "present"),
}
ALL_PREDICATES = tuple(dict.fromkeys(p for ps in PREDICATES.values() for p in ps))
#: Predicates whose value is a comma-separated list.
LISTS = ("in", "not_in")
#: Predicates whose value is true or false, whatever the attribute's kind.
FLAGS = ("null", "present")
DEFAULT_PAGE_SIZE = 10
MAX_PAGE_SIZE = 25
#: Beyond this the offset would not fit PostgreSQL's bigint; no list is that long.
MAX_PAGE_NUMBER = 2**31 - 1
FILTER = re.compile(r"^filter\[q\]\[([a-z0-9_]+)\]$")
FIELDS = re.compile(r"^fields\[([a-z_]+)\]$")
INTEGER = re.compile(r"^-?[0-9]+$")
POSITIVE = re.compile(r"^[0-9]+$")
DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")


@dataclass
class Query:
    conditions: list[ColumnElement[bool]] = field(default_factory=list)
    #: The sort as asked (or the resource's default), and its keys, the id last.
    sort: str = ""
    keys: list[SortKey] = field(default_factory=list)
    page_number: int = 1
    page_size: int = DEFAULT_PAGE_SIZE
    #: ``page[after]`` or ``page[before]`` and its cursor, when the page is a keyset one.
    cursor: tuple[str, str] | None = None
    include: list[str] = field(default_factory=list)
    fields: dict[str, set[str]] = field(default_factory=dict)

    @property
    def order_by(self) -> list[Any]:
        return [key.order() for key in self.keys]


def filterable(resource: Resource) -> dict[str, Attribute]:
    """Name → attribute, for everything ``filter[q]`` accepts."""
    names: dict[str, Attribute] = {
        "id": Attribute("id", "integer" if integer_key(resource.model) else "string")
    }
    names.update({a.name: a for a in resource.attributes if a.filterable})
    names.update({name: Attribute(name, kind) for name, kind in resource.extra_filters.items()})
    return names


def filters(resource: Resource) -> Iterator[tuple[str, Attribute, str]]:
    """Every ``filter[q][…]`` parameter of ``resource``: its name, attribute and predicate."""
    for attribute in filterable(resource).values():
        for predicate in PREDICATES.get(attribute.kind, ()):
            yield f"filter[q][{attribute.name}_{predicate}]", attribute, predicate


def sortable(resource: Resource) -> list[str]:
    return ["id", *(a.name for a in resource.attributes if a.sortable)]


def field_names(resource: Resource) -> list[str]:
    return [a.name for a in resource.attributes] + [r.name for r in resource.relationships]


def _column(resource: Resource, name: str) -> InstrumentedAttribute[Any]:
    attribute = resource.attribute(name)
    column: InstrumentedAttribute[Any] = getattr(
        resource.model, attribute.attr if attribute else name
    )
    return column


def _as_text(column: Any, attribute: Attribute) -> Any:
    """An enum column as plain text, for predicates that take any text (``status_cont=fail``):
    the enum type would refuse a value that is not one of its members."""
    return type_coerce(column, String()) if attribute.choices else column


def _split(name: str, names: Mapping[str, Attribute]) -> tuple[Attribute, str] | None:
    for predicate in sorted(ALL_PREDICATES, key=len, reverse=True):
        suffix = f"_{predicate}"
        attribute = names.get(name[: -len(suffix)]) if name.endswith(suffix) else None
        if attribute is not None and predicate in PREDICATES.get(attribute.kind, ()):
            return attribute, predicate
    return None


def _invalid(parameter: str, detail: str) -> ApiError:
    return ApiError(400, detail, parameter=parameter, code="INVALID_FILTER_VALUE")


def _value(attribute: Attribute, raw: str, parameter: str, *, exact: bool) -> Any:
    """``raw`` as a value of ``attribute``; ``exact``: one of its choices, if it has some."""
    kind = attribute.kind
    if kind == "integer" and INTEGER.match(raw) and BIGINT_MIN <= int(raw) <= BIGINT_MAX:
        return int(raw)
    if kind == "boolean" and raw in ("true", "false"):
        return raw == "true"
    if kind == "date" and DATE.match(raw):
        try:
            return date.fromisoformat(raw)
        except ValueError:
            pass
    if kind == "datetime":
        try:
            moment = datetime.fromisoformat(raw)
            # In UTC, as stored: a moment whose UTC date is outside years 1 to 9999
            # (0001-01-01T00:00:00+14:00) overflows here, not in the driver (a 500).
            return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
        except ValueError:
            pass
        except OverflowError:
            raise _invalid(parameter, f"{raw!r} is outside the years 1 to 9999 in UTC") from None
    if kind == "string":
        if not storable(raw):
            raise _invalid(parameter, "text filters cannot contain NUL characters")
        if exact and attribute.choices and raw not in attribute.choices:
            raise _invalid(parameter, f"{raw!r} is not one of {', '.join(attribute.choices)}")
        return raw
    raise _invalid(parameter, f"{raw!r} is not a valid {kind}")


def _like(raw: str) -> str:
    return raw.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _condition(
    column: Any, attribute: Attribute, predicate: str, raw: str, parameter: str
) -> ColumnElement[bool]:
    if attribute.kind == "integer":
        # Bound as bigint, so a value too big for an integer column is no error, just no match.
        column = type_coerce(column, BigInteger())
    if predicate in FLAGS:
        wanted = _value(Attribute("flag", "boolean"), raw, parameter, exact=True)
        is_null = column.is_(None)
        if predicate == "present" and attribute.kind == "string":
            is_null = or_(column.is_(None), _as_text(column, attribute) == "")
        return cast(
            ColumnElement[bool], is_null if wanted == (predicate == "null") else not_(is_null)
        )
    if predicate in LISTS:
        parts = raw.split(",")
        if "" in parts:
            raise _invalid(parameter, "give one or more values, separated by commas")
        inside = column.in_([_value(attribute, part, parameter, exact=True) for part in parts])
        return inside if predicate == "in" else or_(column.is_(None), not_(inside))
    if predicate in TEXT:
        _value(attribute, raw, parameter, exact=False)
        pattern = {"cont": "%{}%", "start": "{}%", "end": "%{}"}[predicate].format(_like(raw))
        return cast(ColumnElement[bool], _as_text(column, attribute).ilike(pattern, escape="\\"))
    value = _value(attribute, raw, parameter, exact=predicate in ("eq", "not_eq"))
    if predicate in ORDERING:
        column = _as_text(column, attribute)
    if predicate == "eq":
        return cast(ColumnElement[bool], column == value)
    if predicate == "not_eq":
        return or_(column.is_(None), column != value)
    return cast(
        ColumnElement[bool],
        {
            "lt": column < value,
            "lteq": column <= value,
            "gt": column > value,
            "gteq": column >= value,
        }[predicate],
    )


def _positive(raw: str, parameter: str, largest: int) -> int:
    if not POSITIVE.match(raw) or not 1 <= int(raw) <= largest:
        raise ApiError(
            400, f"{raw!r} is not a whole number from 1 to {largest}", parameter=parameter
        )
    return int(raw)


def parse(
    params: Sequence[tuple[str, str]],
    resource: Resource,
    registry: Mapping[str, Resource],
    *,
    listing: bool,
) -> Query:
    """Read the query string of a list (``listing``) or single-resource request."""
    query = Query()
    names = filterable(resource)
    seen: set[str] = set()
    for parameter, raw in params:
        if parameter in seen:
            raise ApiError(400, "is given more than once", parameter=parameter)
        seen.add(parameter)
        if parameter == "include":
            query.include = _include(raw, resource)
        elif match := FIELDS.match(parameter):
            query.fields[match[1]] = _fields(match[1], raw, registry, parameter)
        elif not listing:
            raise ApiError(400, "is not a query parameter of this endpoint", parameter=parameter)
        elif (match := FILTER.match(parameter)) and match[1] in resource.scopes:
            wanted = _value(Attribute("scope", "boolean"), raw, parameter, exact=True)
            inside = func.coalesce(resource.scopes[match[1]](), false())
            query.conditions.append(inside if wanted else not_(inside))
        elif match := FILTER.match(parameter):
            split = _split(match[1], names)
            if split is None:
                raise ApiError(
                    400,
                    f"unknown filter; filterable: {', '.join(sorted(names))}; "
                    f"predicates: {', '.join(ALL_PREDICATES)}",
                    parameter=parameter,
                    code="INVALID_FILTER",
                )
            attribute, predicate = split
            query.conditions.append(
                _condition(_column(resource, attribute.name), attribute, predicate, raw, parameter)
            )
        elif parameter == "sort":
            query.sort, query.keys = raw, _sort(raw, resource)
        elif parameter == "page[number]":
            query.page_number = _positive(raw, parameter, MAX_PAGE_NUMBER)
        elif parameter in (AFTER, BEFORE):
            if query.cursor is not None:
                raise invalid_cursor(parameter, "give page[after] or page[before], not both")
            query.cursor = (parameter, raw)
        elif parameter == "page[size]":
            query.page_size = _positive(raw, parameter, MAX_PAGE_SIZE)
        else:
            raise ApiError(400, "is not a query parameter of this endpoint", parameter=parameter)
    if listing and not query.keys:
        query.sort, query.keys = resource.default_sort, _sort(resource.default_sort, resource)
    if query.cursor is not None and "page[number]" in seen:
        raise invalid_cursor(query.cursor[0], "give page[number] or a cursor, not both")
    return query


def default_order(resource: Resource) -> list[Any]:
    """The order of ``resource``'s lists when no ``sort`` is given."""
    return [key.order() for key in _sort(resource.default_sort, resource)]


def _names(raw: str) -> list[str]:
    """A comma-separated list of names; empty when ``raw`` is."""
    return raw.split(",") if raw else []


def _sort(raw: str, resource: Resource) -> list[SortKey]:
    allowed = sortable(resource)
    keys = []
    for item in raw.split(","):
        name = item.removeprefix("-")
        if name not in allowed:
            raise ApiError(
                400,
                f"cannot sort by {name!r}; sortable: {', '.join(sorted(allowed))}",
                parameter="sort",
                code="INVALID_SORT",
            )
        attribute = resource.attribute(name)
        keys.append(
            SortKey(
                attribute.attr if attribute else name,
                _column(resource, name),
                descending=item.startswith("-"),
                kind=attribute.kind if attribute else filterable(resource)["id"].kind,
                nullable=attribute.nullable if attribute else False,
            )
        )
    model: Any = resource.model
    keys.append(SortKey("id", model.id, False, filterable(resource)["id"].kind, nullable=False))
    return keys


def _include(raw: str, resource: Resource) -> list[str]:
    names = _names(raw)
    for name in names:
        if resource.relationship(name) is None:
            known = ", ".join(r.name for r in resource.relationships)
            raise ApiError(
                400,
                f"cannot include {name!r}; relationships: {known}",
                parameter="include",
                code="INVALID_INCLUDE",
            )
    return list(dict.fromkeys(names))


def _fields(type_: str, raw: str, registry: Mapping[str, Resource], parameter: str) -> set[str]:
    target = registry.get(type_)
    if target is None:
        raise ApiError(400, f"unknown resource type {type_!r}", parameter=parameter)
    wanted = set(_names(raw))
    unknown = wanted - set(field_names(target))
    if unknown:
        raise ApiError(
            400,
            f"unknown fields {', '.join(sorted(unknown))} of {type_}",
            parameter=parameter,
        )
    return wanted
