"""The API's documentation: offline browser pages, ``GET /``, and a compact OpenAPI
document whose ``filter[q]`` describes exactly the filters ``api/query.py`` reads."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import fastapi_offline
import pytest
from fastapi.testclient import TestClient

from api import query
from api.app import app
from api.resources import REGISTRY

ASSETS = Path(fastapi_offline.__file__).parent / "static"


@pytest.fixture(scope="module")
def client() -> TestClient:
    """No database: neither the pages nor the document read one."""
    return TestClient(app)


@pytest.fixture(scope="module")
def document(client: TestClient) -> dict[str, Any]:
    response = client.get("/api/openapi.json")
    assert response.status_code == 200
    return response.json()  # type: ignore[no-any-return]


def _resolve(document: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        *_, section, name = node["$ref"].split("/")
        node = document["components"][section][name]
    return node


def _query_parameters(document: dict[str, Any], path: str) -> dict[str, dict[str, Any]]:
    listed = document["paths"][path]["get"]["parameters"]
    resolved = [_resolve(document, parameter) for parameter in listed]
    return {p["name"]: p for p in resolved if p["in"] == "query"}


@pytest.mark.parametrize("page", ["/api/docs", "/api/docs/redoc"])
def test_the_docs_pages_load_everything_from_the_installed_package(client, page):
    response = client.get(page)

    assert response.status_code == 200
    assert "text/html" in response.headers["content-type"]
    assert not re.search(r"https?://|//cdn|fonts\.googleapis", response.text)
    assets = re.findall(r'(?:src|href)="([^"]+)"', response.text)
    assert assets
    for asset in assets:
        served = client.get(asset)
        assert served.status_code == 200, asset
        assert served.content == (ASSETS / asset.rsplit("/", 1)[-1]).read_bytes()


def test_there_is_no_oauth2_redirect_page(client):
    assert "oauth2" not in client.get("/api/docs").text
    assert not [route for route in app.routes if "oauth2" in getattr(route, "path", "")]
    assert client.get("/docs/oauth2-redirect").status_code == 404
    assert client.get("/api/docs/oauth2-redirect").status_code == 404


def test_the_home_page_points_at_the_docs_and_the_health_check(client):
    response = client.get("/")

    assert response.status_code == 200
    assert "text/html" in response.headers["content-type"]
    links = re.findall(r'href="([^"]+)"', response.text)
    assert {"/api/docs", "/healthz"} <= set(links)
    for link in links:
        assert client.get(link).status_code == 200, link


def test_path_parameters_are_named_id(document):
    names = {name for path in document["paths"] for name in re.findall(r"{(\w+)}", path)}
    declared = {
        _resolve(document, parameter)["name"]
        for operations in document["paths"].values()
        for operation in operations.values()
        for parameter in operation.get("parameters", [])
        if _resolve(document, parameter)["in"] == "path"
    }

    assert names == declared == {"id"}
    assert "/api/orders/{id}/line_items" in document["paths"]


def test_a_list_documents_its_filters_as_one_deep_object(document):
    parameters = _query_parameters(document, "/api/order_copies")
    filters = parameters["filter[q]"]

    assert sorted(parameters) == sorted(
        [
            "filter[q]",
            "sort",
            "page[number]",
            "page[size]",
            "include",
            "fields[order_copies]",
            "fields[orders]",
            "fields[order_subscriptions]",
            "fields[order_copy_events]",
        ]
    )
    assert (filters["style"], filters["explode"]) == ("deepObject", True)
    assert filters["schema"]["type"] == "object"
    assert filters["schema"]["additionalProperties"] is False
    for name in query.filterable(REGISTRY["order_copies"]):
        assert name in filters["description"]
    for predicate in query.ALL_PREDICATES:
        assert predicate in filters["description"]


def _expected(attribute: Any, predicate: str) -> tuple[str, Any]:
    """The value type of one filter, and a value ``api/query.py`` accepts for it."""
    if predicate in query.FLAGS:
        return "boolean", True
    if predicate in query.LISTS:
        return "string", attribute.choices[0] if attribute.choices else None
    if attribute.choices and predicate in ("eq", "not_eq"):
        return "enum", attribute.choices[0]
    return {"integer": "integer", "boolean": "boolean"}.get(attribute.kind, "string"), None


@pytest.mark.parametrize("type_", sorted(REGISTRY))
def test_each_filter_matches_one_pattern_of_its_value_type(document, type_):
    resource = REGISTRY[type_]
    schema = _query_parameters(document, f"/api/{type_}")["filter[q]"]["schema"]
    patterns = schema["patternProperties"]

    for name, attribute, predicate in query.filters(resource):
        key = name.removeprefix("filter[q][").removesuffix("]")
        matching = [p for p in patterns if re.search(p, key)]
        assert len(matching) == 1, (key, matching)
        value = patterns[matching[0]]
        kind, example = _expected(attribute, predicate)
        if kind == "enum":
            assert value["enum"] == list(attribute.choices)
        else:
            assert value["type"] == kind, key
        if predicate in query.LISTS:
            assert "," in value["pattern"], key
            if example is not None:
                assert re.search(value["pattern"], f"{example},{example}")
    for unknown in ("status", "created_at_like", "unknown_eq", "id_eq_eq", "sort"):
        assert not [p for p in patterns if re.search(p, unknown)], unknown


def test_list_patterns_admit_only_values_the_api_reads(document):
    patterns = _query_parameters(document, "/api/order_copies")["filter[q]"]["schema"][
        "patternProperties"
    ]
    lists = {p: v for p, v in patterns.items() if p.endswith("_(in|not_in)$")}
    dates = next(v["pattern"] for p, v in lists.items() if "created_at" in p)
    integers = next(v["pattern"] for p, v in lists.items() if "errors_count" in p)

    assert re.search(dates, "2024-02-28T10:00:00Z,1999-12-31T23:59:59.123456+13:30")
    assert re.search(dates, "2024-01-31T10:00")
    for refused in ("2024-02-30T10:00:00Z", "2024-13-01T10:00:00Z", "0000-01-01T00:00", "x", ""):
        assert not re.search(dates, refused), refused
    assert re.search(integers, "1,-2,123456789012345678")
    assert not re.search(integers, "1,,2")
    assert not re.search(integers, "1234567890123456789")


def test_related_lists_refer_to_the_same_parameters(document):
    own = document["paths"]["/api/line_items"]["get"]["parameters"]
    related = document["paths"]["/api/orders/{id}/line_items"]["get"]["parameters"]

    assert related == [{"$ref": "#/components/parameters/id"}, *own]
    assert all("$ref" in p for p in own)


def test_the_openapi_document_is_compact(client, document):
    size = len(client.get("/api/openapi.json").content)
    operations = [op for ops in document["paths"].values() for op in ops.values()]

    assert size < 150_000, size
    assert all("4XX" in op["responses"] and "security" not in op for op in operations)
    assert document["security"] == [{"HTTPBearer": []}]
    assert '"title"' not in str(document["components"]["schemas"]["order_copies_attributes"])
