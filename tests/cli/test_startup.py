"""The CLI starts without its heavy dependencies: they load in the commands that use them.

Asserted on the modules a fresh interpreter holds, never on timings: ``--help`` and
``--version`` of every command must not import SQLAlchemy, the models, the settings or
the copying engine (see ``cli/choices.py`` and ``cli/process.py`` for how).
"""

from __future__ import annotations

import json
import subprocess
import sys
from enum import StrEnum
from typing import Any, get_args

import pytest

from cli import choices
from models import CopyStatus, Mode, OrderStatus, SubscriptionStatus

#: Top-level packages a command loads only when it runs.
HEAVY = (
    "sqlalchemy",
    "models",
    "copying",
    "config",
    "pydantic_settings",
    "structlog",
    "celery",
    "kombu",
    "fastapi",
    "api",
    "worker",
    "migrations",
    "alembic",
)

IMPORT_ONLY = "import cli.main"

#: ``--version``, then ``--help`` of the root and of every group and command, in-process.
EVERY_HELP = """
import typer
from typer.testing import CliRunner

from cli.main import app


def paths(command, path=()):
    yield path
    for name, sub in getattr(command, "commands", {}).items():
        yield from paths(sub, (*path, name))


runner = CliRunner()
for args in [["--version"], *([*path, "--help"] for path in paths(typer.main.get_command(app)))]:
    result = runner.invoke(app, args)
    assert result.exit_code == 0, (args, result.output)
"""


def loaded_after(code: str) -> list[str]:
    """The heavy modules a fresh interpreter holds after running ``code``."""
    probe = (
        f"{code}\nimport json, sys\nheavy = {HEAVY!r}\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in heavy)))"
    )
    ran = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=False, timeout=60
    )
    assert ran.returncode == 0, ran.stderr
    loaded: list[str] = json.loads(ran.stdout.splitlines()[-1])
    return loaded


def test_importing_the_cli_loads_none_of_the_heavy_modules() -> None:
    assert loaded_after(IMPORT_ONLY) == []


def test_help_and_version_of_every_command_load_none_of_them() -> None:
    assert loaded_after(EVERY_HELP) == []


@pytest.mark.parametrize(
    ("mirror", "enum"),
    [
        (choices.ModeName, Mode),
        (choices.CopyStatusName, CopyStatus),
        (choices.OrderStatusName, OrderStatus),
        (choices.SubscriptionStatusName, SubscriptionStatus),
    ],
)
def test_each_choice_mirrors_its_enum_in_order(mirror: Any, enum: type[StrEnum]) -> None:
    assert get_args(mirror) == tuple(member.value for member in enum)
