"""Node.js packages for the interop tests: ``npm ci`` from a committed lock file into a
cache folder, once per lock file and machine, and scripts run beside what it installed."""

from __future__ import annotations

import fcntl
import hashlib
import json
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.worker.processes import REPO

#: Git-ignored; ``make clean`` removes it.
CACHE = REPO / ".cache" / "interop"
#: What the lock file asks of Node.js (its ``engines``); older ones fail, never skip.
NODE_MAJOR = 20
#: Seconds ``npm ci`` may take (a first install downloads a few MB).
INSTALL_WITHIN = 300.0
MANIFESTS = ("package.json", "package-lock.json")


def tools() -> tuple[str, str]:
    """``node`` and ``npm``: the test is skipped, saying why, when either is missing."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        missing = " and ".join(name for name, path in (("node", node), ("npm", npm)) if not path)
        pytest.skip(
            f"{missing} not found on PATH: the Commerce Layer SDK interop test needs "
            f"Node.js {NODE_MAJOR}+ and npm (CI has them)"
        )
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=True)
    major = int(version.stdout.strip().lstrip("v").split(".")[0])
    assert major >= NODE_MAJOR, f"Node.js {version.stdout.strip()} is too old: {NODE_MAJOR}+"
    return node, npm


def lock_key(project: Path) -> str:
    """Names the install: a changed package.json or lock file installs anew."""
    digest = hashlib.sha256()
    for name in MANIFESTS:
        digest.update((project / name).read_bytes())
    return digest.hexdigest()[:16]


def install(project: Path, npm: str) -> Path:
    """The folder holding ``project``'s ``node_modules``, as its lock file pins them.

    The first call on a machine runs ``npm ci`` in a scratch folder and renames it into
    place, so a folder under its final name is always complete; later calls find it.
    A file lock keeps two test runs from installing at once.
    """
    target = CACHE / f"{project.name}-{lock_key(project)}"
    if (target / "node_modules").is_dir():
        return target
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (target / "node_modules").is_dir():  # another run installed it meanwhile
            return target
        scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=CACHE))
        try:
            for name in MANIFESTS:
                shutil.copy2(project / name, scratch / name)
            done = subprocess.run(
                [
                    *(npm, "ci", "--no-audit", "--no-fund", "--no-update-notifier"),
                    *("--ignore-scripts", "--loglevel=error"),
                ],
                cwd=scratch,
                capture_output=True,
                text=True,
                timeout=INSTALL_WITHIN,
            )
            assert done.returncode == 0, f"npm ci failed:\n{done.stdout}\n{done.stderr}"
            shutil.rmtree(target, ignore_errors=True)
            scratch.rename(target)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return target


@contextmanager
def beside(installed: Path, scripts: Path) -> Iterator[Path]:
    """A copy of the ``*.mjs`` files of ``scripts`` in a new folder inside ``installed``:
    Node.js looks for ``import``ed packages in the ``node_modules`` of the folders above
    a script (not in NODE_PATH), so that is where they run. Removed afterwards."""
    runs = installed / "runs"
    runs.mkdir(exist_ok=True)
    folder = Path(tempfile.mkdtemp(dir=runs))
    try:
        for script in scripts.glob("*.mjs"):
            shutil.copy2(script, folder / script.name)
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def run_script(
    node: str, script: Path, env: Mapping[str, str], timeout: float
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [node, str(script)], env=dict(env), capture_output=True, text=True, timeout=timeout
    )


def last_json_line(output: str) -> dict[str, Any] | None:
    """The summary a script prints last, as one line of JSON; None if it printed none."""
    lines = [line for line in output.splitlines() if line.strip()]
    try:
        summary = json.loads(lines[-1]) if lines else None
    except ValueError:
        return None
    return summary if isinstance(summary, dict) else None
