"""Reads of the access trail for the privacy officer's audit console: the events a search names, one user's
activity, and the counts the console's charts draw.

`audit` is a leaf: a patient is an id and a user is an id plus who they were. Whether anyone may read these is
decided above, by the door (`records.access_console`), which audits every call; these functions only read.

What always holds: events come newest first (by when they occurred, then by id); a day or a week is a calendar day
or a Monday-to-Sunday week in the site's time zone; a date range includes both its days; every count is made by
the database in one query, whatever the number of events.
"""

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.db.models import Count, DateField, Q, QuerySet
from django.db.models.functions import TruncDate, TruncWeek
from django.utils import timezone

from audit.models import AccessEvent, Alert

NEWEST_FIRST = ("-occurred_at", "-id")


@dataclass(frozen=True)
class EventFilter:
    """What a search of the trail narrows to; a field left empty narrows nothing.

    `patient_ids` are the records of one patient (theirs and those merged into it); `date_to` includes its day.
    """

    patient_ids: tuple[int, ...] = ()
    user_id: int | None = None
    username: str = ""
    organisation_ods: str = ""
    date_from: date | None = None
    date_to: date | None = None
    action: str = ""
    outcome: str = ""


def day_start(day: date) -> datetime:
    """The first moment of `day` in the site's time zone."""
    return timezone.make_aware(datetime.combine(day, time.min))


def access_events_filter(narrowed: EventFilter) -> QuerySet[AccessEvent]:
    """The events `narrowed` names, newest first."""
    events = AccessEvent.objects.all()
    if narrowed.patient_ids:
        events = events.filter(patient_id__in=narrowed.patient_ids)
    if narrowed.user_id is not None:
        events = events.filter(user_id=narrowed.user_id)
    if narrowed.username:
        events = events.filter(username=narrowed.username)
    if narrowed.organisation_ods:
        events = events.filter(organisation_ods=narrowed.organisation_ods)
    if narrowed.date_from is not None:
        events = events.filter(occurred_at__gte=day_start(narrowed.date_from))
    if narrowed.date_to is not None:
        events = events.filter(occurred_at__lt=day_start(narrowed.date_to + timedelta(days=1)))
    if narrowed.action:
        events = events.filter(action=narrowed.action)
    if narrowed.outcome:
        events = events.filter(outcome=narrowed.outcome)
    return events.order_by(*NEWEST_FIRST)


# The console's charts.


@dataclass(frozen=True)
class AccessesOnDay:
    day: date
    allowed: int
    denied: int


@dataclass(frozen=True)
class AlertsInWeek:
    """Alerts raised in the week beginning on Monday `week_start`, by whether they had been reviewed by then."""

    week_start: date
    open: int
    reviewed: int


def access_counts_per_day(*, now: datetime, days: int = 30) -> list[AccessesOnDay]:
    """Allowed and denied accesses on each of the `days` days up to and including `now`'s day, oldest first; a
    day without any is there with noughts. A search that matched nobody is neither, and is not counted."""
    today = timezone.localdate(now)
    first = today - timedelta(days=days - 1)
    rows = (
        AccessEvent.objects.filter(occurred_at__gte=day_start(first), occurred_at__lte=now)
        .annotate(day=TruncDate("occurred_at", tzinfo=timezone.get_current_timezone()))
        .values("day")
        .annotate(
            allowed=Count("id", filter=Q(outcome=AccessEvent.Outcome.ALLOWED)),
            denied=Count("id", filter=Q(outcome=AccessEvent.Outcome.DENIED)),
        )
    )
    counted = {row["day"]: (row["allowed"], row["denied"]) for row in rows}
    return [
        AccessesOnDay(day=day, allowed=counted.get(day, (0, 0))[0], denied=counted.get(day, (0, 0))[1])
        for day in (first + timedelta(days=offset) for offset in range(days))
    ]


def alert_counts_per_week(*, now: datetime, weeks: int = 12) -> list[AlertsInWeek]:
    """Alerts raised in each of the `weeks` weeks up to and including `now`'s week, oldest first, split into
    those still open at `now` and those reviewed by then; a week without any is there with noughts."""
    today = timezone.localdate(now)
    this_week = today - timedelta(days=today.weekday())
    first = this_week - timedelta(weeks=weeks - 1)
    rows = (
        Alert.objects.filter(raised_at__gte=day_start(first), raised_at__lte=now)
        .annotate(
            week=TruncWeek("raised_at", tzinfo=timezone.get_current_timezone(), output_field=DateField())
        )
        .values("week")
        .annotate(
            total=Count("id"),
            reviewed=Count("id", filter=Q(reviewed_at__isnull=False, reviewed_at__lte=now)),
        )
    )
    counted = {row["week"]: (row["total"] - row["reviewed"], row["reviewed"]) for row in rows}
    return [
        AlertsInWeek(
            week_start=week, open=counted.get(week, (0, 0))[0], reviewed=counted.get(week, (0, 0))[1]
        )
        for week in (first + timedelta(weeks=offset) for offset in range(weeks))
    ]
