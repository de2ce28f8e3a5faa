"""A bench-only no-op task, loaded by the worker with ``--include bench.noop``.

It is registered on the project's own app, so it runs with exactly the
production Celery settings: the baseline measures Celery, not the copy.
"""

from __future__ import annotations

from worker.app import app

NOOP_TASK = "bench.noop"


@app.task(name=NOOP_TASK, acks_late=True, ignore_result=True)  # type: ignore[untyped-decorator]
def noop(order_copy_id: str) -> None:
    """Take a copy id, as ``copy_order`` does, and do nothing with it."""
