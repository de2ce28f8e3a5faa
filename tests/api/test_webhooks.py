"""``/api/webhooks`` and ``/api/event_callbacks`` over HTTP: created with a generated
secret, their topic, callback URL and includes checked (a 422, never a 500), listed,
changed, switched by the triggers, deleted, and kept to their mode. Event rows and
delivery attempts are written here directly: delivering them is the worker's job."""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from api.resources import REGISTRY
from config import get_settings
from copying.webhooks import topics
from copying.webhooks.webhooks import INCLUDABLE
from models import (
    CircuitState,
    EventCallback,
    EventStatus,
    Webhook,
    WebhookEvent,
    utcnow,
)
from tests.api.errors import assert_error
from tests.api.shop import TIMESTAMP, create_copy

TYPE = "webhooks"
#: A public address written as one: accepted in either mode without asking DNS.
PUBLIC = "https://93.184.215.14/hooks"
LOOPBACK = "http://127.0.0.1:8123/hooks"
ATTRIBUTES = {
    "name",
    "topic",
    "callback_url",
    "include_resources",
    "circuit_state",
    "circuit_failure_count",
    "shared_secret",
    "disabled_at",
    "reference",
    "reference_origin",
    "metadata",
    "created_at",
    "updated_at",
}
CALLBACK_ATTRIBUTES = {
    "callback_url",
    "payload",
    "response_code",
    "response_message",
    "created_at",
    "updated_at",
}


def allow_private(settings_env: dict[str, str], allowed: bool) -> None:
    settings_env["ORDERCOPY_WEBHOOKS_ALLOW_PRIVATE"] = "true" if allowed else "false"
    get_settings.cache_clear()


def body(attributes: dict[str, Any]) -> dict[str, Any]:
    return {"data": {"type": TYPE, "attributes": attributes}}


def post(api, **attributes: Any) -> Any:
    return api.post(
        f"/api/{TYPE}",
        body({"topic": topics.COMPLETE, "callback_url": PUBLIC, **attributes}),
    )


def hook(api, **attributes: Any) -> dict[str, Any]:
    response = post(api, **attributes)
    assert response.status_code == 201, response.json()
    return response.json()["data"]  # type: ignore[no-any-return]


def ok(response: Any) -> dict[str, Any]:
    assert response.status_code == 200, response.json()
    return response.json()["data"]  # type: ignore[no-any-return]


def add_event(
    committed, webhook_id: str, *, due: datetime, status: EventStatus = EventStatus.PENDING
) -> str:
    with committed.begin() as session:
        webhook = session.get_one(Webhook, webhook_id)
        event = WebhookEvent(
            id=str(uuid.uuid4()),
            mode=webhook.mode,
            webhook_id=webhook_id,
            topic=webhook.topic,
            resource_type="order_copies",
            resource_id="SomeCopyId",
            status=status,
            next_attempt_at=due,
        )
        session.add(event)
        return event.id


def add_callback(
    committed, webhook_id: str, *, at: datetime, code: int | None = 200, message: str = "OK"
) -> str:
    """A delivery attempt of a new event of the webhook, made at ``at``."""
    event_id = add_event(committed, webhook_id, due=at)
    with committed.begin() as session:
        webhook = session.get_one(Webhook, webhook_id)
        callback = EventCallback(
            mode=webhook.mode,
            webhook_id=webhook_id,
            event_id=event_id,
            callback_url=webhook.callback_url,
            payload={"data": {"type": "order_copies", "id": "SomeCopyId"}},
            response_code=code,
            response_message=message,
            created_at=at,
            updated_at=at,
        )
        session.add(callback)
        session.flush()
        return callback.id


def stored(committed, webhook_id: str) -> Webhook:
    with committed.begin() as session:
        return session.get_one(Webhook, webhook_id)


# --- create -------------------------------------------------------------------------


def test_create_answers_the_webhook_with_its_generated_secret(api):
    response = post(
        api,
        name="Completed copies",
        include_resources=["target_order"],
        reference="crm-1",
        metadata={"team": "ops"},
    )

    assert response.status_code == 201
    webhook = response.json()["data"]
    attributes = webhook["attributes"]
    assert webhook["type"] == TYPE
    assert set(attributes) == ATTRIBUTES
    assert attributes["name"] == "Completed copies"
    assert attributes["topic"] == "order_copies.complete"
    assert attributes["callback_url"] == PUBLIC
    assert attributes["include_resources"] == ["target_order"]
    assert (attributes["circuit_state"], attributes["circuit_failure_count"]) == ("closed", 0)
    assert attributes["disabled_at"] is None
    assert (attributes["reference"], attributes["metadata"]) == ("crm-1", {"team": "ops"})
    assert re.fullmatch(r"[0-9a-f]{64}", attributes["shared_secret"])
    assert TIMESTAMP.match(attributes["created_at"])
    assert webhook["meta"] == {"mode": "test"}
    # Read back by any key of the mode; another webhook has a secret of its own.
    assert api.retrieve(TYPE, webhook["id"])["attributes"] == attributes
    assert hook(api)["attributes"]["shared_secret"] != attributes["shared_secret"]


def test_a_webhook_needs_a_topic_and_a_callback_url(api):
    assert_error(
        api.post(f"/api/{TYPE}", body({"callback_url": PUBLIC})),
        422,
        pointer="/data/attributes/topic",
    )
    assert_error(
        api.post(f"/api/{TYPE}", body({"topic": topics.CREATE})),
        422,
        pointer="/data/attributes/callback_url",
    )


@pytest.mark.parametrize("topic", ["order_copies.explode", "orders.approve", "", 5, None])
def test_an_unknown_topic_is_a_422_pointing_at_it(api, topic):
    assert_error(post(api, topic=topic), 422, pointer="/data/attributes/topic")
    assert api.ids(f"/api/{TYPE}") == []


@pytest.mark.parametrize(
    ("url", "detail"),
    [
        ("http://93.184.215.14/hooks", "https in live mode"),
        ("https://127.0.0.1/hooks", "loopback"),
        ("https://[::1]/hooks", "loopback"),
        ("https://10.1.2.3/hooks", "private"),
        ("https://169.254.169.254/latest", "metadata"),
    ],
)
def test_live_callback_urls_are_https_at_public_addresses(live_api, url, detail):
    assert_error(post(live_api, callback_url=url), 422, pointer="/data/attributes/callback_url")
    assert detail in post(live_api, callback_url=url).json()["errors"][0]["detail"]
    assert live_api.ids(f"/api/{TYPE}") == []


def test_a_live_webhook_at_a_public_https_url_is_created(live_api):
    webhook = hook(live_api)

    assert webhook["meta"] == {"mode": "live"}
    assert webhook["attributes"]["callback_url"] == PUBLIC


def test_loopback_is_refused_in_test_mode_unless_private_addresses_are_allowed(api, settings_env):
    allow_private(settings_env, False)
    for url in (LOOPBACK, "http://localhost:8123/hooks"):
        response = post(api, callback_url=url)
        assert_error(response, 422, pointer="/data/attributes/callback_url", detail="loopback")

    allow_private(settings_env, True)
    webhook = hook(api, callback_url=LOOPBACK)

    assert webhook["attributes"]["callback_url"] == LOOPBACK


@pytest.mark.parametrize(
    "url",
    [
        "not a url",
        "hooks.example.com/path",
        "ftp://93.184.215.14/hooks",
        "https://user:secret@93.184.215.14/hooks",
        "https://",
        "https://93.184.215.14:99999/",
        "http://[::1",
        "https://exämple.com/",
        "https://" + "a" * 70 + ".example.com/",
        "https://" + "a" * 2100 + ".com/",
        "",
    ],
)
def test_a_callback_url_that_cannot_be_called_is_a_422(api, url):
    assert_error(post(api, callback_url=url), 422, pointer="/data/attributes/callback_url")


def test_include_resources_are_relationships_of_the_topics_resource(api):
    webhook = hook(api, include_resources=["events", "source_order", "events"])

    assert webhook["attributes"]["include_resources"] == ["events", "source_order"]
    for paths in (["customer"], ["source_order", "line_items"], ["source_order.customer"]):
        response = post(api, include_resources=paths)
        assert_error(response, 422, pointer="/data/attributes/include_resources", detail="events")
    for paths in ([1], [None], [["events"]], [{"events": True}]):
        response = post(api, include_resources=paths)
        assert_error(response, 422, pointer="/data/attributes/include_resources")
    for paths in ("events", {"events": True}, None, 5):
        response = post(api, include_resources=paths)
        assert_error(response, 422)
    assert api.ids(f"/api/{TYPE}") == [webhook["id"]]


def test_what_a_payload_may_include_are_relationships_of_the_api_resource():
    for topic, type_ in topics.TOPICS.items():
        names = {relationship.name for relationship in REGISTRY[type_].relationships}
        assert set(INCLUDABLE[type_]) <= names, topic


@pytest.mark.parametrize(
    "attributes",
    [
        {"shared_secret": "mine"},
        {"circuit_state": "open"},
        {"circuit_failure_count": 3},
        {"disabled_at": "2030-01-01T00:00:00Z"},
        {"_disable": True},
        {"name": 5},
        {"name": "x" * 256},
        {"metadata": []},
        {"callback_url": None},
    ],
)
def test_create_refuses_what_it_does_not_take(api, attributes):
    assert_error(post(api, **attributes), 422)


# --- list, filter, show ---------------------------------------------------------------


def test_webhooks_list_newest_first_and_filter(api, committed):
    first = hook(api, name="first", topic=topics.CREATE)
    second = hook(api, name="second", reference="crm")
    third = hook(api, name="third", topic=topics.FAIL)
    assert ok(api.update(TYPE, third["id"], {"_disable": True}))

    assert api.ids(f"/api/{TYPE}") == [third["id"], second["id"], first["id"]]
    assert api.ids(f"/api/{TYPE}", sort="topic") == [second["id"], first["id"], third["id"]]
    assert api.ids(f"/api/{TYPE}", **{"filter[q][topic_eq]": topics.CREATE}) == [first["id"]]
    assert api.ids(f"/api/{TYPE}", **{"filter[q][topic_in]": f"{topics.CREATE},{topics.FAIL}"}) == [
        third["id"],
        first["id"],
    ]
    assert api.ids(f"/api/{TYPE}", **{"filter[q][name_cont]": "ir"}) == [third["id"], first["id"]]
    assert api.ids(f"/api/{TYPE}", **{"filter[q][disabled_at_null]": "true"}) == [
        second["id"],
        first["id"],
    ]
    assert api.ids(f"/api/{TYPE}", **{"filter[q][reference_eq]": "crm"}) == [second["id"]]
    assert api.ids(f"/api/{TYPE}", **{"filter[q][circuit_state_eq]": "open"}) == []
    assert_error(
        api.get(f"/api/{TYPE}", **{"filter[q][topic_eq]": "nope"}),
        400,
        parameter="filter[q][topic_eq]",
    )
    assert_error(api.get(f"/api/{TYPE}", sort="shared_secret"), 400, parameter="sort")
    shown = api.retrieve(TYPE, second["id"], **{"fields[webhooks]": "name,topic"})
    assert shown["attributes"] == {"name": "second", "topic": topics.COMPLETE}


def test_an_unknown_webhook_is_a_404(api):
    assert_error(api.get(f"/api/{TYPE}/NoSuchHook"), 404)
    assert_error(api.update(TYPE, "NoSuchHook", {"name": "x"}), 404)
    assert_error(api.delete(f"/api/{TYPE}/NoSuchHook"), 404)


# --- update -----------------------------------------------------------------------------


def test_update_changes_what_may_change_with_the_same_checks(api):
    webhook = hook(api, include_resources=["events"])
    secret = webhook["attributes"]["shared_secret"]

    changed = ok(
        api.update(
            TYPE,
            webhook["id"],
            {
                "name": "renamed",
                "topic": topics.FAIL,
                "callback_url": "https://93.184.215.15/other",
                "include_resources": ["source_order", "target_order"],
                "reference_origin": "crm",
                "metadata": {"a": 1},
            },
        )
    )["attributes"]

    assert changed["name"] == "renamed"
    assert changed["topic"] == topics.FAIL
    assert changed["callback_url"] == "https://93.184.215.15/other"
    assert changed["include_resources"] == ["source_order", "target_order"]
    assert (changed["reference_origin"], changed["metadata"]) == ("crm", {"a": 1})
    assert changed["shared_secret"] == secret
    assert changed["updated_at"] >= webhook["attributes"]["updated_at"]


@pytest.mark.parametrize(
    ("attributes", "pointer"),
    [
        ({"topic": "order_copies.explode"}, "/data/attributes/topic"),
        ({"callback_url": LOOPBACK}, "/data/attributes/callback_url"),
        ({"callback_url": "gopher://93.184.215.14/"}, "/data/attributes/callback_url"),
        ({"include_resources": ["customer"]}, "/data/attributes/include_resources"),
        ({"include_resources": [7]}, "/data/attributes/include_resources"),
        ({"shared_secret": "mine"}, "/data/attributes/shared_secret"),
        ({"circuit_state": "closed"}, "/data/attributes/circuit_state"),
        ({"circuit_failure_count": 0}, "/data/attributes/circuit_failure_count"),
    ],
)
def test_an_update_it_refuses_changes_nothing(api, attributes, pointer):
    webhook = hook(api, name="kept")

    response = api.update(TYPE, webhook["id"], {"name": "lost", **attributes})

    assert_error(response, 422, pointer=pointer)
    assert api.retrieve(TYPE, webhook["id"])["attributes"] == webhook["attributes"]


def test_a_live_webhook_keeps_to_https_on_update(live_api):
    webhook = hook(live_api)

    response = live_api.update(TYPE, webhook["id"], {"callback_url": "http://93.184.215.14/"})

    assert_error(response, 422, pointer="/data/attributes/callback_url", detail="https")


# --- triggers --------------------------------------------------------------------------


def test_disable_and_enable(api, committed):
    webhook = hook(api)
    before = utcnow()

    disabled = ok(api.update(TYPE, webhook["id"], {"_disable": True}))["attributes"]

    moment = datetime.fromisoformat(disabled["disabled_at"])
    assert before - timedelta(seconds=1) <= moment <= utcnow()
    again = ok(api.update(TYPE, webhook["id"], {"_disable": True}))["attributes"]
    assert again["disabled_at"] == disabled["disabled_at"]  # when it was first disabled
    enabled = ok(api.update(TYPE, webhook["id"], {"_enable": True}))["attributes"]
    assert enabled["disabled_at"] is None
    assert ok(api.update(TYPE, webhook["id"], {"_disable": False}))["attributes"] == enabled


def test_a_disabled_webhook_is_owed_no_events(api, shop, committed):
    listening = hook(api, topic=topics.CREATE)
    disabled = hook(api, topic=topics.CREATE)
    ok(api.update(TYPE, disabled["id"], {"_disable": True}))

    copy = create_copy(api, shop.order["id"])

    with committed.begin() as session:
        events = session.execute(
            select(WebhookEvent.webhook_id, WebhookEvent.resource_id, WebhookEvent.topic)
        ).all()
    assert [tuple(event) for event in events] == [(listening["id"], copy["id"], topics.CREATE)]


def test_reset_circuit_closes_it_and_makes_the_waiting_events_due_now(api, committed):
    webhook = hook(api)
    other = hook(api)
    with committed.begin() as session:
        row = session.get_one(Webhook, webhook["id"])
        row.circuit_state = CircuitState.OPEN
        row.circuit_failure_count = 30
    now = utcnow()
    later, earlier = now + timedelta(hours=6), now - timedelta(minutes=5)
    waiting = add_event(committed, webhook["id"], due=later)
    due = add_event(committed, webhook["id"], due=earlier)
    delivered = add_event(committed, webhook["id"], due=later, status=EventStatus.DELIVERED)
    failed = add_event(committed, webhook["id"], due=later, status=EventStatus.FAILED)
    others = add_event(committed, other["id"], due=later)
    assert api.retrieve(TYPE, webhook["id"])["attributes"]["circuit_state"] == "open"

    before = utcnow()
    reset = ok(api.update(TYPE, webhook["id"], {"_reset_circuit": True}))["attributes"]

    assert (reset["circuit_state"], reset["circuit_failure_count"]) == ("closed", 0)
    with committed.begin() as session:
        due_at = dict(session.execute(select(WebhookEvent.id, WebhookEvent.next_attempt_at)).all())
    assert before <= due_at[waiting] <= utcnow()
    assert due_at[due] == earlier  # due already: keeps its place
    assert due_at[delivered] == due_at[failed] == due_at[others] == later
    assert stored(committed, other["id"]).circuit_state == CircuitState.CLOSED


def test_triggers_and_changes_in_one_request(api):
    webhook = hook(api)

    changed = ok(api.update(TYPE, webhook["id"], {"name": "paused", "_disable": True}))

    assert changed["attributes"]["name"] == "paused"
    assert changed["attributes"]["disabled_at"] is not None


@pytest.mark.parametrize("trigger", ["_disable", "_enable", "_reset_circuit"])
def test_a_trigger_takes_a_boolean(api, trigger):
    webhook = hook(api)

    assert_error(api.update(TYPE, webhook["id"], {trigger: "yes"}), 422)


# --- delete ------------------------------------------------------------------------------


def test_delete_removes_the_webhook_its_events_and_their_callbacks(api, committed):
    webhook = hook(api)
    callback = add_callback(committed, webhook["id"], at=utcnow())

    response = api.delete(f"/api/{TYPE}/{webhook['id']}")

    assert response.status_code == 204
    assert_error(api.get(f"/api/{TYPE}/{webhook['id']}"), 404)
    assert_error(api.get(f"/api/event_callbacks/{callback}"), 404)
    with committed.begin() as session:
        assert session.scalars(select(WebhookEvent.id)).all() == []


# --- modes -------------------------------------------------------------------------------


def test_a_test_key_never_sees_a_live_webhook_or_its_callbacks(api, live_api, committed):
    live = hook(live_api, name="live")
    callback = add_callback(committed, live["id"], at=utcnow())

    assert_error(api.get(f"/api/{TYPE}/{live['id']}"), 404)
    assert_error(api.update(TYPE, live["id"], {"name": "mine"}), 404)
    assert_error(api.update(TYPE, live["id"], {"_disable": True}), 404)
    assert_error(api.get(f"/api/{TYPE}/{live['id']}/last_event_callbacks"), 404)
    assert_error(api.delete(f"/api/{TYPE}/{live['id']}"), 404)
    assert_error(api.get(f"/api/event_callbacks/{callback}"), 404)
    assert api.ids(f"/api/{TYPE}") == []
    assert api.ids("/api/event_callbacks") == []
    assert live_api.retrieve(TYPE, live["id"])["attributes"]["name"] == "live"
    assert stored(committed, live["id"]).disabled_at is None
    assert live_api.ids("/api/event_callbacks") == [callback]


# --- event callbacks ------------------------------------------------------------------


def test_event_callbacks_list_newest_first_and_show(api, committed):
    webhook = hook(api)
    other = hook(api)
    now = utcnow()
    old = add_callback(committed, webhook["id"], at=now - timedelta(minutes=2), code=500)
    timed_out = add_callback(
        committed, webhook["id"], at=now - timedelta(minutes=1), code=None, message="timed out"
    )
    new = add_callback(committed, webhook["id"], at=now)
    elsewhere = add_callback(committed, other["id"], at=now - timedelta(minutes=3))

    assert api.ids("/api/event_callbacks") == [new, timed_out, old, elsewhere]
    assert api.ids("/api/event_callbacks", **{"filter[q][webhook_id_eq]": webhook["id"]}) == [
        new,
        timed_out,
        old,
    ]
    assert api.ids("/api/event_callbacks", **{"filter[q][response_code_gteq]": "300"}) == [old]
    assert api.ids("/api/event_callbacks", **{"filter[q][response_code_null]": "true"}) == [
        timed_out
    ]
    shown = api.retrieve("event_callbacks", timed_out, include="webhook")
    assert set(shown["attributes"]) == CALLBACK_ATTRIBUTES
    assert shown["attributes"]["callback_url"] == PUBLIC
    assert shown["attributes"]["payload"] == {"data": {"type": "order_copies", "id": "SomeCopyId"}}
    assert (shown["attributes"]["response_code"], shown["attributes"]["response_message"]) == (
        None,
        "timed out",
    )
    assert shown["relationships"]["webhook"]["data"] == {"type": TYPE, "id": webhook["id"]}
    assert ok(api.get(f"/api/event_callbacks/{old}/webhook"))["id"] == webhook["id"]


def test_event_callbacks_are_read_only(api, committed):
    webhook = hook(api)
    callback = add_callback(committed, webhook["id"], at=utcnow())

    assert_error(api.delete(f"/api/event_callbacks/{callback}"), 405)
    assert_error(api.update("event_callbacks", callback, {"response_code": 200}), 405)
    assert_error(api.post("/api/event_callbacks", {"data": {"type": "event_callbacks"}}), 405)
    assert api.retrieve("event_callbacks", callback)["attributes"]["response_code"] == 200


def test_a_webhook_includes_its_last_event_callbacks_newest_first(api, committed):
    webhook = hook(api)
    quiet = hook(api)
    now = utcnow()
    attempts = [
        add_callback(committed, webhook["id"], at=now - timedelta(minutes=m)) for m in (3, 1, 2)
    ]
    newest_first = [attempts[1], attempts[2], attempts[0]]

    document = api.get(f"/api/{TYPE}/{webhook['id']}", include="last_event_callbacks").json()

    linkage = document["data"]["relationships"]["last_event_callbacks"]["data"]
    assert [item["id"] for item in linkage] == newest_first
    assert {item["type"] for item in linkage} == {"event_callbacks"}
    assert [item["id"] for item in document["included"]] == newest_first
    assert api.ids(f"/api/{TYPE}/{webhook['id']}/last_event_callbacks") == newest_first
    listed = api.get(f"/api/{TYPE}", include="last_event_callbacks").json()
    by_id = {item["id"]: item for item in listed["data"]}
    assert by_id[quiet["id"]]["relationships"]["last_event_callbacks"]["data"] == []
    assert len(listed["included"]) == 3
