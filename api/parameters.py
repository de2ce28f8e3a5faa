"""The query parameters of each route, as OpenAPI parameter objects.

The routes read their query string by hand (``api/query.py``), so FastAPI
cannot see it; this describes the same grammar, from the same tables, exactly
enough that a schema-driven client (or fuzzer) sends only what the API takes.

Each parameter is written once, under ``components.parameters`` (:func:`components`);
a route lists references to them (:func:`listing`, :func:`single`): one for each of
``filter[q]``, ``sort``, ``page``, ``include`` and ``fields``. ``page`` and ``fields``
are the same on every route (``fields[<type>]`` takes any type, as ``api/query.py``
does); the others are one per resource type, but for the ``sort`` that the types
sorting by nothing but their id and timestamps share. A filter value's format, which
every list shares, is a schema under ``components.schemas`` (:func:`schemas`); a list of
values (``in``) names the format of one value once (:func:`values_pattern`). What the
parameters and the predicates mean is said once, in the document's description
(:data:`GRAMMAR`), not on each parameter.
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
SCHEMAS = "#/components/schemas/"
SCALARS: dict[Kind, dict[str, Any]] = {
    "string": {"type": "string", "pattern": NO_NUL},
    "integer": {"type": "integer", "minimum": lookups.BIGINT_MIN, "maximum": lookups.BIGINT_MAX},
    "boolean": {"type": "boolean"},
    "datetime": {"type": "string", "format": "date-time"},
    "date": {"type": "string", "format": "date"},
}
#: What a type without sortable attributes of its own sorts by.
PLAIN_SORT = ["id", "created_at", "updated_at"]
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


def _kinds_by_predicates() -> dict[tuple[str, ...], list[str]]:
    """The kinds that take each list of predicates."""
    kinds: dict[tuple[str, ...], list[str]] = {}
    for kind, listed in query.PREDICATES.items():
        kinds.setdefault(tuple(listed), []).append(kind)
    return kinds


#: What the query grammar means, for the document's description (each list's
#: parameters give only the names and values they take).
GRAMMAR = (
    "Lists take `filter[q][<attribute>_<predicate>]=<value>` (a record must match all of"
    " them), `sort=a,-b` (`-`: descending), `page[number]`, `page[size]`; every route"
    " that answers with records takes `include=a,b` (related records to add) and"
    " `fields[<type>]=a,b`. Predicates by kind: "
    + "; ".join(
        f"{', '.join(kinds)}: {', '.join(listed)}"
        for listed, kinds in _kinds_by_predicates().items()
    )
    + ". `in` and `not_in` take comma-separated values; `null` and `present` take true or"
    " false; `cont`, `start` and `end` match text, ignoring case. Anything else is a 400."
)


def names_pattern(names: Iterable[str]) -> str:
    """A comma-separated list of ``names``, or nothing. Each name is followed by the end
    or by a comma that is not the last character, so the names are written once."""
    one = "|".join(re.escape(name) for name in names)
    return f"^(({one})(,(?!$)|$))*$"


def values_pattern(item: str) -> str:
    """One or more comma-separated values that each match ``item``, written once (as
    :func:`names_pattern` does)."""
    return f"^({item}(,(?!$)|$))+$"


def _sort_name(resource: Resource) -> str:
    """The ``components.parameters`` name of ``resource``'s ``sort``: ``sort`` for a type
    that sorts by nothing but its id and timestamps (:data:`PLAIN_SORT`), which such
    types share; ``<type>_sort`` for any other."""
    return "sort" if query.sortable(resource) == PLAIN_SORT else f"{resource.type}_sort"


def _reference(name: str) -> dict[str, Any]:
    return {"$ref": REFERENCE + name}


def _schema(name: str) -> dict[str, Any]:
    return {"$ref": SCHEMAS + name}


def _filter_values() -> dict[str, dict[str, Any]]:
    """The value of a filter on an attribute without choices, by kind (``filter_integer``,
    ``filter_datetime_list``): the same in every list's ``filter[q]``."""
    found = {f"filter_{kind}": dict(schema) for kind, schema in SCALARS.items()}
    for kind, item in LIST_ITEMS.items():
        found[f"filter_{kind}_list"] = {"type": "string", "pattern": values_pattern(item)}
    return found


def _parameter(name: str, schema: dict[str, Any], description: str = "") -> dict[str, Any]:
    """An optional query parameter (``required`` is false unless said)."""
    parameter = {"name": name, "in": "query", "schema": schema}
    if description:
        parameter["description"] = description
    return parameter


def _filter_value(attribute: Attribute, predicate: str) -> dict[str, Any]:
    if predicate in query.FLAGS:
        return {"type": "boolean"}
    if predicate in query.LISTS:
        # One comma-separated value (``status_in=failed,pending``): deepObject has no
        # serialisation of its own for an array, and Swagger UI would send it as JSON.
        if attribute.choices:
            item = "(" + "|".join(re.escape(choice) for choice in attribute.choices) + ")"
            return {"type": "string", "pattern": values_pattern(item)}
        return _schema(f"filter_{attribute.kind}_list")
    if attribute.choices and predicate in ("eq", "not_eq"):
        return {"type": "string", "enum": list(attribute.choices)}
    return _schema(f"filter_{attribute.kind}")


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
    parameter = _parameter(
        "filter[q]",
        {
            "type": "object",
            "additionalProperties": False,
            "patternProperties": {
                f"^({'|'.join(map(re.escape, names))})_({'|'.join(listed)})$": values[key]
                for (key, listed), names in attributes.items()
            },
            **(
                {"properties": {n: {"type": "boolean"} for n in resource.scopes}}
                if resource.scopes
                else {}
            ),
        },
    )
    parameter.update(style="deepObject", explode=True)
    return parameter


def _list(name: str, items: dict[str, Any], **schema: Any) -> dict[str, Any]:
    """A comma-separated list: an array, ``style: form`` without ``explode``."""
    parameter = _parameter(name, {"type": "array", "items": items, **schema})
    parameter.update(style="form", explode=False)
    return parameter


def _deep_object(name: str, properties: dict[str, Any], description: str) -> dict[str, Any]:
    """``name[<key>]=<value>`` for each key of ``properties`` (no other key)."""
    schema = {"type": "object", "additionalProperties": False, "properties": properties}
    parameter = _parameter(name, schema, description)
    parameter.update(style="deepObject", explode=True)
    return parameter


def schemas() -> dict[str, dict[str, Any]]:
    """What the parameters refer to under ``components.schemas``: the filter values
    every list shares."""
    return _filter_values()


def components(registry: Mapping[str, Resource]) -> dict[str, dict[str, Any]]:
    """Every parameter a route refers to, by its ``components.parameters`` name."""
    found: dict[str, dict[str, Any]] = {
        "page": _deep_object(
            "page",
            {
                "number": {"type": "integer", "minimum": 1, "maximum": query.MAX_PAGE_NUMBER},
                "size": {"type": "integer", "minimum": 1, "maximum": query.MAX_PAGE_SIZE},
                "after": {"type": "string"},
                "before": {"type": "string"},
            },
            f"`page[number]` from 1; `page[size]` records per page (default "
            f"{query.DEFAULT_PAGE_SIZE}); `page[after]`/`page[before]`: cursors.",
        ),
        "fields": _deep_object(
            "fields",
            {
                type_: {"type": "string", "pattern": names_pattern(query.field_names(resource))}
                for type_, resource in registry.items()
            },
            "`fields[<type>]=a,b`: only these attributes and relationships of that type.",
        ),
    }
    for type_, resource in registry.items():
        found[f"{type_}_filter"] = _filter(resource)
        found[_sort_name(resource)] = _list(
            "sort",
            {
                "type": "string",
                "pattern": f"^-?({'|'.join(map(re.escape, query.sortable(resource)))})$",
            },
            minItems=1,
        )
        if resource.relationships:
            found[f"{type_}_include"] = _list(
                "include", {"enum": [r.name for r in resource.relationships]}
            )
    return found


def single(resource: Resource) -> list[dict[str, Any]]:
    """The parameters of a route that returns one ``resource``: include and fields."""
    include = [_reference(f"{resource.type}_include")] if resource.relationships else []
    return [*include, _reference("fields")]


def listing(resource: Resource) -> list[dict[str, Any]]:
    """The parameters of a list of ``resource``: filters, sort, page, include and fields."""
    return [
        _reference(f"{resource.type}_filter"),
        _reference(_sort_name(resource)),
        _reference("page"),
        *single(resource),
    ]
