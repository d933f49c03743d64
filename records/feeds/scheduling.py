"""Which feeds are due, and one run of a feed: claim it, recover what a dead worker left, fetch and ingest.

A feed is due when it is live, takes its data from a scheduled source (an inbox folder or an HTTP pull), and has no
run that succeeded or is still running which started within its schedule. Beat asks every minute
(`records.feeds_due_dispatch_task`); the dispatch slack below keeps a feed on a one-minute schedule from being
skipped every other tick because its last run started a few seconds after the previous tick.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta

from django.db.models import (
    DateTimeField,
    DurationField,
    Exists,
    ExpressionWrapper,
    OuterRef,
    QuerySet,
    Value,
)
from django.utils import timezone

from records.feeds.http_pull import http_pull_run
from records.feeds.inbox import inbox_run
from records.feeds.locks import FeedBusy, feed_ingest_lock_is_held, feed_run_lock
from records.feeds.results import FeedRunResult, Outcome, RunCommitted, SourceRun
from records.models import Feed, IngestRun

logger = logging.getLogger(__name__)

SCHEDULED_SOURCES = (Feed.Source.INBOX, Feed.Source.HTTP_PULL)
# Half the beat interval: a run that started up to this long after a tick still counts as that tick's run.
DISPATCH_SLACK = timedelta(seconds=30)
# A run row younger than this may belong to a process that created it and is about to take the ingest lock.
ABANDONED_GRACE = timedelta(seconds=2)
ABANDONED_ERROR = "worker lost; the run's transaction was rolled back"


def feeds_due(now: datetime | None = None) -> QuerySet[Feed]:
    """Live feeds with a scheduled source and no succeeded or running run started within their schedule."""
    moment = timezone.now() if now is None else now
    window_start = ExpressionWrapper(
        Value(moment + DISPATCH_SLACK)
        - ExpressionWrapper(
            OuterRef("schedule_minutes") * Value(timedelta(minutes=1)), output_field=DurationField()
        ),
        output_field=DateTimeField(),
    )
    recent = IngestRun.objects.filter(
        feed=OuterRef("pk"),
        status__in=[IngestRun.Status.SUCCEEDED, IngestRun.Status.RUNNING],
        started_at__gt=window_start,
    )
    return (
        Feed.objects.filter(state=Feed.State.LIVE, source__in=SCHEDULED_SOURCES)
        .exclude(Exists(recent))
        .order_by("pk")
    )


def feed_succeeded_recently(feed: Feed, now: datetime | None = None) -> bool:
    """Whether a run of the feed that succeeded started within its schedule (a later message is a duplicate)."""
    moment = timezone.now() if now is None else now
    window_start = moment + DISPATCH_SLACK - timedelta(minutes=feed.schedule_minutes)
    return IngestRun.objects.filter(
        feed=feed, status=IngestRun.Status.SUCCEEDED, started_at__gt=window_start
    ).exists()


def runs_abandoned_recover(feed: Feed) -> list[int]:
    """Mark failed the runs of `feed` left `running` by a process that died; return their ids.

    Call only while holding the feed's run lock, and after checking no other session is inside an ingest run of
    the feed: then a `running` row can only belong to a process whose connection, and with it its transaction and
    locks, is gone. Nothing of such a run was kept, so marking it failed is the whole repair.
    """
    cutoff = timezone.now() - ABANDONED_GRACE
    abandoned = IngestRun.objects.filter(feed=feed, status=IngestRun.Status.RUNNING, started_at__lt=cutoff)
    run_ids = list(abandoned.values_list("pk", flat=True))
    if run_ids:
        IngestRun.objects.filter(pk__in=run_ids, status=IngestRun.Status.RUNNING).update(
            status=IngestRun.Status.FAILED, finished_at=timezone.now(), error=ABANDONED_ERROR
        )
        logger.warning("feed %s: runs %s were abandoned by a lost worker; marked failed", feed.code, run_ids)
    return run_ids


def feed_run(
    feed: Feed, *, trigger: str, progress: bool = False, on_run_committed: RunCommitted | None = None
) -> FeedRunResult:
    """One run of an inbox or HTTP-pull feed, now: claim the feed, recover abandoned runs, fetch, ingest.

    Always holds: at most one run per feed at a time (a second returns ALREADY_RUNNING at once, doing nothing); a
    scheduled run (`trigger` "schedule") of a feed that is not live or succeeded within its schedule does nothing
    (NOT_DUE), so a duplicate message is harmless; every ingest run it makes is recorded, with its duration and
    counts, and labelled with `trigger`. Terminal source errors come back as FAILED; transient ones (a timeout, a
    5xx, the database going away) propagate, so the task can retry them. `on_run_committed` is called with each
    ingest run that succeeded, as soon as it committed (see `results.RunCommitted`).
    """
    if feed.source not in SCHEDULED_SOURCES:
        raise ValueError(f"feed {feed.code} takes its data from {feed.source}, not an inbox or an HTTP pull")
    started = time.monotonic()
    try:
        with feed_run_lock(feed):
            # A run started by another path (the ingest command, a replay) holds only the pipeline's lock.
            if feed_ingest_lock_is_held(feed):
                return FeedRunResult(
                    feed.code, Outcome.ALREADY_RUNNING, message="an ingest run is in progress"
                )
            feed.refresh_from_db()
            is_schedule = trigger == IngestRun.Trigger.SCHEDULE
            if is_schedule and (feed.state != Feed.State.LIVE or feed_succeeded_recently(feed)):
                return FeedRunResult(feed.code, Outcome.NOT_DUE)
            recovered = runs_abandoned_recover(feed)
            if feed.source == Feed.Source.INBOX:
                source_run = inbox_run(
                    feed, trigger=trigger, progress=progress, on_run_committed=on_run_committed
                )
            else:
                source_run = http_pull_run(
                    feed, trigger=trigger, progress=progress, on_run_committed=on_run_committed
                )
    except FeedBusy:
        return FeedRunResult(feed.code, Outcome.ALREADY_RUNNING, message="another run holds the feed's lock")
    result = _result(feed, source_run, recovered, time.monotonic() - started)
    _log(result)
    return result


def _result(feed: Feed, source_run: SourceRun, recovered: list[int], seconds: float) -> FeedRunResult:
    if source_run.error:
        outcome = Outcome.FAILED
    elif source_run.runs:
        outcome = Outcome.SUCCEEDED
    else:
        outcome = Outcome.NOTHING_TO_DO
    return FeedRunResult(
        feed_code=feed.code,
        outcome=outcome,
        seconds=seconds,
        runs=source_run.runs,
        recovered_run_ids=recovered,
        files_processed=source_run.files_processed,
        files_failed=source_run.files_failed,
        files_waiting=source_run.files_waiting,
        message=source_run.error,
    )


def _log(result: FeedRunResult) -> None:
    rate = result.resources_per_second
    logger.info(
        "feed %s: %s in %.1f s, %d resources (%s/s), runs %s",
        result.feed_code,
        result.outcome,
        result.seconds,
        result.resources_read,
        f"{rate:.0f}" if rate is not None else "-",
        [run.pk for run in result.runs],
    )
