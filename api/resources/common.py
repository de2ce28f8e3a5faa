"""Attributes every resource shares, and the generic create/delete hooks."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from api.errors import ApiError
from api.spec import Attribute, Context
from models import Base, new_public_id

TIMESTAMPS = (
    Attribute("created_at", "datetime", nullable=False, filterable=True, sortable=True),
    Attribute("updated_at", "datetime", nullable=False, filterable=True, sortable=True),
)


def reference_attributes() -> tuple[Attribute, ...]:
    return (
        Attribute("reference", "string", writable="always", max_length=255, filterable=True),
        Attribute("reference_origin", "string", writable="always", max_length=255, filterable=True),
        Attribute("metadata", "object", column="metadata_", writable="always", nullable=False),
    )


def plain_create(
    model: type[Base],
    relationship_columns: Mapping[str, str] | None = None,
    defaults: Mapping[str, Any] | None = None,
    check: Callable[[Context, dict[str, Any]], None] | None = None,
) -> Callable[[Context, dict[str, Any], dict[str, str | None]], Base]:
    """A create hook that sets the attributes and foreign keys of a new row."""

    def create(ctx: Context, attributes: dict[str, Any], related: dict[str, str | None]) -> Base:
        from api.resources import REGISTRY
        from api.routes import check_related

        values: dict[str, Any] = dict(defaults or {})
        for name, value in attributes.items():
            values["metadata_" if name == "metadata" else name] = value
        if check is not None:
            check(ctx, values)
        for name, related_id in related.items():
            if related_id is None:
                continue
            column = (relationship_columns or {})[name]
            relationship_type = _relationship_type(model, name)
            check_related(ctx.session, REGISTRY, relationship_type, related_id, ctx.mode, name)
            values[column] = related_id
        row = model(id=new_public_id(), mode=ctx.mode, **values)
        ctx.session.add(row)
        return row

    return create


def _relationship_type(model: type[Base], name: str) -> str:
    from api.resources import REGISTRY

    for resource in REGISTRY.values():
        if resource.model is model:
            relationship = resource.relationship(name)
            if relationship is not None:
                return relationship.type
    raise ApiError(422, f"unknown relationship {name}", pointer=f"/data/relationships/{name}")


def plain_delete(ctx: Context, row: Any) -> None:
    ctx.session.delete(row)
