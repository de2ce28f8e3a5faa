"""How a resource type is described once, so that every route, document, filter
and schema of the API is generated from the same few lines."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy.orm import Session, sessionmaker

from copying.copies.dispatch import Publish
from copying.orders.gateways import Gateways
from models import Base, Mode

Kind = Literal["string", "integer", "boolean", "datetime", "date", "object", "array"]
Writable = Literal["no", "create", "always"]


@dataclass(frozen=True)
class Attribute:
    name: str
    kind: Kind
    column: str | None = None
    writable: Writable = "no"
    required: bool = False
    nullable: bool = True
    filterable: bool = False
    sortable: bool = False
    max_length: int | None = None
    minimum: int | None = None
    #: A regular expression the whole value must match (e.g. ``^[A-Z]{3}$``).
    pattern: str | None = None
    choices: tuple[str, ...] | None = None
    description: str = ""
    #: How to read the value from a row, when it is no column of its own (a key of a
    #: JSON column, say); such an attribute is neither filterable nor sortable.
    read: Callable[[Any], Any] | None = None

    @property
    def attr(self) -> str:
        return self.column or self.name


@dataclass(frozen=True)
class Relationship:
    name: str
    type: str
    #: To-one: the foreign key column on this model.
    column: str | None = None
    #: To-many: the foreign key column on the related model.
    inverse: str | None = None
    writable: Writable = "no"
    required: bool = False

    @property
    def to_many(self) -> bool:
        return self.inverse is not None


@dataclass
class Context:
    """What a request hands a resource's hooks."""

    session: Session
    sessions: sessionmaker[Session]
    mode: Mode
    publish: Publish
    gateways: Gateways
    #: The resource the request is about, and every resource by type.
    resource: Resource
    registry: Mapping[str, Resource]


@dataclass(frozen=True)
class Trigger:
    """An ``_action`` attribute of PATCH.

    A ``transactional`` trigger runs in the request's transaction, with the
    attribute changes: all of it or nothing is written. Otherwise it runs
    after those are committed and opens its own transactions (``ctx.sessions``),
    because it waits on a payment gateway; when it fails, the attribute
    changes stay.
    """

    name: str
    kind: Kind
    run: Callable[[Context, Any, Any], None]
    description: str = ""
    transactional: bool = True


#: A mapped class (named here because ``Resource.type`` shadows the builtin in its body).
ModelClass = type[Base]


@dataclass(frozen=True)
class Scope:
    """The rows of a model that a resource serves, when not all: a condition for the
    statements that list them, and the same test of a row loaded by its id."""

    where: Callable[[], Any]
    holds: Callable[[Any], bool]


@dataclass
class Resource:
    type: str
    model: ModelClass
    attributes: Sequence[Attribute]
    relationships: Sequence[Relationship] = ()
    triggers: Sequence[Trigger] = ()
    #: Build (and add) a new row from validated attributes and related ids.
    create: Callable[[Context, dict[str, Any], dict[str, str | None]], Base] | None = None
    #: Allow updates of the ``always`` attributes (the default for anything with some).
    updatable: bool = True
    #: Before an update: raise ApiError unless the row may change the attributes and
    #: relationships named (triggers check for themselves).
    check_update: Callable[[Context, Any, set[str]], None] | None = None
    #: After an update's attributes and relationships are set on the row (before the
    #: flush and the triggers): raise ApiError to refuse the values; may adjust the row.
    check_updated: Callable[[Context, Any, set[str]], None] | None = None
    #: Delete the row, or raise ApiError(409) when it may not go.
    delete: Callable[[Context, Any], None] | None = None
    default_sort: str = "-created_at"
    description: str = ""
    extra_filters: dict[str, Kind] = field(default_factory=dict)
    #: Only some of the model's rows (None: all of them).
    scope: Scope | None = None
    #: Named conditions a list takes as ``filter[q][name]=true`` (or ``false``: the rows
    #: outside), Ransack's scopes.
    scopes: Mapping[str, Callable[[], Any]] = field(default_factory=dict)

    def where(self) -> list[Any]:
        """The conditions a statement listing this resource's rows adds."""
        return [self.scope.where()] if self.scope else []

    def holds(self, row: Any) -> bool:
        """Whether a row of the model is one of this resource's."""
        return self.scope is None or self.scope.holds(row)

    def attribute(self, name: str) -> Attribute | None:
        return next((a for a in self.attributes if a.name == name), None)

    def relationship(self, name: str) -> Relationship | None:
        return next((r for r in self.relationships if r.name == name), None)
