"""The README's quick start, run as written against ``make run``'s stack.

The commands come from the README's fenced blocks (``sh quickstart-run`` and
``sh quickstart``), so the README and this test cannot drift apart. The stack is
started by ``make serve`` — the recipe ``make run`` runs once the runtime is
installed (``make test`` installed it already) — on the embedded default in a
temporary data directory and a free port; the only change made to the commands is
that port in place of 8000. The stack is then stopped as Ctrl-C stops it.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
#: honcho gives its processes 5 s after Ctrl-C before it kills them.
STOP_SECONDS = 15


def fenced(info: str) -> str:
    """The body of the README's fenced block whose info string is exactly ``info``."""
    match = re.search(rf"^```{re.escape(info)}\n(.*?)^```$", README.read_text(), re.M | re.S)
    assert match, f"README.md has no ```{info} block"
    return match.group(1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(check: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if callable(check) and check():
                return
        except (OSError, sqlite3.Error):
            pass
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def answers(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=0.5):
        return True


def demo_settled(data_dir: Path) -> bool:
    """The demo's copies are all finished (none pending or in progress)."""
    database = sqlite3.connect(f"file:{data_dir / 'ordercopy.db'}?mode=ro", uri=True)
    try:
        busy, total = database.execute(
            "SELECT count(*) FILTER (WHERE status IN ('pending', 'in_progress')), count(*)"
            " FROM order_copies"
        ).fetchone()
    finally:
        database.close()
    return bool(total) and busy == 0


def test_the_readme_quick_start_runs_as_written(tmp_path: Path) -> None:
    assert fenced("sh quickstart-run").strip() == "make run"
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("ORDERCOPY_")}
    env.update(ORDERCOPY_DATA_DIR=str(tmp_path / "var"), PORT=str(port))
    log = tmp_path / "make-run.log"
    with log.open("wb") as output:
        stack = subprocess.Popen(
            ["make", "--no-print-directory", "serve"],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_until(lambda: answers(port), 90, f"make run's web process on port {port}")
        wait_until(lambda: demo_settled(tmp_path / "var"), 90, "the demo's copies to finish")
        banner = log.read_text()
        assert re.search(r"^    oc_test_\S+$", banner, re.M), banner
        assert f"http://127.0.0.1:{port}/api/docs" in banner

        script = fenced("sh quickstart").replace("127.0.0.1:8000", f"127.0.0.1:{port}")
        ran = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert ran.returncode == 0, (
            f"the quick start failed ({ran.returncode}):\n{ran.stdout}\n{ran.stderr}\n"
            f"make run said:\n{log.read_text()[-3000:]}"
        )
        assert '"status":"pending"' in ran.stdout.replace(" ", "")  # the copy made, the retry
    finally:
        os.killpg(stack.pid, signal.SIGINT)  # Ctrl-C in make run's terminal
        try:
            stack.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            os.killpg(stack.pid, signal.SIGKILL)
            stack.wait()
            pytest.fail(f"make run did not stop within {STOP_SECONDS} s of Ctrl-C")
