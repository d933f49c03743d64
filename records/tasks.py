"""Celery tasks of the records app.

Every task here is thin: it takes ids (never patient data, because task arguments are logged and stored in Redis),
calls one service, and retries only transient errors (a database that went away, a partner endpoint that timed out or
answered 5xx). Everything else is terminal for that message: the service has already recorded it on an IngestRun or a
quarantined record. Every task is safe to run twice, which is what late acknowledgement needs.
"""

import logging
from collections.abc import Iterable
from functools import partial
from typing import Any

import kombu.exceptions
import redis.exceptions
from celery import shared_task
from django.db import InterfaceError, OperationalError, transaction
from django.utils import timezone

from consent.grants import personal_grants_tidy
from records.feeds.push.process import pushed_batch_process, pushed_batches_waiting
from records.feeds.scheduling import feed_run, feeds_due
from records.feeds.sources import TransientSourceError
from records.ingest.quarantine import quarantine_replay, unknown_patients_replay
from records.models import Feed, IngestRun

logger = logging.getLogger(__name__)

# What sending a message raises when the broker cannot be reached (Celery wraps most in kombu's OperationalError).
BROKER_UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    kombu.exceptions.OperationalError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
)

# Errors worth another attempt: the same message may well succeed in a few seconds.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (OperationalError, InterfaceError, TransientSourceError)

_RETRY_OPTIONS: dict[str, Any] = {
    "acks_late": True,
    "autoretry_for": TRANSIENT_ERRORS,
    "retry_backoff": 5,
    "retry_backoff_max": 300,
    "retry_jitter": True,
    "max_retries": 4,
}


@shared_task(name="records.feeds_due_dispatch_task", acks_late=True)
def feeds_due_dispatch_task() -> list[int]:
    """Enqueue one `feed_run_task` per live, scheduled-source feed that is due; return their ids.

    Beat runs this every minute. Enqueuing a feed twice is harmless: the second run finds the feed's lock held, or
    finds it no longer due, and does nothing.
    """
    feed_ids = [feed.pk for feed in feeds_due()]
    for feed_id in feed_ids:
        feed_run_task.delay(feed_id)
    if feed_ids:
        logger.info("dispatched %d due feed(s): %s", len(feed_ids), feed_ids)
    return feed_ids


@shared_task(name="records.feed_run_task", **_RETRY_OPTIONS)
def feed_run_task(feed_id: int, now: bool = False) -> dict[str, Any]:
    """Run one scheduled run of the feed: fetch from its source, ingest, record the IngestRun.

    At most one run per feed at a time (a session advisory lock; a second one returns "already running" at once). A
    run abandoned by a dead worker is marked failed at the start of the next one, whose ingest is idempotent, so a
    redelivered message ingests every record exactly once. Each ingest run that commits queues, at once, the replay
    of what waited for the patients it brought. `now`: asked for in the back office ("Run now"), so it runs whether
    or not the feed is due, but still only while the feed is live. Returns a summary without patient data.
    """
    feed = Feed.objects.filter(pk=feed_id).first()
    if feed is None:
        logger.warning("feed %s no longer exists; nothing to run", feed_id)
        return {"feed_id": feed_id, "outcome": "missing"}
    if now and feed.state != Feed.State.LIVE:
        # Paused (or put back to onboarding) after the request was queued: the partner's data waits.
        return {"feed_id": feed_id, "outcome": "not live"}
    trigger = IngestRun.Trigger.COMMAND if now else IngestRun.Trigger.SCHEDULE
    result = feed_run(feed, trigger=trigger, on_run_committed=_arrivals_chain)
    return result.as_dict()


@shared_task(name="records.pushed_batch_process_task", **_RETRY_OPTIONS)
def pushed_batch_process_task(batch_id: int) -> int | None:
    """Ingest one batch a partner pushed to the API, by id; safe to run twice (the batch records its own state).

    Returns the run's id only: task results are logged, and a run's error text may quote patient data.
    """
    run = pushed_batch_process(batch_id)
    if run is None:
        return None
    arrived_patients_replay_enqueue([run])
    return run.pk


@shared_task(name="records.pushed_batches_requeue_task", acks_late=True)
def pushed_batches_requeue_task() -> int:
    """Queue again every pushed batch left pending past PUSH_REQUEUE_AFTER_MINUTES (the broker was down when it
    came, or lost its message); return how many were queued.

    Beat runs this every few minutes. Safe to run twice, or while a batch's first message is still on its way: a
    batch is processed once however many messages ask for it (`pushed_batch_process`).
    """
    batch_ids = pushed_batches_waiting(timezone.now())
    for batch_id in batch_ids:
        pushed_batch_process_task.delay(batch_id)
    if batch_ids:
        logger.info("queued %d pushed batch(es) left pending: %s", len(batch_ids), batch_ids)
    return len(batch_ids)


@shared_task(name="records.quarantine_replay_task", **_RETRY_OPTIONS)
def quarantine_replay_task(record_ids: list[int], user_id: int | None = None) -> dict[str, Any]:
    """Replay quarantined records by id (after a fix); a replayed record is never dropped nor ingested twice."""
    result = quarantine_replay(record_ids, user_id=user_id)
    arrived_patients_replay_enqueue(result.runs)
    return result.as_dict()


@shared_task(name="records.unknown_patients_replay_task", **_RETRY_OPTIONS)
def unknown_patients_replay_task(patient_ids: list[int]) -> int:
    """Replay records quarantined for an unknown patient, now that these patients exist; return how many were.

    A replayed record may itself bring a patient (a partner's Patient resource that waited): what waited for that
    one is queued in turn, until nothing new arrives.
    """
    result = unknown_patients_replay(patient_ids)
    arrived_patients_replay_enqueue(result.runs)
    return len(result.replayed_ids)


def _arrivals_chain(run: IngestRun) -> None:
    arrived_patients_replay_enqueue([run])


def arrived_patients_replay_enqueue(runs: Iterable[IngestRun]) -> None:
    """Queue, once the current transaction commits, the replay of the records quarantined as unknown-patient for
    the patients these ingest runs brought (`IngestRun.arrived_patient_ids`); nothing when none arrived.

    The follow-up of every ingest run, whoever made it (a task, a command, a page): the pipeline only says what
    arrived. After commit only, because the replay must see the new patients and must not run for a rollback.
    """
    patient_ids = sorted({patient_id for run in runs for patient_id in run.arrived_patient_ids})
    if patient_ids:
        transaction.on_commit(partial(unknown_patients_replay_task.delay, patient_ids))


@shared_task(name="records.personal_grants_tidy_task", **_RETRY_OPTIONS)
def personal_grants_tidy_task() -> int:
    """Mark self-claims and break-glass grants whose time ran out as ended at their expiry; return how many.

    Only tidying: `consent.policy.decide` judges expiry itself on every call, so access closed the moment each grant
    expired, whether or not this has run. Safe to run twice.
    """
    return personal_grants_tidy()
