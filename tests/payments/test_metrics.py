"""/metrics counts external gateways whose circuit is open, by mode."""

from __future__ import annotations

from models import CircuitState, ExternalGateway, Mode
from tests.webhooks.test_metrics import samples


def test_metrics_count_open_gateway_circuits_by_mode(committed):
    with committed.begin() as session:
        session.add_all(
            ExternalGateway(mode=mode, name="psp", shared_secret="x", circuit_state=state)
            for mode, state in (
                (Mode.LIVE, CircuitState.OPEN),
                (Mode.TEST, CircuitState.OPEN),
                (Mode.TEST, CircuitState.OPEN),
                (Mode.TEST, CircuitState.CLOSED),
            )
        )

    seen = samples()

    assert seen["ordercopy_external_gateways_open_circuits", "test"] == 2
    assert seen["ordercopy_external_gateways_open_circuits", "live"] == 1
