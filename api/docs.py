"""The API's documentation: Swagger UI and ReDoc at ``/api/docs`` (their scripts from the
``fastapi-offline`` package, so the pages work offline), the OpenAPI document they show
(``api/openapi.py``), and ``GET /``, which points at them.
"""

from __future__ import annotations

from html import escape
from pathlib import Path

import fastapi_offline
from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from api.openapi import openapi_document

OPENAPI_URL = "/api/openapi.json"
DOCS_URL = "/api/docs"
REDOC_URL = f"{DOCS_URL}/redoc"
ASSETS_URL = f"{DOCS_URL}/assets"
ASSETS = Path(fastapi_offline.__file__).parent / "static"
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
