"""The worker's Prometheus metrics, served by the worker itself on its own port.

Copies run in the pool's child processes, so the counters use prometheus-client's
multiprocess mode: each child writes to files under
``<data_dir>/worker-metrics`` and the main process serves their sum at
``http://<host>:<ORDERCOPY_WORKER_METRICS_PORT>/metrics``. Off unless that port is
set. One directory per worker node: give each node on a machine its own data dir.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Mapping
from functools import cache
from typing import Any

import structlog
from celery import signals

from config import get_settings
from worker.app import COPY_TASK

log = structlog.get_logger("ordercopy.metrics")
_started: dict[str, float] = {}


def _directory() -> str | None:
    settings = get_settings()
    if settings.worker_metrics_port is None:
        return None
    return str((settings.data_dir / "worker-metrics").resolve())


# prometheus-client picks its storage when first imported: say where, before that.
if (_dir := _directory()) is not None:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = _dir


@cache
def _metrics() -> dict[str, Any]:
    from prometheus_client import Counter, Histogram

    return {
        "tasks": Counter(
            "ordercopy_worker_tasks", "Tasks run, by task and result", ["task", "result"]
        ),
        "runs": Counter("ordercopy_worker_copy_runs", "Copy runs, by outcome", ["outcome"]),
        "duration": Histogram(
            "ordercopy_worker_copy_run_seconds",
            "Time of one copy task (its copy, with the chunk it took along)",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        ),
        "deliveries": Counter(
            "ordercopy_worker_webhook_deliveries",
            "Webhook delivery attempts, by outcome (delivered, not_delivered)",
            ["outcome"],
        ),
        "attempt": Histogram(
            "ordercopy_worker_webhook_attempt_seconds",
            "Time of one webhook delivery attempt (the call, from connect to answer)",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        ),
    }


@signals.worker_init.connect
def _start_server(**_: Any) -> None:
    directory = _directory()
    if directory is None:
        return
    shutil.rmtree(directory, ignore_errors=True)  # counts of a previous run are not ours
    os.makedirs(directory, exist_ok=True)
    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=directory)
    port = get_settings().worker_metrics_port
    start_http_server(port or 0, registry=registry)
    log.info("worker_metrics_serving", port=port)


@signals.task_prerun.connect
def _started_at(task_id: str | None = None, **_: Any) -> None:
    if _directory() is not None and task_id:
        _started[task_id] = time.monotonic()


@signals.task_postrun.connect
def _observe(
    task_id: str | None = None,
    task: Any = None,
    state: str | None = None,
    **_: Any,
) -> None:
    if _directory() is None or task_id is None:
        return
    began = _started.pop(task_id, None)
    metrics = _metrics()
    name = getattr(task, "name", "unknown")
    metrics["tasks"].labels(task=name, result=(state or "unknown").lower()).inc()
    if name == COPY_TASK and began is not None:
        metrics["duration"].observe(time.monotonic() - began)


def count_runs(outcomes: Mapping[str, int]) -> None:
    """Count a task's copy runs by outcome (a task counts its own: one message runs many
    copies, and one that raises for its own copy's retry has run others)."""
    if _directory() is None:
        return
    runs = _metrics()["runs"]
    for outcome, count in outcomes.items():
        if count:
            runs.labels(outcome=outcome).inc(count)


def count_delivery(outcome: str, seconds: float | None = None) -> None:
    """Count one webhook delivery attempt by outcome (``delivered``, ``not_delivered``, or
    ``resource_gone``: not sent) and the time its call took (None: no call)."""
    if _directory() is None:
        return
    metrics = _metrics()
    metrics["deliveries"].labels(outcome=outcome).inc()
    if seconds is not None:
        metrics["attempt"].observe(seconds)


@signals.worker_process_shutdown.connect
def _process_gone(pid: int | None = None, **_: Any) -> None:
    directory = _directory()
    if directory is not None:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid or os.getpid(), path=directory)
