"""One table of figures and ratios, printed, and the same written as JSON."""

from __future__ import annotations

import json
import platform
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.baselines import Rate
from bench.drain import DrainResult
from bench.latency import LatencyResult
from bench.sizes import SizeResult
from bench.storm import StormResult
from config import get_settings


@dataclass(frozen=True)
class Row:
    item: str  # the item number
    measure: str
    value: str
    ratio: str = ""
    target: str = ""


def rows(results: dict[str, Any]) -> list[Row]:
    noop: Rate = results["noop"]
    raw1: Rate = results["raw_sql"][1]
    raw2: Rate = results["raw_sql"][2]
    combined: float = results["combined"]
    drain: DrainResult = results["drain"]
    sizes: list[SizeResult] = results["sizes"]
    paced: LatencyResult = results["latency"]
    stormed: StormResult = results["storm"]
    by_lines = {s.lines: s for s in sizes}
    combined_cpu = noop.cpu_ms + raw2.cpu_ms
    table = [
        Row(
            "1",
            "no-op Celery task drain (prefork -c2, acks_late, prefetch 1)",
            f"{noop.per_second:,.0f} tasks/s",
            f"{noop.cpu_ms:.2f} ms CPU/task",
        ),
        Row(
            "1",
            "raw SQL copy (10 lines), 1 process",
            f"{raw1.per_second:,.0f} copies/s",
            f"{raw1.cpu_ms:.2f} ms CPU/copy",
        ),
        Row(
            "1",
            "raw SQL copy (10 lines), 2 processes",
            f"{raw2.per_second:,.0f} copies/s",
            f"{raw2.cpu_ms:.2f} ms CPU/copy; {raw2.per_second / raw1.per_second:.2f} x 1 proc",
        ),
        Row(
            "1",
            "combined = 1/(1/noop + 1/raw_sql_2proc)",
            f"{combined:,.0f} copies/s",
            f"{combined_cpu:.2f} ms CPU/copy",
        ),
        Row(
            "2",
            f"worker drain: {drain.copies:,} copies, 10 lines, place + wallet",
            f"{drain.rate:,.0f} copies/s",
            f"efficiency {drain.rate / combined:.2f}",
            ">= 0.85",
        ),
        Row(
            "2",
            "  same drain from the copies' timestamps (claim -> finish)",
            f"{drain.db_rate:,.0f} copies/s",
            f"efficiency {drain.db_rate / combined:.2f}",
        ),
        Row(
            "2",
            "  CPU per copy: worker + its PostgreSQL backends",
            f"{drain.cpu_ms:.1f} ms ({drain.server_cpu_seconds / drain.copies * 1000:.1f} in PG)",
            f"CPU efficiency {combined_cpu / drain.cpu_ms:.2f}",
        ),
        Row(
            "2",
            "  worker rate / no-op rate, / raw SQL 2-process rate",
            "",
            f"{drain.rate / noop.per_second:.2f}, {drain.rate / raw2.per_second:.2f}",
        ),
        Row("2", "  final statuses", ", ".join(f"{k} {v}" for k, v in drain.statuses.items())),
    ]
    for size in sizes:
        table.append(
            Row(
                "3",
                f"copy of a {size.lines:,}-line order (median of {size.copies})",
                f"{size.median_ms:.1f} ms ({size.cpu_ms:.1f} CPU), "
                f"{size.statements} stmts, {size.round_trips} trips",
                f"{size.median_ms / size.raw_sql_median_ms:.1f} x raw SQL "
                f"({size.raw_sql_median_ms:.1f} ms), {size.cpu_ms / size.raw_sql_cpu_ms:.1f} x CPU",
            )
        )
    statements = {s.statements for s in sizes}
    ten, thousand = by_lines[10], by_lines[1000]
    table += [
        Row(
            "3",
            "statements per copy, 1 -> 1,000 lines",
            "constant"
            if len(statements) == 1
            else "GROWS: " + " / ".join(str(s.statements) for s in sizes),
            "",
            "constant",
        ),
        Row(
            "3",
            "1,000-line copy / 10-line copy",
            "",
            f"{thousand.median_ms / ten.median_ms:.1f} x time, "
            f"{thousand.cpu_ms / ten.cpu_ms:.1f} x CPU",
            "<= 10 x",
        ),
        Row(
            "4",
            f"create -> completed at {paced.achieved_rate:,.0f}/s "
            f"({paced.copies:,} copies, ~50% of drain)",
            f"p50 {paced.p50_ms:,.0f} / p95 {paced.p95_ms:,.0f} / p99 {paced.p99_ms:,.0f} ms"
            f", lag {paced.lag_ms:,.0f} ms",
            f"p99/p50 {paced.tail_ratio:.1f}",
            "<= 5",
        ),
        Row(
            "5",
            f"renewal storm: {stormed.subscriptions:,} due subscriptions, tick -> copies queued",
            f"{stormed.queued_rate:,.0f} subscriptions/s",
            f"{stormed.queued_seconds:.1f} s",
        ),
        Row(
            "5",
            f"  tick -> every copy finished ({get_settings().chunk_size} copies per message)",
            f"{stormed.rate:,.0f} copies/s",
            f"{stormed.rate / noop.per_second:.2f} x no-op drain",
            ">= 1.5 x no-op",
        ),
        Row(
            "5",
            "  CPU per renewal: worker + its PostgreSQL backends; final statuses",
            f"{stormed.cpu_ms:.1f} ms",
            ", ".join(f"{k} {v}" for k, v in stormed.statuses.items()),
        ),
        Row(
            "6",
            f"worker peak RSS during the drain (main + pool, {drain.memory.samples} samples)",
            f"{drain.memory.peak_total_mb:,.0f} MB  ("
            + " + ".join(f"{mb:.0f}" for mb in drain.memory.peak_by_process_mb.values())
            + ")",
            f"last/first quarter {drain.memory.growth:.3f} "
            f"({drain.memory.first_quarter_mb:.0f} -> {drain.memory.last_quarter_mb:.0f} MB)",
            "flat (~1.00)",
        ),
    ]
    return table


def render(table: list[Row], title: str) -> str:
    headers = Row("#", "measure", "value", "ratio", "target")
    cells = [headers, *table]
    widths = [max(len(getattr(r, f)) for r in cells) for f in ("item", "measure", "value", "ratio")]
    lines = [title]
    for n, row in enumerate(cells):
        parts = [row.item, row.measure, row.value, row.ratio]
        line = "  ".join(p.ljust(w) for p, w in zip(parts, widths, strict=True))
        lines.append(f"{line}  {row.target}".rstrip())
        if n == 0:
            lines.append("-" * len(lines[-1]))
    return "\n".join(lines)


def write_json(path: Path, table: list[Row], results: dict[str, Any], meta: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "meta": {
            **meta,
            "finished_at": datetime.now(UTC).isoformat(),
            "python": platform.python_version(),
            "machine": platform.machine(),
        },
        "table": [asdict(row) for row in table],
        "results": _plain(results),
    }
    path.write_text(json.dumps(document, indent=2) + "\n")


def _plain(value: Any) -> Any:
    """Results as JSON: dataclasses as dicts with their derived rates, keys as strings."""
    if hasattr(value, "__dataclass_fields__"):
        plain = {k: _plain(getattr(value, k)) for k in value.__dataclass_fields__}
        for name in (
            "per_second",
            "rate",
            "db_rate",
            "tail_ratio",
            "growth",
            "round_trips",
            "queued_rate",
        ):
            if hasattr(value, name):
                plain[name] = getattr(value, name)
        return plain
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
