"""Webhook payloads: a resource's JSON:API document as ``GET`` answers it, with the
webhook's ``include_resources`` included (the deliverer builds it when it sends)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import Session

from api import lookups
from api.documents import Renderer
from api.resources import REGISTRY
from models import Mode


def payload(
    session: Session,
    resource_type: str,
    resource_id: str,
    mode: Mode,
    include: Sequence[str],
    *,
    base_url: str,
) -> dict[str, Any] | None:
    """The document, or None when the resource is gone (deleted since its event)."""
    resource = REGISTRY[resource_type]
    row = lookups.find(session, resource.model, resource_id, mode)
    if row is None:
        return None
    wanted = [name for name in include if resource.relationship(name) is not None]
    renderer = Renderer(REGISTRY, base_url, {}, wanted)
    return renderer.document(session, resource, [row], mode, single=True)
