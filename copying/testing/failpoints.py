"""Failpoints: named places where a test can make a run crash on purpose.

Off unless turned on, by a test (:func:`enable`) or for a whole process with
``ORDERCOPY_FAILPOINTS=name=action,...`` (read through the settings). The
actions: ``raise`` (an exception, as a bug would), ``dberror`` (a lost database
connection, as SQLAlchemy reports it),
``exit`` (``os._exit``: the process dies at once, as under SIGKILL), ``hang``
(the run stops answering, so a test can signal the process at a known place).

Switches are test-only behaviours of a whole process rather than places in a
run, turned on with ``NAME=on``: ``publish_twice`` makes the publisher send
every copy doorbell twice (the chaos suite turns it on in every process).
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
SWITCHES = ("publish_twice",)
SWITCH_ON = "on"
HANG_SECONDS = 3600

_active: dict[str, str] = {}


class FailpointError(RuntimeError):
    """Raised at a failpoint whose action is ``raise``."""


def parse(spec: str) -> dict[str, str]:
    """``"after_build=raise,after_place=exit"`` → ``{"after_build": "raise", ...}``."""
    parsed: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, _, action = item.partition("=")
        if name in SWITCHES and action == SWITCH_ON:
            parsed[name] = action
            continue
        if name not in NAMES or action not in ACTIONS:
            raise ValueError(
                f"bad failpoint {item!r}: use NAME={'|'.join(ACTIONS)}, NAME in {NAMES},"
                f" or SWITCH={SWITCH_ON}, SWITCH in {SWITCHES}"
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


def is_on(name: str, spec: str = "") -> bool:
    """Whether the switch ``name`` is on: enabled by a test, or named in ``spec`` (the
    process's ``ORDERCOPY_FAILPOINTS``, for processes that do not :func:`load` it)."""
    return _active.get(name) == SWITCH_ON or parse(spec).get(name) == SWITCH_ON


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
