"""The query parameters of each route, as OpenAPI parameter objects.

The routes read their query string by hand (``api/query.py``), so FastAPI
cannot see it; this describes the same grammar, from the same tables, exactly
enough that a schema-driven client (or fuzzer) sends only what the API takes.

Each parameter is written once, under ``components.parameters`` (:func:`components`);
a route lists references to them (:func:`listing`, :func:`single`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from api import lookups, query
from api.schemas import NO_NUL
from api.spec import Attribute, Kind, Resource

REFERENCE = "#/components/parameters/"
SCALARS: dict[Kind, dict[str, Any]] = {
    "string": {"type": "string", "pattern": NO_NUL},
    "integer": {"type": "integer", "minimum": lookups.BIGINT_MIN, "maximum": lookups.BIGINT_MAX},
    "boolean": {"type": "boolean"},
    "datetime": {"type": "string", "format": "date-time"},
    "date": {"type": "string", "format": "date"},
}
_DAY = r"(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])|(0[13-9]|1[0-2])-(29|30)|(0[13578]|1[02])-31"
_DATE = rf"[12][0-9]{{3}}-({_DAY})"
#: One value of an ``in``/``not_in`` list, by kind. A regular expression cannot split
#: the list, so each describes a subset of what ``api/query.py`` reads (no 29 February,
#: years 1000 to 2999, integers of up to 18 digits): a value that matches is accepted.
LIST_ITEMS: dict[Kind, str] = {
    "string": r"[^,\x00]+",
    "integer": r"-?[0-9]{1,18}",
    "date": _DATE,
    "datetime": rf"{_DATE}T([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{{1,6}})?)?"
    r"(Z|[+-](0[0-9]|1[0-3]):[0-5][0-9])?",
}


def names_pattern(names: Iterable[str], *, descending: bool = False, empty: bool = True) -> str:
    """A comma-separated list of ``names`` (each after an optional ``-`` if ``descending``)."""
    one = "(" + "|".join(re.escape(name) for name in names) + ")"
    if descending:
        one = f"-?{one}"
    listed = f"^{one}(,{one})*$"
    return f"^$|{listed}" if empty else listed


def _reference(name: str) -> dict[str, Any]:
    return {"$ref": REFERENCE + name}


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
    if predicate in query.LISTS:
        # One comma-separated value (``status_in=failed,pending``): deepObject has no
        # serialisation of its own for an array, and Swagger UI would send it as JSON.
        item = LIST_ITEMS[attribute.kind]
        if attribute.choices:
            item = "(" + "|".join(re.escape(choice) for choice in attribute.choices) + ")"
        return {"type": "string", "pattern": f"^{item}(,{item})*$"}
    if attribute.choices and predicate in ("eq", "not_eq"):
        return {"type": "string", "enum": list(attribute.choices)}
    return dict(SCALARS[attribute.kind])


def _filter(resource: Resource) -> dict[str, Any]:
    """``filter[q]``: one deepObject, one key per attribute and predicate (``status_eq``).

    Its schema has one pattern per value type and set of predicates, naming the
    attributes that share them: ``^(created_at|updated_at)_(eq|not_eq|lt|…)$``.
    """
    predicates: dict[tuple[str, str], list[str]] = {}
    values: dict[str, dict[str, Any]] = {}
    for _name, attribute, predicate in query.filters(resource):
        value = _filter_value(attribute, predicate)
        key = json.dumps(value, sort_keys=True)
        values[key] = value
        predicates.setdefault((attribute.name, key), []).append(predicate)
    attributes: dict[tuple[str, tuple[str, ...]], list[str]] = {}
    for (name, key), listed in predicates.items():
        attributes.setdefault((key, tuple(listed)), []).append(name)
    by_kind: dict[Kind, list[str]] = {}
    for attribute in query.filterable(resource).values():
        by_kind.setdefault(attribute.kind, []).append(attribute.name)
    description = (
        "Filters, each `filter[q][<attribute>_<predicate>]=<value>`; a record must match "
        "all of them. "
        + "; ".join(
            f"{kind} attributes {', '.join(names)} take {', '.join(query.PREDICATES[kind])}"
            for kind, names in by_kind.items()
        )
        + ". `in` and `not_in` take comma-separated values; `null` and `present` take "
        "true or false; `cont`, `start` and `end` match text, ignoring case."
    )
    parameter = _parameter(
        "filter[q]",
        {
            "type": "object",
            "additionalProperties": False,
            "patternProperties": {
                f"^({'|'.join(map(re.escape, names))})_({'|'.join(listed)})$": values[key]
                for (key, listed), names in attributes.items()
            },
        },
        description,
    )
    parameter.update(style="deepObject", explode=True)
    return parameter


def _related_types(resource: Resource) -> list[str]:
    return list(dict.fromkeys([resource.type, *(r.type for r in resource.relationships)]))


def components(registry: Mapping[str, Resource]) -> dict[str, dict[str, Any]]:
    """Every parameter a route refers to, by its ``components.parameters`` name."""
    found: dict[str, dict[str, Any]] = {
        "page_number": _parameter(
            "page[number]",
            {"type": "integer", "minimum": 1, "maximum": query.MAX_PAGE_NUMBER},
            "Page number, from 1.",
        ),
        "page_size": _parameter(
            "page[size]",
            {"type": "integer", "minimum": 1, "maximum": query.MAX_PAGE_SIZE},
            f"Records per page (default {query.DEFAULT_PAGE_SIZE}).",
        ),
    }
    for type_, resource in registry.items():
        sortable = query.sortable(resource)
        found[f"{type_}_filter"] = _filter(resource)
        found[f"{type_}_sort"] = _parameter(
            "sort",
            {"type": "string", "pattern": names_pattern(sortable, descending=True, empty=False)},
            "Sort by these, comma-separated; '-' before a name for descending: "
            + ", ".join(sortable),
        )
        if resource.relationships:
            relationships = [r.name for r in resource.relationships]
            found[f"{type_}_include"] = _parameter(
                "include",
                {"type": "string", "pattern": names_pattern(relationships)},
                "Related resources to include, comma-separated: " + ", ".join(relationships),
            )
        found[f"{type_}_fields"] = _parameter(
            f"fields[{type_}]",
            {"type": "string", "pattern": names_pattern(query.field_names(resource))},
            f"Only these attributes and relationships of {type_}, comma-separated.",
        )
    return found


def single(resource: Resource) -> list[dict[str, Any]]:
    """The parameters of a route that returns one ``resource``: include and fields."""
    include = [_reference(f"{resource.type}_include")] if resource.relationships else []
    return include + [_reference(f"{type_}_fields") for type_ in _related_types(resource)]


def listing(resource: Resource) -> list[dict[str, Any]]:
    """The parameters of a list of ``resource``: filters, sort, page, include and fields."""
    return [
        _reference(f"{resource.type}_filter"),
        _reference(f"{resource.type}_sort"),
        _reference("page_number"),
        _reference("page_size"),
        *single(resource),
    ]
