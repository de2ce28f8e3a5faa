"""Rendering rows as JSON:API resource objects, with links, relationships and includes."""

from __future__ import annotations

import enum
from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any, NamedTuple
from urllib.parse import urlencode

from sqlalchemy import func, select
from sqlalchemy.orm import Session, aliased

from api.query import MAX_PAGE_SIZE, default_order
from api.spec import Relationship, Resource
from models import Mode

#: The most resources a to-many relationship's linkage (and ``include``) holds for one
#: resource: the first page of its related route at the largest page size; the
#: relationship's ``links.next`` is that route's second page.
LINKAGE_LIMIT = MAX_PAGE_SIZE


def json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    return value


class Linkage(NamedTuple):
    #: Row id → its linkage data.
    data: dict[str, Any]
    #: The related rows named in ``data``.
    found: list[Any]
    #: The ids of the rows that have more related rows than ``data`` names.
    truncated: set[str]


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
        self,
        resource: Resource,
        row: Any,
        related: Mapping[str, Any] | None = None,
        truncated: Collection[str] = (),
    ) -> dict[str, Any]:
        """``related`` maps included relationship names to their linkage data; ``truncated``
        names those that hold only the first ``LINKAGE_LIMIT`` of the row's related rows."""
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
            if relationship.name in truncated:
                entry["links"]["next"] = self.next_page(resource, row_id, relationship)
                entry["meta"] = {"truncated": True}
            relationships[relationship.name] = entry
        if relationships:
            document["relationships"] = relationships
        document["meta"] = {"mode": json_value(row.mode)}
        return document

    def next_page(self, resource: Resource, row_id: str, relationship: Relationship) -> str:
        """The related route's page after the linkage's ``LINKAGE_LIMIT`` rows."""
        page = urlencode([("page[number]", "2"), ("page[size]", str(LINKAGE_LIMIT))])
        return f"{self.url(resource.type, row_id, relationship.name)}?{page}"

    def linkage(
        self,
        session: Session,
        resource: Resource,
        rows: Sequence[Any],
        relationship: Relationship,
        mode: Mode,
    ) -> Linkage:
        """For each row id, its linkage data for ``relationship``; the related rows; and
        the rows with more related rows than a to-many linkage holds (``LINKAGE_LIMIT``,
        the first in the related route's order)."""
        target = self.registry[relationship.type]
        model: Any = target.model
        found: list[Any]
        if relationship.to_many:
            inverse_name = relationship.inverse or ""
            inverse = getattr(model, inverse_name)
            rank = func.row_number().over(partition_by=inverse, order_by=default_order(target))
            ranked = (
                select(model, rank.label("linkage_rank"))
                .where(inverse.in_([r.id for r in rows]), model.mode == mode, *target.where())
                .subquery()
            )
            # One more than the limit, to know whether there are more.
            found = list(
                session.scalars(
                    select(aliased(model, ranked))
                    .where(ranked.c.linkage_rank <= LINKAGE_LIMIT + 1)
                    .order_by(ranked.c.linkage_rank)
                )
            )
            data: dict[str, Any] = {r.id: [] for r in rows}
            kept: list[Any] = []
            truncated: set[str] = set()
            for item in found:
                owner = getattr(item, inverse_name)
                if len(data[owner]) == LINKAGE_LIMIT:
                    truncated.add(owner)
                    continue
                data[owner].append({"type": target.type, "id": str(item.id)})
                kept.append(item)
            return Linkage(data, kept, truncated)
        ids = {getattr(r, relationship.column or "") for r in rows} - {None}
        found = (
            list(session.scalars(select(model).where(model.id.in_(ids), model.mode == mode)))
            if ids
            else []
        )
        present = {item.id for item in found}
        return Linkage(
            {
                r.id: (
                    {"type": target.type, "id": getattr(r, relationship.column or "")}
                    if getattr(r, relationship.column or "") in present
                    else None
                )
                for r in rows
            },
            found,
            set(),
        )

    def document(
        self, session: Session, resource: Resource, rows: Sequence[Any], mode: Mode, *, single: bool
    ) -> dict[str, Any]:
        """``{"data": …, "included": […]}`` for ``rows``, loading each include in one query."""
        per_row: dict[str, dict[str, Any]] = {row.id: {} for row in rows}
        truncated: dict[str, set[str]] = {row.id: set() for row in rows}
        included: dict[tuple[str, str], dict[str, Any]] = {}
        for name in self.include:
            relationship = resource.relationship(name)
            assert relationship is not None  # checked when the query was parsed
            linkage = self.linkage(session, resource, rows, relationship, mode)
            for row_id, data in linkage.data.items():
                per_row[row_id][name] = data
            for row_id in linkage.truncated:
                truncated[row_id].add(name)
            target = self.registry[relationship.type]
            for item in linkage.found:
                included.setdefault((target.type, item.id), self.resource(target, item))
        data_items = [
            self.resource(resource, row, per_row[row.id], truncated[row.id]) for row in rows
        ]
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
