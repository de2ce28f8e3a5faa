"""The Celery app (``celery -A worker worker``): configuration, schedule, signals."""

from worker import heartbeats as _heartbeats  # noqa: F401  (connects the heartbeats)
from worker import metrics as _metrics  # noqa: F401  (connects the worker's metrics)
from worker import signals as _signals  # noqa: F401  (connects the process wiring)
from worker.app import app

__all__ = ["app"]
