"""The report's charts, drawn with matplotlib: figures in, PNG bytes and SVG text out (no file, no state).

matplotlib is imported only when a run renders its charts (seconds on a busy machine), never by importing this
module. Figures are built with the object-oriented API (no pyplot, no global figure registry: safe in a
thread), PNG through Agg; the SVG keeps its text as text (searchable, readable by screen readers) and its ids
stable (a fixed hash salt), and carries no date, so the same figures give the same bytes.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flows.report.render import Report, number, percent

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

PNG_DPI = 110
FIGURE_SIZE = (7.2, 3.6)  # inches: 792 x 396 pixels at PNG_DPI
COLOURS = {"main": "#3366aa", "accent": "#ee7733", "muted": "#c8d0dc", "text": "#222222"}
_SVG_RC: dict[str, Any] = {"svg.fonttype": "none", "svg.hashsalt": "persons-report", "font.size": 10}
_SVG_START = re.compile(r"<svg\b")
_DOCTYPE = re.compile(r"<!DOCTYPE[^>]*>\s*")
_NAMESPACES = re.compile(r'\s+xmlns(?::xlink)?="[^"]*"')


@dataclass(frozen=True)
class RunQuality:
    """One run of the quality trend: its batches' verdicts and its quarantine rate (counts only)."""

    run_id: str
    started_at: str
    batches: int
    merged_batches: int
    rejected_batches: int
    held_back_batches: int
    merged_pct: float | None
    quarantined_pct: float | None


@dataclass(frozen=True)
class Chart:
    """One rendered chart: its file stem, title, PNG bytes and standalone SVG text."""

    name: str
    title: str
    png: bytes
    svg: str

    def inline_svg(self) -> str:
        """The SVG as an element of an HTML page: no prolog, no doctype, no namespaces (HTML needs none)."""
        found = _SVG_START.search(self.svg)
        element = self.svg[found.start() :] if found else self.svg
        return _NAMESPACES.sub("", element, count=2)


def _no_data(axes: Axes, message: str) -> None:
    axes.text(0.5, 0.5, message, ha="center", va="center", transform=axes.transAxes, color="#666666")
    axes.set_axis_off()


def draw_age_groups(axes: Axes, report: Report) -> None:
    """Persons per age group (groups under k are withheld by the reporting model, so absent here)."""
    groups = [row["age_group"] for row in report.age_groups]
    persons = [row["persons"] for row in report.age_groups]
    if not groups:
        _no_data(axes, "no age group with at least k persons")
        return
    bars = axes.bar(groups, persons, color=COLOURS["main"])
    axes.bar_label(bars, labels=[number(count) for count in persons], fontsize=8, padding=2)
    axes.set_ylabel("persons")
    axes.set_xlabel("age group at the reference date")
    axes.tick_params(axis="x", labelrotation=45, labelsize=8)
    axes.margins(y=0.15)


def draw_top_gmail_countries(axes: Axes, report: Report) -> None:
    """The countries with the most Gmail users, the first on top."""
    rows = list(reversed(report.top_gmail_countries))
    if not rows:
        _no_data(axes, "no country with at least k Gmail users")
        return
    bars = axes.barh([row["country"] for row in rows], [row["gmail_users"] for row in rows])
    for bar in bars:
        bar.set_color(COLOURS["accent"])
    axes.bar_label(bars, labels=[number(row["gmail_users"]) for row in rows], fontsize=9, padding=3)
    axes.set_xlabel("Gmail users")
    axes.margins(x=0.15)


def draw_gmail_germany_share(axes: Axes, report: Report) -> None:
    """Gmail users in Germany as a share of all persons: a ring, the share in its middle."""
    share = report.gmail_germany_share_pct
    if share is None:
        _no_data(axes, "no persons published")
        return
    axes.pie(
        [share, max(100.0 - share, 0.0)],
        colors=[COLOURS["accent"], COLOURS["muted"]],
        startangle=90,
        counterclock=False,
        wedgeprops={"width": 0.35, "edgecolor": "white"},
    )
    axes.text(0, 0, percent(share), ha="center", va="center", fontsize=16, color=COLOURS["text"])
    axes.legend(["Gmail users in Germany", "all other persons"], loc="center left", bbox_to_anchor=(1.0, 0.5))
    axes.set_aspect("equal")


TREND_MERGED = "batches merged (% of the run's batches)"
# The anonymiser's record counts of every batch the run received, rejected ones included: not the report's
# quarantined figure (persons held back from the published data).
TREND_HELD_BACK = "records quarantined in the run (% of records it received)"


def draw_quality_trend(axes: Axes, trend: Sequence[RunQuality]) -> None:
    """Per run, oldest first: the share of batches merged and the share of records held back by cleaning."""
    if not trend:
        _no_data(axes, "no run recorded yet")
        return
    positions = list(range(1, len(trend) + 1))
    merged = [float("nan") if run.merged_pct is None else run.merged_pct for run in trend]
    quarantined = [float("nan") if run.quarantined_pct is None else run.quarantined_pct for run in trend]
    axes.plot(positions, merged, marker="o", color=COLOURS["main"], label=TREND_MERGED)
    axes.plot(positions, quarantined, marker="s", color=COLOURS["accent"], label=TREND_HELD_BACK)
    labels = [f"{run.started_at[:16].replace('T', ' ')}\n{run.run_id[:8]}" for run in trend]
    axes.set_xticks(positions, labels, fontsize=7)
    axes.set_ylim(-5, 105)
    axes.set_ylabel("% of the run")
    axes.grid(axis="y", color="#e5e5e5")
    axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncols=2, fontsize=8, frameon=False)


CHARTS: tuple[tuple[str, str], ...] = (
    ("age_groups", "Persons per age group"),
    ("top_gmail_countries", "Top Gmail countries"),
    ("gmail_germany_share", "Gmail users in Germany"),
    ("quality_trend", "Quality over the last runs"),
)


def _figure(draw: Callable[[Axes], None]) -> Figure:
    from matplotlib.figure import Figure  # noqa: PLC0415 - matplotlib only where charts are drawn

    figure = Figure(figsize=FIGURE_SIZE, layout="constrained")
    draw(figure.add_subplot())
    return figure


def _encode(figure: Figure) -> tuple[bytes, str]:
    """PNG bytes (Agg) and SVG text of a figure, without a timestamp."""
    png, svg = io.BytesIO(), io.StringIO()
    figure.savefig(png, format="png", dpi=PNG_DPI, metadata={"Software": None})
    figure.savefig(svg, format="svg", metadata={"Date": None, "Creator": None, "Format": None, "Type": None})
    return png.getvalue(), _DOCTYPE.sub("", svg.getvalue(), count=1)  # the DTD is never fetched


def render_charts(report: Report, trend: Sequence[RunQuality]) -> list[Chart]:
    """The report's four charts, in the order of the page."""
    import matplotlib  # noqa: PLC0415

    drawers: dict[str, Callable[[Axes], Any]] = {
        "age_groups": lambda axes: draw_age_groups(axes, report),
        "top_gmail_countries": lambda axes: draw_top_gmail_countries(axes, report),
        "gmail_germany_share": lambda axes: draw_gmail_germany_share(axes, report),
        "quality_trend": lambda axes: draw_quality_trend(axes, trend),
    }
    charts = []
    with matplotlib.rc_context(_SVG_RC):  # type: ignore[arg-type]  # keys typed as literals
        for name, title in CHARTS:
            figure = _figure(drawers[name])
            figure.suptitle(title, fontsize=12, color=COLOURS["text"])
            png, svg = _encode(figure)
            charts.append(Chart(name, title, png, svg))
    return charts
