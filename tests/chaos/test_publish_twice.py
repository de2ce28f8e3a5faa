"""The chaos switch ``publish_twice``: every copy doorbell goes out twice, whoever sends it.

Checked on the test suite's Redis by reading the ``copies`` queue itself.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from config import get_settings
from copying.testing import failpoints
from tests.worker.processes import flush_broker
from worker.app import COPY_BATCH_TASK, COPY_TASK, app
from worker.publisher import publish
from worker.testing import publishes_twice


def queued() -> list[dict[str, Any]]:
    """The messages waiting in the ``copies`` queue: their headers and decoded body."""
    settings = get_settings()
    client = redis.Redis.from_url(settings.resolved_broker_url)
    try:
        raw = client.lrange(f"{settings.broker_key_prefix}copies", 0, -1)
    finally:
        client.close()
    messages = []
    for item in raw:
        envelope = json.loads(item)
        body = json.loads(base64.b64decode(envelope["body"]))
        messages.append({"headers": envelope["headers"], "args": body[0]})
    return messages


@pytest.fixture
def empty_broker() -> Iterator[None]:
    flush_broker()
    yield
    flush_broker()


@pytest.mark.usefixtures("empty_broker")
def test_off_by_default_each_doorbell_goes_out_once():
    assert not publishes_twice()
    publish(["CopyA", "CopyB"])
    assert sorted(m["args"][0] for m in queued()) == ["CopyA", "CopyB"]


@pytest.mark.usefixtures("empty_broker")
def test_switched_on_each_doorbell_the_publisher_sends_goes_out_twice():
    with failpoints.enabled("publish_twice", "on"):
        publish(["CopyA", "CopyB"])
    assert sorted(m["args"][0] for m in queued()) == ["CopyA", "CopyA", "CopyB", "CopyB"]


@pytest.mark.usefixtures("empty_broker")
def test_a_batch_of_doorbells_goes_out_in_messages_of_so_many_ids_and_twice_switched_on():
    publish(["A", "B", "C"], per_message=2)
    assert sorted((m["headers"]["task"], m["args"][0]) for m in queued()) == [
        (COPY_BATCH_TASK, ["A", "B"]),
        (COPY_BATCH_TASK, ["C"]),
    ]
    flush_broker()
    with failpoints.enabled("publish_twice", "on"):
        publish(["A", "B", "C"], per_message=2)
    assert sorted(m["args"][0] for m in queued()) == [["A", "B"], ["A", "B"], ["C"], ["C"]]


@pytest.mark.usefixtures("empty_broker")
def test_switched_on_a_retry_celery_sends_goes_out_twice_with_its_delay_and_count():
    with failpoints.enabled("publish_twice", "on"):
        app.send_task(COPY_TASK, args=("CopyR",), queue="copies", countdown=60, retries=3)
    messages = queued()
    assert [m["args"] for m in messages] == [["CopyR"], ["CopyR"]]
    assert messages[0]["headers"]["eta"] == messages[1]["headers"]["eta"] is not None
    assert [m["headers"]["retries"] for m in messages] == [3, 3]


def test_the_switch_is_read_from_the_setting_too():
    assert failpoints.is_on("publish_twice", "after_build=exit,publish_twice=on")
    assert not failpoints.is_on("publish_twice", "after_build=exit")
    with pytest.raises(ValueError, match="bad failpoint"):
        failpoints.parse("publish_twice=exit")
