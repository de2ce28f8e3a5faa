"""The README's webhook receiver works as written: it takes a signed delivery, refuses a
forged one."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from unittest import mock

from fastapi.testclient import TestClient

from copying.webhooks.signing import SIGNATURE_HEADER, signature

README = Path(__file__).resolve().parents[2] / "README.md"


def receiver_app():  # type: ignore[no-untyped-def]
    block = re.search(r"```python webhook-receiver\n(.*?)```", README.read_text(), re.S)
    assert block is not None, "the README's webhook receiver block"
    namespace: dict[str, object] = {}
    with mock.patch.dict(os.environ, {"WEBHOOK_SECRET": "the-shared-secret"}):
        exec(compile(block.group(1), "README.md", "exec"), namespace)
    return namespace["app"]


def test_the_readme_receiver_takes_a_signed_delivery_and_refuses_a_forged_one():
    client = TestClient(receiver_app())
    body = json.dumps({"data": {"id": "XAyRWNUzyN", "type": "order_copies"}}).encode()
    headers = {
        "Content-Type": "application/vnd.api+json",
        "X-CommerceLayer-Topic": "order_copies.complete",
        "X-Ordercopy-Event-Id": "4d0a7c1e-0000-4000-8000-000000000001",
    }

    signed = client.post(
        "/hooks",
        content=body,
        headers={**headers, SIGNATURE_HEADER: signature("the-shared-secret", body)},
    )
    forged = client.post(
        "/hooks",
        content=body,
        headers={**headers, SIGNATURE_HEADER: signature("another-secret", body)},
    )

    assert signed.status_code == 200
    assert signed.json() == {
        "seen": "4d0a7c1e-0000-4000-8000-000000000001 order_copies.complete XAyRWNUzyN"
    }
    assert forged.status_code == 401
