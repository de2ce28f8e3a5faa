"""What a worker process hands the domain: gateways and the engine's limits."""

from __future__ import annotations

from datetime import timedelta
from functools import cache

from celery.exceptions import SoftTimeLimitExceeded

from config import get_settings
from copying.orders.gateways import Gateways, TestGateway
from copying.runs import RunConfig
from models import db
from worker.external_gateways import GatewayDirectory

LEDGER_CONNECTIONS = 4


@cache
def gateways() -> Gateways:
    # As many ledger connections as a chunk has calls out at once, up to four: they are
    # held out of the engine's pool (5 + 10 overflow), which the runs and the gateway's
    # own slow path also draw on; more calls at once take turns on them.
    connections = min(max(1, get_settings().gateway_concurrency), LEDGER_CONNECTIONS)
    # "test" and every external gateway by its id (worker/external_gateways.py): the web
    # process's _place, _cancel and the rest ask through this mapping too.
    return GatewayDirectory(TestGateway(db.engine, connections=connections), db.sessions)


def run_config() -> RunConfig:
    settings = get_settings()
    return RunConfig(
        lease=timedelta(seconds=settings.lease_seconds),
        max_claims=settings.max_claims,
        gateway_concurrency=settings.gateway_concurrency,
        # The task's soft time limit ends its run where it stands (leases expire, the
        # sweeper rescues), not as a bug that reruns every copy on its own.
        reraise=(SoftTimeLimitExceeded,),
    )


def chunk_size() -> int:
    return get_settings().chunk_size
