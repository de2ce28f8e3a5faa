"""Line charts as server-rendered SVG: no script, no library, readable without colour
(each line is also named in the legend and the table beside it)."""

from __future__ import annotations

from datetime import timedelta

from markupsafe import Markup, escape

from dashboard.overview import Series

WIDTH, HEIGHT = 960, 200
PAD_LEFT, PAD_BOTTOM, PAD_TOP, PAD_RIGHT = 40, 22, 10, 10
COLOURS = {"created": "#2563eb", "completed": "#15803d", "failed": "#b91c1c"}
DASHES = {"created": "", "completed": "6 3", "failed": "2 2"}


def _label(series: Series, index: int) -> str:
    moment = series.start + series.step * index
    return moment.strftime("%H:%M" if series.step < timedelta(hours=1) else "%a %H:00")


def line_chart(series: Series, title: str) -> Markup:
    """An ``<svg>`` with one ``<polyline>`` per kind of count; its points are the counts."""
    buckets = len(next(iter(series.counts.values())))
    top = max([1, *(max(values) for values in series.counts.values())])
    plot_w, plot_h = WIDTH - PAD_LEFT - PAD_RIGHT, HEIGHT - PAD_TOP - PAD_BOTTOM
    x_step = plot_w / max(buckets - 1, 1)

    def y(count: int) -> float:
        return PAD_TOP + plot_h - plot_h * count / top

    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-labelledby="{_id(title)}-title">',
        f'<title id="{_id(title)}-title">{escape(title)}</title>',
        f'<line x1="{PAD_LEFT}" y1="{PAD_TOP + plot_h}" x2="{WIDTH - PAD_RIGHT}" '
        f'y2="{PAD_TOP + plot_h}" class="axis"/>',
        f'<line x1="{PAD_LEFT}" y1="{PAD_TOP}" x2="{PAD_LEFT}" '
        f'y2="{PAD_TOP + plot_h}" class="axis"/>',
        f'<text x="{PAD_LEFT - 4}" y="{PAD_TOP + 8}" text-anchor="end" class="tick">{top}</text>',
        f'<text x="{PAD_LEFT - 4}" y="{PAD_TOP + plot_h}" text-anchor="end" class="tick">0</text>',
    ]
    for index, anchor in ((0, "start"), (buckets // 2, "middle"), (buckets - 1, "end")):
        parts.append(
            f'<text x="{PAD_LEFT + index * x_step:.1f}" y="{HEIGHT - 6}" text-anchor="{anchor}" '
            f'class="tick">{_label(series, index)}</text>'
        )
    for kind, values in series.counts.items():
        points = " ".join(f"{PAD_LEFT + i * x_step:.1f},{y(v):.1f}" for i, v in enumerate(values))
        parts.append(
            f'<polyline data-series="{kind}" fill="none" stroke="{COLOURS[kind]}" '
            f'stroke-width="2" stroke-dasharray="{DASHES[kind]}" points="{points}"/>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def _id(title: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in title.lower())
