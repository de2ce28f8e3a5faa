"""Query parameters: ``filter[q][attr_predicate]``, ``sort``, ``page[…]``, ``include``,
``fields[…]``.

Anything else is a 400, never silently ignored.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, cast

from sqlalchemy import ColumnElement, and_, not_, or_
from sqlalchemy.orm import InstrumentedAttribute

from api.errors import ApiError
from api.spec import Kind, Resource

PREDICATES = (
    "not_eq",
    "not_in",
    "lteq",
    "gteq",
    "present",
    "start",
    "null",
    "cont",
    "end",
    "eq",
    "in",
    "lt",
    "gt",
)
DEFAULT_PAGE_SIZE = 10
MAX_PAGE_SIZE = 25
FILTER = re.compile(r"^filter\[q\]\[([a-z0-9_]+)\]$")
FIELDS = re.compile(r"^fields\[([a-z_]+)\]$")


@dataclass
class Query:
    conditions: list[ColumnElement[bool]] = field(default_factory=list)
    order_by: list[Any] = field(default_factory=list)
    page_number: int = 1
    page_size: int = DEFAULT_PAGE_SIZE
    include: list[str] = field(default_factory=list)
    fields: dict[str, set[str]] = field(default_factory=dict)


def filterable(resource: Resource) -> dict[str, Kind]:
    """Attribute (or column) name → kind, for everything ``filter[q]`` accepts."""
    names: dict[str, Kind] = {"id": "string"}
    names.update({a.name: a.kind for a in resource.attributes if a.filterable})
    names.update(resource.extra_filters)
    return names


def _column(resource: Resource, name: str) -> InstrumentedAttribute[Any]:
    attribute = resource.attribute(name)
    column: InstrumentedAttribute[Any] = getattr(
        resource.model, attribute.attr if attribute else name
    )
    return column


def _split(name: str, names: Mapping[str, Kind]) -> tuple[str, str] | None:
    for predicate in PREDICATES:
        suffix = f"_{predicate}"
        if name.endswith(suffix) and name[: -len(suffix)] in names:
            return name[: -len(suffix)], predicate
    return None


def _value(kind: Kind, raw: str, parameter: str) -> Any:
    try:
        if kind == "integer":
            return int(raw)
        if kind == "boolean":
            if raw not in ("true", "false"):
                raise ValueError(raw)
            return raw == "true"
        if kind == "datetime":
            moment = datetime.fromisoformat(raw)
            return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
        if kind == "date":
            return date.fromisoformat(raw)
    except ValueError:
        raise ApiError(
            400, f"{raw!r} is not a valid {kind}", parameter=parameter, code="INVALID_FILTER_VALUE"
        ) from None
    if kind in ("object", "array"):
        raise ApiError(400, "this attribute cannot be filtered", parameter=parameter)
    return raw


def _like(raw: str) -> str:
    return raw.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _condition(
    column: Any, kind: Kind, predicate: str, raw: str, parameter: str
) -> ColumnElement[bool]:
    if predicate in ("null", "present"):
        wanted = _value("boolean", raw, parameter)
        is_null = column.is_(None)
        if predicate == "present" and kind == "string":
            is_null = or_(column.is_(None), column == "")
        return cast(
            ColumnElement[bool], is_null if wanted == (predicate == "null") else not_(is_null)
        )
    if predicate in ("in", "not_in"):
        values = [_value(kind, part, parameter) for part in raw.split(",") if part != ""]
        if not values:
            raise ApiError(
                400,
                "give at least one value, separated by commas",
                parameter=parameter,
                code="INVALID_FILTER_VALUE",
            )
        inside = column.in_(values)
        return inside if predicate == "in" else or_(column.is_(None), not_(inside))
    if predicate in ("cont", "start", "end"):
        if kind != "string":
            raise ApiError(
                400,
                f"{predicate} works on text attributes only",
                parameter=parameter,
                code="INVALID_FILTER_VALUE",
            )
        pattern = {"cont": "%{}%", "start": "{}%", "end": "%{}"}[predicate].format(_like(raw))
        return cast(ColumnElement[bool], column.ilike(pattern, escape="\\"))
    value = _value(kind, raw, parameter)
    if predicate == "eq":
        return cast(ColumnElement[bool], column == value)
    if predicate == "not_eq":
        return or_(column.is_(None), column != value)
    if kind == "boolean":
        raise ApiError(
            400,
            f"{predicate} does not apply to true/false attributes",
            parameter=parameter,
            code="INVALID_FILTER_VALUE",
        )
    return cast(
        ColumnElement[bool],
        {
            "lt": column < value,
            "lteq": column <= value,
            "gt": column > value,
            "gteq": column >= value,
        }[predicate],
    )


def _positive(raw: str, parameter: str) -> int:
    if not raw.isdigit() or int(raw) < 1:
        raise ApiError(400, f"{raw!r} is not a positive whole number", parameter=parameter)
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
        elif match := FILTER.match(parameter):
            split = _split(match[1], names)
            if split is None:
                raise ApiError(
                    400,
                    f"unknown filter; filterable: {', '.join(sorted(names))}; "
                    f"predicates: {', '.join(PREDICATES)}",
                    parameter=parameter,
                    code="INVALID_FILTER",
                )
            name, predicate = split
            query.conditions.append(
                _condition(_column(resource, name), names[name], predicate, raw, parameter)
            )
        elif parameter == "sort":
            query.order_by = _sort(raw, resource)
        elif parameter == "page[number]":
            query.page_number = _positive(raw, parameter)
        elif parameter == "page[size]":
            query.page_size = _positive(raw, parameter)
            if query.page_size > MAX_PAGE_SIZE:
                raise ApiError(400, f"the largest page is {MAX_PAGE_SIZE}", parameter=parameter)
        else:
            raise ApiError(400, "is not a query parameter of this endpoint", parameter=parameter)
    if listing and not query.order_by:
        query.order_by = _sort(resource.default_sort, resource)
    return query


def _sort(raw: str, resource: Resource) -> list[Any]:
    sortable = {"id"} | {a.name for a in resource.attributes if a.sortable}
    order = []
    for item in raw.split(","):
        name = item.removeprefix("-")
        if name not in sortable:
            raise ApiError(
                400,
                f"cannot sort by {name!r}; sortable: {', '.join(sorted(sortable))}",
                parameter="sort",
                code="INVALID_SORT",
            )
        column = _column(resource, name)
        order.append(column.desc() if item.startswith("-") else column.asc())
    model: Any = resource.model
    order.append(model.id.asc())
    return order


def _include(raw: str, resource: Resource) -> list[str]:
    names = [name for name in raw.split(",") if name]
    for name in names:
        if resource.relationship(name) is None:
            known = ", ".join(r.name for r in resource.relationships)
            raise ApiError(
                400,
                f"cannot include {name!r}; relationships: {known}",
                parameter="include",
                code="INVALID_INCLUDE",
            )
    return names


def _fields(type_: str, raw: str, registry: Mapping[str, Resource], parameter: str) -> set[str]:
    target = registry.get(type_)
    if target is None:
        raise ApiError(400, f"unknown resource type {type_!r}", parameter=parameter)
    wanted = {name for name in raw.split(",") if name}
    known = {a.name for a in target.attributes} | {r.name for r in target.relationships}
    unknown = wanted - known
    if unknown:
        raise ApiError(
            400, f"unknown fields {', '.join(sorted(unknown))} of {type_}", parameter=parameter
        )
    return wanted


def combined(conditions: list[ColumnElement[bool]]) -> ColumnElement[bool] | None:
    return and_(*conditions) if conditions else None
