"""The query parameters of each route, as OpenAPI parameter objects.

The routes read their query string by hand (``api/query.py``), so FastAPI
cannot see it; this describes the same grammar, from the same tables, exactly
enough that a schema-driven client (or fuzzer) sends only what the API takes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from api import lookups, query
from api.schemas import NO_NUL
from api.spec import Attribute, Kind, Resource

#: One value of a comma-separated list: not empty, no comma.
LIST_ITEM = r"^[^,\x00]+$"
SCALARS: dict[Kind, dict[str, Any]] = {
    "string": {"type": "string", "pattern": NO_NUL},
    "integer": {"type": "integer", "minimum": lookups.BIGINT_MIN, "maximum": lookups.BIGINT_MAX},
    "boolean": {"type": "boolean"},
    "datetime": {"type": "string", "format": "date-time"},
    "date": {"type": "string", "format": "date"},
}


def names_pattern(names: Iterable[str], *, descending: bool = False, empty: bool = True) -> str:
    """A comma-separated list of ``names`` (each after an optional ``-`` if ``descending``)."""
    one = "(" + "|".join(re.escape(name) for name in names) + ")"
    if descending:
        one = f"-?{one}"
    listed = f"^{one}(,{one})*$"
    return f"^$|{listed}" if empty else listed


def _parameter(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


def _filter_value(attribute: Attribute, predicate: str) -> dict[str, Any]:
    if predicate in query.FLAGS:
        return {"type": "boolean"}
    scalar = dict(SCALARS[attribute.kind])
    if attribute.choices and predicate in ("eq", "not_eq", *query.LISTS):
        scalar = {"type": "string", "enum": list(attribute.choices)}
    if predicate in query.LISTS:
        # Sent as one comma-separated value: ``?filter[q][status_in]=failed,pending``.
        if scalar.get("pattern") == NO_NUL:
            scalar["pattern"] = LIST_ITEM
        return {"type": "array", "items": scalar, "minItems": 1}
    return scalar


def _filter(name: str, attribute: Attribute, predicate: str) -> dict[str, Any]:
    parameter = _parameter(
        name,
        _filter_value(attribute, predicate),
        f"Records whose {attribute.name} {predicate.replace('_', ' ')} the value.",
    )
    if predicate in query.LISTS:
        parameter.update(style="form", explode=False)
    return parameter


def _fields(resource: Resource, registry: Mapping[str, Resource]) -> list[dict[str, Any]]:
    types = dict.fromkeys([resource.type, *(r.type for r in resource.relationships)])
    return [
        _parameter(
            f"fields[{type_}]",
            {"type": "string", "pattern": names_pattern(query.field_names(registry[type_]))},
            f"Only these attributes and relationships of {type_}, comma-separated.",
        )
        for type_ in types
    ]


def single(resource: Resource, registry: Mapping[str, Resource]) -> list[dict[str, Any]]:
    """The parameters of a route that returns one ``resource``: include and fields."""
    parameters = _fields(resource, registry)
    if resource.relationships:
        relationships = [r.name for r in resource.relationships]
        parameters.insert(
            0,
            _parameter(
                "include",
                {"type": "string", "pattern": names_pattern(relationships)},
                "Related resources to include, comma-separated: " + ", ".join(relationships),
            ),
        )
    return parameters


def listing(resource: Resource, registry: Mapping[str, Resource]) -> list[dict[str, Any]]:
    """The parameters of a list of ``resource``: filters, sort, page, include and fields."""
    sortable = query.sortable(resource)
    return [
        *(_filter(name, a, p) for name, a, p in query.filters(resource)),
        _parameter(
            "sort",
            {"type": "string", "pattern": names_pattern(sortable, descending=True, empty=False)},
            "Sort by these, comma-separated; '-' before a name for descending: "
            + ", ".join(sortable),
        ),
        _parameter(
            "page[number]",
            {"type": "integer", "minimum": 1, "maximum": query.MAX_PAGE_NUMBER},
            "Page number, from 1.",
        ),
        _parameter(
            "page[size]",
            {"type": "integer", "minimum": 1, "maximum": query.MAX_PAGE_SIZE},
            f"Records per page (default {query.DEFAULT_PAGE_SIZE}).",
        ),
        *single(resource, registry),
    ]
