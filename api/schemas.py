"""Pydantic models made from each resource's description: request bodies are validated
with them, and they describe requests and responses in the OpenAPI document."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from datetime import date
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
)
from pydantic import create_model as _create_model
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema
from typing_extensions import TypeAliasType

from api.spec import Attribute, Relationship, Resource, Trigger
from models.base import storable

MAX_METADATA_BYTES = 16 * 1024
MAX_JSON_DEPTH = 32
#: Integer columns are 4-byte PostgreSQL integers.
INT_MIN, INT_MAX = -(2**31), 2**31 - 1
#: PostgreSQL text cannot hold NUL; the schema says so, so generated requests know.
NO_NUL = r"^[^\x00]*$"
DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")


def _check_text(value: str) -> str:
    if not storable(value):
        raise ValueError("must be UTF-8 text without NUL characters")
    return value


def text(*, max_length: int | None = None, pattern: str | None = None) -> Any:
    """A string PostgreSQL can store; ``pattern`` (if any) must rule out NUL too."""
    return Annotated[
        StrictStr,
        Field(max_length=max_length, pattern=pattern or NO_NUL),
        AfterValidator(_check_text),
    ]


def _integral(value: Any) -> Any:
    """JSON Schema counts 3.0 as an integer; so do we (but not "3" or true)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def whole_number(low: int = INT_MIN, high: int = INT_MAX) -> Any:
    """An integer from ``low`` to ``high`` (a 4-byte column by default)."""
    return Annotated[StrictInt, Field(ge=low, le=high), BeforeValidator(_integral)]


def _date_text(value: Any) -> Any:
    """Only "YYYY-MM-DD" (pydantic alone would also take a number or a datetime)."""
    if not isinstance(value, str) or not DATE.match(value):
        raise ValueError("must be a date, YYYY-MM-DD")
    return value


#: A date as JSON:API clients send it ("2027-10-31").
DateText = Annotated[date, BeforeValidator(_date_text)]


class _KeysWithoutNul:
    """Say "no NUL in a key" as JSON Schema does (``propertyNames``): pydantic writes a
    ``patternProperties`` that leaves other keys unconstrained."""

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(schema)
        values = json_schema.pop("patternProperties", {}).get(NO_NUL)
        if values is not None:
            json_schema["propertyNames"] = {"pattern": NO_NUL}
            json_schema["additionalProperties"] = values
        return json_schema


JsonText = Annotated[StrictStr, Field(pattern=NO_NUL)]
#: Any JSON that PostgreSQL's jsonb can hold: no NUL in a string or key, no NaN.
JsonValue = TypeAliasType(
    "JsonValue",
    "JsonText | StrictInt | Annotated[StrictFloat, Field(allow_inf_nan=False)] | StrictBool"
    " | list[JsonValue] | Annotated[dict[JsonText, JsonValue], _KeysWithoutNul] | None",
)


def _check_json(value: Any, depth: int = 0) -> None:
    """Raise ValueError on what the schema cannot say: lone surrogates, deep nesting."""
    if depth > MAX_JSON_DEPTH:
        raise ValueError(f"is nested deeper than {MAX_JSON_DEPTH} levels")
    if isinstance(value, str):
        _check_text(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_text(key)
            _check_json(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_json(item, depth + 1)


def _check_stored_json(value: Any) -> Any:
    _check_json(value)
    size = len(json.dumps(value).encode())
    if size > MAX_METADATA_BYTES:
        raise ValueError(f"is {size} bytes of JSON, the limit is {MAX_METADATA_BYTES}")
    return value


#: Named, so the document writes it once and every body refers to it.
Metadata = TypeAliasType(
    "Metadata",
    Annotated[
        dict[JsonText, JsonValue],
        _KeysWithoutNul,
        AfterValidator(_check_stored_json),
        Field(description=f"Key-value pairs, at most {MAX_METADATA_BYTES} bytes of JSON."),
    ],
)
JsonArray = Annotated[list[JsonValue], AfterValidator(_check_stored_json)]


#: Models are made at run time here; pydantic's typed overloads cannot follow.
create_model: Any = _create_model


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class Ignoring(BaseModel):
    """Takes the members it names and drops the rest: JSON:API servers "MUST ignore
    members not recognized by this specification"."""

    model_config = ConfigDict(extra="ignore")


def _input_type(attribute: Attribute | Trigger) -> Any:
    kind = attribute.kind
    field: Attribute | None = attribute if isinstance(attribute, Attribute) else None
    if field is not None and field.choices:
        base: Any = Literal.__getitem__(field.choices)
    elif kind == "string":
        base = text(
            max_length=field.max_length if field else None,
            pattern=field.pattern if field else None,
        )
    elif kind == "integer":
        low = field.minimum if field and field.minimum is not None else INT_MIN
        base = whole_number(low)
    elif kind == "boolean":
        base = StrictBool
    elif kind == "datetime":
        base = AwareDatetime
    elif kind == "date":
        base = DateText
    elif kind == "object":
        base = Metadata
    else:
        base = JsonArray
    nullable = field.nullable if field is not None else False
    return base | None if nullable else base


def _output_type(attribute: Attribute) -> Any:
    base: Any = {
        "string": str,
        "integer": int,
        "boolean": bool,
        "datetime": AwareDatetime,
        "date": date,
        "object": dict[str, Any],
        "array": list[Any],
    }[attribute.kind]
    return base | None if attribute.nullable else base


def _identifier(type_: str) -> type[BaseModel]:
    """A resource identifier in a request: its ``type`` and ``id``; other members (``meta``,
    or the whole resource a client such as Commerce Layer's SDK sends when handed the
    object it got back) are ignored."""
    model: type[BaseModel] = create_model(
        f"{type_}_identifier", __base__=Ignoring, type=(Literal[type_], ...), id=(StrictStr, ...)
    )
    return model


def _to_one(relationship: Relationship, *, nullable: bool) -> type[BaseModel]:
    identifier: Any = _identifier(relationship.type)
    model: type[BaseModel] = create_model(
        f"{relationship.type}_to_one{'_nullable' if nullable else ''}",
        __base__=Strict,
        data=(identifier | None if nullable else identifier, ...),
    )
    return model


def _body(resource: Resource, *, creating: bool) -> type[BaseModel]:
    suffix = "create" if creating else "update"
    writable = ("create", "always") if creating else ("always",)
    fields: dict[str, Any] = {}
    for a in resource.attributes:
        if a.writable in writable:
            fields[a.name] = (_input_type(a), ... if creating and a.required else None)
    if not creating:
        for trigger in resource.triggers:
            fields[f"trigger{trigger.name}"] = (
                _input_type(trigger) | None,
                Field(default=None, alias=trigger.name, description=trigger.description),
            )
    attributes: Any = create_model(
        f"{resource.type}_{suffix}_attributes", __base__=Strict, **fields
    )
    relationships: dict[str, Any] = {}
    for r in resource.relationships:
        if r.to_many or r.writable not in writable:
            continue
        required = creating and r.required
        relationships[r.name] = (_to_one(r, nullable=not r.required), ... if required else None)
    data_fields: dict[str, Any] = {"type": (Literal[resource.type], ...)}
    if not creating:
        data_fields["id"] = (StrictStr, ...)
    data_fields["attributes"] = (
        attributes,
        ...
        if creating and any(a.required for a in resource.attributes if a.writable in writable)
        else None,
    )
    # Always there, if only empty: JSON:API clients may send ``"relationships": {}``
    # whatever the type (Commerce Layer's SDK always does, in a create and an update).
    rels: Any = create_model(
        f"{resource.type}_{suffix}_relationships", __base__=Strict, **relationships
    )
    required_rel = creating and any(r.required for r in resource.relationships)
    data_fields["relationships"] = (rels, ... if required_rel else None)
    data: Any = create_model(f"{resource.type}_{suffix}_data", __base__=Strict, **data_fields)
    model: type[BaseModel] = create_model(
        f"{resource.type}_{suffix}_document",
        __base__=Strict,
        data=(data, ...),
    )
    return model


def create_body(resource: Resource) -> type[BaseModel]:
    return _body(resource, creating=True)


def update_body(resource: Resource) -> type[BaseModel]:
    return _body(resource, creating=False)


class Links(Open):
    self: str


class Meta(Open):
    mode: Literal["test", "live"]


class RelationshipLinks(Strict):
    self: str
    related: str
    next: str | None = Field(
        default=None,
        description="When ``data`` holds only the first 25: the related route's next page.",
    )


class TruncatedMeta(Strict):
    truncated: bool


class RelationshipObject(Strict):
    links: RelationshipLinks
    data: dict[str, Any] | list[dict[str, Any]] | None = None
    meta: TruncatedMeta | None = None


#: A resource object's relationships, and a document's included resources: named, so
#: the document writes them once.
Relationships = TypeAliasType("Relationships", dict[str, RelationshipObject] | None)
Included = TypeAliasType("Included", list[dict[str, Any]] | None)


def _once_per_resource(
    make: Callable[[Resource], type[BaseModel]],
) -> Callable[[Resource], type[BaseModel]]:
    """``make``, run once per resource description (by identity: a Resource is not
    hashable): each route of a type and each route that lists or includes it share its
    document models, which cost the app's start a pydantic schema each (issue 20)."""
    made: dict[int, tuple[Resource, type[BaseModel]]] = {}

    @functools.wraps(make)
    def once(resource: Resource) -> type[BaseModel]:
        found = made.get(id(resource))
        if found is None or found[0] is not resource:
            found = made[id(resource)] = (resource, make(resource))
        return found[1]

    return once


@_once_per_resource
def resource_object(resource: Resource) -> type[BaseModel]:
    attributes: Any = create_model(
        f"{resource.type}_attributes",
        __base__=Strict,
        **{
            a.name: (_output_type(a), Field(default=None, description=a.description))
            for a in resource.attributes
        },
    )
    model: type[BaseModel] = create_model(
        f"{resource.type}_resource",
        __base__=Strict,
        id=(str, ...),
        type=(Literal[resource.type], ...),
        links=(Links, ...),
        attributes=(attributes, ...),
        relationships=(Relationships, None),
        meta=(Meta, ...),
    )
    return model


@_once_per_resource
def single_document(resource: Resource) -> type[BaseModel]:
    model: type[BaseModel] = create_model(
        f"{resource.type}_document",
        __base__=Strict,
        data=(resource_object(resource), ...),
        included=(Included, None),
    )
    return model


class ListMeta(Strict):
    record_count: int
    page_count: int
    #: Past ``api.pages.EXACT_COUNT`` records: the count is the planner's estimate.
    record_count_estimated: bool | None = None


class ListLinks(Strict):
    first: str
    #: When the count is exact.
    last: str | None = None
    prev: str | None = None
    next: str | None = None


@_once_per_resource
def list_document(resource: Resource) -> type[BaseModel]:
    model: type[BaseModel] = create_model(
        f"{resource.type}_list",
        __base__=Strict,
        data=(list.__class_getitem__(resource_object(resource)), ...),
        included=(Included, None),
        meta=(ListMeta, ...),
        links=(ListLinks, ...),
    )
    return model


class ErrorSource(Strict):
    pointer: str | None = None
    parameter: str | None = None


class ErrorObject(Strict):
    title: str
    detail: str
    code: str
    status: str
    source: ErrorSource | None = None


class ErrorDocument(Strict):
    errors: list[ErrorObject]


class EmptyDocument(Strict):
    data: None


class Identifier(Strict):
    type: str
    id: str


class NextLink(Strict):
    next: str


class LinkageDocument(Strict):
    data: Identifier | list[Identifier] | None
    links: NextLink | None = None
    meta: TruncatedMeta | None = None
