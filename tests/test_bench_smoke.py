"""Every bench entry point runs in ``make test``, so that a bench can never again break unseen.

Each runs as ``make bench`` runs it (``python -m bench.<name>``, from the checkout) with
``--smoke``: the same phases on a few copies or requests, in a minute or less. Its figures measure
nothing; the test asserts that it exits 0 and prints the lines of its baselines and ratios.
A bench makes its own database (``ordercopy_bench_<run>``) and Redis key prefix
(``bench-<run>:``), as ``bench/environment.py`` chooses them, so it never meets the suite's
(``ordercopy_test_<run>_<worker>``, ``test-<run>-<worker>:``) under xdist; the suite's own
``ORDERCOPY_*`` settings are not passed down.

The benches' third-party imports must come from the dev lock, which ``make bench`` installs:
on a fresh machine, a module installed only by hand here would stop ``make bench`` at its
import (issue 20: ``No module named 'httpx'``).
"""

from __future__ import annotations

import ast
import importlib.metadata
import os
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
#: A smoke run takes seconds to a minute or two, its processes' start-ups most of it (each
#: imports the project); this bound is for a machine loaded by other work. It is under the
#: test's own pytest-timeout, so a hung bench fails with its output.
TIMEOUT = 540

#: Each entry point and the lines its table must print: its baselines and its ratios.
SMOKE_LINES = {
    "bench.run": (
        "no-op Celery task drain",
        "raw SQL copy (10 lines), 2 processes",
        "combined = 1/(1/noop + 1/raw_sql_2proc)",
        "efficiency",
        "x raw SQL",
        "1,000-line copy / 10-line copy",
        "p99/p50",
        "x no-op drain",
        "last/first quarter",
    ),
    "bench.api": ("bare FastAPI endpoint", "POST /api/order_copies", "ratio (ours / bare)"),
    "bench.webhooks": (
        "no-op Celery task drain",
        "x no-op;",
        "copy drain: 1 x 20 copies, no webhook",
        "x without;",
    ),
    "bench.embedded": (
        "Kombu's SQLAlchemy transport (1 s)",
        "the copies/s of Kombu's own polling",
    ),
    "bench.renewals": ("1.00 (baseline)", "x the raw tick"),
    "bench.dashboard": ("dashboard pages at 2,000 copies", "overview", "failures"),
    # Every row: /metrics at both sizes, each list query, the keyset page (a deep
    # page[number] refused as documented, or the bench exits 1).
    "bench.large": (
        "/metrics (2,000 copies, 5,000 events)",
        "/metrics (4,000 copies, 5,000 events)",
        "the scrape's statements now, by hand",
        "first page (sort=-created_at)",
        "status_eq=failed",
        "reference_eq",
        "reference_cont",
        "source_order_id_eq",
        "/api/order_subscriptions/{id}/order_copies",
        "created_at a day's range",
        "completed_at_gt a day ago",
        "completed_at_lt, sort=-completed_at",
        "errors_count_gt=0",
        "errors_count_eq=2, sort=-errors_count",
        "page[number]=400",
        "page[size]=25, include=source_order,target_order",
        "page[after]",
    ),
}


def entry_points() -> set[str]:
    """The bench modules that run as ``python -m``."""
    return {
        f"bench.{path.stem}"
        for path in BENCH.glob("*.py")
        if 'if __name__ == "__main__":' in path.read_text()
    }


def bench_environment() -> dict[str, str]:
    """This environment without the suite's ``ORDERCOPY_*`` settings (its database, key
    prefix, log format): a bench chooses its own. The services' addresses stay."""
    return {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("ORDERCOPY_")
        or key in ("ORDERCOPY_TEST_ADMIN_URL", "ORDERCOPY_TEST_REDIS_URL")
    }


#: Entry points whose smoke run is a test file of its own (its table's lines are its own).
def test_every_entry_point_has_a_smoke_run() -> None:
    assert entry_points() == set(SMOKE_LINES)


#: The benches that start real Celery workers (the others start uvicorn, or nothing).
WITH_WORKERS = ("bench.run", "bench.webhooks", "bench.embedded")


@pytest.mark.slow
@pytest.mark.timeout(TIMEOUT + 60)
@pytest.mark.parametrize(
    "module",
    [
        pytest.param(module, marks=[pytest.mark.worker] if module in WITH_WORKERS else [])
        for module in sorted(SMOKE_LINES)
    ],
)
def test_the_bench_runs_and_prints_its_ratios(module: str) -> None:
    ran = subprocess.run(
        [sys.executable, "-m", module, "--smoke"],
        cwd=ROOT,
        env=bench_environment(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    report = f"stdout:\n{ran.stdout}\nstderr (end):\n{ran.stderr[-4000:]}"
    assert ran.returncode == 0, report
    missing = [line for line in SMOKE_LINES[module] if line not in ran.stdout]
    assert missing == [], report


def canonical(distribution: str) -> str:
    return re.sub(r"[-_.]+", "-", distribution).lower()


def first_party() -> set[str]:
    return {path.name for path in ROOT.iterdir() if (path / "__init__.py").is_file()}


def imported(path: Path) -> set[str]:
    """Every module ``path`` imports, at the top or inside a function (absolute names);
    not those under ``if TYPE_CHECKING:``, which only the type checker reads (typeshed's
    ``_typeshed``, say, exists for it alone)."""
    names: set[str] = set()
    tree = ast.parse(path.read_text(), str(path))
    for guard in ast.walk(tree):
        if isinstance(guard, ast.If) and "TYPE_CHECKING" in ast.unparse(guard.test):
            guard.body = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def source_of(module: str) -> Path | None:
    """The checkout's file for a first-party module (or package), if there is one."""
    base = ROOT.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def third_party_imports(start: list[Path]) -> set[str]:
    """The top-level third-party modules imported by ``start`` and by every first-party
    module they import, transitively (the project's own code the benches run included)."""
    ours = first_party()
    seen: set[Path] = set()
    todo = list(start)
    found: set[str] = set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for module in imported(path):
            top = module.split(".")[0]
            if top in ours:
                parts = module.split(".")
                for depth in range(1, len(parts) + 1):  # a.b.c runs a and a.b first
                    source = source_of(".".join(parts[:depth]))
                    if source is not None:
                        todo.append(source)
            elif top not in sys.stdlib_module_names:
                found.add(top)
    return found


def locked_distributions() -> set[str]:
    """The distributions ``requirements/dev.txt`` pins (``name==version`` lines)."""
    lock = (ROOT / "requirements" / "dev.txt").read_text()
    return {canonical(name) for name in re.findall(r"^([A-Za-z0-9][\w.-]*)==", lock, re.M)}


def test_every_module_the_benches_import_is_installed_by_the_dev_lock() -> None:
    locked = locked_distributions()
    providers = importlib.metadata.packages_distributions()
    unlocked = {
        module: sorted(providers.get(module, [])) or "no installed distribution provides it"
        for module in sorted(third_party_imports(sorted(BENCH.glob("*.py"))))
        if not {canonical(d) for d in providers.get(module, [])} & locked
    }
    assert unlocked == {}


def test_a_bench_whose_copies_did_not_all_complete_fails() -> None:
    """The smoke runs above pass only if these checks hold: a bench exits 1 when a copy of
    its drains failed, an event was not delivered, or an embedded copy did not complete."""
    from bench import embedded, suite, webhooks

    drain = SimpleNamespace(statuses={"completed": 59, "failed": 1}, copies=60)
    storm = SimpleNamespace(statuses={"completed": 60}, subscriptions=60)
    assert suite.problems({"drain": drain, "storm": storm}) == [
        "worker drain: 60 copies, {'completed': 59, 'failed': 1}, not all completed"
    ]
    drain.statuses = {"completed": 60}
    assert suite.problems({"drain": drain, "storm": storm}) == []

    delivered = SimpleNamespace(events=20, statuses={"delivered": 20}, distinct_received=20)
    arm = SimpleNamespace(copies=20, statuses={"completed": 20})
    drains = SimpleNamespace(without=arm, with_webhooks=arm)
    assert webhooks.problems(delivered, drains) == []  # type: ignore[arg-type]
    delivered.statuses = {"delivered": 19, "failed": 1}
    delivered.distinct_received = 19
    assert len(webhooks.problems(delivered, drains)) == 2  # type: ignore[arg-type]

    result = embedded.Result("ours", 8, 1.0, 2.0, {"completed": 8}, 1.0, completed=8)
    assert result.problem is None
    assert replace(result, completed=7).problem == "ours: 7 of 8 copies completed"
