"""Rendering rows as JSON:API resource objects, with links, relationships and includes."""

from __future__ import annotations

import enum
from collections.abc import Callable, Collection, Mapping, Sequence
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


class _Plan(NamedTuple):
    #: ``<base>/api/<type>/``: a row's self link, once its id is added.
    prefix: str
    #: (name, attribute, read) of each attribute shown.
    attributes: list[tuple[str, str, Callable[[Any], Any] | None]]
    relationships: list[Relationship]


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
        self._plans: dict[str, _Plan] = {}

    def url(self, *parts: str) -> str:
        return "/".join((self.base_url, "api", *parts))

    def _wanted(self, resource: Resource, name: str) -> bool:
        chosen = self.fields.get(resource.type)
        return chosen is None or name in chosen

    def _plan(self, resource: Resource) -> _Plan:
        """What this request renders of every ``resource`` row, worked out once."""
        plan = self._plans.get(resource.type)
        if plan is None:
            plan = self._plans[resource.type] = _Plan(
                f"{self.base_url}/api/{resource.type}/",
                [
                    (a.name, a.attr, a.read)
                    for a in resource.attributes
                    if self._wanted(resource, a.name)
                ],
                [r for r in resource.relationships if self._wanted(resource, r.name)],
            )
        return plan

    def resource(
        self,
        resource: Resource,
        row: Any,
        related: Mapping[str, Any] | None = None,
        truncated: Collection[str] = (),
    ) -> dict[str, Any]:
        """``related`` maps included relationship names to their linkage data; ``truncated``
        names those that hold only the first ``LINKAGE_LIMIT`` of the row's related rows."""
        plan = self._plan(resource)
        row_id = str(row.id)  # a JSON:API id is a string, whatever the key's type
        url = plan.prefix + row_id
        document: dict[str, Any] = {
            "id": row_id,
            "type": resource.type,
            "links": {"self": url},
            "attributes": {
                name: json_value(read(row) if read is not None else getattr(row, attr))
                for name, attr, read in plan.attributes
            },
        }
        if plan.relationships:
            relationships = {}
            for relationship in plan.relationships:
                name = relationship.name
                entry: dict[str, Any] = {
                    "links": {
                        "self": f"{url}/relationships/{name}",
                        "related": f"{url}/{name}",
                    }
                }
                if related and name in related:
                    entry["data"] = related[name]
                if name in truncated:
                    entry["links"]["next"] = self.next_page(resource, row_id, relationship)
                    entry["meta"] = {"truncated": True}
                relationships[name] = entry
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
        loaded = self.load_to_one(session, rows, [relationship], mode)[target.type]
        return self.to_one(rows, relationship, loaded)

    def load_to_one(
        self,
        session: Session,
        rows: Sequence[Any],
        relationships: Sequence[Relationship],
        mode: Mode,
    ) -> dict[str, dict[Any, Any]]:
        """The rows the to-one ``relationships`` of ``rows`` name, by type and id: one query
        per related type (a copy's source and target orders come together)."""
        wanted: dict[str, set[Any]] = {}
        for relationship in relationships:
            column = relationship.column or ""
            ids = wanted.setdefault(relationship.type, set())
            ids.update(getattr(row, column) for row in rows)
        loaded: dict[str, dict[Any, Any]] = {}
        for type_, ids in wanted.items():
            ids.discard(None)
            model: Any = self.registry[type_].model
            loaded[type_] = (
                {
                    item.id: item
                    for item in session.scalars(
                        select(model).where(model.id.in_(ids), model.mode == mode)
                    )
                }
                if ids
                else {}
            )
        return loaded

    def to_one(
        self, rows: Sequence[Any], relationship: Relationship, loaded: Mapping[Any, Any]
    ) -> Linkage:
        """The linkage of a to-one ``relationship`` of ``rows``, from its ``loaded`` rows."""
        type_, column = relationship.type, relationship.column or ""
        data: dict[str, Any] = {}
        found: dict[Any, Any] = {}
        for row in rows:
            related_id = getattr(row, column)
            item = loaded.get(related_id)
            data[row.id] = {"type": type_, "id": related_id} if item is not None else None
            if item is not None:
                found.setdefault(related_id, item)
        return Linkage(data, list(found.values()), set())

    def document(
        self, session: Session, resource: Resource, rows: Sequence[Any], mode: Mode, *, single: bool
    ) -> dict[str, Any]:
        """``{"data": …, "included": […]}`` for ``rows``: one query per to-many include and
        per type of the to-one includes."""
        per_row: dict[str, dict[str, Any]] = {row.id: {} for row in rows}
        truncated: dict[str, set[str]] = {row.id: set() for row in rows}
        included: dict[tuple[str, str], dict[str, Any]] = {}
        relationships = [resource.relationship(name) for name in self.include]
        to_one = [r for r in relationships if r is not None and not r.to_many]
        loaded = self.load_to_one(session, rows, to_one, mode) if to_one else {}
        for name, relationship in zip(self.include, relationships, strict=True):
            assert relationship is not None  # checked when the query was parsed
            linkage = (
                self.to_one(rows, relationship, loaded[relationship.type])
                if not relationship.to_many
                else self.linkage(session, resource, rows, relationship, mode)
            )
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
