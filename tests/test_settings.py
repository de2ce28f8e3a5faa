"""Bad settings end ``ordercopy`` with one line on stderr and a non-zero exit, never a traceback."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from config.settings import Settings

ORDERCOPY = Path(sys.executable).parent / "ordercopy"
ROOT = Path(__file__).resolve().parents[1]


def ordercopy(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ORDERCOPY), *args],
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("variable", "value", "names"),
    [
        ("ORDERCOPY_DATABASE_URL", "nope://x", "'nope' is not supported"),
        ("ORDERCOPY_DATABASE_URL", "not a url", "is not a URL"),
        ("ORDERCOPY_DATABASE_URL", "postgresql+psycopg://ops@db:port/shop", "is not a URL"),
        ("ORDERCOPY_BROKER_URL", "nope://x", "is not a broker URL"),
    ],
)
def test_bad_url_is_one_line_error_from_db_upgrade(variable: str, value: str, names: str):
    result = ordercopy("db", "upgrade", **{variable: value})

    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"ordercopy: invalid settings: {variable}: ")
    assert names in line
    assert result.stdout == ""


def test_bad_setting_is_one_line_error_from_every_command():
    result = ordercopy("copies", "list", ORDERCOPY_LEASE_SECONDS="1")

    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    assert line.startswith("ordercopy: invalid settings: ORDERCOPY_LEASE_SECONDS: ")


def test_a_redispatch_bound_below_the_first_wait_is_refused_naming_both():
    result = ordercopy(
        "copies",
        "list",
        ORDERCOPY_REDISPATCH_AFTER_SECONDS="120",
        ORDERCOPY_REDISPATCH_MAX_SECONDS="60",
    )

    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    assert line.startswith("ordercopy: invalid settings: ")
    assert "REDISPATCH_MAX_SECONDS (60) is below REDISPATCH_AFTER_SECONDS (120)" in line


@pytest.mark.parametrize(
    "command",
    [("db", "upgrade"), ("copies", "list")],
    ids=["through SQLAlchemy", "through the driver (a listing)"],
)
def test_unreachable_database_is_one_line_error(command: tuple[str, ...]):
    # Port 9 (discard) on localhost refuses connections: the URL is valid, the server absent.
    result = ordercopy(
        *command, ORDERCOPY_DATABASE_URL="postgresql+psycopg://nobody@127.0.0.1:9/nowhere"
    )

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith("ordercopy: database error: ")
    assert "127.0.0.1" in line


@pytest.mark.parametrize("command", [("copies", "list"), ("copies", "show", "x")])
def test_database_not_migrated_is_one_line_error_naming_the_fix(
    tmp_path: Path, command: tuple[str, ...]
):
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()

    result = ordercopy(*command, ORDERCOPY_DATABASE_URL=f"sqlite:///{empty}")

    assert result.returncode == 1
    assert result.stderr == (
        "ordercopy: database error: no such table: order_copies "
        "(run `ordercopy db upgrade` first)\n"
    )


def test_a_listing_of_no_database_file_says_so_and_makes_none(tmp_path: Path):
    missing = tmp_path / "missing.db"

    result = ordercopy("orders", "list", ORDERCOPY_DATABASE_URL=f"sqlite:///{missing}")

    assert result.returncode == 1
    assert result.stderr == (
        f"ordercopy: database error: no database at {missing} (run `ordercopy db upgrade` first)\n"
    )
    assert not missing.exists()


def test_help_needs_no_settings():
    result = ordercopy("--help", ORDERCOPY_DATABASE_URL="nope://x")

    assert result.returncode == 0
    for command in ("db", "demo", "copies"):
        assert command in result.stdout


def test_unset_urls_mean_the_embedded_default(tmp_path: Path):
    settings = Settings(database_url=None, broker_url=None, data_dir=tmp_path)

    assert settings.is_embedded
    assert settings.resolved_database_url == f"sqlite:///{tmp_path / 'ordercopy.db'}"
    assert settings.resolved_broker_url == f"sqla+sqlite:///{tmp_path / 'broker.db'}"
