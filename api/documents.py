"""Rendering rows as JSON:API resource objects, with links, relationships and includes."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.spec import Relationship, Resource
from models import Mode


def json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    return value


class Renderer:
    """Renders one request's resources: same base URL, sparse fieldsets and includes."""

    def __init__(
        self,
        registry: Mapping[str, Resource],
        base_url: str,
        fields: Mapping[str, set[str]],
        include: Sequence[str],
    ) -> None:
        self.registry = registry
        self.base_url = base_url.rstrip("/")
        self.fields = fields
        self.include = list(include)

    def url(self, *parts: str) -> str:
        return "/".join((self.base_url, "api", *parts))

    def _wanted(self, resource: Resource, name: str) -> bool:
        chosen = self.fields.get(resource.type)
        return chosen is None or name in chosen

    def resource(
        self, resource: Resource, row: Any, related: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """``related`` maps included relationship names to their linkage data."""
        related = related or {}
        row_id = str(row.id)  # a JSON:API id is a string, whatever the key's type
        document: dict[str, Any] = {
            "id": row_id,
            "type": resource.type,
            "links": {"self": self.url(resource.type, row_id)},
            "attributes": {
                a.name: json_value(a.read(row) if a.read is not None else getattr(row, a.attr))
                for a in resource.attributes
                if self._wanted(resource, a.name)
            },
        }
        relationships = {}
        for relationship in resource.relationships:
            if not self._wanted(resource, relationship.name):
                continue
            entry: dict[str, Any] = {
                "links": {
                    "self": self.url(resource.type, row_id, "relationships", relationship.name),
                    "related": self.url(resource.type, row_id, relationship.name),
                }
            }
            if relationship.name in related:
                entry["data"] = related[relationship.name]
            relationships[relationship.name] = entry
        if relationships:
            document["relationships"] = relationships
        document["meta"] = {"mode": json_value(row.mode)}
        return document

    def linkage(
        self,
        session: Session,
        resource: Resource,
        rows: Sequence[Any],
        relationship: Relationship,
        mode: Mode,
    ) -> tuple[dict[str, Any], list[Any]]:
        """For each row id, its linkage data for ``relationship``; and the related rows."""
        target = self.registry[relationship.type]
        model: Any = target.model
        found: list[Any]
        if relationship.to_many:
            inverse = getattr(model, relationship.inverse or "")
            found = list(
                session.scalars(
                    select(model).where(inverse.in_([r.id for r in rows]), model.mode == mode)
                )
            )
            data: dict[str, Any] = {r.id: [] for r in rows}
            for item in found:
                data[getattr(item, relationship.inverse or "")].append(
                    {"type": target.type, "id": str(item.id)}
                )
            return data, found
        ids = {getattr(r, relationship.column or "") for r in rows} - {None}
        found = (
            list(session.scalars(select(model).where(model.id.in_(ids), model.mode == mode)))
            if ids
            else []
        )
        present = {item.id for item in found}
        return {
            r.id: (
                {"type": target.type, "id": getattr(r, relationship.column or "")}
                if getattr(r, relationship.column or "") in present
                else None
            )
            for r in rows
        }, found

    def document(
        self, session: Session, resource: Resource, rows: Sequence[Any], mode: Mode, *, single: bool
    ) -> dict[str, Any]:
        """``{"data": …, "included": […]}`` for ``rows``, loading each include in one query."""
        per_row: dict[str, dict[str, Any]] = {row.id: {} for row in rows}
        included: dict[tuple[str, str], dict[str, Any]] = {}
        for name in self.include:
            relationship = resource.relationship(name)
            assert relationship is not None  # checked when the query was parsed
            data, found = self.linkage(session, resource, rows, relationship, mode)
            for row_id, linkage in data.items():
                per_row[row_id][name] = linkage
            target = self.registry[relationship.type]
            for item in found:
                included.setdefault((target.type, item.id), self.resource(target, item))
        data_items = [self.resource(resource, row, per_row[row.id]) for row in rows]
        document: dict[str, Any] = {"data": data_items[0] if single else data_items}
        if self.include:
            document["included"] = list(included.values())
        return document


def pagination_links(
    url: str, params: Iterable[tuple[str, str]], number: int, pages: int
) -> dict[str, str]:
    """``first``/``last`` always, ``prev``/``next`` when there is such a page; every other
    query parameter (filters, sort, page size) kept."""
    others = [(k, v) for k, v in params if k != "page[number]"]

    def page(n: int) -> str:
        return f"{url}?{urlencode([*others, ('page[number]', str(n))])}"

    links = {"first": page(1), "last": page(max(pages, 1))}
    if number > 1:
        links["prev"] = page(min(number - 1, max(pages, 1)))
    if number < pages:
        links["next"] = page(number + 1)
    return links
