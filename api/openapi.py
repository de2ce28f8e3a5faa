"""The OpenAPI document (``/api/openapi.json``): FastAPI's, made compact.

What operations repeat is written once, under ``components``, and referred to: the key,
the error response, each success response, the ``Idempotency-Key`` header, ``{id}`` and
the query parameters (``api/parameters.py``). What every resource object, list and single
document share is one schema each (``Resource``, ``List``, ``Document``) that a type's
schema extends. A type's ``/relationships/<name>`` routes, alike but for the name, are one
path. The parameters every operation of a path takes are the path's. A component used
once is written where it is used, and so is a schema no longer than a reference to it.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from api import parameters
from api.errors import MEDIA_TYPE
from api.resources import REGISTRY
from api.routes import ERRORS

COMPONENTS = "#/components/"
SCHEMAS = COMPONENTS + "schemas/"
RESPONSES = COMPONENTS + "responses/"
#: The ``components.responses`` name of every operation's ``default`` response.
ERROR = "error"
#: What each kind of document shares, by its schema name: the suffix of the type's schemas
#: (``orders_list``), and the properties whose values each type has its own, as the shared
#: schema types them.
ENVELOPES: dict[str, tuple[str, dict[str, dict[str, Any]]]] = {
    "Resource": ("_resource", {"type": {"type": "string"}, "attributes": {"type": "object"}}),
    "List": ("_list", {"data": {"type": "array"}}),
    "Document": ("_document", {"data": {"type": "object"}}),
}


def _error_responses() -> dict[str, dict[str, Any]]:
    """Each documented error status, as FastAPI writes it for every route."""
    return {
        str(status): {
            "description": error["description"],
            "content": {MEDIA_TYPE: {"schema": {"$ref": SCHEMAS + "ErrorDocument"}}},
        }
        for status, error in ERRORS.items()
    }


def _error(errors: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The ``default`` response: any status but the operation's success is an error
    document; the statuses the API answers with, in one description."""
    listed = "; ".join(f"{status}: {error['description']}" for status, error in errors.items())
    return {**next(iter(errors.values())), "description": f"An error. {listed}"}


def _tidy(node: Any) -> Any:
    """``node`` without what says nothing: pydantic's titles (the property's or model's
    name again), empty descriptions, ``additionalProperties: true`` (the default), and the
    type beside a ``const``."""
    if isinstance(node, list):
        return [_tidy(item) for item in node]
    if not isinstance(node, dict):
        return node
    return {
        key: value if key in ("enum", "const", "default", "example", "examples") else _tidy(value)
        for key, value in node.items()
        # A property may be named "title"; a schema's own title is a string.
        if not (key == "title" and isinstance(value, str))
        and not (key == "description" and value == "")
        and not (key == "additionalProperties" and value is True)
        and not (key == "type" and "const" in node)
    }


def _nullable(node: Any) -> Any:
    """``node`` with each ``anyOf: [<one type>, null]`` written as ``type: [<type>, "null"]``
    (JSON Schema 2020-12; the same values)."""
    if isinstance(node, list):
        return [_nullable(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _nullable(value) for key, value in node.items()}
    branches = node.get("anyOf")
    if isinstance(branches, list) and len(branches) == 2 and {"type": "null"} in branches:
        other = branches[0] if branches[1] == {"type": "null"} else branches[1]
        if (
            isinstance(other.get("type"), str)
            and not {"$ref", "enum", "const"} & other.keys()
            and not other.keys() & (node.keys() - {"anyOf"})
        ):
            rest = {key: value for key, value in node.items() if key != "anyOf"}
            return {**other, "type": [other["type"], "null"], **rest}
    return node


def _response_name(response: dict[str, Any]) -> str | None:
    """A success response's name under ``components.responses``: its schema's (or its
    schemas', joined by ``_or_``); None when it has no content."""
    if "content" not in response:
        return None
    schema = response["content"][MEDIA_TYPE]["schema"]
    refs = schema.get("anyOf", [schema])
    return "_or_".join(ref["$ref"].rsplit("/", 1)[-1] for ref in refs)


def _header(parameter: dict[str, Any]) -> dict[str, Any]:
    """A header parameter as FastAPI writes it, without its ``null`` branch (a header is
    text or absent), ``required: false`` (the default) or the description again in
    its schema."""
    schema = {key: value for key, value in parameter["schema"].items() if key != "description"}
    branches = [branch for branch in schema.get("anyOf", []) if branch != {"type": "null"}]
    if len(branches) == 1 and schema.keys() == {"anyOf"}:
        schema = branches[0]
    kept = {key: value for key, value in parameter.items() if key != "required" or value}
    return {**kept, "schema": schema}


def _fold_linkages(paths: dict[str, Any]) -> dict[str, Any]:
    """``paths`` with each type's ``/{id}/relationships/<name>`` paths as one,
    ``/{id}/relationships/{relationship}``, whose parameter names them: the operations
    differ in nothing else (checked)."""
    folded: dict[str, Any] = {}
    for path, operations in paths.items():
        base, found, name = path.rpartition("/relationships/")
        if not found:
            folded[path] = operations
            continue
        assert list(operations) == ["get"], path
        operation = {**operations["get"], "operationId": "linkage_" + base.split("/")[2]}
        template = f"{base}/relationships/{{relationship}}"
        if template not in folded:
            relationship = {"name": "relationship", "in": "path", "required": True}
            listed = [*operation["parameters"], {**relationship, "schema": {"enum": []}}]
            folded[template] = {"get": {**operation, "parameters": listed}}
        first = folded[template]["get"]
        assert operation == {**first, "parameters": first["parameters"][:-1]}, path
        first["parameters"][-1]["schema"]["enum"].append(name)
    return folded


def _shared_parameters(paths: dict[str, Any]) -> dict[str, Any]:
    """``paths`` with the parameters that every operation of a path of several takes
    listed once, on the path (``{id}`` of ``/api/orders/{id}``)."""
    shared: dict[str, Any] = {}
    for path, operations in paths.items():
        listed = [operation.get("parameters", []) for operation in operations.values()]
        common = [p for p in listed[0] if all(p in others for others in listed[1:])]
        if len(operations) < 2 or not common:
            shared[path] = operations
            continue
        shared[path] = {"parameters": common}
        for method, operation in operations.items():
            own = [p for p in operation["parameters"] if p not in common]
            rest = {key: value for key, value in operation.items() if key != "parameters"}
            shared[path][method] = {**rest, "parameters": own} if own else rest
    return shared


def _fold_envelopes(schemas: dict[str, Any]) -> dict[str, Any]:
    """``schemas`` with each type's resource object, list and single document written as
    the shared schema (``allOf``) and the values of its own (:data:`ENVELOPES`)."""
    schemas = dict(schemas)
    for envelope, (suffix, own) in ENVELOPES.items():
        shared: dict[str, Any] | None = None
        for type_ in REGISTRY:
            schema = schemas[type_ + suffix]
            properties = schema["properties"]
            generic = {**schema, "properties": {**properties, **own}}
            assert shared in (None, generic), type_ + suffix
            shared = generic
            schemas[type_ + suffix] = {
                "allOf": [{"$ref": SCHEMAS + envelope}],
                "properties": {
                    name: {
                        key: value
                        for key, value in properties[name].items()
                        if own[name].get(key) != value
                    }
                    for name in own
                },
            }
        assert shared is not None
        schemas[envelope] = shared
    return schemas


def _references(node: Any) -> Iterator[tuple[str, bool]]:
    """Every ``$ref`` in ``node``, and whether the object holding it holds nothing else."""
    if isinstance(node, dict):
        reference = node.get("$ref")
        if isinstance(reference, str):
            yield reference, len(node) == 1
        for value in node.values():
            yield from _references(value)
    elif isinstance(node, list):
        for item in node:
            yield from _references(item)


def _size(node: Any) -> int:
    return len(json.dumps(node, separators=(",", ":"), ensure_ascii=False))


def _written_where_used(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` with each component that is referred to once, or (a schema) is no
    longer than a reference to it, written in place of its references. Not one that
    refers to itself, nor one beside which a reference says more."""
    uses = Counter(reference for reference, _alone in _references(document))
    beside = {reference for reference, alone in _references(document) if not alone}
    inlined: dict[str, Any] = {}
    for section, components in document["components"].items():
        for name, body in components.items():
            reference = f"{COMPONENTS}{section}/{name}"
            if reference in beside or reference in dict(_references(body)):
                continue
            short = section == "schemas" and _size(body) <= _size({"$ref": reference})
            if uses[reference] == 1 or short:
                inlined[reference] = body

    def written(node: Any) -> Any:
        if isinstance(node, list):
            return [written(item) for item in node]
        if not isinstance(node, dict):
            return node
        if node.get("$ref") in inlined:
            return written(inlined[node["$ref"]])
        return {key: written(value) for key, value in node.items()}

    document = written(document)
    for reference in inlined:
        section, name = reference.removeprefix(COMPONENTS).split("/")
        del document["components"][section][name]
    return document


def _compact(document: dict[str, Any]) -> dict[str, Any]:
    """Write once what operations repeat (see the module's docstring).

    No operation has a summary: its method and path say it.
    """
    # Not the info object: its title is the API's.
    document = {**_tidy(document), "info": document["info"]}
    errors = _error_responses()
    responses: dict[str, Any] = {}
    key: list[dict[str, list[str]]] = [{"HTTPBearer": []}]
    path_id = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
    headers: dict[str, Any] = {}
    for operations in document["paths"].values():
        for operation in operations.values():
            operation.pop("summary", None)
            if operation.get("security") == key:
                del operation["security"]
            listed = operation.get("parameters", [])
            for index, parameter in enumerate(listed):
                name = None
                if parameter == path_id:
                    name = "id"
                elif parameter.get("in") == "header":
                    name = parameter["name"].lower().replace("-", "_")
                    headers[name] = _header(parameter)
                if name is not None:
                    listed[index] = {"$ref": parameters.REFERENCE + name}
            answers: dict[str, Any] = operation["responses"]
            if all(answers.get(status) == error for status, error in errors.items()):
                for status in errors:
                    del answers[status]
                answers["default"] = {"$ref": RESPONSES + ERROR}
            for status, answer in answers.items():
                name = _response_name(answer) if status.startswith("2") else None
                if name is not None:
                    responses[name] = answer
                    answers[status] = {"$ref": RESPONSES + name}
    document["paths"] = _shared_parameters(_fold_linkages(document["paths"]))
    document["security"] = key
    document["info"]["description"] += " " + parameters.GRAMMAR
    components = document["components"]
    schemas = _nullable({**components["schemas"], **parameters.schemas()})
    components["schemas"] = _fold_envelopes(schemas)
    components["responses"] = {**responses, ERROR: _error(errors)}
    components["parameters"] = {
        "id": {**path_id, "description": "The record's id."},
        **headers,
        **parameters.components(REGISTRY),
    }
    return _written_where_used(document)


def openapi_document(app: FastAPI) -> dict[str, Any]:
    """``app``'s OpenAPI document, made once; what ``app.openapi()`` returns."""
    if app.openapi_schema is None:
        app.openapi_schema = _compact(
            get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
        )
    return app.openapi_schema
