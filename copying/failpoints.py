"""Failpoints: named places where a test can make a run crash on purpose.

Off unless turned on, by a test (:func:`enable`) or for a whole process with
``ORDERCOPY_FAILPOINTS=name=action,...`` (read through the settings). The
actions: ``raise`` (an exception, as a bug would), ``dberror`` (a lost database
connection, as SQLAlchemy reports it),
``exit`` (``os._exit``: the process dies at once, as under SIGKILL), ``hang``
(the run stops answering, so a test can signal the process at a known place).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.exc import OperationalError

NAMES = (
    "after_claim",
    "after_build",
    "after_reserve",
    "after_authorize",
    "after_place",
    "after_cancel",
    "after_void",
    "before_finish",
)

ACTIONS = ("raise", "dberror", "exit", "hang")
HANG_SECONDS = 3600

_active: dict[str, str] = {}


class FailpointError(RuntimeError):
    """Raised at a failpoint whose action is ``raise``."""


def parse(spec: str) -> dict[str, str]:
    """``"after_build=raise,after_place=exit"`` → ``{"after_build": "raise", ...}``."""
    parsed: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, _, action = item.partition("=")
        if name not in NAMES or action not in ACTIONS:
            raise ValueError(
                f"bad failpoint {item!r}: use NAME={'|'.join(ACTIONS)}, NAME in {NAMES}"
            )
        parsed[name] = action
    return parsed


def load(spec: str) -> None:
    _active.clear()
    _active.update(parse(spec))


def enable(name: str, action: str = "raise") -> None:
    _active.update(parse(f"{name}={action}"))


def disable_all() -> None:
    _active.clear()


@contextmanager
def enabled(name: str, action: str = "raise") -> Iterator[None]:
    enable(name, action)
    try:
        yield
    finally:
        _active.pop(name, None)


def hit(name: str) -> None:
    action = _active.get(name)
    if action == "raise":
        raise FailpointError(f"failpoint {name}")
    if action == "dberror":
        raise OperationalError(f"failpoint {name}", None, ConnectionError("connection lost"))
    if action == "exit":
        os._exit(137)
    if action == "hang":
        time.sleep(HANG_SECONDS)
