"""The OpenAPI document (``/api/openapi.json``): FastAPI's, made compact.

What operations repeat is written once, under ``components``, and referred to: the key,
the error response, each success response, the ``Idempotency-Key`` header, ``{id}`` and
the query parameters (``api/parameters.py``). What every resource object, list and single
document share is one schema each (``Resource``, ``List``, ``Document``) that a type's
schema extends; so is what every request document shares (``Writable``), and every to-one
relationship in one (``ToOne``). An attribute that several types type alike is typed once,
in the shared schema. A type's create and update bodies are one schema,
``<type>_writable``, that each narrows (the create sends no ``id``, the update nothing
only a create sets). A type's ``/relationships/<name>`` routes, alike but for the name,
are one path. The parameters every operation of a path takes are the path's. A component
used once is written where it is used, and so is a schema no longer than a reference to it.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Depends, FastAPI
from fastapi.openapi.utils import get_openapi

from api import parameters
from api.auth import bearer
from api.errors import MEDIA_TYPE
from api.resources import REGISTRY
from api.routes import ERRORS
from api.schemas import ErrorDocument

COMPONENTS = "#/components/"
SCHEMAS = COMPONENTS + "schemas/"
RESPONSES = COMPONENTS + "responses/"
#: Every success response's description (FastAPI's, "Successful Response", says no more).
SUCCESS = "OK"
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
    return {str(status): error for status, error in ERRORS.items()}


def _with_shared_components(document: dict[str, Any]) -> dict[str, Any]:
    """FastAPI's document with what every route refers to but none declares: the API key's
    scheme (a route reads the key itself, ``api.auth.request_key``) and the error
    document's schemas (``api.routes.ERRORS``), as FastAPI writes them from one route of
    their own, where it writes them (the scheme first, the schemas by name)."""
    router = APIRouter()
    router.add_api_route(
        "/", _no_route, responses={400: {"model": ErrorDocument}}, dependencies=[Depends(bearer)]
    )
    shared = get_openapi(title="", version="", routes=router.routes)["components"]
    components = document.get("components", {})
    schemas = {**components.get("schemas", {}), **shared["schemas"]}
    document["components"] = {
        **shared,
        **components,
        "securitySchemes": shared["securitySchemes"],
        "schemas": dict(sorted(schemas.items())),
    }
    return document


def _no_route() -> None:
    """The endpoint of :func:`_with_shared_components`' route, which serves nothing."""


def _error(errors: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The ``default`` response: any status but the operation's success is an error
    document; the statuses the API answers with, in one description."""
    listed = "; ".join(f"{status}: {error['description']}" for status, error in errors.items())
    return {**next(iter(errors.values())), "description": f"An error. {listed}"}


def _tidy(node: Any) -> Any:
    """``node`` without what says nothing: pydantic's titles (the property's or model's
    name again), empty descriptions, ``additionalProperties: true`` (the default), the
    type beside a ``const``, and the ``.0`` of a whole number (pydantic's bounds)."""
    if isinstance(node, list):
        return [_tidy(item) for item in node]
    if isinstance(node, float) and node.is_integer():
        return int(node)
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


#: The keywords that apply to values of one kind only, by the types of that kind.
KIND_KEYWORDS: dict[tuple[str, ...], frozenset[str]] = {
    ("object",): frozenset(
        {"properties", "additionalProperties", "patternProperties", "propertyNames", "required"}
    ),
    ("array",): frozenset({"items", "prefixItems", "minItems", "maxItems", "uniqueItems"}),
    ("string",): frozenset({"pattern", "minLength", "maxLength", "format"}),
    ("integer", "number"): frozenset({"minimum", "maximum", "multipleOf"}),
    ("boolean",): frozenset(),
    ("null",): frozenset(),
}


def _kind(branch: Any) -> tuple[str, ...] | None:
    """The kind of an ``anyOf`` branch that says only its type and keywords of that
    type's kind; None for any other branch."""
    if not isinstance(branch, dict) or not isinstance(branch.get("type"), str):
        return None
    kind = next(kind for kind in KIND_KEYWORDS if branch["type"] in kind)
    return kind if branch.keys() - {"type"} <= KIND_KEYWORDS[kind] else None


def _typed(node: Any) -> Any:
    """``node`` with each ``anyOf`` of branches that each say one type (and keywords of
    that type's kind only, in no other branch of that kind) written as one schema with
    the list of the types (JSON Schema 2020-12; the same values): ``anyOf: [{type:
    string}, {type: null}]`` is ``type: [string, "null"]``; and ``anyOf: [{enum: […]},
    {type: null}]`` an enum with ``null``."""
    if isinstance(node, list):
        return [_typed(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _typed(value) for key, value in node.items()}
    branches = node.get("anyOf")
    if not isinstance(branches, list) or not all(isinstance(branch, dict) for branch in branches):
        return node
    rest = {key: value for key, value in node.items() if key != "anyOf"}
    others = [branch for branch in branches if branch != {"type": "null"}]
    if len(others) == 1 and len(branches) == 2 and {"enum", "type"} >= others[0].keys() >= {"enum"}:
        enum = others[0]
        if not rest.keys() & enum.keys():
            typed = {"type": [enum["type"], "null"]} if "type" in enum else {}
            return {**typed, "enum": [*enum["enum"], None], **rest}
    kinds = [_kind(branch) for branch in branches]
    if None in kinds:
        return node
    types = [branch["type"] for branch in branches]
    said = {kind for kind, branch in zip(kinds, branches, strict=True) if len(branch) > 1}
    if len(set(types)) < len(types) or any(kinds.count(kind) > 1 for kind in said):
        return node
    merged = {key: value for branch in branches for key, value in branch.items() if key != "type"}
    if (merged.keys() | {"type"}) & rest.keys():
        return node
    return {"type": types, **merged, **rest}


def _response_name(response: dict[str, Any]) -> str | None:
    """A success response's name under ``components.responses``: its schema's, less
    ``document`` (``orders``, ``orders_list``, ``linkage``), or its schemas', joined by
    ``_or_`` (``orders_or_empty``); None when it has no content."""
    if "content" not in response:
        return None
    schema = response["content"][MEDIA_TYPE]["schema"]
    refs = schema.get("anyOf", [schema])
    names = (ref["$ref"].rsplit("/", 1)[-1] for ref in refs)
    return "_or_".join(
        name.removesuffix("_document").removesuffix("Document").lower() for name in names
    )


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


def _beyond(base: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """What ``schema`` says that ``base`` does not: ``allOf: [base]`` beside it takes the
    same values as ``schema`` (which ``base`` must take: its shared parts, as built here).

    Each keyword whose value differs; the ``required`` names that ``base`` does not
    require; each property narrowed in turn. Where ``schema`` admits only its properties
    and ``base`` admits others, it names all of its own, ``{}`` for one that ``base``
    types alike; where both admit only theirs, a property of ``base`` that ``schema``
    does not take is ``not: {}``.
    """
    required = base.get("required", [])
    assert set(required) <= set(schema.get("required", [])), required
    shared, own = base.get("properties", {}), schema.get("properties", {})
    base_closed = base.get("additionalProperties") is False
    closed = schema.get("additionalProperties") is False
    closes = closed and not base_closed
    # Otherwise base would say more than schema: close what it leaves open, or type
    # what it leaves untyped.
    assert closed or not base_closed
    assert closes or base_closed or shared.keys() <= own.keys()
    properties: dict[str, Any] = {}
    for name, value in own.items():
        if name not in shared:
            assert not base_closed, name
            properties[name] = value
        elif value != shared[name] and _beyond(shared[name], value):
            properties[name] = _beyond(shared[name], value)
        elif closes:
            properties[name] = {}
    if base_closed:
        properties.update({name: {"not": {}} for name in shared if name not in own})
    beyond: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "properties" and properties:
            beyond[key] = properties
        elif key == "required" and [name for name in value if name not in required]:
            beyond[key] = [name for name in value if name not in required]
        elif key not in ("properties", "required") and base.get(key) != value:
            beyond[key] = value
    if properties and "properties" not in schema:
        beyond["properties"] = properties
    return beyond


def _extending(base: str, schema: dict[str, Any], shared: dict[str, Any]) -> dict[str, Any]:
    """``schema`` as ``allOf`` the schema named ``base`` (``shared``) and what it says
    beyond (:func:`_beyond`); a reference alone if nothing."""
    beyond = _beyond(shared, schema)
    return {"allOf": [{"$ref": SCHEMAS + base}], **beyond} if beyond else {"$ref": SCHEMAS + base}


def _alike(properties: list[dict[str, Any]]) -> dict[str, Any]:
    """The properties that several of ``properties`` have, each all alike, where writing
    one once (and naming it, ``{}``, in each) is shorter."""
    found: dict[str, list[Any]] = {}
    for listed in properties:
        for name, schema in listed.items():
            found.setdefault(name, []).append(schema)
    return {
        name: schemas[0]
        for name, schemas in found.items()
        if all(schema == schemas[0] for schema in schemas)
        and _size({name: schemas[0]}) < len(schemas) * (_size(schemas[0]) - _size({}))
    }


def _fold_envelopes(schemas: dict[str, Any]) -> dict[str, Any]:
    """``schemas`` with each type's resource object, list and single document written as
    the shared schema (``allOf``) and the values of its own (:data:`ENVELOPES`); and with
    the attributes that several types have alike typed once, in ``Resource``'s."""
    schemas = dict(schemas)
    for envelope, (suffix, own) in ENVELOPES.items():
        shared: dict[str, Any] | None = None
        for type_ in REGISTRY:
            schema = schemas[type_ + suffix]
            generic = {**schema, "properties": {**schema["properties"], **own}}
            assert shared in (None, generic), type_ + suffix
            shared = generic
        assert shared is not None
        schemas[envelope] = shared
        for type_ in REGISTRY:
            schemas[type_ + suffix] = _extending(envelope, schemas[type_ + suffix], shared)
    attributes = {type_: schemas[f"{type_}_attributes"] for type_ in REGISTRY}
    resource = schemas["Resource"]
    generic = {
        **resource["properties"]["attributes"],
        "properties": _alike([schema["properties"] for schema in attributes.values()]),
    }
    schemas["Resource"] = {
        **resource,
        "properties": {**resource["properties"], "attributes": generic},
    }
    for type_, schema in attributes.items():
        schemas[f"{type_}_attributes"] = _beyond(generic, schema)
    return schemas


def _fold_to_one(schemas: dict[str, Any]) -> dict[str, Any]:
    """``schemas`` with each ``<type>_to_one`` and ``<type>_to_one_nullable`` (a request's
    relationship: ``data`` an identifier of that type, or also null) written as ``ToOne``
    (an identifier of any type, or null) narrowed to its type; and without the
    ``<type>_identifier`` schemas they referred to (each checked to be ``Identifier`` of
    its type, open: a request's identifier may hold members it does not name, ignored)."""
    schemas = dict(schemas)
    identifier = {
        key: value for key, value in schemas["Identifier"].items() if key != "additionalProperties"
    }
    to_one = {
        "properties": {"data": {"anyOf": [identifier, {"type": "null"}]}},
        "additionalProperties": False,
        "type": "object",
        "required": ["data"],
    }
    for type_ in REGISTRY:
        own = {"$ref": f"{SCHEMAS}{type_}_identifier"}
        for nullable in (False, True):
            name = f"{type_}_to_one_nullable" if nullable else f"{type_}_to_one"
            if name not in schemas:
                continue
            data = {"anyOf": [own, {"type": "null"}]} if nullable else own
            assert schemas[name] == {**to_one, "properties": {"data": data}}, name
            narrowed = {"properties": {"type": {"const": type_}}}
            schemas[name] = {
                "allOf": [{"$ref": SCHEMAS + "ToOne"}],
                "properties": {"data": narrowed if nullable else {"type": "object", **narrowed}},
            }
        if own["$ref"].removeprefix(SCHEMAS) in schemas:
            typed = {"type": {"const": type_}, "id": identifier["properties"]["id"]}
            assert schemas.pop(f"{type_}_identifier") == {**identifier, "properties": typed}
    schemas["ToOne"] = to_one
    return schemas


def _closed(schema: Any) -> bool:
    """Whether ``schema`` is an object that takes its named properties only."""
    return isinstance(schema, dict) and schema.get("additionalProperties") is False


def _common(one: dict[str, Any], other: dict[str, Any]) -> dict[str, Any]:
    """The closed object that names every property either of two closed objects takes,
    types those both type alike (in turn, where both are closed objects; ``{}`` where
    not: each types it itself), and requires what both require."""
    properties: dict[str, Any] = {}
    for name in [*one["properties"], *other["properties"]]:
        mine, theirs = one["properties"].get(name), other["properties"].get(name)
        if mine == theirs:
            properties[name] = mine
        elif _closed(mine) and _closed(theirs):
            properties[name] = _common(mine, theirs)
        else:
            properties[name] = {}
    common = {**one, "properties": properties}
    required = [name for name in one.get("required", []) if name in other.get("required", [])]
    if required:
        common["required"] = required
    else:
        common.pop("required", None)
    return common


def _filled(schema: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with each property it leaves untyped (``{}``) typed as ``base`` types
    it: what ``allOf: [base]`` beside ``schema`` means, written out."""
    if "properties" not in schema:
        return schema
    typed = base.get("properties", {})
    properties = {
        name: typed[name]
        if value == {} and name in typed
        else _filled(value, typed[name])
        if name in typed and isinstance(value, dict)
        else value
        for name, value in schema["properties"].items()
    }
    return {**schema, "properties": properties}


def _fold_writable(schemas: dict[str, Any]) -> dict[str, Any]:
    """``schemas`` with what a type's create and update bodies take written once.

    What the two bodies say alike is one closed schema, ``<type>_writable``, that names
    what either sends (:func:`_common`); each refers to it with what it says beyond: the
    create's no ``id``, no trigger, and the attributes only a create sets; the update's
    the triggers and none of those. What every type's is alike, the JSON:API request
    document, is one schema, ``Writable``, that each extends: with the attributes that
    several types write alike.
    """
    schemas = dict(schemas)
    written: set[str] = set()

    def resolved(node: Any, type_: str) -> Any:
        if isinstance(node, dict) and set(node) == {"$ref"}:
            name = node["$ref"].removeprefix(SCHEMAS)
            if name.startswith((f"{type_}_create_", f"{type_}_update_")):
                written.add(name)
                return resolved(schemas[name], type_)
        if isinstance(node, dict):
            return {key: resolved(value, type_) for key, value in node.items()}
        return node

    bodies: dict[str, dict[str, Any]] = {}
    common: dict[str, dict[str, Any]] = {}
    for type_ in REGISTRY:
        names = [f"{type_}_{body}_document" for body in ("create", "update")]
        bodies[type_] = {name: resolved(schemas[name], type_) for name in names if name in schemas}
        if bodies[type_]:
            pair = list(bodies[type_].values())
            common[type_] = _common(pair[0], pair[-1])
    attributes = [
        schema["properties"]["data"]["properties"].get("attributes", {}).get("properties", {})
        for schema in common.values()
    ]
    skeleton = {
        "type": {"type": "string"},
        "id": {"type": "string"},
        "attributes": {"type": "object", "properties": _alike(attributes)},
        "relationships": {"type": "object"},
    }
    data = {"properties": skeleton, "additionalProperties": False, "type": "object"}
    writable = {
        "properties": {"data": {**data, "required": ["type"]}},
        "additionalProperties": False,
        "type": "object",
        "required": ["data"],
    }
    schemas["Writable"] = writable
    for type_, shared in common.items():
        schemas[f"{type_}_writable"] = _extending("Writable", shared, writable)
        for name, body in bodies[type_].items():
            schemas[name] = _extending(f"{type_}_writable", body, _filled(shared, writable))
    for name in written:
        del schemas[name]
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
                if not status.startswith("2"):
                    continue
                answer["description"] = SUCCESS
                name = _response_name(answer)
                if name is not None:
                    responses[name] = answer
                    answers[status] = {"$ref": RESPONSES + name}
    document["paths"] = _shared_parameters(_fold_linkages(document["paths"]))
    document["security"] = key
    document["info"]["description"] += " " + parameters.GRAMMAR
    components = document["components"]
    schemas = _typed({**components["schemas"], **parameters.schemas()})
    components["schemas"] = _fold_writable(_fold_to_one(_fold_envelopes(schemas)))
    components["responses"] = {**responses, ERROR: _error(errors)}
    components["parameters"] = {
        "id": {**path_id, "description": "The record's id."},
        **headers,
        **parameters.components(REGISTRY),
    }
    return _typed(_written_where_used(document))  # type: ignore[no-any-return]


def openapi_document(app: FastAPI) -> dict[str, Any]:
    """``app``'s OpenAPI document, made once; what ``app.openapi()`` returns."""
    if app.openapi_schema is None:
        app.openapi_schema = _compact(
            _with_shared_components(
                get_openapi(
                    title=app.title,
                    version=app.version,
                    description=app.description,
                    routes=app.routes,
                )
            )
        )
    return app.openapi_schema
