"""Every PostgreSQL advisory lock the project takes: its key, and the SQL that takes it, releases it and looks for it.

What always holds:
- each lock has a key of its own, named here and nowhere else, and no two keys are equal (a test checks), so two
  locks never wait on one another by accident and pg_locks tells them apart;
- a lock per object (a feed) is a two-key lock, (namespace, object id); a lock of the whole database (the audit
  chain) is a one-key lock;
- a transaction-level lock is released when its transaction ends, a session-level lock when it is unlocked or its
  connection ends, so a process that dies never leaves a lock held behind it.

This module imports nothing of the apps: the audit app, which imports nothing of records or consent, uses it too.
"""

from __future__ import annotations

from django.db import connection

# One ingest run of a feed at a time: held by the pipeline around the writes of each run (transaction level), and
# by a replay of quarantined records, which takes it before its row locks.
INGEST_RUN_NAMESPACE = 7_301_001
# One scheduled run of a feed at a time: held around the whole of a feed run (fetching, its ingest runs, moving
# files, advancing the watermark), at session level, and only tried, so a second run returns at once.
FEED_RUN_NAMESPACE = 7_301_002
# One append to the access-event chain at a time (transaction level, one key).
AUDIT_CHAIN_KEY = 0x5C_A0D17
# One receipt of a patient's submission at a time per submission (its fingerprint's first 31 bits), so the same
# form posted twice at once is stored once (transaction level).
SUBMISSION_NAMESPACE = 7_301_003

KEYS = {
    "ingest run": INGEST_RUN_NAMESPACE,
    "feed run": FEED_RUN_NAMESPACE,
    "audit chain": AUDIT_CHAIN_KEY,
    "submission": SUBMISSION_NAMESPACE,
}

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


def feed_ingest_lock(feed_id: int) -> None:
    """Wait for the feed's ingest lock and hold it until the current transaction ends (re-entrant)."""
    _execute("SELECT pg_advisory_xact_lock(%s, %s)", [INGEST_RUN_NAMESPACE, feed_id])


def feed_ingest_lock_is_held(feed_id: int) -> bool:
    """Whether another session is inside an ingest run of the feed (any trigger: command, push, replay...)."""
    return _held_by_another_session(INGEST_RUN_NAMESPACE, feed_id)


def feed_run_lock_try(feed_id: int) -> bool:
    """Take the feed's run lock for this session if no other session holds it; never waits."""
    return bool(_fetch("SELECT pg_try_advisory_lock(%s, %s)", [FEED_RUN_NAMESPACE, feed_id]))


def feed_run_unlock(feed_id: int) -> None:
    """Release the feed's run lock this session holds."""
    _execute("SELECT pg_advisory_unlock(%s, %s)", [FEED_RUN_NAMESPACE, feed_id])


def feed_run_lock_is_held(feed_id: int) -> bool:
    """Whether another session holds the feed's run lock."""
    return _held_by_another_session(FEED_RUN_NAMESPACE, feed_id)


def submission_lock(fingerprint: str) -> None:
    """Wait for the lock of one submission (by its hex fingerprint) and hold it until the transaction ends."""
    _execute("SELECT pg_advisory_xact_lock(%s, %s)", [SUBMISSION_NAMESPACE, int(fingerprint[:8], 16) >> 1])


# The audit chain's lock as SQL and parameters, for a caller on a connection of its own (the bench's raw-SQL floor
# takes it as the door does, so the floor pays for the same serialisation).
AUDIT_CHAIN_LOCK_SQL = "SELECT pg_advisory_xact_lock(%s)"


def audit_chain_lock() -> None:
    """Wait for the audit chain's lock and hold it until the current transaction ends."""
    _execute(AUDIT_CHAIN_LOCK_SQL, [AUDIT_CHAIN_KEY])


def _held_by_another_session(namespace: int, key: int) -> bool:
    return bool(_fetch(_HELD_BY_ANOTHER_SESSION, [namespace, key]))


def _execute(sql: str, params: list[int]) -> None:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def _fetch(sql: str, params: list[int]) -> object:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    return None if row is None else row[0]
