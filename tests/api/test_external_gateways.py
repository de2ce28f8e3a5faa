"""``/api/external_gateways`` over HTTP: created with a generated secret, their URLs and
timeout checked (a 422 with a pointer, never a 500), changed, the circuit reset, deleted
only while nothing names them, and kept to their mode; wallet entries name one by id."""

from __future__ import annotations

from typing import Any

import pytest

from config import get_settings
from copying.circuits import CIRCUIT_AFTER
from models import CircuitState, ExternalGateway
from tests.api.errors import assert_error

TYPE = "external_gateways"
#: A public address written as one: accepted in either mode without asking DNS.
PUBLIC = "https://93.184.215.14/pay"
LOOPBACK = "http://127.0.0.1:8123/pay"
ATTRIBUTES = {
    "name",
    "authorize_url",
    "capture_url",
    "void_url",
    "refund_url",
    "token_url",
    "timeout_seconds",
    "circuit_state",
    "circuit_failure_count",
    "shared_secret",
    "reference",
    "reference_origin",
    "metadata",
    "created_at",
    "updated_at",
}


@pytest.fixture(autouse=True)
def _public_only(settings_env: dict[str, str]) -> None:
    settings_env["ORDERCOPY_WEBHOOKS_ALLOW_PRIVATE"] = "false"
    get_settings.cache_clear()


def post(api: Any, **attributes: Any) -> Any:
    return api.post(
        f"/api/{TYPE}",
        {"data": {"type": TYPE, "attributes": {"name": "PSP", **attributes}}},
    )


def gateway(api: Any, **attributes: Any) -> dict[str, Any]:
    response = post(api, authorize_url=PUBLIC, **attributes)
    assert response.status_code == 201, response.json()
    return response.json()["data"]  # type: ignore[no-any-return]


def test_create_answers_the_gateway_with_its_generated_secret_and_a_closed_circuit(api):
    created = gateway(api, capture_url=PUBLIC + "/capture", reference="psp-1")
    attributes = created["attributes"]
    assert set(attributes) == ATTRIBUTES
    assert len(attributes["shared_secret"]) == 64
    assert (attributes["circuit_state"], attributes["circuit_failure_count"]) == ("closed", 0)
    assert (attributes["timeout_seconds"], attributes["void_url"]) == (10, None)
    assert (
        api.retrieve(TYPE, created["id"])["attributes"]["shared_secret"]
        == (attributes["shared_secret"])
    )
    assert gateway(api)["attributes"]["shared_secret"] != attributes["shared_secret"]


@pytest.mark.parametrize(
    ("field", "url", "detail"),
    [
        ("authorize_url", "ftp://93.184.215.14/pay", "absolute http:// or https://"),
        ("capture_url", "https://user:pw@93.184.215.14/", "user name or password"),
        ("refund_url", LOOPBACK, "loopback"),
        ("void_url", "https://10.0.0.7/void", "private"),
        ("token_url", "https://169.254.169.254/", "cloud metadata"),
    ],
)
def test_a_url_that_may_not_be_called_is_a_422_pointing_at_it(api, field, url, detail):
    response = post(api, **{field: url})
    error = assert_error(response, 422, pointer=f"/data/attributes/{field}", detail=detail)
    assert field in error["detail"]


def test_live_mode_takes_https_only(live_api):
    response = post(live_api, authorize_url="http://93.184.215.14/pay")
    assert_error(response, 422, pointer="/data/attributes/authorize_url", detail="https")
    assert gateway(live_api)["attributes"]["authorize_url"] == PUBLIC


def test_private_addresses_are_taken_when_allowed(api, settings_env):
    settings_env["ORDERCOPY_WEBHOOKS_ALLOW_PRIVATE"] = "true"
    get_settings.cache_clear()
    assert gateway(api, refund_url=LOOPBACK)["attributes"]["refund_url"] == LOOPBACK


@pytest.mark.parametrize("timeout", [0, 61, "5", 2.5])
def test_a_timeout_out_of_bounds_is_a_422(api, timeout):
    response = post(api, authorize_url=PUBLIC, timeout_seconds=timeout)
    assert_error(response, 422, pointer="/data/attributes/timeout_seconds")


def test_update_checks_the_urls_and_keeps_the_gateway_on_a_refusal(api):
    created = gateway(api)
    refused = api.update(TYPE, created["id"], {"void_url": LOOPBACK, "name": "Other"})
    assert_error(refused, 422, pointer="/data/attributes/void_url")
    kept = api.retrieve(TYPE, created["id"])["attributes"]
    assert (kept["name"], kept["void_url"]) == ("PSP", None)
    changed = api.update(TYPE, created["id"], {"void_url": PUBLIC, "timeout_seconds": 3})
    assert changed.status_code == 200, changed.json()
    assert changed.json()["data"]["attributes"]["void_url"] == PUBLIC
    assert changed.json()["data"]["attributes"]["timeout_seconds"] == 3


def test_the_circuit_and_secret_are_read_only(api):
    created = gateway(api)
    response = api.update(TYPE, created["id"], {"circuit_state": "open"})
    assert_error(response, 422, pointer="/data/attributes/circuit_state")
    response = api.update(TYPE, created["id"], {"shared_secret": "mine"})
    assert_error(response, 422, pointer="/data/attributes/shared_secret")


def test_reset_circuit_closes_an_open_circuit(api, committed):
    created = gateway(api)
    with committed.begin() as session:
        row = session.get_one(ExternalGateway, created["id"])
        row.circuit_state, row.circuit_failure_count = CircuitState.OPEN, CIRCUIT_AFTER
    assert api.retrieve(TYPE, created["id"])["attributes"]["circuit_state"] == "open"
    response = api.update(TYPE, created["id"], {"_reset_circuit": True})
    assert response.status_code == 200, response.json()
    attributes = response.json()["data"]["attributes"]
    assert (attributes["circuit_state"], attributes["circuit_failure_count"]) == ("closed", 0)


def test_gateways_are_kept_to_their_mode(api, live_api):
    test_gateway = gateway(api)
    assert api.ids(f"/api/{TYPE}") == [test_gateway["id"]]
    assert live_api.ids(f"/api/{TYPE}") == []
    assert_error(live_api.get(f"/api/{TYPE}/{test_gateway['id']}"), 404)


def entry(api: Any, gateway_name: str) -> Any:
    customer = api.create("customers", {"email": "ada@example.com"})
    return api.post(
        "/api/customer_payment_sources",
        {
            "data": {
                "type": "customer_payment_sources",
                "attributes": {"payment_source_token": "tok_ext_ok", "gateway": gateway_name},
                "relationships": {
                    "customer": {"data": {"type": "customers", "id": customer["id"]}}
                },
            }
        },
    )


def test_a_wallet_entry_names_an_external_gateway_of_its_mode(api, live_api):
    own = gateway(api)
    response = entry(api, own["id"])
    assert response.status_code == 201, response.json()
    assert response.json()["data"]["attributes"]["gateway"] == own["id"]
    assert entry(api, "test").status_code == 201
    other_mode = gateway(live_api)
    for name in (other_mode["id"], "NoSuchGate", "stripe"):
        assert_error(entry(api, name), 422, pointer="/data/attributes/gateway", detail=name)


def test_a_gateway_named_by_a_wallet_entry_is_not_deleted(api):
    named = gateway(api)
    assert entry(api, named["id"]).status_code == 201
    assert_error(api.delete(f"/api/{TYPE}/{named['id']}"), 409, code="IN_USE")
    unnamed = gateway(api)
    assert api.delete(f"/api/{TYPE}/{unnamed['id']}").status_code == 204
    assert_error(api.get(f"/api/{TYPE}/{unnamed['id']}"), 404)
