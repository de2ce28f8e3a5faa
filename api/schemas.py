"""Pydantic models made from each resource's description: request bodies are validated
with them, and they describe requests and responses in the OpenAPI document."""

from __future__ import annotations

import json
from datetime import date
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
)
from pydantic import create_model as _create_model

from api.spec import Attribute, Relationship, Resource, Trigger

MAX_METADATA_BYTES = 16 * 1024


def _check_metadata(value: dict[str, Any]) -> dict[str, Any]:
    size = len(json.dumps(value).encode())
    if size > MAX_METADATA_BYTES:
        raise ValueError(f"metadata is {size} bytes, the limit is {MAX_METADATA_BYTES}")
    return value


Metadata = Annotated[dict[str, Any], AfterValidator(_check_metadata)]


#: Models are made at run time here; pydantic's typed overloads cannot follow.
create_model: Any = _create_model


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Open(BaseModel):
    model_config = ConfigDict(extra="allow")


def _input_type(attribute: Attribute | Trigger) -> Any:
    kind = attribute.kind
    if isinstance(attribute, Attribute) and attribute.choices:
        base: Any = Literal.__getitem__(attribute.choices)
    elif kind == "string":
        max_length = attribute.max_length if isinstance(attribute, Attribute) else None
        base = Annotated[StrictStr, Field(max_length=max_length)] if max_length else StrictStr
    elif kind == "integer":
        minimum = attribute.minimum if isinstance(attribute, Attribute) else None
        base = Annotated[StrictInt, Field(ge=minimum)] if minimum is not None else StrictInt
    elif kind == "boolean":
        base = StrictBool
    elif kind == "datetime":
        base = AwareDatetime
    elif kind == "date":
        base = date
    elif kind == "object":
        base = Metadata
    else:
        base = list[Any]
    nullable = attribute.nullable if isinstance(attribute, Attribute) else False
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
    model: type[BaseModel] = create_model(
        f"{type_}_identifier", __base__=Strict, type=(Literal[type_], ...), id=(StrictStr, ...)
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
    if relationships:
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


class RelationshipObject(Strict):
    links: RelationshipLinks
    data: dict[str, Any] | list[dict[str, Any]] | None = None


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
        relationships=(dict[str, RelationshipObject] | None, None),
        meta=(Meta, ...),
    )
    return model


def single_document(resource: Resource) -> type[BaseModel]:
    model: type[BaseModel] = create_model(
        f"{resource.type}_document",
        __base__=Strict,
        data=(resource_object(resource), ...),
        included=(list[dict[str, Any]] | None, None),
    )
    return model


class ListMeta(Strict):
    record_count: int
    page_count: int


class ListLinks(Strict):
    first: str
    last: str
    prev: str | None = None
    next: str | None = None


def list_document(resource: Resource) -> type[BaseModel]:
    model: type[BaseModel] = create_model(
        f"{resource.type}_list",
        __base__=Strict,
        data=(list.__class_getitem__(resource_object(resource)), ...),
        included=(list[dict[str, Any]] | None, None),
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


class LinkageDocument(Strict):
    data: Identifier | list[Identifier] | None
