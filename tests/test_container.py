"""The container image and the compose stack: what they hold agrees with the project, and,
where a Docker daemon answers, the stack builds, starts and is ready."""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
import urllib.request
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
PROCESSES = {"release", "web", "worker", "webhooks", "beat"}


def _compose() -> dict:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def _procfile() -> dict[str, str]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return dict(line.split(": ", 1) for line in lines if line.strip())


def test_compose_runs_the_procfiles_processes_beside_postgres_and_redis():
    services = _compose()["services"]
    procfile = _procfile()

    assert set(services) == PROCESSES | {"postgres", "redis"}
    assert set(procfile) == PROCESSES
    for name in PROCESSES - {"web"}:  # web runs the image's own command
        command = " ".join(services[name]["command"])
        assert procfile[name].startswith(command), (name, command, procfile[name])
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "uvicorn api.app:app" in dockerfile
    assert "uvicorn api.app:app" in procfile["web"]


def test_the_image_holds_every_package_the_project_installs():
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "packages"
    ]["find"]["include"]
    copied = set(re.findall(r"^COPY (\w+) \1$", (ROOT / "Dockerfile").read_text(), re.M))

    assert {pattern.rstrip("*") for pattern in packages} == copied


def _docker_problem() -> str | None:
    if shutil.which("docker") is None:
        return "no docker command on this machine"
    info = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=30)
    if info.returncode != 0:
        last = (info.stderr.strip().splitlines() or ["no answer"])[-1]
        return f"no Docker daemon answers here ({last})"
    return None


@pytest.mark.slow
def test_the_compose_stack_builds_starts_and_is_ready():
    problem = _docker_problem()
    if problem is not None:
        pytest.skip(f"the compose stack was not built: {problem}")
    compose = ["docker", "compose", "-p", "ordercopy-test", "-f", str(ROOT / "compose.yaml")]
    try:
        subprocess.run([*compose, "up", "--build", "--detach", "--wait"], check=True, timeout=900)
        with urllib.request.urlopen("http://127.0.0.1:8000/readyz", timeout=10) as answer:
            assert answer.status == 200
    finally:
        subprocess.run([*compose, "down", "--volumes"], timeout=300, check=False)
