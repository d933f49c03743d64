"""Run now and pause, for a feed in the back office: what each refuses, and how each is recorded.

Always holds:
- Run now queues the very task beat runs (`records.feed_run_task`, with `now`), once the request's transaction
  commits, and only for a live feed with a scheduled source (an inbox folder or an HTTP pull); anything else is
  refused with the reason and nothing is queued. An onboarding feed is refused too: a run writes into patients'
  records, which a feed not yet signed off must not do (a trial file goes through `manage.py ingest` on a test
  system);
- a paused feed never runs: beat skips it, and a Run now queued before the pause finds it not live and does nothing;
- each request that is accepted is a change-history entry (django-auditlog) naming the feed and who asked, written
  in the same transaction as the change or the queueing: a pause is the feed's own saved change, a Run now an
  "access" entry, since the feed itself does not change.
"""

from __future__ import annotations

from functools import partial

from auditlog.models import LogEntry
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.contenttypes.models import ContentType
from django.db import transaction
from django.utils import timezone

from records.feeds.scheduling import SCHEDULED_SOURCES
from records.models import Feed
from records.tasks import feed_run_task

RUN_NOW_CHANGE = "run now"


def feed_run_now_refusal(feed: Feed) -> str:
    """Why Run now is refused for this feed, in words for the page; empty when it may run."""
    if feed.state == Feed.State.PAUSED:
        return f"Feed {feed.code} is paused, so it does not run. Set its state to live to run it again."
    if feed.state == Feed.State.ONBOARDING:
        return (
            f"Feed {feed.code} is still onboarding: a run would write its data into patients' records before the "
            "feed is signed off. Make it live first."
        )
    if feed.source not in SCHEDULED_SOURCES:
        return (
            f"Feed {feed.code} takes its data from {feed.get_source_display().lower()}: there is nothing to fetch. "
            "Only inbox and HTTP-pull feeds run on a schedule."
        )
    return ""


def feed_run_now(feed: Feed, *, user: AbstractBaseUser) -> str:
    """Queue a run of the feed now, as beat would but whether or not it is due, recorded with who asked.

    Returns the refusal (`feed_run_now_refusal`) and queues nothing when the feed may not run; otherwise returns
    "" and the run is queued when the surrounding transaction commits.
    """
    refusal = feed_run_now_refusal(feed)
    if refusal:
        return refusal
    with transaction.atomic():
        LogEntry.objects.create(
            content_type=ContentType.objects.get_for_model(Feed),
            object_pk=str(feed.pk),
            object_id=feed.pk,
            object_repr=str(feed)[:200],
            action=LogEntry.Action.ACCESS,
            changes={RUN_NOW_CHANGE: ["", "queued"]},
            actor_id=user.pk,
            timestamp=timezone.now(),
        )
        transaction.on_commit(partial(feed_run_task.delay, feed.pk, now=True))
    return ""


def feed_pause(feed: Feed) -> bool:
    """Pause the feed (beat stops running it; Run now refuses it); False when it was paused already.

    Saved through save(), so django-auditlog records the change with the request's user as its actor.
    """
    if feed.state == Feed.State.PAUSED:
        return False
    feed.state = Feed.State.PAUSED
    feed.save(update_fields=["state"])
    return True
