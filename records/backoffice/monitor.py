"""Reads for the back-office feed monitor: per feed, its state, last run, lag, error rates and runs over time.

`feed_health_list` makes the same five queries whatever the number of feeds and runs: everything per run is
aggregated in the database, never counted in Python, and each query reads only what the page shows: a feed's last
run through the `ingest_run_feed_newest` index, the runs of the chart's days and the error window through
`ingest_run_started`, and the pending quarantine through `quarantine_pending_feed` (records migration 0010), so
none reads every run a feed ever had.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.db.models import Count, IntegerField, OuterRef, Q, Subquery, Sum
from django.db.models.functions import Coalesce, TruncDate
from django.utils import dateformat, timezone

from records.models import Feed, IngestRun, QuarantinedRecord

ERROR_RATE_WINDOW = timedelta(days=7)
CHART_DAYS = 14
# Chart geometry, in SVG user units: one slot per day holding a bar for resources read and one for failed runs.
CHART_HEIGHT = 48
CHART_SLOT = 14
_READ_BAR_WIDTH = 8
_FAILED_BAR_WIDTH = 4
# A failed run shows even on a day whose other runs read a great deal.
_FAILED_BAR_MIN_HEIGHT = 4


@dataclass(frozen=True)
class ChartDay:
    """One day of a feed's runs, with the bars that draw it."""

    day: date
    # The day as the chart's title and table name it ("Mon 9 Mar"): formatted once a page, not once a feed.
    label: str
    runs: int
    failed: int
    resources_read: int
    x: int
    read_y: int
    read_height: int
    failed_x: int
    failed_y: int
    failed_height: int


@dataclass(frozen=True)
class RunChart:
    days: list[ChartDay]
    width: int
    height: int
    slot: int
    read_bar_width: int
    failed_bar_width: int
    runs: int
    failed: int
    resources_read: int


@dataclass(frozen=True)
class FeedHealth:
    """How one feed is doing, as of `now`."""

    feed: Feed
    is_stale: bool
    lag: timedelta | None  # now - last success; None when it never succeeded
    last_run: IngestRun | None
    # Over ERROR_RATE_WINDOW, all runs (replays included).
    runs: int
    failed_runs: int
    resources_read: int
    quarantined: int
    pending_quarantine: int
    chart: RunChart

    @property
    def attention(self) -> int:
        """How urgently the back office should look at this feed: 0 stale, 1 last run failed, 2 records waiting in
        quarantine, 3 nothing to do. The monitor lists feeds in this order."""
        if self.is_stale:
            return 0
        if self.last_run is not None and self.last_run.status == IngestRun.Status.FAILED:
            return 1
        return 2 if self.pending_quarantine else 3

    @property
    def failed_run_percent(self) -> float | None:
        return 100 * self.failed_runs / self.runs if self.runs else None

    @property
    def quarantined_percent(self) -> float | None:
        return 100 * self.quarantined / self.resources_read if self.resources_read else None

    @property
    def schedule(self) -> str:
        minutes = self.feed.schedule_minutes
        for unit, size in (("day", 24 * 60), ("hour", 60)):
            if minutes and minutes % size == 0:
                count = minutes // size
                return f"every {unit}" if count == 1 else f"every {count} {unit}s"
        return "every minute" if minutes == 1 else f"every {minutes} minutes"


def _chart(days: dict[date, str], rows: dict[date, dict[str, int]]) -> RunChart:
    busiest = max((row["read"] for row in rows.values()), default=0)
    most_runs = max((row["runs"] for row in rows.values()), default=0)
    drawn: list[ChartDay] = []
    for index, (day, label) in enumerate(days.items()):
        row = rows.get(day, {"runs": 0, "failed": 0, "read": 0})
        read_height = round(CHART_HEIGHT * row["read"] / busiest) if busiest else 0
        failed_height = 0
        if row["failed"]:
            failed_height = max(_FAILED_BAR_MIN_HEIGHT, round(CHART_HEIGHT * row["failed"] / most_runs))
        x = index * CHART_SLOT + 1
        drawn.append(
            ChartDay(
                day=day,
                label=label,
                runs=row["runs"],
                failed=row["failed"],
                resources_read=row["read"],
                x=x,
                read_y=CHART_HEIGHT - read_height,
                read_height=read_height,
                failed_x=x + _READ_BAR_WIDTH,
                failed_y=CHART_HEIGHT - failed_height,
                failed_height=failed_height,
            )
        )
    return RunChart(
        days=drawn,
        width=CHART_DAYS * CHART_SLOT,
        height=CHART_HEIGHT,
        slot=CHART_SLOT,
        read_bar_width=_READ_BAR_WIDTH,
        failed_bar_width=_FAILED_BAR_WIDTH,
        runs=sum(day.runs for day in drawn),
        failed=sum(day.failed for day in drawn),
        resources_read=sum(day.resources_read for day in drawn),
    )


def feed_health_list(now: datetime) -> list[FeedHealth]:
    """Every feed with its last run, lag, staleness, pending quarantine, error rates and a chart of recent runs;
    those needing attention first (`FeedHealth.attention`), then by partner and feed name.

    Error rates cover the ERROR_RATE_WINDOW before `now`; the chart covers the CHART_DAYS local days up to today.
    """
    failed = Q(status=IngestRun.Status.FAILED)
    last_run_id = (
        IngestRun.objects.filter(feed=OuterRef("pk")).order_by("-started_at", "-pk").values("pk")[:1]
    )
    feeds = list(
        Feed.objects.select_related("organisation")
        .annotate(last_run_id=Subquery(last_run_id, output_field=IntegerField()))
        .order_by("organisation__name", "name")
    )
    last_runs = IngestRun.objects.in_bulk([feed.last_run_id for feed in feeds if feed.last_run_id])
    window: dict[int, dict[str, int]] = {
        row["feed_id"]: {
            "runs": row["runs"],
            "failed": row["failed"],
            "read": row["read"],
            "quarantined": row["quarantined"],
        }
        for row in IngestRun.objects.filter(started_at__gte=now - ERROR_RATE_WINDOW, started_at__lte=now)
        .values("feed_id")
        .annotate(
            runs=Count("pk"),
            failed=Count("pk", filter=failed),
            read=Coalesce(Sum("resources_read"), 0),
            quarantined=Coalesce(Sum("quarantined"), 0),
        )
        .order_by()
    }
    pending = dict(
        QuarantinedRecord.objects.filter(status=QuarantinedRecord.Status.PENDING)
        .values("feed_id")
        .annotate(count=Count("pk"))
        .order_by()
        .values_list("feed_id", "count")
    )
    first_day = timezone.localdate(now) - timedelta(days=CHART_DAYS - 1)
    chart_days = {
        day: dateformat.format(day, "D j M")
        for day in (first_day + timedelta(days=offset) for offset in range(CHART_DAYS))
    }
    chart_start = datetime.combine(first_day, time.min, tzinfo=timezone.get_current_timezone())
    by_day: dict[int, dict[date, dict[str, int]]] = {}
    for row in (
        IngestRun.objects.filter(started_at__gte=chart_start, started_at__lte=now)
        .annotate(day=TruncDate("started_at"))
        .values("feed_id", "day")
        .annotate(
            runs=Count("pk"), failed=Count("pk", filter=failed), read=Coalesce(Sum("resources_read"), 0)
        )
        .order_by()
    ):
        by_day.setdefault(row["feed_id"], {})[row["day"]] = {
            "runs": row["runs"],
            "failed": row["failed"],
            "read": row["read"],
        }
    health: list[FeedHealth] = []
    for feed in feeds:
        counts = window.get(feed.pk, {})
        health.append(
            FeedHealth(
                feed=feed,
                is_stale=feed.is_stale(now),
                lag=now - feed.last_success_at if feed.last_success_at else None,
                last_run=last_runs.get(feed.last_run_id) if feed.last_run_id else None,
                runs=counts.get("runs", 0),
                failed_runs=counts.get("failed", 0),
                resources_read=counts.get("read", 0),
                quarantined=counts.get("quarantined", 0),
                pending_quarantine=pending.get(feed.pk, 0),
                chart=_chart(chart_days, by_day.get(feed.pk, {})),
            )
        )
    # Stable: within each level of attention, by partner and feed name as queried.
    return sorted(health, key=lambda row: row.attention)
