"""The audit console's accesses per day, read from counts kept for the days that are over and from the events of
the days that are not, so the chart's cost does not grow with the trail.

A day (a calendar day in the site's time zone, as the chart draws it) is kept in `AccessDayCount` once it is settled:
over by at least `SETTLED_AFTER`. The chart reads its kept days in one query and counts the rest (today, and
yesterday just after midnight) from the events by a range of the `occurred_at` index; a settled day not yet kept is
counted from the events with them, in the same query, and kept.

What always holds:
- a kept day's counts equal a count of that day's events, forever, because no event can join a day once it is
  settled. Every event is appended by `audit.services.access_event_record`, which stamps it with the server's time
  while holding the chain's lock and holds that lock until its transaction commits. Settled days are counted while
  holding the same lock, so every event stamped before that moment has committed and is seen by the count (each
  statement reads a fresh snapshot at READ COMMITTED); every later event is stamped later, on a clock that may lag
  this one's by less than `SETTLED_AFTER`, so after the settled day's end. (The bench generator writes past events
  directly, and removes the kept counts when it does.)
- a purge cannot make a kept day stale: it removes only events older than AUDIT_RETENTION_DAYS (at least 365),
  long before the chart's window, and the days before the window are not kept (removed whenever days are kept).
- today and any day not yet settled are always counted live, and nothing is written for them.
- the counts touch the trail only by reading it: nothing here is a trigger on the events or runs in an append.
"""

from datetime import date, datetime, timedelta

from django.db import transaction
from django.db.models import Count, Q
from django.db.models.functions import TruncDate
from django.utils import timezone

from audit.console import AccessesOnDay, day_start
from audit.models import AccessDayCount, AccessEvent
from sharedcare import advisory_locks

# Far more than servers' clocks drift apart under NTP, and short enough that yesterday is kept soon after midnight.
SETTLED_AFTER = timedelta(minutes=5)


def _counted_from(start: datetime, now: datetime) -> dict[date, tuple[int, int]]:
    """Allowed and denied accesses on each day from `start` up to `now`, by day, in one query."""
    rows = (
        AccessEvent.objects.filter(occurred_at__gte=start, occurred_at__lte=now)
        .annotate(day=TruncDate("occurred_at", tzinfo=timezone.get_current_timezone()))
        .values("day")
        .annotate(
            allowed=Count("id", filter=Q(outcome=AccessEvent.Outcome.ALLOWED)),
            denied=Count("id", filter=Q(outcome=AccessEvent.Outcome.DENIED)),
        )
    )
    return {row["day"]: (row["allowed"], row["denied"]) for row in rows}


def access_counts_per_day_kept(*, now: datetime, days: int = 30) -> list[AccessesOnDay]:
    """Allowed and denied accesses on each of the `days` days up to and including `now`'s day, oldest first, as
    `audit.console.access_counts_per_day` counts them, reading the settled days' kept counts.

    Two queries when every settled day is kept (the kept days, then the rest from the events); when some are not,
    the chain's lock, one count from the oldest missing day up to `now`, the insert of the missing days and the
    removal of kept days before the window: five, however many days are missing. Runs in the caller's transaction,
    or its own; safe to run at once in two (a day counted twice is kept once, with the same counts).
    """
    today = timezone.localdate(now)
    first = today - timedelta(days=days - 1)
    window = [first + timedelta(days=offset) for offset in range(days)]
    settled = [day for day in window if day_start(day + timedelta(days=1)) + SETTLED_AFTER <= now]
    kept = {
        row.day: (row.allowed, row.denied)
        for row in AccessDayCount.objects.filter(day__gte=first, day__lte=today)
        if row.day in settled
    }
    missing = [day for day in settled if day not in kept]
    live_from = missing[0] if missing else first + timedelta(days=len(settled))
    with transaction.atomic(savepoint=False):
        if missing:
            # Every event stamped before now has committed once this is held (see the module's docstring).
            advisory_locks.audit_chain_lock()
        counted = _counted_from(day_start(live_from), now)
        if missing:
            AccessDayCount.objects.bulk_create(
                [
                    AccessDayCount(
                        day=day,
                        allowed=counted.get(day, (0, 0))[0],
                        denied=counted.get(day, (0, 0))[1],
                        counted_at=now,
                    )
                    for day in missing
                ],
                ignore_conflicts=True,
            )
            AccessDayCount.objects.filter(day__lt=first).delete()
    counts = {**counted, **kept}
    return [
        AccessesOnDay(day=day, allowed=counts.get(day, (0, 0))[0], denied=counts.get(day, (0, 0))[1])
        for day in window
    ]
