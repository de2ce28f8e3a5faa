"""The project's Celery app on Kombu's own SQLAlchemy transport: ``bench.embedded``'s baseline.

``celery -A bench.kombu_transport worker`` runs the same tasks with the same settings,
but the broker URL names Kombu's transport (one second between polls) instead of
``worker/broker.py``'s.
"""

from __future__ import annotations

from config import get_settings
from worker.app import app

app.conf.update(broker_url=get_settings().resolved_broker_url, broker_transport=None)

__all__ = ["app"]
