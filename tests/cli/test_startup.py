"""The CLI starts without its heavy dependencies: they load in the commands that use them.

Asserted on the modules a fresh interpreter holds, never on timings: ``--help`` and
``--version`` of every command must not import SQLAlchemy, the models, the settings or
the copying engine (see ``cli/choices.py`` and ``cli/process.py`` for how), and the
listings (``copies list``, ``orders list``, ``subscriptions list``) load the settings and
the database's driver but neither SQLAlchemy nor the models (cli/rows.py), nor structlog,
nor anything of the web service, the worker or the test tools (issue 20).
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

#: Top-level packages a command that only reads the database never needs: the web service,
#: the worker and its broker, the copying engine, migrations, and the test tools.
SERVICE_SIDE = (
    "fastapi",
    "starlette",
    "uvicorn",
    "fastapi_offline",
    "api",
    "celery",
    "kombu",
    "redis",
    "worker",
    "tasks",
    "copying",
    "prometheus_client",
    "croniter",
    "migrations",
    "alembic",
    "schemathesis",
    "hypothesis",
    "httpx2",
    "pytest",
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


#: A command run in-process (``argv`` formatted in), as ``ordercopy`` runs it; it must
#: succeed.
COMMAND = """
from typer.testing import CliRunner

from cli.main import app

result = CliRunner().invoke(app, {argv!r})
assert result.exit_code == 0, result.output
"""

#: What a listing never loads: the service side, and SQLAlchemy, the models and structlog.
NOT_FOR_LISTINGS = (*SERVICE_SIDE, "sqlalchemy", "models", "structlog")

#: The listing of the issue and the other listings.
LISTINGS = (
    ["copies", "list"],
    ["copies", "list", "--status", "failed", "--json"],
    ["orders", "list"],
    ["subscriptions", "list"],
)


def loaded_after(code: str, heavy: tuple[str, ...] = HEAVY) -> list[str]:
    """The modules of the packages ``heavy`` a fresh interpreter holds after ``code`` ran
    (a package's own name included, so ``importlib.metadata`` can be asked for)."""
    probe = (
        f"{code}\nimport json, sys\nheavy = {heavy!r}\n"
        "print(json.dumps(sorted(m for m in sys.modules"
        " if m in heavy or m.split('.')[0] in heavy)))"
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


def test_the_root_help_does_not_read_the_package_metadata() -> None:
    """``importlib.metadata`` (email, zipfile, csv) is for ``--version`` alone."""
    help_only = COMMAND.format(argv=["--help"])
    assert loaded_after(help_only, ("importlib.metadata",)) == []
    version = COMMAND.format(argv=["--version"])
    assert loaded_after(version, ("importlib.metadata",)) == ["importlib.metadata"]


@pytest.mark.parametrize("argv", LISTINGS, ids=" ".join)
def test_a_listing_loads_neither_sqlalchemy_nor_the_models_nor_the_service_side(
    argv: list[str],
) -> None:
    """Run against this worker's test database (``ORDERCOPY_DATABASE_URL``, inherited)."""
    assert loaded_after(COMMAND.format(argv=argv), NOT_FOR_LISTINGS) == []


def test_a_command_that_reads_through_the_models_loads_nothing_of_the_service_side() -> None:
    """``show`` reads a copy and its history through the models (an unknown id here)."""
    show = COMMAND.replace("assert result.exit_code == 0", "assert result.exit_code == 1")
    loaded = loaded_after(show.format(argv=["copies", "show", "nope"]), NOT_FOR_LISTINGS)
    assert "models" in loaded
    assert [name for name in loaded if name.split(".")[0] in SERVICE_SIDE] == []


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
