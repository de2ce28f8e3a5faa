"""The values the enum-like options accept, as ``Literal`` types, and the shared ``--mode``.

Typer reads the type of every option of every command when it builds the command tree,
for ``--help`` and ``--version`` too; typed with the models' enums, the options would
import SQLAlchemy and every model before anything is printed. So each enum an option offers
is mirrored here, values in its order, and ``tests/cli/test_startup.py`` holds each mirror
equal to its enum. A command turns the value into the enum (``Mode(mode)``) when it runs.
"""

from __future__ import annotations

from typing import Annotated, Literal

import typer

#: :class:`models.Mode`.
ModeName = Literal["test", "live"]
#: :class:`models.CopyStatus`.
CopyStatusName = Literal["pending", "in_progress", "completed", "failed", "aborted"]
#: :class:`models.OrderStatus`.
OrderStatusName = Literal["draft", "pending", "placed", "approved", "cancelled"]
#: :class:`models.SubscriptionStatus`.
SubscriptionStatusName = Literal["draft", "pending", "inactive", "active", "running", "cancelled"]

ModeOption = Annotated[
    ModeName,
    typer.Option("--mode", help="Which records to read: test or live.", case_sensitive=False),
]
