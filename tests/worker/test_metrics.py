"""The worker's own /metrics: counters summed over its pool's processes."""

from __future__ import annotations

import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from copying.copies import lifecycle
from copying.copies.dispatch import unit_of_work
from models import CopyStatus, Mode, OrderCopy
from tests.factories import make_shop
from tests.services import free_port
from tests.worker.processes import WorkerProcess, flush_broker, wait_for
from worker.publisher import publish

pytestmark = pytest.mark.slow


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


@pytest.mark.xdist_group("worker-processes")
def test_the_worker_serves_its_copy_counters(committed, tmp_path):
    flush_broker()
    with committed.begin() as s:
        shop = make_shop(s)
    with unit_of_work(committed, publish) as s:
        ids = [
            lifecycle.create(s, mode=Mode.TEST, source_order_id=shop.source.id).id for _ in range(3)
        ]
    port = free_port()
    worker = WorkerProcess(
        tmp_path, "metered", pool="prefork", concurrency=2, worker_metrics_port=port
    )
    try:

        def done() -> bool:
            with committed.begin() as s:
                return all(s.get_one(OrderCopy, i).status == CopyStatus.COMPLETED for i in ids)

        wait_for(done, 60, "the copies to complete")
        samples: dict = {}

        # The first message's task runs all three copies (its chunk takes the others
        # along); the other two find theirs taken and may still be finishing: wait for
        # every task's samples, not only for the copies' runs.
        runs = ("ordercopy_worker_copy_runs_total", (("outcome", "completed"),))
        durations = ("ordercopy_worker_copy_run_seconds_count", ())
        tasks = (
            "ordercopy_worker_tasks_total",
            (("result", "success"), ("task", "ordercopy.copy_order")),
        )

        def counted() -> bool:
            samples.update(scrape(port))
            return all(samples.get(key, 0) >= 3 for key in (runs, durations, tasks))

        wait_for(counted, 30, "the worker's counters")
    finally:
        worker.stop()
    assert samples[runs] == 3
    # At least one per message: any other copy_order message the worker takes (a stray
    # doorbell, say) is a task too (a clean-clone run saw 4 durations for 3 copies).
    assert samples[durations] >= 3
    assert samples[tasks] >= 3
