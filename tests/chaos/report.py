"""The chaos run's table (Markdown: readable in a terminal, quotable in the README)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from tests.chaos.faults import LABELS, Kind
from tests.chaos.promises import PROMISES

SHOWN_PER_INVARIANT = 10


@dataclass
class Results:
    seed: int
    command: str
    copies_asked: int
    statuses: Counter[str]
    renewals: int
    subscriptions: int
    stack: str
    settings: str
    duration: float
    quiesce_bound: float
    settle_limit: float
    quiesced_after: float | None
    injected: Counter[Kind]
    skipped: Counter[Kind]
    mid_run: Counter[Kind]
    failpoints: list[str]
    clients: Counter[str]
    requests: Counter[str]
    observed: dict[str, int]
    causes: Counter[str]
    found: dict[str, list[str]]
    problems: list[str] = field(default_factory=list)

    @property
    def violations(self) -> int:
        return sum(len(v) for v in self.found.values())

    @property
    def passed(self) -> bool:
        return self.quiesced_after is not None and self.violations == 0 and not self.problems


def _n(value: int) -> str:
    return f"{value:,}"


def render(r: Results) -> str:
    total = sum(r.statuses.values())
    outcome = ", ".join(f"{_n(count)} {status}" for status, count in sorted(r.statuses.items()))
    quiesce = (
        f"{r.quiesced_after:.1f} s (fails after {r.quiesce_bound:.0f} s with no copy"
        f" finishing, or {r.settle_limit:.0f} s in all)"
        if r.quiesced_after is not None
        else f"**did not quiesce**: {r.quiesce_bound:.0f} s with no copy finishing,"
        f" or {r.settle_limit:.0f} s in all"
    )
    lines = [
        f"## Chaos run, seed {r.seed}: {'PASS' if r.passed else 'FAIL'}",
        "",
        f"Replay: `{r.command}`",
        "",
        "| run | |",
        "|---|---|",
        f"| copies | {_n(total)} ({_n(r.copies_asked)} created + {_n(r.renewals)} renewals "
        f"of {r.subscriptions} subscriptions): {outcome} |",
        f"| stack | {r.stack} |",
        f"| settings | {r.settings} |",
        f"| fault window | {r.duration:.0f} s |",
        f"| time to quiesce | {quiesce} |",
        f"| violations | {r.violations} |",
        "",
        "| fault injected at a random moment | count |",
        "|---|---:|",
    ]
    for kind in Kind:
        notes = []
        if kind in (Kind.KILL_CHILD, Kind.ZOMBIE):
            notes.append(f"{r.mid_run[kind]} hit a child inside a transaction")
        if kind == Kind.KILL_WEB:
            notes.append(f"{r.mid_run[kind]} hit a request inside a transaction")
        if kind == Kind.KILL_ENDPOINT:
            notes.append(f"{r.mid_run[kind]} hit a connection being answered")
        if r.skipped[kind]:
            notes.append(f"{r.skipped[kind]} skipped: nothing to hit then")
        note = f" ({', '.join(notes)})" if notes else ""
        lines.append(f"| {LABELS[kind]} | {r.injected[kind]}{note} |")
    lines.append(
        "| every copy doorbell of every process (API, sweeper, tick, retries, Celery's own"
        " retries) published twice: failpoint `publish_twice` | always |"
    )
    if r.failpoints:
        lines += ["", f"Failpoints: {', '.join(sorted(r.failpoints))}."]
    lines += ["", "| clients and ops during the faults | count |", "|---|---:|"]
    lines += [f"| {what} | {_n(count)} |" for what, count in sorted(r.clients.items())]
    lines += ["", "| HTTP requests (attempts), by outcome | count |", "|---|---:|"]
    lines += [f"| {what} | {_n(count)} |" for what, count in sorted(r.requests.items())]
    lines += ["", "| seen in the logs and the database | count |", "|---|---:|"]
    lines += [f"| {what} | {_n(count)} |" for what, count in r.observed.items()]
    lines += ["", "| copies with errors, by errors_log key | copies |", "|---|---:|"]
    lines += [f"| `{key}` | {_n(count)} |" for key, count in sorted(r.causes.items())]
    lines += ["", "| invariant | violations |", "|---|---:|"]
    lines += [f"| {promise} | {len(r.found[name])} |" for name, promise in PROMISES.items()]
    for name, sentences in r.found.items():
        if sentences:
            lines += ["", f"{PROMISES[name]}:"]
            lines += [f"- {s}" for s in sentences[:SHOWN_PER_INVARIANT]]
            if len(sentences) > SHOWN_PER_INVARIANT:
                lines.append(f"- … and {len(sentences) - SHOWN_PER_INVARIANT} more")
    if r.problems:
        lines += ["", "Problems with the run itself:"] + [f"- {p}" for p in r.problems]
    return "\n".join(lines) + "\n"
