"""The routes of one resource type, generated from its description.

(No ``from __future__ import annotations`` here: FastAPI reads the request-body
models, made at run time, from the handlers' annotations.)
"""

from collections.abc import Callable, Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Path, Request, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api import idempotency, lookups, pages, parameters, payloads, query, schemas
from api.auth import request_key
from api.documents import Renderer
from api.errors import MEDIA_TYPE, ApiError
from api.responses import JsonApiResponse
from api.spec import Context, Relationship, Resource
from config import get_settings
from copying.copies.dispatch import Publish, unit_of_work
from copying.errors import (
    CopyInputError,
    CopyStateError,
    InUseError,
    NotFoundError,
    OrderBusyError,
    OrderChangedError,
    OrderStateError,
    TransientError,
)
from copying.orders.gateways import Gateways
from copying.subscriptions.subscription_states import SubscriptionStateError
from models import ApiKey, Mode, db

#: The path's ``{id}`` (``row_id`` in the handlers, which do not shadow ``id()``).
RowId = Annotated[str, Path(alias="id")]
IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=idempotency.MAX_KEY_LENGTH,
        description="Send the same key again to get the first response, not a second record.",
    ),
]
DOMAIN_ERRORS = (
    CopyInputError,
    CopyStateError,
    SubscriptionStateError,
    NotFoundError,
    TransientError,
    OrderBusyError,
    OrderChangedError,
    OrderStateError,
    InUseError,
)

#: Every route's error responses, as FastAPI documents ``"model": schemas.ErrorDocument``:
#: given as a model, each made a pydantic TypeAdapter per status and route, most of the
#: app's start (issue 20). The schema is put in the document once (``api/openapi.py``).
ERRORS: dict[int | str, dict[str, Any]] = {
    status: {
        "description": description,
        "content": {MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/ErrorDocument"}}},
    }
    for status, description in (
        (400, "Bad request (query or JSON)"),
        (401, "No valid API key"),
        (404, "Not found in this mode"),
        (406, "Not acceptable"),
        (409, "Conflict"),
        (413, "The request body is too large"),
        (415, "Unsupported media type"),
        (422, "Validation error"),
        (429, "Too many requests with this API key; see Retry-After"),
        (503, "A payment gateway did not answer; try again"),
    )
}


def domain_error(error: Exception, relationships: set[str] | None = None) -> ApiError:
    if isinstance(error, CopyInputError):
        where = "relationships" if error.field in (relationships or set()) else "attributes"
        return ApiError(422, error.message, pointer=f"/data/{where}/{error.field}")
    if isinstance(error, CopyStateError | SubscriptionStateError | OrderStateError):
        return ApiError(409, str(error), code="INVALID_STATUS")
    if isinstance(error, OrderBusyError):
        return ApiError(409, str(error), code="ORDER_IN_COPY")
    if isinstance(error, OrderChangedError):
        return ApiError(409, str(error), code="ORDER_CHANGED")
    if isinstance(error, InUseError):
        return ApiError(409, str(error), code="IN_USE")
    if isinstance(error, NotFoundError):
        return ApiError(404, str(error))
    if isinstance(error, TransientError):
        return ApiError(503, f"{error}; nothing was charged twice, try again")
    raise error


def related_ids(data: Any) -> dict[str, str | None]:
    """The relationships a request document sets: name → related id (None to unlink)."""
    given = getattr(data, "relationships", None)
    if given is None:
        return {}
    return {
        name: value.data.id if value.data is not None else None
        for name, value in given
        if value is not None
    }


class Routes:
    """What every route of one resource type shares."""

    def __init__(
        self,
        resource: Resource,
        registry: Mapping[str, Resource],
        publish: Callable[[], Publish],
        gateways: Callable[[], Gateways],
    ) -> None:
        self.resource = resource
        self.registry = registry
        self.publish = publish
        self.gateways = gateways

    def parse(self, request: Request, resource: Resource, *, listing: bool) -> query.Query:
        params = list(request.query_params.multi_items())
        return query.parse(params, resource, self.registry, listing=listing)

    def renderer(self, request: Request, parsed: query.Query) -> Renderer:
        return Renderer(self.registry, str(request.base_url), parsed.fields, parsed.include)

    def load(
        self,
        session: Session,
        mode: Mode,
        row_id: str,
        *,
        lock: bool = False,
        keeping_key: bool = False,
    ) -> Any:
        return lookups.load(
            session,
            self.resource.model,
            self.resource.type,
            row_id,
            mode,
            lock=lock,
            keeping_key=keeping_key,
            holds=self.resource.holds,
        )

    def reject_parameters(self, request: Request) -> None:
        """For routes that take no query parameters at all."""
        for parameter in request.query_params:
            raise ApiError(400, "is not a query parameter of this endpoint", parameter=parameter)

    def context(self, session: Session, api_key: ApiKey) -> Context:
        return Context(
            session=session,
            sessions=db.sessions(),
            mode=api_key.mode,
            publish=self.publish(),
            gateways=self.gateways(),
            resource=self.resource,
            registry=self.registry,
        )

    def render_one(
        self,
        request: Request,
        session: Session,
        resource: Resource,
        row: Any,
        mode: Mode,
        parsed: query.Query,
    ) -> dict[str, Any]:
        return self.renderer(request, parsed).document(session, resource, [row], mode, single=True)

    def list_response(
        self, request: Request, parsed: query.Query, mode: Mode, listed: Resource, statement: Any
    ) -> Response:
        with pages.reading() as session:
            page = pages.fetch(session, statement, listed.model, parsed)
            document = self.renderer(request, parsed).document(
                session, listed, page.rows, mode, single=False
            )
        document["meta"] = page.meta(parsed.page_size)
        document["links"] = pages.links(
            str(request.url).split("?")[0], request.query_params.multi_items(), parsed, page
        )
        return JsonApiResponse(document)

    def set_relationships(
        self, session: Session, row: Any, links: Mapping[str, str | None], mode: Mode
    ) -> None:
        for name, related_id in links.items():
            relationship = self.resource.relationship(name)
            assert relationship is not None
            assert relationship.column
            if related_id is not None:
                target = self.registry[relationship.type]
                lookups.load_related(session, target.model, target.type, related_id, mode, name)
            setattr(row, relationship.column, related_id)


def operation_id(route: APIRoute) -> str:
    """The handler's name and the path's names: ``related_many_orders_line_items``."""
    names = [part for part in route.path_format.split("/") if part not in SKIPPED_IN_IDS]
    return "_".join([route.name, *names])


SKIPPED_IN_IDS = {"", "api", "{id}", "relationships"}


def router_for(
    resource: Resource,
    registry: Mapping[str, Resource],
    *,
    publish: Callable[[], Publish],
    gateways: Callable[[], Gateways],
) -> APIRouter:
    router = APIRouter(
        prefix=f"/api/{resource.type}",
        tags=[resource.type],
        generate_unique_id_function=operation_id,
    )
    routes = Routes(resource, registry, publish, gateways)
    model: Any = resource.model
    single_doc = schemas.single_document(resource)
    list_doc = schemas.list_document(resource)
    single_params = {"parameters": parameters.single(resource)}

    @router.get(
        "",
        response_model=list_doc,
        response_class=JsonApiResponse,
        responses=ERRORS,
        openapi_extra={"parameters": parameters.listing(resource)},
    )
    def list_resources(request: Request) -> Response:
        api_key = request_key(request)
        parsed = routes.parse(request, resource, listing=True)
        statement = select(model).where(
            model.mode == api_key.mode, *resource.where(), *parsed.conditions
        )
        return routes.list_response(request, parsed, api_key.mode, resource, statement)

    @router.get(
        "/{id}",
        response_model=single_doc,
        response_class=JsonApiResponse,
        responses=ERRORS,
        openapi_extra=single_params,
    )
    def retrieve(row_id: RowId, request: Request) -> Response:
        api_key = request_key(request)
        parsed = routes.parse(request, resource, listing=False)
        with db.sessions().begin() as session:
            row = routes.load(session, api_key.mode, row_id)
            return JsonApiResponse(
                routes.render_one(request, session, resource, row, api_key.mode, parsed)
            )

    if resource.create is not None:
        add_create_route(router, routes, single_doc, single_params)
    writable = [a for a in resource.attributes if a.writable == "always"]
    if resource.updatable and (writable or resource.triggers):
        add_update_route(router, routes, single_doc, single_params)
    if resource.delete is not None:
        add_delete_route(router, routes)
    for relationship in resource.relationships:
        add_relationship_routes(router, routes, relationship)
    return router


def add_create_route(
    router: APIRouter, routes: Routes, single_doc: Any, single_params: dict[str, Any]
) -> None:
    resource = routes.resource
    create_model: type[BaseModel] = schemas.create_body(resource)
    make = resource.create
    assert make is not None
    relationship_names = {r.name for r in resource.relationships}

    @router.post(
        "",
        response_model=single_doc,
        response_class=JsonApiResponse,
        status_code=201,
        responses=ERRORS,
        openapi_extra=single_params,
    )
    def create(
        body: Annotated[create_model, Body(media_type=MEDIA_TYPE)],  # type: ignore[valid-type]
        request: Request,
        idempotency_key: IdempotencyKeyHeader = None,
    ) -> Response:
        api_key = request_key(request)
        parsed = routes.parse(request, resource, listing=False)
        data = body.data  # type: ignore[attr-defined]
        attributes = data.attributes.model_dump(exclude_unset=True) if data.attributes else {}
        related = related_ids(data)
        digest = ""
        if idempotency_key is not None:
            digest = idempotency.request_hash("POST", request.url.path, document_of(body))
        try:
            with unit_of_work(db.sessions(), routes.publish()) as session:
                if idempotency_key is not None:  # in the create's transaction: one, not two
                    stored = idempotency.replay(session, api_key, idempotency_key, digest)
                    if stored is not None:
                        return JsonApiResponse(stored.response_body, stored.response_status)
                try:
                    row = make(routes.context(session, api_key), attributes, related)
                except DOMAIN_ERRORS as error:
                    raise domain_error(error, relationship_names) from None
                session.flush()
                document = routes.render_one(request, session, resource, row, api_key.mode, parsed)
                if idempotency_key is not None:
                    idempotency.remember(session, api_key, idempotency_key, digest, 201, document)
        except IntegrityError:
            if idempotency_key is not None:
                with db.sessions().begin() as session:  # a concurrent twin won: replay it
                    stored = idempotency.replay(session, api_key, idempotency_key, digest)
                if stored is not None:
                    return JsonApiResponse(stored.response_body, stored.response_status)
            raise ApiError(
                409, f"a concurrent request changed {resource.type}; try again"
            ) from None
        return JsonApiResponse(document, status_code=201)


def add_update_route(
    router: APIRouter, routes: Routes, single_doc: Any, single_params: dict[str, Any]
) -> None:
    resource = routes.resource
    update_model: type[BaseModel] = schemas.update_body(resource)
    triggers = {t.name: t for t in resource.triggers}
    relationship_names = {r.name for r in resource.relationships}

    @router.patch(
        "/{id}",
        response_model=single_doc,
        response_class=JsonApiResponse,
        responses=ERRORS,
        openapi_extra=single_params,
    )
    def update(
        row_id: RowId,
        body: Annotated[update_model, Body(media_type=MEDIA_TYPE)],  # type: ignore[valid-type]
        request: Request,
    ) -> Response:
        api_key = request_key(request)
        parsed = routes.parse(request, resource, listing=False)
        data = body.data  # type: ignore[attr-defined]
        if data.id != row_id:
            raise ApiError(
                409,
                f"data.id {data.id!r} does not match the URL's {row_id!r}",
                pointer="/data/id",
            )
        changes = (
            data.attributes.model_dump(exclude_unset=True, by_alias=True) if data.attributes else {}
        )
        asked = [
            (triggers[name], value)
            for name, value in changes.items()
            # ``false`` asks for nothing; 0 is a value (``0 in (None, False)`` is true).
            if name in triggers and value is not None and value is not False
        ]
        links = related_ids(data)
        changed = {name for name in changes if name not in triggers} | set(links)
        with unit_of_work(db.sessions(), routes.publish()) as session:
            row = routes.load(session, api_key.mode, row_id, lock=True, keeping_key=True)
            try:
                if resource.check_update is not None:
                    resource.check_update(routes.context(session, api_key), row, changed)
                for name, value in changes.items():
                    attribute = resource.attribute(name)
                    if attribute is not None:
                        setattr(row, attribute.attr, value)
                routes.set_relationships(session, row, links, api_key.mode)
                if resource.check_updated is not None:
                    resource.check_updated(routes.context(session, api_key), row, changed)
            except DOMAIN_ERRORS as error:
                raise domain_error(error, relationship_names) from None
            session.flush()
            for trigger, value in asked:
                if trigger.transactional:
                    run_trigger(routes.context(session, api_key), trigger.run, row_id, value)
        for trigger, value in asked:
            if not trigger.transactional:
                with unit_of_work(db.sessions(), routes.publish()) as session:
                    run_trigger(routes.context(session, api_key), trigger.run, row_id, value)
        with db.sessions().begin() as session:
            row = routes.load(session, api_key.mode, row_id)
            return JsonApiResponse(
                routes.render_one(request, session, resource, row, api_key.mode, parsed)
            )


def run_trigger(
    ctx: Context, run: Callable[[Context, Any, Any], None], row_id: str, value: Any
) -> None:
    try:
        run(ctx, row_id, value)
    except DOMAIN_ERRORS as error:
        raise domain_error(error) from None


def add_delete_route(router: APIRouter, routes: Routes) -> None:
    resource = routes.resource
    remove = resource.delete
    assert remove is not None

    @router.delete(
        "/{id}",
        status_code=204,
        response_class=JsonApiResponse,
        responses=ERRORS,
    )
    def destroy(row_id: RowId, request: Request) -> Response:
        api_key = request_key(request)
        routes.reject_parameters(request)
        try:
            with unit_of_work(db.sessions(), routes.publish()) as session:
                row = routes.load(session, api_key.mode, row_id, lock=True)
                payloads.record_destroyed(
                    session, resource, row, api_key.mode, base_url=get_settings().public_url
                )
                remove(routes.context(session, api_key), row)
        except DOMAIN_ERRORS as error:
            raise domain_error(error) from None
        except IntegrityError:
            raise ApiError(409, f"{resource.type} {row_id} is still in use; it stays") from None
        return Response(status_code=204)


def add_relationship_routes(router: APIRouter, routes: Routes, relationship: Relationship) -> None:
    resource = routes.resource
    target = routes.registry[relationship.type]
    target_model: Any = target.model
    name = relationship.name

    if relationship.to_many:
        inverse = getattr(target_model, relationship.inverse or "")

        @router.get(
            f"/{{id}}/{name}",
            response_model=schemas.list_document(target),
            response_class=JsonApiResponse,
            responses=ERRORS,
            openapi_extra={"parameters": parameters.listing(target)},
        )
        def related_many(row_id: RowId, request: Request) -> Response:
            api_key = request_key(request)
            parsed = routes.parse(request, target, listing=True)
            with db.sessions().begin() as session:
                routes.load(session, api_key.mode, row_id)
            statement = select(target_model).where(
                target_model.mode == api_key.mode,
                inverse == row_id,
                *target.where(),
                *parsed.conditions,
            )
            return routes.list_response(request, parsed, api_key.mode, target, statement)
    else:

        @router.get(
            f"/{{id}}/{name}",
            response_model=schemas.single_document(target) | schemas.EmptyDocument,
            response_class=JsonApiResponse,
            responses=ERRORS,
            openapi_extra={"parameters": parameters.single(target)},
        )
        def related_single(row_id: RowId, request: Request) -> Response:
            api_key = request_key(request)
            parsed = routes.parse(request, target, listing=False)
            with db.sessions().begin() as session:
                row = routes.load(session, api_key.mode, row_id)
                related = lookups.find(
                    session, target_model, getattr(row, relationship.column or ""), api_key.mode
                )
                if related is None:
                    return JsonApiResponse({"data": None})
                return JsonApiResponse(
                    routes.render_one(request, session, target, related, api_key.mode, parsed)
                )

    @router.get(
        f"/{{id}}/relationships/{name}",
        response_class=JsonApiResponse,
        response_model=schemas.LinkageDocument,
        responses=ERRORS,
    )
    def linkage(row_id: RowId, request: Request) -> Response:
        api_key = request_key(request)
        routes.reject_parameters(request)
        with db.sessions().begin() as session:
            row = routes.load(session, api_key.mode, row_id)
            renderer = routes.renderer(request, query.Query())
            linkage = renderer.linkage(session, resource, [row], relationship, api_key.mode)
        document: dict[str, Any] = {"data": linkage.data[row.id]}
        if row.id in linkage.truncated:
            document["links"] = {"next": renderer.next_page(resource, row.id, relationship)}
            document["meta"] = {"truncated": True}
        return JsonApiResponse(document)


def document_of(body: Any) -> Any:
    return body.model_dump(mode="json", exclude_unset=True)
