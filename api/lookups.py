"""Finding a row by its public id, in the mode of the request's API key."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from sqlalchemy import inspect
from sqlalchemy.orm import Session

from api.errors import ApiError
from models import Base, Mode
from models.base import storable

#: A whole number as a key is written: no sign, no leading zero, at most a bigint.
INTEGER_KEY = re.compile(r"^[1-9][0-9]{0,18}$")
#: Integer keys and filters compare as bigint, whatever the column's size.
BIGINT_MIN, BIGINT_MAX = -(2**63), 2**63 - 1


def integer_key(model: type[Base]) -> bool:
    """Whether the model's primary key is a whole number (the id in a URL is still text)."""
    return inspect(model).primary_key[0].type.python_type is int


def find(
    session: Session,
    model: type[Base],
    row_id: Any,
    mode: Mode,
    *,
    lock: bool = False,
    keeping_key: bool = False,
) -> Any:
    """The row with ``row_id`` in ``mode``, or None (also for an id no row can have).

    ``lock``: take its row lock (``FOR UPDATE``) until the transaction ends; with
    ``keeping_key``, one for an update that keeps the row's key (PostgreSQL's ``FOR NO
    KEY UPDATE``), which rows referring to it can still be written beside (a webhook
    being updated does not hold up the copies writing events for it).
    """
    if not isinstance(row_id, str) or not storable(row_id):
        return None
    key: Any = row_id
    if integer_key(model):
        if not INTEGER_KEY.match(row_id) or int(row_id) > BIGINT_MAX:
            return None
        key = int(row_id)
    locking: Any = {"key_share": True} if lock and keeping_key else lock
    row: Any = session.get(model, key, with_for_update=locking)
    if row is None or row.mode != mode:
        return None
    return row


def load(
    session: Session,
    model: type[Base],
    type_: str,
    row_id: str,
    mode: Mode,
    *,
    lock: bool = False,
    keeping_key: bool = False,
    holds: Callable[[Any], bool] | None = None,
) -> Any:
    """The row the URL names, or a 404 (``lock``, ``keeping_key``: see :func:`find`;
    ``holds``: whether a row of ``model`` is one of the resource's, when only some are)."""
    row = find(session, model, row_id, mode, lock=lock, keeping_key=keeping_key)
    if row is None or (holds is not None and not holds(row)):
        raise ApiError(404, f"{type_} {row_id} does not exist in {mode} mode")
    return row


def load_related(
    session: Session, model: type[Base], type_: str, row_id: str, mode: Mode, name: str
) -> Any:
    """The row a request body's relationship ``name`` names, or a 422 pointing at it."""
    row = find(session, model, row_id, mode)
    if row is None:
        raise ApiError(
            422,
            f"{type_} {row_id} does not exist in {mode} mode",
            pointer=f"/data/relationships/{name}",
        )
    return row
