"""Everything a chaos run starts: its PostgreSQL and Redis, its workers, beats and web.

The stack also plays the process supervisor (systemd, Kubernetes, honcho):
a worker, beat or web process that exits when nobody meant to stop it is
started again, and counted. Every process runs with the test-only switch
``publish_twice`` (worker/testing.py): each copy doorbell goes out twice.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import httpx2

from tests.chaos.processes import Process
from tests.chaos.services import PostgresCluster, RedisServer
from tests.services import free_port
from tests.worker.processes import REPO

DATABASE = "ordercopy"
#: Switched on in every process of the stack (and in the runner).
SWITCHES = "publish_twice=on"


class Stack:
    def __init__(
        self,
        workdir: Path,
        *,
        workers: int,
        concurrency: int,
        webs: int,
        settings: dict[str, str],
    ) -> None:
        self.workdir = workdir
        self.logs = workdir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.concurrency = concurrency
        self.pg = PostgresCluster()
        self.redis = RedisServer(workdir)
        self.settings = {
            "DATABASE_URL": self.pg.url(DATABASE),
            "BROKER_URL": self.redis.url,
            "BROKER_KEY_PREFIX": "chaos:",
            "DATA_DIR": str(workdir / "data"),
            "LOG_LEVEL": "WARNING",
            "LOG_FORMAT": "json",
            "FAILPOINTS": SWITCHES,
            **settings,
        }
        self.env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("ORDERCOPY_") and k != "PROMETHEUS_MULTIPROC_DIR"
        }
        self.env.update({f"ORDERCOPY_{k}": v for k, v in self.settings.items()})
        # The code of the tree the run starts from, even where an editable install (or
        # Celery, which puts the working directory on sys.path only to find the app)
        # would import another checkout's.
        self.env["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(REPO), os.environ.get("PYTHONPATH", "")])
        )
        self.workers = [
            Process.worker(f"w{n + 1}", self.env, self.logs, concurrency=concurrency)
            for n in range(workers)
        ]
        self.beats = [Process.beat("beat-1", self.env, self.logs)]
        self.webs = [
            Process.web(f"web-{n + 1}", self.env, self.logs, port=free_port()) for n in range(webs)
        ]
        #: The example external gateway endpoint, once :meth:`start_endpoint` started it.
        self.endpoint: Process | None = None
        self.extras: list[Process] = []  # failpoint workers, killed when their window ends
        #: Processes meant to be running; the supervisor restarts those that are not.
        self.wanted: set[str] = set()
        self.unexpected_exits: list[str] = []
        self.lock = threading.RLock()

    # --- services ---

    def start_services(self) -> None:
        self.pg.init()
        self.pg.start()
        self.pg.create_database(DATABASE)
        self.redis.start()

    # --- processes ---

    def start(self, process: Process) -> None:
        with self.lock:
            process.start()
            self.wanted.add(process.name)

    @property
    def supervised(self) -> list[Process]:
        endpoint = [self.endpoint] if self.endpoint is not None else []
        return [*self.workers, *self.beats, *self.webs, *endpoint]

    def start_endpoint(self, port: int, secret: str, timeout: float = 60) -> Process:
        """The example external gateway endpoint on ``port``, checking signatures with
        ``secret``; supervised like the others, and answering once this returns."""
        self.endpoint = Process.endpoint("endpoint", self.env, self.logs, port=port, secret=secret)
        self.start(self.endpoint)
        deadline = time.monotonic() + timeout
        while not _endpoint_ready(self.endpoint.url):
            if time.monotonic() > deadline or not self.endpoint.alive:
                raise RuntimeError("the example endpoint did not start: see " + str(self.logs))
            time.sleep(0.1)
        return self.endpoint

    def healthy_endpoint(self) -> Process | None:
        endpoint = self.endpoint
        if endpoint is not None and endpoint.alive and endpoint.name in self.wanted:
            return endpoint
        return None

    def start_processes(self) -> None:
        for process in self.supervised:
            if not process.alive:  # the endpoint runs already: the world was built through it
                self.start(process)

    def wait_ready(self, timeout: float = 60) -> None:
        """Until every worker has forked its pool and every web process (and the
        endpoint, if any) answers."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if (
                all(len(w.children()) >= self.concurrency for w in self.workers)
                and all(_web_ready(web.url) for web in self.webs)
                and (self.endpoint is None or _endpoint_ready(self.endpoint.url))
            ):
                return
            time.sleep(0.2)
        raise RuntimeError("the workers or the web did not start: see " + str(self.logs))

    def add_beat(self) -> Process:
        beat = Process.beat(f"beat-{len(self.beats) + 1}", self.env, self.logs)
        self.beats.append(beat)
        self.start(beat)
        return beat

    def failpoint_worker(self, name: str, failpoint: str) -> Process:
        env = {**self.env, "ORDERCOPY_FAILPOINTS": f"{SWITCHES},{failpoint}"}
        worker = Process.worker(name, env, self.logs, concurrency=1)
        self.extras.append(worker)
        worker.start()  # not supervised: it is meant to die
        return worker

    def supervise(self) -> None:
        """Start again whatever wanted process exited on its own."""
        with self.lock:
            for process in self.supervised:
                if process.name in self.wanted and not process.alive:
                    self.unexpected_exits.append(process.name)
                    process.start()

    def healthy_workers(self) -> list[Process]:
        return [w for w in self.workers if w.alive and not w.stopped and w.name in self.wanted]

    def healthy_webs(self) -> list[Process]:
        return [w for w in self.webs if w.alive and w.name in self.wanted]

    # --- ending ---

    def heal(self) -> None:
        """Undo every fault still in force: the services up, every worker running."""
        with self.lock:
            for extra in self.extras:
                extra.kill()
            if not self.redis.up:
                self.redis.start()
            if not self.pg.started:
                self.pg.start()
            for process in self.supervised:
                if process.stopped:
                    process.signal_group(signal.SIGCONT)
                if process.name not in self.wanted:  # killed on purpose, its restart still due
                    if not process.alive:
                        process.start()
                    self.wanted.add(process.name)
        self.supervise()

    def close(self, *, keep_database: bool = False) -> None:
        """Stop every process and service this stack started (safe to call twice)."""
        with self.lock:
            self.wanted.clear()
            endpoint = [self.endpoint] if self.endpoint is not None else []
            for process in [*self.webs, *self.extras, *self.beats, *self.workers, *endpoint]:
                process.stop()
            self.redis.kill()
            if keep_database:
                if self.pg.started:
                    self.pg.stop("fast")
            else:
                self.pg.destroy()


def _web_ready(url: str) -> bool:
    """``/readyz`` answers 200; where the app has none yet, the OpenAPI document does."""
    try:
        with httpx2.Client(base_url=url, timeout=2) as client:
            ready = client.get("/readyz")
            if ready.status_code == 404:
                ready = client.get("/api/openapi.json")
    except httpx2.TransportError:
        return False
    return ready.status_code == 200


def _endpoint_ready(url: str) -> bool:
    """The example endpoint answers ``/_ledger`` (its test controls are on)."""
    try:
        with httpx2.Client(base_url=url, timeout=2) as client:
            return client.get("/_ledger").status_code == 200
    except httpx2.TransportError:
        return False
