"""Removing access events past their retention, leaving a trail that still verifies.

What always holds:
- only the oldest events go, and only while every one of them occurred before now minus AUDIT_RETENTION_DAYS: an event
  still in retention is never removed, nor any event after it;
- an event an open (unreviewed) alert points at is never removed: the purge stops before it;
- a reviewed alert goes with the event it points at (alerts are personal data under the same retention), and so does
  a reviewed alert about no event (an overdue case) raised before the cut; both are counted. Checkpoints stay: they
  hold no personal data, and after a purge they are checked against its record;
- before anything is removed the chain is verified up to the cut, and nothing is removed if it does not verify;
- every purge writes a signed `AuditPurge` (the newest removed event's id and hash, the events the chain held up to
  it, earlier purges included, and how many it removed) and the same line to the `sharedcare.audit.anchor` log, in
  the transaction that removes the events, so the records and the removal stand or fall together;
- it needs AUDIT_ANCHOR_KEY, and the database's owner: the application's role may not delete from the trail.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

import pgtrigger
from auditlog.models import LogEntry
from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.db import connection, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from audit.models import AccessEvent, Alert, AuditPurge
from audit.partitions import partition_drop_sql, partitions_wholly_up_to
from audit.selectors import audit_trail_verify
from audit.services import anchor_logger, audit_event_count_up_to, purge_signature

APPEND_ONLY = "audit.AccessEvent:access_event_append_only"


class PurgeRefused(Exception):
    """The purge cannot run as asked; nothing was removed."""


@dataclass(frozen=True)
class PurgeOutcome:
    """What a purge removed, or with `dry_run` would remove."""

    retained_from: datetime
    last_event_id: int
    events_removed: int
    alerts_removed: int
    partitions_dropped: int
    purge_id: int | None
    # The open alert before whose event the purge stopped, if one did.
    stopped_by_alert_id: int | None
    dry_run: bool


def audit_purge(
    *, now: datetime | None = None, dry_run: bool = False, batch_size: int = 5000
) -> PurgeOutcome:
    """Remove the oldest access events that are all past retention at `now` (the moment of the call if not given).

    Raises `PurgeRefused`, removing nothing, without AUDIT_ANCHOR_KEY or when the chain up to the cut does not
    verify. With `dry_run`, reads and verifies the same and changes nothing. Safe to run twice: a second purge at
    the same moment finds nothing past retention and writes no record.
    """
    key = settings.AUDIT_ANCHOR_KEY
    if not key:
        raise PurgeRefused(
            "AUDIT_ANCHOR_KEY is not set: a purge record must be signed, or anyone removing events could pass them "
            "off as past their retention."
        )
    moment = now or timezone.now()
    retained_from = moment - timedelta(days=settings.AUDIT_RETENTION_DAYS)
    with transaction.atomic():
        # Purges one at a time. Not the chain's lock: appends go on meanwhile, as they only read the head, and a
        # purge that removes the head leaves its hash in the record the next append links to.
        with connection.cursor() as cursor:
            cursor.execute("LOCK TABLE audit_auditpurge IN SHARE ROW EXCLUSIVE MODE")
        cut, stopped_by = _cut(retained_from)
        if cut is None:
            return PurgeOutcome(retained_from, 0, 0, 0, 0, None, stopped_by, dry_run)
        breaks = list(audit_trail_verify(key, up_to_event_id=cut.id))
        if breaks:
            raise PurgeRefused(f"The audit trail does not verify up to event {cut.id}: {breaks[0].headline}.")
        event_count = audit_event_count_up_to(cut.id)
        removed = AccessEvent.objects.filter(id__lte=cut.id).count()
        alerts = _alerts_going(cut.id, retained_from)
        if dry_run:
            return PurgeOutcome(
                retained_from,
                cut.id,
                removed,
                alerts.count(),
                len(partitions_wholly_up_to(cut.id)),
                None,
                stopped_by,
                dry_run,
            )
        purge = AuditPurge(
            created_at=moment,
            retained_from=retained_from,
            last_event_id=cut.id,
            event_count=event_count,
            head_hash=cut.hash,
            removed_count=removed,
        )
        purge.signature = purge_signature(purge, key)
        purge.save(force_insert=True)
        alerts_removed = _alerts_remove(alerts, batch_size)
        dropped = _events_remove(cut.id, batch_size)
    anchor_logger.info(
        "audit purge %s at %s: %s events before %s removed; head event %s, %s events, head hash %s, signature %s",
        purge.pk,
        purge.created_at.isoformat(),
        purge.removed_count,
        purge.retained_from.isoformat(),
        purge.last_event_id,
        purge.event_count,
        purge.head_hash,
        purge.signature,
    )
    return PurgeOutcome(
        retained_from, cut.id, removed, alerts_removed, dropped, purge.pk, stopped_by, dry_run
    )


@dataclass(frozen=True)
class _Cut:
    id: int
    hash: str


def _cut(retained_from: datetime) -> tuple[_Cut | None, int | None]:
    """The newest event that may go, and the open alert that stopped the purge short of the retention line."""
    first_kept = (
        AccessEvent.objects.filter(occurred_at__gte=retained_from)
        .order_by("id")
        .values_list("id", flat=True)
        .first()
    )
    candidates = AccessEvent.objects.all()
    if first_kept is not None:
        candidates = candidates.filter(id__lt=first_kept)
    stopper = (
        Alert.objects.filter(reviewed_at__isnull=True, event_id__in=candidates.values("id"))
        .order_by("event_id")
        .values_list("pk", "event_id")
        .first()
    )
    if stopper is not None:
        candidates = candidates.filter(id__lt=stopper[1])
    newest = candidates.order_by("-id").values_list("id", "hash").first()
    return (_Cut(*newest) if newest else None), (stopper[0] if stopper else None)


def _alerts_going(cut_id: int, retained_from: datetime) -> QuerySet[Alert]:
    return Alert.objects.filter(reviewed_at__isnull=False).filter(
        Q(event_id__lte=cut_id) | Q(event__isnull=True, raised_at__lt=retained_from)
    )


def _alerts_remove(alerts: QuerySet[Alert], batch_size: int) -> int:
    """Remove the alerts and the history of their review, which names the reviewer and their note."""
    ids = list(alerts.values_list("pk", flat=True))
    alert_type = ContentType.objects.get_for_model(Alert)
    for start in range(0, len(ids), batch_size):
        batch = ids[start : start + batch_size]
        # Not QuerySet.delete(): django-auditlog would write each removed alert, personal data and all, to its log.
        LogEntry.objects.filter(content_type=alert_type, object_id__in=batch)._raw_delete(LogEntry.objects.db)
        Alert.objects.filter(pk__in=batch)._raw_delete(Alert.objects.db)
    return len(ids)


def _events_remove(cut_id: int, batch_size: int) -> int:
    """Remove every event up to `cut_id`: whole monthly partitions by dropping them, the rest in batches. Returns
    how many partitions were dropped."""
    with pgtrigger.ignore(APPEND_ONLY), connection.cursor() as cursor:
        partitions = partitions_wholly_up_to(cut_id)
        for partition in partitions:
            cursor.execute(partition_drop_sql(partition))
        while True:
            cursor.execute(
                "DELETE FROM audit_accessevent WHERE id IN "
                "(SELECT id FROM audit_accessevent WHERE id <= %s ORDER BY id LIMIT %s)",
                [cut_id, batch_size],
            )
            if cursor.rowcount < batch_size:
                break
    return len(partitions)
