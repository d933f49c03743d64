"""Writes to the quarantine: replaying records after a fix, discarding them with a reason, and the automatic replay of
records that waited for a patient to arrive.

What always holds:
- only pending records are replayed or discarded; any other id asked for is skipped and reported, never an error;
- a replay is one ingest run per feed (trigger "replay"), and each feed's replay is one transaction: the records are
  closed as replayed by that run, or, if the run fails, left pending as they were; a crash in between rolls back to
  pending too, so a record is never lost, never half replayed, and never stuck "being replayed" (a status only
  that transaction sees, there to take the record off the pending-only unique index while the run re-quarantines);
- a record still bad on replay is quarantined again as a new pending record of the replay run, with its reason, so
  the list shows what still needs fixing and the old record points at the run that tried;
- every status change is saved row by row, so django-auditlog records it, with the user who asked when known.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from auditlog.context import auditlog_value, set_actor
from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.utils import timezone

from records.ingest.pipeline import IngestFailed, ingest_texts
from records.models import Feed, IngestRun, PartnerPatientId, Patient, QuarantinedRecord
from sharedcare import advisory_locks

Status = QuarantinedRecord.Status
DISCARD_REASON_REQUIRED = "Give a reason for discarding: it is kept with the record and in the change log."
_SOURCE_NAME_IDS_SHOWN = 20


@dataclass
class QuarantineReplayResult:
    """What a replay did: its runs (one per feed), which records it closed, and which it left alone."""

    runs: list[IngestRun] = field(default_factory=list)
    # Closed as replayed; each may have been quarantined again as a new pending record of its run.
    replayed_ids: list[int] = field(default_factory=list)
    # Not pending (already replayed, discarded, being replayed by someone else) or no longer there.
    skipped_ids: list[int] = field(default_factory=list)
    # Their feed's run failed; they are pending again, as before the replay.
    failed_ids: list[int] = field(default_factory=list)

    @property
    def succeeded_runs(self) -> list[IngestRun]:
        return [run for run in self.runs if run.status == IngestRun.Status.SUCCEEDED]

    @property
    def failed_runs(self) -> list[IngestRun]:
        return [run for run in self.runs if run.status == IngestRun.Status.FAILED]

    @property
    def quarantined_again(self) -> int:
        return sum(run.quarantined for run in self.succeeded_runs)

    def as_dict(self) -> dict[str, Any]:
        """A summary for task logs: ids and counts only, never patient data."""
        return {
            "run_ids": [run.pk for run in self.runs],
            "replayed": len(self.replayed_ids),
            "quarantined_again": self.quarantined_again,
            "skipped_ids": self.skipped_ids,
            "failed_ids": self.failed_ids,
        }


@contextmanager
def _audit_actor(user: AbstractBaseUser | None) -> Iterator[None]:
    """Name `user` as the actor of the change-log entries written inside, then give back the enclosing context.

    auditlog's `set_actor` leaves its own context behind when it ends; inside a request that would orphan the
    context AuditlogMiddleware set up and drop the actor from every later entry of the request.
    """
    if user is None:
        yield
        return
    enclosing = auditlog_value.get(None)
    try:
        with set_actor(user):
            yield
    finally:
        if enclosing is not None:
            auditlog_value.set(enclosing)


def _user(user_id: int | None) -> AbstractBaseUser | None:
    if user_id is None:
        return None
    found: AbstractBaseUser | None = get_user_model().objects.filter(pk=user_id).first()
    return found


def _set_status(record: QuarantinedRecord, status: str, **fields: Any) -> None:
    record.status = status
    for name, value in fields.items():
        setattr(record, name, value)
    # One save per row, not queryset.update(): django-auditlog only sees changes made through save().
    record.save(update_fields=["status", *fields])


def _source_name(ids: Sequence[int]) -> str:
    shown = ", ".join(str(pk) for pk in ids[:_SOURCE_NAME_IDS_SHOWN])
    more = f" and {len(ids) - _SOURCE_NAME_IDS_SHOWN} more" if len(ids) > _SOURCE_NAME_IDS_SHOWN else ""
    return f"replay of quarantined record{'s' if len(ids) != 1 else ''} {shown}{more}"


def _feed_replay(feed: Feed, ids: Sequence[int], result: QuarantineReplayResult) -> None:
    """Replay the given records of one feed as one run, in one transaction (see the module docstring)."""
    with transaction.atomic():
        # The pipeline's per-feed lock first (re-entrant, so the run below takes it again at once). Taken after the
        # row locks instead, a run of this feed elsewhere quarantining one of these payloads would wait on our rows
        # while we waited on its lock.
        advisory_locks.feed_ingest_lock(feed.pk)
        # skip_locked: records another replay holds right now are reported as skipped rather than replayed twice.
        records = list(
            QuarantinedRecord.objects.select_for_update(skip_locked=True)
            .filter(pk__in=ids, feed=feed, status=Status.PENDING)
            .order_by("pk")
        )
        result.skipped_ids += sorted(set(ids) - {record.pk for record in records})
        if not records:
            return
        # Off the pending-only unique index, so a payload still bad can be quarantined again by the replay run.
        for record in records:
            _set_status(record, Status.REPLAYING)
        texts = [
            (record.location or f"quarantined record {record.pk}", record.raw_payload.encode("utf-8"))
            for record in records
        ]
        try:
            run = ingest_texts(
                feed,
                texts,
                source_name=_source_name([record.pk for record in records]),
                trigger=IngestRun.Trigger.REPLAY,
            )
        except IngestFailed as failure:
            result.runs.append(failure.run)
            for record in records:
                _set_status(record, Status.PENDING)
            result.failed_ids += [record.pk for record in records]
            return
        closed_at = timezone.now()
        for record in records:
            _set_status(record, Status.REPLAYED, replayed_by=run, closed_at=closed_at)
        result.runs.append(run)
        result.replayed_ids += [record.pk for record in records]


def quarantine_replay(record_ids: Sequence[int], *, user_id: int | None) -> QuarantineReplayResult:
    """Replay pending quarantined records, one ingest run per feed, and close them as replayed by that run.

    Records not pending are skipped and reported. A record still bad lands again as a new pending record of the
    replay run; a feed whose run fails leaves its records pending. `user_id` is who asked, named as the actor in
    the change log (None: whoever the surrounding request or context names). Safe to run twice: the second call
    finds nothing pending and skips everything.
    """
    result = QuarantineReplayResult()
    wanted = sorted(set(record_ids))
    by_feed: dict[int, list[int]] = {}
    for pk, feed_id in QuarantinedRecord.objects.filter(pk__in=wanted).values_list("pk", "feed_id"):
        by_feed.setdefault(feed_id, []).append(pk)
    result.skipped_ids += sorted(set(wanted) - {pk for ids in by_feed.values() for pk in ids})
    user = _user(user_id)
    with _audit_actor(user):
        for feed in Feed.objects.filter(pk__in=by_feed).order_by("pk"):
            _feed_replay(feed, by_feed[feed.pk], result)
    result.skipped_ids.sort()
    return result


def quarantine_discard(record_ids: Sequence[int], *, user: AbstractBaseUser, reason: str) -> list[int]:
    """Discard pending quarantined records for good, with the reason and who decided; return the ids discarded.

    The reason is required (a ValidationError when blank) and is kept on each record; django-auditlog records the
    change with `user` as its actor. Records not pending are left as they are.
    """
    reason = reason.strip()
    if not reason:
        raise ValidationError(DISCARD_REASON_REQUIRED, code="required")
    discarded: list[int] = []
    with _audit_actor(user), transaction.atomic():
        records = QuarantinedRecord.objects.select_for_update(skip_locked=True).filter(
            pk__in=record_ids, status=Status.PENDING
        )
        closed_at = timezone.now()
        for record in records.order_by("pk"):
            _set_status(
                record,
                Status.DISCARDED,
                discarded_reason=reason,
                discarded_by=user,
                closed_at=closed_at,
            )
            discarded.append(record.pk)
    return discarded


def unknown_patients_replay(patient_ids: Sequence[int]) -> QuarantineReplayResult:
    """Replay the records quarantined as "unknown patient" that these patients now answer for (see
    `unknown_patients_waiting`); the result's runs say which patients the replay brought in turn.

    Takes patient ids, never NHS numbers (task arguments are logged). Safe to run twice, and for patients with
    nothing waiting: it then replays nothing.
    """
    waiting = unknown_patients_waiting(patient_ids)
    if not waiting:
        return QuarantineReplayResult()
    return quarantine_replay(waiting, user_id=None)


def unknown_patients_waiting(patient_ids: Sequence[int]) -> list[int]:
    """The pending records quarantined as "unknown patient" that these patients now answer for, by id: those naming
    their NHS numbers, and those whose `Patient/<id>` reference names a partner's Patient id that now leads to one
    of them (at the same partner)."""
    numbers = list(Patient.objects.filter(pk__in=patient_ids).values_list("nhs_number", flat=True))
    if not numbers:
        return []
    # One condition per partner (a handful), each with the partner's ids: a first load names many patients.
    ids_by_partner: dict[int, list[str]] = defaultdict(list)
    for organisation_id, source_id in PartnerPatientId.objects.filter(patient_id__in=patient_ids).values_list(
        "organisation_id", "source_id"
    ):
        ids_by_partner[organisation_id].append(source_id)
    named = models.Q()
    for organisation_id, source_ids in ids_by_partner.items():
        named |= models.Q(feed__organisation_id=organisation_id, patient_reference__in=source_ids)
    return list(
        QuarantinedRecord.objects.filter(
            models.Q(nhs_number__in=numbers) | named,
            reason=QuarantinedRecord.Reason.UNKNOWN_PATIENT,
            status=Status.PENDING,
        )
        .order_by("pk")
        .values_list("pk", flat=True)
    )
