"""The feed monitor's rows: a feed's cells, and the chart of its runs by day (bars, and the table that reads the same
counts out).

Built in Python: the monitor shows every feed with fourteen days of runs, twice, and a template's nodes cost far more
a feed than the same markup built here (at 116 feeds the template took most of a second). Text goes through
`format_html` or `escape`; dates and numbers through the template filters themselves (`date`, `floatformat`,
`timesince`), so the page reads as the template wrote it. Each tag's docstring shows the markup it writes.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING, Protocol

from django import template
from django.template import defaultfilters
from django.urls import reverse
from django.utils.formats import get_format
from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe

from records.models import Feed, IngestRun

if TYPE_CHECKING:
    from records.backoffice.monitor import FeedHealth

register = template.Library()


class ChartDay(Protocol):
    """What these tags read of a day (`records.backoffice.monitor.ChartDay`, which this layer may not import)."""

    @property
    def day(self) -> date: ...
    @property
    def label(self) -> str: ...
    @property
    def runs(self) -> int: ...
    @property
    def failed(self) -> int: ...
    @property
    def resources_read(self) -> int: ...
    @property
    def x(self) -> int: ...
    @property
    def read_y(self) -> int: ...
    @property
    def read_height(self) -> int: ...
    @property
    def failed_x(self) -> int: ...
    @property
    def failed_y(self) -> int: ...
    @property
    def failed_height(self) -> int: ...


class RunChart(Protocol):
    @property
    def days(self) -> Sequence[ChartDay]: ...
    @property
    def height(self) -> int: ...
    @property
    def slot(self) -> int: ...
    @property
    def read_bar_width(self) -> int: ...
    @property
    def failed_bar_width(self) -> int: ...


def _plural(count: int) -> str:
    return "" if count == 1 else "s"


def _grouped(number: int, separator: str) -> str:
    """The number with its thousands separated, as `floatformat:"0g"` writes it (groups of three)."""
    return f"{number:,d}".replace(",", separator)


# Every value put into these is an int written with `:d` (so it cannot be markup) or text escaped on the way in: built
# with str.format rather than format_html, whose escaping of every int is most of the chart's cost at a hundred feeds.
_DAY = (
    "<g><title>{label}: {runs:d} run{runs_plural}, {failed:d} failed, {read:d} read</title>"
    '<rect x="{x:d}" y="0" width="{slot:d}" height="{height:d}" fill="transparent"/>{read_bar}{failed_bar}</g>'
)
_READ_BAR = (
    '<rect class="bar-read" x="{x:d}" y="{y:d}" width="{width:d}" height="{height:d}" fill="#005eb8"/>'
)
_FAILED_BAR = (
    '<rect class="bar-failed" x="{x:d}" y="{y:d}" width="{width:d}" height="{height:d}" fill="#d5281b"/>'
)
_ROW = '<tr><th scope="row">{label}</th><td>{runs:d}</td><td>{failed:d}</td><td>{read}</td></tr>'


def _day(chart: RunChart, day: ChartDay) -> str:
    read_bar = failed_bar = ""
    if day.read_height:
        read_bar = _READ_BAR.format(x=day.x, y=day.read_y, width=chart.read_bar_width, height=day.read_height)
    if day.failed_height:
        failed_bar = _FAILED_BAR.format(
            x=day.failed_x, y=day.failed_y, width=chart.failed_bar_width, height=day.failed_height
        )
    return _DAY.format(
        label=escape(day.label),
        runs=day.runs,
        runs_plural=_plural(day.runs),
        failed=day.failed,
        read=day.resources_read,
        x=day.x,
        slot=chart.slot,
        height=chart.height,
        read_bar=read_bar,
        failed_bar=failed_bar,
    )


@register.simple_tag
def run_chart_days(chart: RunChart) -> SafeString:
    """A `<g>` a day, its title the day's counts, a transparent slot and its bars::

    <g><title>Mon 9 Mar: 2 runs, 1 failed, 1000 read</title><rect x="113" y="0" width="14" height="48"
    fill="transparent"/><rect class="bar-read" …/><rect class="bar-failed" …/></g>
    """
    return mark_safe("".join(_day(chart, day) for day in chart.days))  # noqa: S308 - ints and escaped text only


@register.simple_tag
def run_chart_rows(chart: RunChart) -> SafeString:
    """The same days as table rows, the resources read grouped by thousands::

    <tr><th scope="row">Mon 9 Mar</th><td>2</td><td>1</td><td>1,000</td></tr>
    """
    separator = str(get_format("THOUSAND_SEPARATOR"))
    rows = (
        _ROW.format(
            label=escape(day.label),
            runs=day.runs,
            failed=day.failed,
            read=escape(_grouped(day.resources_read, separator)),
        )
        for day in chart.days
    )
    return mark_safe("".join(rows))  # noqa: S308 - ints and escaped text only


# A feed's row, but for its chart: its cells are most of the monitor's template work at a hundred feeds.


def _date(moment: datetime, style: str) -> str:
    return str(defaultfilters.date(moment, style))


def _count(number: float) -> str:
    """As `floatformat:"0g"` writes it: a whole number grouped by thousands (without the filter's Decimal work, for
    the counts, which are whole), anything else rounded by the filter."""
    if isinstance(number, int):
        return _grouped(number, str(get_format("THOUSAND_SEPARATOR")))
    return str(defaultfilters.floatformat(number, "0g"))


def _percent(value: float | None) -> SafeString:
    return (
        format_html(" ({}%)", defaultfilters.floatformat(value, 1)) if value is not None else SafeString("")
    )


def _feed_cell(feed: Feed) -> SafeString:
    return format_html(
        '<th scope="row"><a href="{}">{}</a><br> {}<br><span class="quiet">{} ({})</span><br>'
        '<span class="quiet" title="{}; {}">{} · {}</span></th>',
        reverse("admin:records_feed_change", args=[feed.pk]),
        feed.code,
        feed.name,
        feed.organisation.name,
        feed.organisation.ods_code,
        feed.get_source_display(),
        feed.get_format_display(),
        feed.source,
        feed.format.upper(),
    )


def _state_cell(row: FeedHealth) -> SafeString:
    stale = SafeString('<br><strong class="stale-badge">STALE</strong>') if row.is_stale else SafeString("")
    return format_html(
        '<td> {}<br><span class="quiet">{}</span>{}</td>', row.feed.get_state_display(), row.schedule, stale
    )


def _last_run_cell(run: IngestRun | None) -> SafeString:
    if run is None:
        return SafeString('<td class="numbers"> never run </td>')
    duration = run.duration_seconds
    per_second = run.resources_per_second
    return format_html(
        '<td class="numbers"><a href="{}"><time datetime="{}">{}</time></a><br><span class="{}">{}</span> ({})<br>'
        " {}, {} </td>",
        reverse("admin:records_ingestrun_change", args=[run.pk]),
        _date(run.started_at, "c"),
        _date(run.started_at, "j M Y, H:i"),
        "run-failed" if run.status == "failed" else "",
        run.get_status_display(),
        run.get_trigger_display().lower(),
        f"{defaultfilters.floatformat(duration, 1)} s" if duration is not None else "—",
        f"{_count(per_second)} resources/s" if per_second is not None else "— resources/s",
    )


def _last_success_cell(feed: Feed, now: datetime) -> SafeString:
    if not feed.last_success_at:
        return SafeString('<td class="numbers"> never </td>')
    return format_html(
        '<td class="numbers"><time datetime="{}">{}</time><br><span class="quiet">lag {}</span></td>',
        _date(feed.last_success_at, "c"),
        _date(feed.last_success_at, "j M Y, H:i"),
        defaultfilters.timesince_filter(feed.last_success_at, now),
    )


def _run_counts_cell(run: IngestRun | None) -> SafeString:
    if run is None:
        return SafeString('<td class="numbers"> — </td>')
    return format_html(
        '<td class="numbers"> read {}<br> created {}, updated {}<br> unchanged {}, quarantined {} </td>',
        _count(run.resources_read),
        _count(run.created),
        _count(run.updated),
        _count(run.unchanged),
        _count(run.quarantined),
    )


def _errors_cell(row: FeedHealth) -> SafeString:
    return format_html(
        '<td class="numbers"> failed runs {} of {}{}<br> quarantined {} of {} read{} </td>',
        row.failed_runs,
        row.runs,
        _percent(row.failed_run_percent),
        _count(row.quarantined),
        _count(row.resources_read),
        _percent(row.quarantined_percent),
    )


def _pending_cell(row: FeedHealth, quarantine_url: str) -> SafeString:
    return format_html(
        '<td class="numbers"><a href="{}?feed__id__exact={}&amp;status__exact=pending">{} pending'
        '<span class="visually-hidden"> quarantined records of {}</span></a></td>',
        quarantine_url,
        row.feed.pk,
        row.pending_quarantine,
        row.feed.code,
    )


@register.simple_tag
def feed_health_cells(row: FeedHealth, now: datetime, quarantine_url: str) -> SafeString:
    """A feed's cells before its chart: the feed (linked, with its partner, source and format), its state and
    schedule (and STALE), its last run, its last success and lag, the last run's counts, the error rates and the
    pending quarantine (linked to the records)::

    <th scope="row"><a href="/admin/records/feed/7/change/">cuh-pathology</a><br> Pathology results<br>…</th>
    <td> Live<br><span class="quiet">every hour</span></td><td class="numbers">…</td>…
    """
    return format_html(
        "{}{}{}{}{}{}{}",
        _feed_cell(row.feed),
        _state_cell(row),
        _last_run_cell(row.last_run),
        _last_success_cell(row.feed, now),
        _run_counts_cell(row.last_run),
        _errors_cell(row),
        _pending_cell(row, quarantine_url),
    )
