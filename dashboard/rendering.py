"""The pages' templates (``dashboard/templates``) and the filters they format values with."""

from __future__ import annotations

from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup, escape
from starlette.responses import HTMLResponse

from models import utcnow

TEMPLATES = Path(__file__).with_name("templates")


def utc(moment: datetime | None) -> str:
    return "—" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def relative(moment: datetime | None, now: datetime | None = None) -> str:
    """``3 min ago``, ``in 2 h``, ``just now``."""
    if moment is None:
        return ""
    seconds = ((now or utcnow()) - moment).total_seconds()
    ahead, seconds = seconds < 0, abs(seconds)
    if seconds < 10:
        return "just now"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60), ("s", 1)):
        if seconds >= size:
            amount = f"{int(seconds // size)} {unit}"
            return f"in {amount}" if ahead else f"{amount} ago"
    return "just now"  # pragma: no cover (seconds >= 10 matched a unit)


def when(moment: datetime | None) -> Markup:
    """A ``<time>``: UTC, then relative."""
    if moment is None:
        return Markup("—")
    return Markup('<time datetime="{}">{}</time> <span class="ago">({})</span>').format(
        moment.isoformat(), utc(moment), relative(moment)
    )


def money(cents: int | None, currency: str | None) -> str:
    if cents is None:
        return "—"
    return f"{cents / 100:,.2f} {currency or ''}".strip()


def age(seconds: float | None) -> str:
    if not seconds:
        return "none"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"


def shown(value: Any) -> Markup:
    """Any field's value, for the tables that list every field."""
    if isinstance(value, datetime):
        return when(value)
    if value is None:
        return Markup("—")
    return escape(str(value))


@cache
def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(utc=utc, relative=relative, when=when, money=money, age=age, shown=shown)
    return env


def render(template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    page = environment().get_template(template).render(**context)
    return HTMLResponse(page, status_code=status_code)
