"""Gateways for tests: the test gateway with something happening while it is asked."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from copying.orders.gateways import GatewayAnswer, Gateways, GatewayUnavailableError, TestGateway


@dataclass
class Meddling:
    """The test gateway, with something happening while the first call is out."""

    real: Gateways
    during: Callable[[], None]
    then_fail: bool = False
    calls: list[str] = field(default_factory=list)

    def authorize(self, *, idempotency_key: str, **request: Any) -> GatewayAnswer:
        self.calls.append(idempotency_key)
        answer = self.real["test"].authorize(idempotency_key=idempotency_key, **request)
        if len(self.calls) == 1:
            self.during()
            if self.then_fail:  # held at the gateway, but the answer never came back
                raise GatewayUnavailableError("test gateway: no answer in time")
        return answer

    def void(self, **request: Any) -> None:
        self.real["test"].void(**request)


class SlowGateway:
    """The test gateway, answering after a pause: a remote gateway on a bad day."""

    name = "test"

    def __init__(self, gateway: TestGateway, seconds: float) -> None:
        self.gateway, self.seconds = gateway, seconds

    def authorize(self, **request: Any) -> Any:
        time.sleep(self.seconds)
        return self.gateway.authorize(**request)

    def void(self, **request: Any) -> None:
        self.gateway.void(**request)
