"""What the audit console draws and downloads: its bar charts as geometry for inline SVG, and a search's events as
CSV.

The charts are drawn by the server: no script runs and no style attribute is written (colours come from classes in
static/css/console.css), so a Content-Security-Policy without 'unsafe-inline' holds. Each chart's numbers are also
given as a table, its text alternative. A CSV cell a spreadsheet would run as a formula is defused.
"""

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC

from audit.console import AccessesOnDay, AlertsInWeek
from consent.access_report import spreadsheet_safe
from records.access_console import EventRow

# The drawing's own units (the viewBox); the stylesheet scales it to the width of the page.
WIDTH = 640
HEIGHT = 220
_LEFT = 40
_RIGHT = 20
_TOP = 12
_BOTTOM = 28


@dataclass(frozen=True)
class Series:
    name: str
    css_class: str


@dataclass(frozen=True)
class Segment:
    y: float
    height: float
    css_class: str


@dataclass(frozen=True)
class Bar:
    """One stacked bar: its segments bottom up, what it says to a pointer (`title`), and its axis label, if any."""

    x: float
    width: float
    centre: float
    segments: list[Segment]
    title: str
    label: str


@dataclass(frozen=True)
class BarChart:
    width: int
    height: int
    left: int
    right: int
    top: int
    baseline: int
    # Where the scale's numbers end (to the left of the plot) and where the axis labels sit (below it).
    tick_x: int
    label_y: int
    top_value: int
    series: list[Series]
    bars: list[Bar]


def stacked_bar_chart(
    columns: Sequence[tuple[str, str, Sequence[int]]], series: Sequence[Series], *, label_every: int
) -> BarChart:
    """Bars for `columns` (each an axis label, a title and one value per series), scaled so the tallest reaches the
    top. Every `label_every`-th column counted back from the last is labelled on the axis, so the newest always is.
    """
    baseline = HEIGHT - _BOTTOM
    plot_height = baseline - _TOP
    top_value = max([sum(values) for _, _, values in columns] + [1])
    slot = (WIDTH - _LEFT - _RIGHT) / max(len(columns), 1)
    bars = []
    for index, (label, title, values) in enumerate(columns):
        x = _LEFT + index * slot
        y = float(baseline)
        segments = []
        for value, kind in zip(values, series, strict=True):
            height = round(value / top_value * plot_height, 2)
            y = round(y - height, 2)
            if value:
                segments.append(Segment(y=y, height=height, css_class=kind.css_class))
        shown = (len(columns) - 1 - index) % label_every == 0
        bars.append(
            Bar(
                x=round(x + slot * 0.15, 2),
                width=round(slot * 0.7, 2),
                centre=round(x + slot / 2, 2),
                segments=segments,
                title=title,
                label=label if shown else "",
            )
        )
    return BarChart(
        width=WIDTH,
        height=HEIGHT,
        left=_LEFT,
        right=WIDTH - _RIGHT,
        top=_TOP,
        baseline=baseline,
        tick_x=_LEFT - 6,
        label_y=HEIGHT - 8,
        top_value=top_value,
        series=list(series),
        bars=bars,
    )


ACCESS_SERIES = (Series("Allowed", "chart-allowed"), Series("Denied", "chart-denied"))
ALERT_SERIES = (Series("Reviewed", "chart-reviewed"), Series("Open", "chart-open"))


def accesses_chart(days: Sequence[AccessesOnDay]) -> BarChart:
    """Accesses per day, allowed at the foot of each bar and denied above; a weekly label on the axis."""
    return stacked_bar_chart(
        [
            (
                f"{on.day.day} {on.day:%b}",
                f"{on.day:%a} {on.day.day} {on.day:%b %Y}: {on.allowed} allowed, {on.denied} denied",
                (on.allowed, on.denied),
            )
            for on in days
        ],
        ACCESS_SERIES,
        label_every=7,
    )


def alerts_chart(weeks: Sequence[AlertsInWeek]) -> BarChart:
    """Alerts raised per week, reviewed at the foot of each bar and open above; every third week labelled."""
    return stacked_bar_chart(
        [
            (
                f"{week.week_start.day} {week.week_start:%b}",
                f"Week of {week.week_start.day} {week.week_start:%b %Y}: {week.open} open, {week.reviewed} reviewed",
                (week.reviewed, week.open),
            )
            for week in weeks
        ],
        ALERT_SERIES,
        label_every=3,
    )


# The download.

CSV_HEADER = (
    "When (UTC)",
    "User",
    "Job role",
    "Organisation",
    "Action",
    "Purpose",
    "Outcome",
    "Patient",
    "NHS number",
    "Basis",
    "Reason",
)


def event_rows_csv(rows: Iterable[EventRow]) -> str:
    """The rows as CSV, one event a line in the order given, with the header `CSV_HEADER`."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_HEADER)
    for row in rows:
        event = row.event
        patient = row.patient
        cells = (
            event.occurred_at.astimezone(UTC).isoformat(timespec="seconds"),
            event.username,
            row.role,
            row.organisation,
            row.action,
            row.purpose,
            row.outcome,
            patient.full_name if patient is not None else "",
            patient.nhs_number_display if patient is not None else "",
            row.basis,
            event.reason,
        )
        writer.writerow([spreadsheet_safe(value) for value in cells])
    return out.getvalue()
