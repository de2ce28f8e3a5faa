"""The routes of one resource type, generated from its description.

(No ``from __future__ import annotations`` here: FastAPI reads the request-body
models, made at run time, from the handlers' annotations.)
"""

import math
from collections.abc import Callable, Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request, Response
from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api import idempotency, query, schemas
from api.auth import authenticate
from api.documents import Renderer, pagination_links
from api.errors import ApiError
from api.responses import JsonApiResponse
from api.spec import Context, Resource
from copying.dispatch import Publish, unit_of_work
from copying.errors import CopyInputError, CopyStateError, NotFoundError
from copying.gateways import Gateways
from models import ApiKey, Mode, db

Authenticated = Annotated[ApiKey, Depends(authenticate)]

ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": schemas.ErrorDocument, "description": description}
    for status, description in (
        (400, "Bad request (query or JSON)"),
        (401, "No valid API key"),
        (404, "Not found in this mode"),
        (406, "Not acceptable"),
        (409, "Conflict"),
        (415, "Unsupported media type"),
        (422, "Validation error"),
    )
}


def domain_error(error: Exception, relationships: set[str] | None = None) -> ApiError:
    if isinstance(error, CopyInputError):
        where = "relationships" if error.field in (relationships or set()) else "attributes"
        return ApiError(422, error.message, pointer=f"/data/{where}/{error.field}")
    if isinstance(error, CopyStateError):
        return ApiError(409, str(error), code="INVALID_STATUS")
    if isinstance(error, NotFoundError):
        return ApiError(404, str(error))
    raise error


def router_for(
    resource: Resource,
    registry: Mapping[str, Resource],
    *,
    publish: Callable[[], Publish],
    gateways: Callable[[], Gateways],
) -> APIRouter:
    router = APIRouter(prefix=f"/api/{resource.type}", tags=[resource.type])
    model: Any = resource.model
    single_doc = schemas.single_document(resource)
    list_doc = schemas.list_document(resource)
    relationship_names = {r.name for r in resource.relationships}

    def renderer(request: Request, parsed: query.Query) -> Renderer:
        return Renderer(registry, str(request.base_url), parsed.fields, parsed.include)

    def params(request: Request) -> list[tuple[str, str]]:
        return list(request.query_params.multi_items())

    def load(session: Session, mode: Mode, row_id: str) -> Any:
        row = session.get(model, row_id)
        if row is None or row.mode != mode:
            raise ApiError(404, f"{resource.type} {row_id} does not exist in {mode} mode")
        return row

    def context(session: Session, api_key: ApiKey) -> Context:
        return Context(
            session=session,
            sessions=db.sessions(),
            mode=api_key.mode,
            publish=publish(),
            gateways=gateways(),
        )

    def render_one(
        request: Request, session: Session, row: Any, mode: Mode, parsed: query.Query
    ) -> dict[str, Any]:
        return renderer(request, parsed).document(session, resource, [row], mode, single=True)

    @router.get(
        "",
        response_model=list_doc,
        response_class=JsonApiResponse,
        responses=ERRORS,
        summary=f"List {resource.type}",
    )
    def list_resources(request: Request, api_key: Authenticated) -> Response:
        parsed = query.parse(params(request), resource, registry, listing=True)
        return list_response(
            request,
            parsed,
            api_key.mode,
            resource,
            select(model).where(model.mode == api_key.mode, *parsed.conditions),
        )

    def list_response(
        request: Request, parsed: query.Query, mode: Mode, listed: Resource, statement: Any
    ) -> Response:
        with db.sessions().begin() as session:
            total = session.scalar(select(func.count()).select_from(statement.subquery())) or 0
            rows = session.scalars(
                statement.order_by(*parsed.order_by)
                .limit(parsed.page_size)
                .offset((parsed.page_number - 1) * parsed.page_size)
            ).all()
            document = renderer(request, parsed).document(session, listed, rows, mode, single=False)
        pages = math.ceil(total / parsed.page_size)
        document["meta"] = {"record_count": total, "page_count": pages}
        document["links"] = pagination_links(
            str(request.url).split("?")[0], params(request), parsed.page_number, pages
        )
        return JsonApiResponse(document)

    @router.get(
        "/{row_id}",
        response_model=single_doc,
        response_class=JsonApiResponse,
        responses=ERRORS,
        summary=f"Retrieve one of {resource.type}",
    )
    def retrieve(row_id: str, request: Request, api_key: Authenticated) -> Response:
        parsed = query.parse(params(request), resource, registry, listing=False)
        with db.sessions().begin() as session:
            row = load(session, api_key.mode, row_id)
            return JsonApiResponse(render_one(request, session, row, api_key.mode, parsed))

    if resource.create is not None:
        create_model: type[BaseModel] = schemas.create_body(resource)
        make = resource.create

        @router.post(
            "",
            response_model=single_doc,
            response_class=JsonApiResponse,
            status_code=201,
            responses=ERRORS,
            summary=f"Create one of {resource.type}",
        )
        def create(
            body: create_model,  # type: ignore[valid-type]
            request: Request,
            api_key: Authenticated,
            idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
        ) -> Response:
            parsed = query.parse(params(request), resource, registry, listing=False)
            data = body.data  # type: ignore[attr-defined]
            attributes = data.attributes.model_dump(exclude_unset=True) if data.attributes else {}
            related = (
                {
                    name: (value.data.id if value.data else None)
                    for name, value in (data.relationships or {})
                    if value is not None
                }
                if getattr(data, "relationships", None)
                else {}
            )
            digest = ""
            if idempotency_key is not None:
                idempotency.check_key(idempotency_key)
                digest = idempotency.request_hash("POST", request.url.path, document_of(body))
                with db.sessions().begin() as session:
                    stored = idempotency.replay(session, api_key, idempotency_key, digest)
                    if stored is not None:
                        return JsonApiResponse(stored.response_body, stored.response_status)
            try:
                with unit_of_work(db.sessions(), publish()) as session:
                    try:
                        row = make(context(session, api_key), attributes, related)
                    except (CopyInputError, CopyStateError, NotFoundError) as error:
                        raise domain_error(error, relationship_names) from None
                    session.flush()
                    document = render_one(request, session, row, api_key.mode, parsed)
                    if idempotency_key is not None:
                        idempotency.remember(
                            session, api_key, idempotency_key, digest, 201, document
                        )
            except IntegrityError:
                if idempotency_key is None:
                    raise
                with db.sessions().begin() as session:  # a concurrent twin won: replay it
                    stored = idempotency.replay(session, api_key, idempotency_key, digest)
                if stored is None:
                    raise
                return JsonApiResponse(stored.response_body, stored.response_status)
            return JsonApiResponse(document, status_code=201)

    writable = [a for a in resource.attributes if a.writable == "always"]
    if resource.updatable and (writable or resource.triggers):
        update_model: type[BaseModel] = schemas.update_body(resource)
        triggers = {t.name: t for t in resource.triggers}

        @router.patch(
            "/{row_id}",
            response_model=single_doc,
            response_class=JsonApiResponse,
            responses=ERRORS,
            summary=f"Update one of {resource.type}",
        )
        def update(
            row_id: str,
            body: update_model,  # type: ignore[valid-type]
            request: Request,
            api_key: Authenticated,
        ) -> Response:
            parsed = query.parse(params(request), resource, registry, listing=False)
            data = body.data  # type: ignore[attr-defined]
            if data.id != row_id:
                raise ApiError(
                    409,
                    f"data.id {data.id!r} does not match the URL's {row_id!r}",
                    pointer="/data/id",
                )
            changes = (
                data.attributes.model_dump(exclude_unset=True, by_alias=True)
                if data.attributes
                else {}
            )
            links = (
                {
                    name: value.data.id if value.data else None
                    for name, value in (data.relationships or {})
                    if value is not None
                }
                if getattr(data, "relationships", None)
                else {}
            )
            with unit_of_work(db.sessions(), publish()) as session:
                row = load(session, api_key.mode, row_id)
                for name, value in changes.items():
                    attribute = resource.attribute(name)
                    if attribute is not None:
                        setattr(row, attribute.attr, value)
                for name, related_id in links.items():
                    relationship = resource.relationship(name)
                    assert relationship is not None
                    assert relationship.column
                    if related_id is not None:
                        check_related(
                            session, registry, relationship.type, related_id, api_key.mode, name
                        )
                    setattr(row, relationship.column, related_id)
            for name, value in changes.items():
                if name in triggers and value not in (None, False):
                    with unit_of_work(db.sessions(), publish()) as session:
                        try:
                            triggers[name].run(context(session, api_key), row_id, value)
                        except (CopyInputError, CopyStateError, NotFoundError) as error:
                            raise domain_error(error) from None
            with db.sessions().begin() as session:
                row = load(session, api_key.mode, row_id)
                return JsonApiResponse(render_one(request, session, row, api_key.mode, parsed))

    if resource.delete is not None:
        remove = resource.delete

        @router.delete(
            "/{row_id}",
            status_code=204,
            response_class=Response,
            responses=ERRORS,
            summary=f"Delete one of {resource.type}",
        )
        def destroy(row_id: str, request: Request, api_key: Authenticated) -> Response:
            query.parse(params(request), resource, registry, listing=False)
            with unit_of_work(db.sessions(), publish()) as session:
                row = load(session, api_key.mode, row_id)
                remove(context(session, api_key), row)
            return Response(status_code=204)

    for relationship in resource.relationships:
        add_relationship_routes(
            router, resource, relationship, registry, load, renderer, params, list_response
        )
    return router


def document_of(body: Any) -> Any:
    return body.model_dump(mode="json", exclude_unset=True)


def check_related(
    session: Session,
    registry: Mapping[str, Resource],
    type_: str,
    related_id: str,
    mode: Mode,
    name: str,
) -> Any:
    row: Any = session.get(registry[type_].model, related_id)
    if row is None or row.mode != mode:
        raise ApiError(
            422,
            f"{type_} {related_id} does not exist in {mode} mode",
            pointer=f"/data/relationships/{name}",
        )
    return row


def add_relationship_routes(
    router: APIRouter,
    resource: Resource,
    relationship: Any,
    registry: Mapping[str, Resource],
    load: Any,
    renderer: Any,
    params: Any,
    list_response: Any,
) -> None:
    target = registry[relationship.type]
    target_model: Any = target.model
    name = relationship.name

    if relationship.to_many:
        related_list = schemas.list_document(target)

        @router.get(
            f"/{{row_id}}/{name}",
            response_model=related_list,
            response_class=JsonApiResponse,
            responses=ERRORS,
            summary=f"List the {name} of one of {resource.type}",
        )
        def related_many(row_id: str, request: Request, api_key: Authenticated) -> Response:
            parsed = query.parse(params(request), target, registry, listing=True)
            with db.sessions().begin() as session:
                load(session, api_key.mode, row_id)
            statement = select(target_model).where(
                target_model.mode == api_key.mode,
                getattr(target_model, relationship.inverse) == row_id,
                *parsed.conditions,
            )
            response: Response = list_response(request, parsed, api_key.mode, target, statement)
            return response
    else:
        related_one = schemas.single_document(target)

        @router.get(
            f"/{{row_id}}/{name}",
            response_model=related_one | schemas.EmptyDocument,
            response_class=JsonApiResponse,
            responses=ERRORS,
            summary=f"Retrieve the {name} of one of {resource.type}",
        )
        def related_single(row_id: str, request: Request, api_key: Authenticated) -> Response:
            parsed = query.parse(params(request), target, registry, listing=False)
            with db.sessions().begin() as session:
                row = load(session, api_key.mode, row_id)
                related_id = getattr(row, relationship.column)
                related = session.get(target_model, related_id) if related_id else None
                if related is None or related.mode != api_key.mode:
                    return JsonApiResponse({"data": None})
                return JsonApiResponse(
                    renderer(request, parsed).document(
                        session, target, [related], api_key.mode, single=True
                    )
                )

    @router.get(
        f"/{{row_id}}/relationships/{name}",
        response_class=JsonApiResponse,
        response_model=schemas.LinkageDocument,
        responses=ERRORS,
        summary=f"The {name} linkage of one of {resource.type}",
    )
    def linkage(row_id: str, request: Request, api_key: Authenticated) -> Response:
        parsed = query.parse(params(request), resource, registry, listing=False)
        with db.sessions().begin() as session:
            row = load(session, api_key.mode, row_id)
            data, _ = renderer(request, parsed).linkage(
                session, resource, [row], relationship, api_key.mode
            )
        return JsonApiResponse({"data": data[row.id]})
