"""Processing a pushed batch on the worker: one worker at a time, and processing it again changes nothing."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction

from records.feeds.push.first_contact import first_contacts_alert
from records.feeds.push.receive import MEDIA_TYPES
from records.ingest.pipeline import IngestFailed, ingest_texts
from records.models import IngestRun, PushedBatch

_FINISHED = (PushedBatch.Status.DONE, PushedBatch.Status.FAILED)
_UNFINISHED = (PushedBatch.Status.PENDING, PushedBatch.Status.PROCESSING)


def _lock(batch_id: int) -> PushedBatch | None:
    """The batch, row-locked until the transaction ends; None if it does not exist or another worker holds it."""
    return (
        PushedBatch.objects.select_for_update(skip_locked=True, of=("self",))
        .select_related("feed", "credential", "ingest_run")
        .filter(pk=batch_id)
        .first()
    )


def pushed_batch_process(batch_id: int) -> IngestRun | None:
    """Ingest one pushed batch as one run of its feed; returns the run, or None if there is nothing to do now.

    What always holds:
    - a batch that is done or failed is not processed again: its run is returned as it is (a failed batch goes
      back to pending only by `pushed_batches_requeue`);
    - one worker at a time: the batch row stays locked for the whole run, and a caller that finds it locked
      returns None at once;
    - a worker that dies mid-run loses its database connection, so PostgreSQL rolls its run back and releases the
      lock; the batch is left `processing` and unlocked, and the next call (Celery redelivers the unacknowledged
      task) picks it up again. No clock or time limit is involved: a lock held means a live worker;
    - the payload stays whatever happens. On IngestFailed the batch is failed with the run's error and linked to
      that run, which is marked failed and kept nothing; the ingestion is idempotent, so a rerun is always safe;
    - a succeeded run's first contacts (records.feeds.push.first_contact) are alerted in the run's transaction.
    """
    batch = PushedBatch.objects.select_related("ingest_run").filter(pk=batch_id).first()
    if batch is None:
        return None
    if batch.status in _FINISHED:
        return batch.ingest_run
    # Say `processing` where the status URL can see it, then hold the lock through the run.
    with transaction.atomic():
        claimed = _lock(batch_id)
        if claimed is None:
            return None
        if claimed.status in _FINISHED:
            return claimed.ingest_run
        claimed.status = PushedBatch.Status.PROCESSING
        claimed.save(update_fields=["status"])
    with transaction.atomic():
        claimed = _lock(batch_id)
        if claimed is None:
            return None
        if claimed.status in _FINISHED:
            return claimed.ingest_run
        return _ingest(claimed)


def _ingest(batch: PushedBatch) -> IngestRun:
    suffix = MEDIA_TYPES.get(batch.feed.format, {}).get(batch.content_type, "")
    location = f"batch {batch.public_id}{suffix}"
    source_name = f"push: batch {batch.public_id} with key {batch.credential.key_prefix}"
    try:
        run = ingest_texts(
            batch.feed,
            [(location, bytes(batch.payload))],
            source_name=source_name,
            trigger=IngestRun.Trigger.PUSH,
        )
    except IngestFailed as failed:
        batch.status = PushedBatch.Status.FAILED
        batch.ingest_run = failed.run
        batch.error = failed.run.error
    else:
        first_contacts_alert(batch, run)
        batch.status = PushedBatch.Status.DONE
        batch.ingest_run = run
        batch.error = ""
    batch.save(update_fields=["status", "ingest_run", "error"])
    if batch.ingest_run is None:
        raise RuntimeError("invariant: batch.ingest_run is not None")
    return batch.ingest_run


def pushed_batches_requeue(batch_ids: list[int]) -> list[int]:
    """Put failed batches back to pending, to be processed again after a fix; returns the ids that were.

    Their failed runs stay, unlinked, as the record of the failure. The caller queues the processing after commit.
    """
    with transaction.atomic():
        ids = list(
            PushedBatch.objects.select_for_update(skip_locked=True)
            .filter(pk__in=batch_ids, status=PushedBatch.Status.FAILED)
            .values_list("pk", flat=True)
        )
        PushedBatch.objects.filter(pk__in=ids).update(
            status=PushedBatch.Status.PENDING, ingest_run=None, error=""
        )
    return ids


# How many waiting batches one sweep queues: the oldest first; the next sweep takes the rest.
SWEEP_LIMIT = 1000


def pushed_batches_waiting(now: datetime) -> list[int]:
    """Batches still pending PUSH_REQUEUE_AFTER_MINUTES after they arrived, oldest first (at most SWEEP_LIMIT):
    the broker may have been down when they came, or lost their message. Queueing one again is always safe, since
    `pushed_batch_process` processes a batch once however often it is asked."""
    cutoff = now - timedelta(minutes=settings.PUSH_REQUEUE_AFTER_MINUTES)
    return list(
        PushedBatch.objects.filter(status=PushedBatch.Status.PENDING, received_at__lte=cutoff)
        .order_by("received_at", "pk")
        .values_list("pk", flat=True)[:SWEEP_LIMIT]
    )
