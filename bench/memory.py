"""Resident memory of a worker and its pool children, sampled from /proc while it works."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from statistics import mean
from types import TracebackType

PROC = "/proc"


def rss_kb(pid: int) -> int | None:
    """``VmRSS`` of ``pid`` in kB, or None once it is gone."""
    try:
        with open(f"{PROC}/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        return None
    return 0  # a zombie has no VmRSS line


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (the prefork pool's processes)."""
    found = []
    for entry in os.listdir(PROC):
        if not entry.isdigit():
            continue
        try:
            with open(f"{PROC}/{entry}/stat") as stat:
                # "pid (comm) state ppid ...": comm may hold spaces, so split after ")".
                ppid = int(stat.read().rsplit(")", 1)[1].split()[1])
        except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
            continue
        if ppid == pid:
            found.append(int(entry))
    return found


@dataclass(frozen=True)
class Sample:
    at: float  # time.monotonic()
    by_pid: dict[int, int]  # kB

    @property
    def total_kb(self) -> int:
        return sum(self.by_pid.values())


@dataclass
class RssSampler:
    """Samples the worker and its children every ``interval`` seconds in a thread."""

    pid: int
    interval: float = 0.2
    samples: list[Sample] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="rss-sampler", daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._stop.is_set():
            by_pid = {
                pid: kb
                for pid in (self.pid, *children(self.pid))
                if (kb := rss_kb(pid)) is not None
            }
            if by_pid:
                self.samples.append(Sample(time.monotonic(), by_pid))
            self._stop.wait(self.interval)

    def during(self, started: float, finished: float) -> MemoryProfile:
        window = [s for s in self.samples if started <= s.at <= finished]
        if len(window) < 4:
            raise RuntimeError(f"only {len(window)} memory samples during the drain")
        quarter = (finished - started) / 4
        first = [s.total_kb for s in window if s.at < started + quarter]
        last = [s.total_kb for s in window if s.at >= finished - quarter]
        pids = {pid for s in window for pid in s.by_pid}
        return MemoryProfile(
            peak_total_mb=max(s.total_kb for s in window) / 1024,
            peak_by_process_mb={
                pid: max(s.by_pid.get(pid, 0) for s in window) / 1024 for pid in sorted(pids)
            },
            first_quarter_mb=mean(first or [window[0].total_kb]) / 1024,
            last_quarter_mb=mean(last or [window[-1].total_kb]) / 1024,
            samples=len(window),
        )


@dataclass(frozen=True)
class MemoryProfile:
    peak_total_mb: float
    peak_by_process_mb: dict[int, float]
    first_quarter_mb: float
    last_quarter_mb: float
    samples: int

    @property
    def growth(self) -> float:
        """Last quarter's mean over the first quarter's (1.0 is flat)."""
        return self.last_quarter_mb / self.first_quarter_mb
