"""The API's documentation: the OpenAPI document, Swagger UI and ReDoc at ``/api/docs``
(their scripts from the ``fastapi-offline`` package, so the pages work offline), and
``GET /``, which points at them.

The document is FastAPI's, made compact: each query parameter and each error response
is written once, under ``components``, and every route refers to it.
"""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any

import fastapi_offline
from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from api import parameters
from api.errors import MEDIA_TYPE
from api.resources import REGISTRY
from api.routes import ERRORS

OPENAPI_URL = "/api/openapi.json"
DOCS_URL = "/api/docs"
REDOC_URL = f"{DOCS_URL}/redoc"
ASSETS_URL = f"{DOCS_URL}/assets"
ASSETS = Path(fastapi_offline.__file__).parent / "static"
RESPONSES = "#/components/responses/"
HOME = """<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>{title}</title></head>
<body>
<h1>{title}</h1>
<p>{description}</p>
<ul>
<li><a href="{docs}">API documentation</a> (Swagger UI; also <a href="{redoc}">ReDoc</a>)</li>
<li><a href="{openapi}">OpenAPI document</a></li>
<li><a href="/healthz">/healthz</a>: the process answers</li>
</ul>
</body>
</html>
"""


def _error_responses() -> dict[str, dict[str, Any]]:
    """Each documented error status, as FastAPI writes it for every route."""
    return {
        str(status): {
            "description": error["description"],
            "content": {MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/ErrorDocument"}}},
        }
        for status, error in ERRORS.items()
    }


def _client_error(errors: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The ``4XX`` response: the 4xx statuses every route lists, in one description."""
    statuses = [status for status in errors if status.startswith("4")]
    return {
        **errors[statuses[0]],
        "description": "; ".join(f"{s}: {errors[s]['description']}" for s in statuses),
    }


def _without_generated_titles(node: Any) -> Any:
    """``node`` without pydantic's titles (the property's or model's name again) and
    without empty descriptions."""
    if isinstance(node, list):
        return [_without_generated_titles(item) for item in node]
    if not isinstance(node, dict):
        return node
    return {
        key: value
        if key in ("enum", "const", "default", "example", "examples")
        # A property may be named "title"; a schema's own title is a string.
        else _without_generated_titles(value)
        for key, value in node.items()
        if not (key == "title" and isinstance(value, str))
        and not (key == "description" and value == "")
    }


def _nullable(node: Any) -> Any:
    """``node`` with each ``anyOf: [<one type>, null]`` written as ``type: [<type>, "null"]``
    (JSON Schema 2020-12; the same values)."""
    if isinstance(node, list):
        return [_nullable(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _nullable(value) for key, value in node.items()}
    branches = node.get("anyOf")
    if isinstance(branches, list) and len(branches) == 2 and {"type": "null"} in branches:
        other = branches[0] if branches[1] == {"type": "null"} else branches[1]
        if (
            isinstance(other.get("type"), str)
            and not {"$ref", "enum", "const"} & other.keys()
            and not other.keys() & (node.keys() - {"anyOf"})
        ):
            rest = {key: value for key, value in node.items() if key != "anyOf"}
            return {**other, "type": [other["type"], "null"], **rest}
    return node


def _response_name(response: dict[str, Any]) -> str | None:
    """A success response's name under ``components.responses``: its schema's (or its
    schemas', joined by ``_or_``); None when it has no content."""
    if "content" not in response:
        return None
    schema = response["content"][MEDIA_TYPE]["schema"]
    refs = schema.get("anyOf", [schema])
    return "_or_".join(ref["$ref"].rsplit("/", 1)[-1] for ref in refs)


def _compact(document: dict[str, Any]) -> dict[str, Any]:
    """Write once what operations repeat: the key, the responses, the ``Idempotency-Key``
    header and ``{id}``.

    ``{id}`` stays on each operation, not on the path: a path's keys are its methods
    (a 405's ``Allow`` lists them, ``api/app.py``).
    """
    document = _without_generated_titles(document)
    errors = _error_responses()
    shared = {"4XX": _client_error(errors), **{s: e for s, e in errors.items() if s[0] != "4"}}
    responses: dict[str, Any] = {}
    key: list[dict[str, list[str]]] = [{"HTTPBearer": []}]
    path_id = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
    headers: dict[str, Any] = {}
    for operations in document["paths"].values():
        for operation in operations.values():
            if operation.get("security") == key:
                del operation["security"]
            listed = operation.get("parameters", [])
            for index, parameter in enumerate(listed):
                name = None
                if parameter == path_id:
                    name = "id"
                elif parameter.get("in") == "header":
                    parameter["schema"].pop("description", None)
                    name = parameter["name"].lower().replace("-", "_")
                    headers[name] = parameter
                if name is not None:
                    listed[index] = {"$ref": parameters.REFERENCE + name}
            answers: dict[str, Any] = operation["responses"]
            if all(answers.get(status) == error for status, error in errors.items()):
                for status in errors:
                    del answers[status]
                answers.update({status: {"$ref": RESPONSES + status} for status in shared})
            for status, answer in answers.items():
                name = _response_name(answer) if status.startswith("2") else None
                if name is not None:
                    responses[name] = answer
                    answers[status] = {"$ref": RESPONSES + name}
    document["security"] = key
    document["info"]["description"] += " " + parameters.GRAMMAR
    components = document["components"]
    components["schemas"] = _nullable({**components["schemas"], **parameters.schemas(REGISTRY)})
    components["responses"] = {**responses, **shared}
    components["parameters"] = {
        "id": {**path_id, "description": "The record's id."},
        **headers,
        **parameters.components(REGISTRY),
    }
    return document


def openapi_document(app: FastAPI) -> dict[str, Any]:
    """``app``'s OpenAPI document, made once; what ``app.openapi()`` returns."""
    if app.openapi_schema is None:
        app.openapi_schema = _compact(
            get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
        )
    return app.openapi_schema


def install(app: FastAPI) -> None:
    """Serve the document, its two browser pages with their assets, and ``GET /``.

    ``app`` is made with ``docs_url=None`` and ``redoc_url=None``: FastAPI's own pages
    load their scripts from a CDN and come with an OAuth2 redirect page no key needs.
    """
    app.openapi = lambda: openapi_document(app)  # type: ignore[method-assign]
    app.mount(ASSETS_URL, StaticFiles(directory=ASSETS), name="docs_assets")

    @app.get(DOCS_URL, include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=OPENAPI_URL,
            title=f"{app.title} API",
            swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_URL}/favicon.png",
            oauth2_redirect_url=None,
            # No badge asking validator.swagger.io about the document.
            swagger_ui_parameters={"validatorUrl": None},
        )

    @app.get(REDOC_URL, include_in_schema=False)
    def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=OPENAPI_URL,
            title=f"{app.title} API",
            redoc_js_url=f"{ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{ASSETS_URL}/favicon.png",
            with_google_fonts=False,
        )

    @app.get("/", include_in_schema=False)
    def home() -> HTMLResponse:
        return HTMLResponse(
            HOME.format(
                title=escape(app.title),
                description=escape(app.description),
                docs=DOCS_URL,
                redoc=REDOC_URL,
                openapi=OPENAPI_URL,
            )
        )
