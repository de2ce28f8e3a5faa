"""The interop tests' Node.js plumbing: skipped (saying why) only without node or npm,
installed once per lock file, and a script's summary read from its last line."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.interop import npm

#: Stands in for npm: records each call and "installs" an empty node_modules.
FAKE_NPM = """#!/bin/sh
echo "$@" >> "{calls}"
mkdir node_modules
"""


def test_a_missing_node_skips_and_says_what_is_missing(monkeypatch):
    found = {"npm": "/usr/bin/npm"}
    monkeypatch.setattr(shutil, "which", found.get)

    with pytest.raises(pytest.skip.Exception, match="node not found on PATH"):
        npm.tools()


def _project(folder: Path, lock: str) -> Path:
    folder.mkdir(exist_ok=True)
    (folder / "package.json").write_text('{"name": "p"}')
    (folder / "package-lock.json").write_text(lock)
    return folder


def test_the_install_runs_once_per_lock_file(tmp_path, monkeypatch):
    monkeypatch.setattr(npm, "CACHE", tmp_path / "cache")
    calls = tmp_path / "calls"
    fake = tmp_path / "npm"
    fake.write_text(FAKE_NPM.format(calls=calls))
    fake.chmod(0o755)
    project = _project(tmp_path / "sdk", '{"lockfileVersion": 3}')

    first = npm.install(project, str(fake))
    again = npm.install(project, str(fake))
    _project(project, '{"lockfileVersion": 3, "packages": {}}')
    changed = npm.install(project, str(fake))

    assert first == again != changed
    assert (first / "node_modules").is_dir()
    assert (changed / "node_modules").is_dir()
    assert calls.read_text().count("ci ") == 2
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == sorted(
        [".lock", first.name, changed.name]
    )  # no scratch folder left behind


def test_a_failed_install_leaves_nothing_under_the_final_name(tmp_path, monkeypatch):
    monkeypatch.setattr(npm, "CACHE", tmp_path / "cache")
    failing = tmp_path / "npm"
    failing.write_text("#!/bin/sh\nmkdir node_modules\necho no registry >&2\nexit 1\n")
    failing.chmod(0o755)
    project = _project(tmp_path / "sdk", "{}")

    with pytest.raises(AssertionError, match="no registry"):
        npm.install(project, str(failing))

    assert [p.name for p in (tmp_path / "cache").iterdir()] == [".lock"]


@pytest.mark.parametrize(
    ("output", "summary"),
    [
        ('starting\n{"failures": []}\n\n', {"failures": []}),
        ("starting\nTypeError: boom\n", None),
        ("", None),
        ("[1, 2]\n", None),
    ],
)
def test_the_summary_is_the_last_line_of_json(output, summary):
    assert npm.last_json_line(output) == summary
