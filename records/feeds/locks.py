"""One run per feed at a time: a session-level PostgreSQL advisory lock per feed.

The pipeline takes its own transaction-level lock (`records.ingest.pipeline.INGEST_LOCK_NAMESPACE`, feed id)
around the writes of each ingest run; a scheduled run takes this session-level lock around the whole of its work
(fetching, several ingest runs, moving files, advancing the watermark), in a different key namespace so the two
never collide. `pg_try_advisory_lock` answers at once, so a second run returns "already running" instead of queueing
behind the first. PostgreSQL releases both locks when the holder's connection ends, which is how a run whose worker
died is told apart from one still going.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connection

from records.ingest.pipeline import INGEST_LOCK_NAMESPACE
from records.models import Feed

# First key of the two-key advisory lock a scheduled run holds; the second is the feed's id.
FEED_RUN_LOCK_NAMESPACE = 7_301_002
assert FEED_RUN_LOCK_NAMESPACE != INGEST_LOCK_NAMESPACE

# pg_locks shows a two-key advisory lock as classid = key 1, objid = key 2, objsubid = 2, in one database.
_HELD_BY_ANOTHER_SESSION = """
    SELECT EXISTS (
        SELECT 1 FROM pg_locks
        WHERE locktype = 'advisory'
          AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
          AND classid = %s AND objid = %s AND objsubid = 2
          AND granted AND pid <> pg_backend_pid()
    )
"""


class FeedBusy(Exception):
    """Another run of the feed holds its lock."""


@contextmanager
def feed_run_lock(feed: Feed) -> Iterator[None]:
    """Hold the feed's run lock for the block; raise FeedBusy at once if another session holds it.

    The lock belongs to the database session, not to a transaction: it is released in `finally`, or by PostgreSQL
    when the connection ends (a worker that dies takes its lock with it).
    """
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [FEED_RUN_LOCK_NAMESPACE, feed.pk])
        acquired = bool(cursor.fetchone()[0])
    if not acquired:
        raise FeedBusy(f"feed {feed.code} is already running")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [FEED_RUN_LOCK_NAMESPACE, feed.pk])


def feed_run_lock_is_held(feed: Feed) -> bool:
    """Whether another session holds the feed's run lock (a scheduled run or `run_feed` is going)."""
    return _held_by_another_session(FEED_RUN_LOCK_NAMESPACE, feed.pk)


def feed_ingest_lock_is_held(feed: Feed) -> bool:
    """Whether another session is inside an ingest run of the feed (any trigger: command, push, replay...)."""
    return _held_by_another_session(INGEST_LOCK_NAMESPACE, feed.pk)


def _held_by_another_session(namespace: int, key: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute(_HELD_BY_ANOTHER_SESSION, [namespace, key])
        row = cursor.fetchone()
    return bool(row[0])
