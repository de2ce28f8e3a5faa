"""A real web process and a real worker for the races, and one seeded round per test item.

The web (``uvicorn api.app:app``, tests/chaos/processes.py) and the worker
(``celery -A worker worker``, tests/worker/processes.py) run against this
pytest worker's database and broker prefix (tests/conftest.py), from the
first race to the last of the package. Each round starts from empty tables
(``committed``), with an API key of its own.

Every round is seeded: ``RACES_BASE_SEED`` (default :data:`BASE_SEED`) plus
the round number. A failure prints the seed and how to replay that round.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import httpx2
import pytest
from sqlalchemy.orm import Session, sessionmaker

from api.auth import issue_key
from models import Mode
from tests.chaos.processes import Process
from tests.money import settle_and_check
from tests.races.client import Call, RaceClient, Reply
from tests.services import free_port
from tests.worker.processes import REPO, WorkerProcess, flush_broker, wait_for

BASE_SEED = int(os.environ.get("RACES_BASE_SEED", "13013"))
ROUNDS = int(os.environ.get("RACES_ROUNDS", "20"))
#: How long a round waits for its copies and payments to settle before it reports them.
SETTLE_TIMEOUT = 60.0


def pytest_configure(config: pytest.Config) -> None:
    # Registered here too, so that the races run where pyproject does not name it yet.
    config.addinivalue_line("markers", "slow: starts real processes or runs for seconds")
    config.addinivalue_line("markers", "xdist_group(name): run with the group's other tests")


@dataclass
class Stack:
    web: Process
    worker: WorkerProcess

    @property
    def url(self) -> str:
        return self.web.url

    def logs(self) -> str:
        return f"web log {self.web.log_path}, worker log {self.worker.log_path}"

    def crashes(self) -> list[str]:
        """The web's logged crashes (a 500's traceback is there)."""
        return [line for line in self.web.log().splitlines() if "api_crash" in line][-3:]


def _ready(url: str) -> bool:
    try:
        return httpx2.get(f"{url}/readyz", timeout=2).status_code == 200
    except httpx2.TransportError:
        return False


@pytest.fixture(scope="package")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    logs = tmp_path_factory.mktemp("races")
    flush_broker()
    # The code of the tree the tests run from, even where an editable install would import
    # another checkout's (as tests/chaos/stack.py does).
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH", "")]))
    with pytest.MonkeyPatch.context() as env:
        env.setenv("PYTHONPATH", path)
        env.setenv("ORDERCOPY_LOG_LEVEL", "WARNING")
        env.setenv("ORDERCOPY_LOG_FORMAT", "json")
        web = Process.web("races-web", dict(os.environ), logs, port=free_port())
        web.start()
        worker = WorkerProcess(logs, "races", pool="prefork", concurrency=2)
    try:
        wait_for(lambda: _ready(web.url), 60, f"the web process to answer (log {web.log_path})")
        yield Stack(web, worker)
    finally:
        web.stop()
        worker.stop()
        flush_broker()


@dataclass
class Round:
    number: int
    seed: int
    rng: random.Random

    @classmethod
    def of(cls, number: int) -> Round:
        """Round ``number``: seeded with the base seed plus its number."""
        return cls(number, BASE_SEED + number, random.Random(BASE_SEED + number))

    def report(self, problems: Sequence[str], replies: Sequence[Reply] = ()) -> str:
        lines = [
            f"races round {self.number}, seed {self.seed} (RACES_BASE_SEED={BASE_SEED} + round"
            f" {self.number}); replay with: RACES_BASE_SEED={BASE_SEED} .venv/bin/pytest"
            f" tests/races -k 'round{self.number:02d}'",
            *(f"  - {problem}" for problem in problems),
        ]
        if replies:
            lines += ["  replies:", *(f"    {reply}" for reply in replies)]
        return "\n".join(lines)


@pytest.fixture(params=range(ROUNDS), ids=lambda n: f"round{n:02d}")
def round_(request: pytest.FixtureRequest) -> Round:
    return Round.of(request.param)


@dataclass
class Arena:
    """A round's database (committed sessions), its API client and the processes."""

    sessions: sessionmaker[Session]
    client: RaceClient
    stack: Stack

    def race(self, calls: Sequence[Call], round_: Round) -> list[Reply]:
        return self.client.race(calls, round_.rng)

    def send(self, call: Call) -> Reply:
        return self.client.send(call)

    def settle_and_check(self, initial_stock: dict[str, int]) -> list[str]:
        return settle_and_check(self.sessions, initial_stock, timeout=SETTLE_TIMEOUT)

    def server_errors(self, replies: Sequence[Reply]) -> list[str]:
        found = [f"{reply} is a server error" for reply in replies if reply.status >= 500]
        if found:
            found += [f"web log: {line}" for line in self.stack.crashes()]
            found.append(self.stack.logs())
        return found


@pytest.fixture
def arena(stack: Stack, committed: sessionmaker[Session]) -> Iterator[Arena]:
    with committed.begin() as session:
        _, token = issue_key(session, name="races", mode=Mode.TEST)
    client = RaceClient(stack.url, token)
    try:
        yield Arena(committed, client, stack)
    finally:
        client.close()


def expect(replies: Sequence[Reply], allowed: dict[str, set[int]]) -> list[str]:
    """Each reply whose status its call's kind does not allow. ``allowed`` maps the start of
    a call's ``what`` to the statuses it may answer."""
    found = []
    for reply in replies:
        kind = next((k for k in allowed if reply.call.what.startswith(k)), None)
        if kind is None:
            found.append(f"{reply}: no expectation for this call (a bug in the test)")
        elif reply.status not in allowed[kind]:
            found.append(f"{reply}: expected one of {sorted(allowed[kind])}")
    return found
