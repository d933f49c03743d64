"""One run per feed at a time: a session-level PostgreSQL advisory lock per feed.

The pipeline takes its own transaction-level lock around the writes of each ingest run; a scheduled run takes this
session-level lock around the whole of its work (fetching, several ingest runs, moving files, advancing the
watermark). Both keys, and the SQL, live in `sharedcare.advisory_locks`, where no two locks share a key. The run
lock is only tried, so a second run returns "already running" instead of queueing behind the first. PostgreSQL
releases both locks when the holder's connection ends, which is how a run whose worker died is told apart from one
still going.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from records.models import Feed
from sharedcare import advisory_locks


class FeedBusy(Exception):
    """Another run of the feed holds its lock."""


@contextmanager
def feed_run_lock(feed: Feed) -> Iterator[None]:
    """Hold the feed's run lock for the block; raise FeedBusy at once if another session holds it.

    The lock belongs to the database session, not to a transaction: it is released in `finally`, or by PostgreSQL
    when the connection ends (a worker that dies takes its lock with it).
    """
    if not advisory_locks.feed_run_lock_try(feed.pk):
        raise FeedBusy(f"feed {feed.code} is already running")
    try:
        yield
    finally:
        advisory_locks.feed_run_unlock(feed.pk)


def feed_run_lock_is_held(feed: Feed) -> bool:
    """Whether another session holds the feed's run lock (a scheduled run or `run_feed` is going)."""
    return advisory_locks.feed_run_lock_is_held(feed.pk)


def feed_ingest_lock_is_held(feed: Feed) -> bool:
    """Whether another session is inside an ingest run of the feed (any trigger: command, push, replay...)."""
    return advisory_locks.feed_ingest_lock_is_held(feed.pk)
