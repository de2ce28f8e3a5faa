"""What each generated route costs FastAPI, at the app's start and per request (issue 20).

Asserted on the routes' structure, never on time: an error response given as a model made
a pydantic TypeAdapter per status and route (most of the web process's start), a type's
document models made again per route made a schema each, and a dependency is solved by
FastAPI's machinery on every request. ``tests/api/test_docs.py`` checks the document
they describe; the OpenAPI document is the same either way.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.routing import APIRoute

from api import schemas
from api.resources import REGISTRY, RESOURCES
from api.routes import router_for


def _routes() -> list[tuple[str, APIRoute]]:
    return [
        (resource.type, route)
        for resource in RESOURCES
        for route in router_for(
            resource,
            REGISTRY,
            publish=lambda: lambda copy_ids: None,
            gateways=lambda: None,
        ).routes
        if isinstance(route, APIRoute)
    ]


ROUTES = _routes()


@pytest.mark.parametrize(("type_", "route"), ROUTES, ids=[r.path + r.name for _, r in ROUTES])
def test_a_route_declares_its_errors_without_a_model_and_solves_no_dependency(
    type_: str, route: APIRoute
) -> None:
    assert route.response_fields == {}
    assert route.dependant.dependencies == []


@pytest.mark.parametrize("resource", RESOURCES, ids=[r.type for r in RESOURCES])
def test_a_types_document_models_are_made_once(resource: Any) -> None:
    assert schemas.single_document(resource) is schemas.single_document(resource)
    assert schemas.list_document(resource) is schemas.list_document(resource)
    assert schemas.resource_object(resource) is schemas.resource_object(resource)
