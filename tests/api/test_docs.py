"""The API's documentation: offline browser pages, ``GET /``, and a compact OpenAPI
document whose ``filter[q]`` describes exactly the filters ``api/query.py`` reads."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

import fastapi_offline
import pytest
from fastapi.openapi.utils import get_openapi
from fastapi.testclient import TestClient
from schemathesis.specs.openapi.definitions import OPENAPI_31_VALIDATOR

from api import query, routes
from api.app import app
from api.errors import ApiError
from api.resources import REGISTRY

ASSETS = Path(fastapi_offline.__file__).parent / "static"
#: Bytes of the served /api/openapi.json; FastAPI's own document was 668,257. 70,926 bytes
#: before webhooks and event_callbacks, 82,790 with them: the budget grew by those 11,864;
#: 84,166 with every webhook topic and DELETE /api/order_subscriptions/{id} (+1,376);
#: 84,448 once every create and update body takes a ``relationships`` object (an empty
#: one too) and a request's identifiers may hold other members (+282); 109,517 with
#: promotions, percentage_discount_promotions, fixed_amount_promotions and coupons (about
#: 6 KB each), orders' coupon_code, discount_amount_cents and frozen, line items'
#: promotion and the copies' apply_promotions and ignore_invalid_coupon (+25,069);
#: 118,125 with recurring_order_copies, its related routes from order_subscriptions and
#: the copies' copy_type (+8,608); 126,888 with order_subscription_items, its related
#: routes from order_subscriptions and line items' frequency (+8,763); 128,889 with
#: order_subscriptions' number, customer_email, activate_by_source_order, options,
#: renewal_alert_period, next_attempt_at, _skip and its scopes (+2,001); 129,036 with
#: the keyset pages of fb6af09 (page[after], page[before]; +147); +4,821 with
#: order_subscription_events and the subscriptions' events relationship. +24,860 with
#: authorizations, captures, voids and refunds (about 5 KB each), orders' _capture,
#: _refund, _refund_amount_cents, _void and their relationships to the four (issue 21).
#: +6,800 with external_gateways (and customer_payment_sources' gateway filter, issue 21).
#: +12,816 with bundles and adjustments, the items' item_type, bundle_code and sku, bundle
#: and adjustment relationships, and line items' bundle_code (issue 16); the budget before
#: them was 262 bytes short of the document of the tree they were added to (357640f^).
#: +190 with Commerce Layer's names for a capture's and a refund's parent relationships
#: (reference_authorization, reference_capture).
SIZE_BUDGET = 178_785
#: The types with both a create and an update route, as the served document has them
#: (test_every_operation_fastapi_documents_is_documented holds it to FastAPI's operations).
#: Not FastAPI's own document: made anew at each call, it took seconds of every xdist
#: worker's collection; the app makes the served one once and keeps it for the tests.
SERVED = app.openapi()["paths"]
CREATED_AND_UPDATED = sorted(
    type_
    for type_ in REGISTRY
    if "post" in SERVED.get(f"/api/{type_}", {})
    and "patch" in SERVED.get(f"/api/{type_}/{{id}}", {})
)


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


def _parameters(document: dict[str, Any], path: str, method: str) -> list[dict[str, Any]]:
    """What an operation takes: its path's parameters and its own, as written."""
    item = document["paths"][path]
    return [*item.get("parameters", []), *item[method].get("parameters", [])]


def _query_parameters(
    document: dict[str, Any], path: str, method: str = "get"
) -> dict[str, dict[str, Any]]:
    resolved = [_resolve(document, parameter) for parameter in _parameters(document, path, method)]
    return {p["name"]: p for p in resolved if p["in"] == "query"}


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method != "parameters"
    ]


def _references(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [ref for value in node.values() for ref in _references(value)]
    if isinstance(node, list):
        return [ref for item in node for ref in _references(item)]
    return []


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


def test_each_operation_declares_its_path_parameters(document):
    for path, method, _operation in _operations(document):
        declared = [
            _resolve(document, parameter)["name"]
            for parameter in _parameters(document, path, method)
            if _resolve(document, parameter)["in"] == "path"
        ]
        assert declared == re.findall(r"{(\w+)}", path), (method, path)
    names = {name for path in document["paths"] for name in re.findall(r"{(\w+)}", path)}
    assert names == {"id", "relationship"}


def test_every_operation_fastapi_documents_is_documented(document):
    """The compact document has FastAPI's operations, no more, no fewer; a type's linkage
    routes are one path, ``{relationship}`` naming each of them."""
    fastapi = get_openapi(title=app.title, version=app.version, routes=app.routes)
    operations = {(path, method) for path, item in fastapi["paths"].items() for method in item}
    documented = set()
    for path, method, _operation in _operations(document):
        if path.endswith("/{relationship}"):
            (relationship,) = [
                _resolve(document, p)
                for p in _parameters(document, path, method)
                if _resolve(document, p)["name"] == "relationship"
            ]
            type_ = path.split("/")[2]
            assert relationship["schema"]["enum"] == [r.name for r in REGISTRY[type_].relationships]
            for name in relationship["schema"]["enum"]:
                documented.add((path.replace("{relationship}", name), method))
        else:
            documented.add((path, method))

    assert documented == operations
    for type_, resource in REGISTRY.items():
        assert {(f"/api/{type_}", "get"), (f"/api/{type_}/{{id}}", "get")} <= documented
        for relationship in resource.relationships:
            assert (f"/api/{type_}/{{id}}/{relationship.name}", "get") in documented
            assert (f"/api/{type_}/{{id}}/relationships/{relationship.name}", "get") in documented


def test_a_list_documents_its_filters_as_one_deep_object(document):
    parameters = _query_parameters(document, "/api/order_copies")
    filters = parameters["filter[q]"]

    assert sorted(parameters) == ["fields", "filter[q]", "include", "page", "sort"]
    assert (filters["style"], filters["explode"]) == ("deepObject", True)
    assert filters["schema"]["type"] == "object"
    assert filters["schema"]["additionalProperties"] is False
    for predicate in query.ALL_PREDICATES:
        assert predicate in document["info"]["description"]


def test_each_list_documents_exactly_one_filter_parameter(document):
    lists = {f"/api/{type_}" for type_ in REGISTRY} | {
        f"/api/{type_}/{{id}}/{relationship.name}"
        for type_, resource in REGISTRY.items()
        for relationship in resource.relationships
        if relationship.to_many
    }

    for path, method, _operation in _operations(document):
        names = [
            _resolve(document, parameter)["name"]
            for parameter in _parameters(document, path, method)
            if _resolve(document, parameter)["in"] == "query"
        ]
        filters = [name for name in names if name.startswith("filter")]
        listing = path in lists and method == "get"
        assert filters == (["filter[q]"] if listing else []), (method, path)
        assert len(names) == len(set(names)), (method, path)
        if listing:
            include = ["include"] if REGISTRY[_listed_type(path)].relationships else []
            assert sorted(names) == sorted(["fields", "filter[q]", "page", "sort", *include])


def _listed_type(path: str) -> str:
    """The type a list route answers with: its resource's, or the related type's."""
    parts = path.split("/")
    if len(parts) == 3:
        return parts[2]
    relationship = REGISTRY[parts[2]].relationship(parts[4])
    assert relationship is not None
    return relationship.type


@pytest.mark.parametrize("type_", sorted(REGISTRY))
def test_sort_include_fields_and_page_name_what_the_api_reads(document, type_):
    """A query made of every name the document gives is one ``api/query.py`` reads."""
    resource = REGISTRY[type_]
    parameters = _query_parameters(document, f"/api/{type_}")
    sort = parameters["sort"]
    fields = parameters["fields"]
    sortable = query.sortable(resource)
    params = [("sort", ",".join(f"-{name}" for name in sortable))]

    assert (sort["style"], sort["explode"]) == ("form", False)
    assert [n for n in sortable if re.search(sort["schema"]["items"]["pattern"], f"-{n}")] == (
        sortable
    )
    assert not re.search(sort["schema"]["items"]["pattern"], "unknown")
    assert (fields["style"], fields["schema"]["additionalProperties"]) == ("deepObject", False)
    # As api/query.py reads it: fields[<type>] of any type, on any route.
    assert list(fields["schema"]["properties"]) == list(REGISTRY)
    for related, schema in fields["schema"]["properties"].items():
        names = query.field_names(REGISTRY[related])
        pattern = _resolve(document, schema)["pattern"]
        assert re.search(pattern, ",".join(names)), related
        assert re.search(pattern, ""), related
        assert not re.search(pattern, f"{names[0]},"), related
        params.append((f"fields[{related}]", ",".join(names)))
    if resource.relationships:
        include = parameters["include"]["schema"]
        assert include["items"]["enum"] == [r.name for r in resource.relationships]
        params.append(("include", ",".join(include["items"]["enum"])))
    else:
        assert "include" not in parameters
    page = _resolve(document, parameters["page"])["schema"]["properties"]
    params += [("page[number]", str(page["number"]["maximum"]))]
    params += [("page[size]", str(page["size"]["maximum"]))]

    parsed = query.parse(params, resource, REGISTRY, listing=True)

    assert parsed.page_size == query.MAX_PAGE_SIZE
    with pytest.raises(ApiError):
        query.parse(
            [("page[size]", str(page["size"]["maximum"] + 1))], resource, REGISTRY, listing=True
        )


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
        value = _resolve(document, patterns[matching[0]])
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
    lists = {p: _resolve(document, v) for p, v in patterns.items() if p.endswith("_(in|not_in)$")}
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
    own = _parameters(document, "/api/line_items", "get")
    related = _parameters(document, "/api/orders/{id}/line_items", "get")

    assert sorted(map(str, related)) == sorted(
        map(str, [{"$ref": "#/components/parameters/id"}, *own])
    )
    assert all("$ref" in p for p in own)


def test_parameters_every_operation_of_a_path_takes_are_the_paths(document):
    collection = document["paths"]["/api/orders"]
    single = document["paths"]["/api/orders/{id}"]

    assert collection["parameters"] == [
        {"$ref": "#/components/parameters/orders_include"},
        {"$ref": "#/components/parameters/fields"},
    ]
    assert collection["post"]["parameters"] == [{"$ref": "#/components/parameters/idempotency_key"}]
    assert single["parameters"] == [{"$ref": "#/components/parameters/id"}]
    assert "parameters" not in single["delete"]
    for path, item in document["paths"].items():
        if "parameters" in item:
            assert len(item) > 2, path


def test_the_document_is_valid_openapi_3_1(document):
    errors = [str(error) for error in OPENAPI_31_VALIDATOR.iter_errors(document)]

    assert errors == []
    assert document["info"]["title"] == app.title


def test_the_openapi_document_is_compact(client, document):
    size = len(client.get("/api/openapi.json").content)
    uses = Counter(_references(document))
    error = {"$ref": "#/components/responses/error"}

    assert size <= SIZE_BUDGET, size
    assert document["security"] == [{"HTTPBearer": []}]
    for path, method, operation in _operations(document):
        assert not {"security", "summary"} & operation.keys(), (method, path)
        (success,) = set(operation["responses"]) - {"default"}
        assert success.startswith("2"), (method, path)
        assert operation["responses"]["default"] == error, (method, path)
    for status, answer in routes.ERRORS.items():
        assert f"{status}: {answer['description']}" in _resolve(document, error)["description"]
    # A component is written once for several uses; one used once is written in place.
    for section in ("schemas", "parameters", "responses"):
        for name in document["components"][section]:
            assert uses[f"#/components/{section}/{name}"] >= 2, (section, name)
    copies = document["components"]["schemas"]["order_copies_resource"]["properties"]
    assert '"title"' not in str(copies)
    assert "aborted" in copies["attributes"]["properties"]["status"]["description"]


def test_resource_objects_lists_and_documents_extend_one_schema_each(document):
    schemas = document["components"]["schemas"]

    assert schemas["Resource"]["required"] == ["id", "type", "links", "attributes", "meta"]
    assert schemas["List"]["required"] == ["data", "meta", "links"]
    # Typed once, where every type that has it types it alike; named in each type's.
    created_at = {"type": "string", "format": "date-time"}
    assert schemas["Resource"]["properties"]["attributes"]["properties"]["created_at"] == created_at
    for type_ in REGISTRY:
        resource = schemas[f"{type_}_resource"]
        assert resource["allOf"] == [{"$ref": "#/components/schemas/Resource"}]
        assert resource["properties"]["type"] == {"const": type_}
        assert resource["properties"]["attributes"]["additionalProperties"] is False
        assert resource["properties"]["attributes"]["properties"]["created_at"] == {}
        answer = _resolve(document, document["paths"][f"/api/{type_}"]["get"]["responses"]["200"])
        listed = answer["content"]["application/vnd.api+json"]["schema"]
        assert listed == {
            "allOf": [{"$ref": "#/components/schemas/List"}],
            "properties": {"data": {"items": {"$ref": f"#/components/schemas/{type_}_resource"}}},
        }


def _sent(data: dict[str, Any], writable: dict[str, Any], member: str) -> set[str]:
    """The names a body's ``data`` may send in its ``attributes`` or ``relationships``:
    those its type's ``<type>_writable`` or the body names, less those it may not send."""
    narrowed = data.get("properties", {}).get(member, {})
    if narrowed == {"not": {}}:
        return set()
    shared = writable["properties"]["data"]["properties"].get(member, {})
    named = {**shared.get("properties", {}), **narrowed.get("properties", {})}
    return {name for name, schema in named.items() if schema != {"not": {}}}


@pytest.mark.parametrize("type_", CREATED_AND_UPDATED)
def test_create_and_update_bodies_narrow_one_writable_schema(document, type_):
    """A type's create and update bodies both extend ``<type>_writable``, which names what
    either sends; each sends what the type's description says it may, no more: the
    create no ``id`` and no trigger, the update nothing only a create sets."""
    resource = REGISTRY[type_]
    bodies = [
        document["paths"][path][method]["requestBody"]["content"]["application/vnd.api+json"]
        for path, method in ((f"/api/{type_}", "post"), (f"/api/{type_}/{{id}}", "patch"))
    ]
    writable = document["components"]["schemas"][f"{type_}_writable"]

    assert writable["allOf"] == [{"$ref": "#/components/schemas/Writable"}]
    for body in bodies:
        assert body["schema"]["allOf"] == [{"$ref": f"#/components/schemas/{type_}_writable"}]
    created, updated = (body["schema"]["properties"]["data"] for body in bodies)
    assert created["properties"]["id"] == {"not": {}}
    assert "id" in updated["required"]
    for data, writes in ((created, ("create", "always")), (updated, ("always",))):
        triggers = {trigger.name for trigger in resource.triggers if data is updated}
        assert _sent(data, writable, "attributes") == triggers | {
            attribute.name for attribute in resource.attributes if attribute.writable in writes
        }
        assert _sent(data, writable, "relationships") == {
            relationship.name
            for relationship in resource.relationships
            if relationship.writable in writes and not relationship.to_many
        }
