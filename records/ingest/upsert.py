"""Writing one batch of mapped entries: one read of what is held, one INSERT ... ON CONFLICT for what changed.

What always holds: a resource is one row per (partner, resource type, source id); a resource whose content hash
matches the stored one is not written at all; a copy known to be older than the stored one (meta.lastUpdated,
then meta.versionId) never overwrites it and is counted as unchanged, because the record already holds something
newer from the same partner and nothing about it is wrong.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from django.utils import timezone

from records.ingest.fhir import is_older
from records.ingest.mapping import MappedEntry
from records.models import Feed, IngestRun, RecordEntry

_UNIQUE_FIELDS = ["organisation", "resource_type", "source_id"]
_UPDATE_FIELDS = [
    "patient",
    "feed",
    "ingest_run",
    "section",
    "source_version",
    "source_last_updated",
    "effective_at",
    "effective_end",
    "recorded_at",
    "code_system",
    "code",
    "display",
    "status",
    "summary",
    "resource",
    "content_hash",
    "is_sensitive",
    "is_confidential",
    "is_entered_in_error",
    "updated_at",
]


@dataclass
class BatchResult:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    # Patients whose record changed: their derived relationships must be worked out again.
    touched_patient_ids: set[int] = field(default_factory=set)


@dataclass(frozen=True)
class _Held:
    patient_id: int
    content_hash: str
    source_version: str
    source_last_updated: datetime | None


def entries_upsert(feed: Feed, run: IngestRun, batch: Sequence[tuple[MappedEntry, int]]) -> BatchResult:
    """Create or update the entries of one batch of (mapped resource, patient id) pairs; count each one once."""
    result = BatchResult()
    if not batch:
        return result
    organisation = feed.organisation
    held = {
        (resource_type, source_id): _Held(patient_id, digest, version, last_updated)
        for resource_type, source_id, patient_id, digest, version, last_updated in RecordEntry.objects.filter(
            organisation=organisation,
            resource_type__in={mapped.resource_type for mapped, _ in batch},
            source_id__in={mapped.source_id for mapped, _ in batch},
        ).values_list(
            "resource_type",
            "source_id",
            "patient_id",
            "content_hash",
            "source_version",
            "source_last_updated",
        )
    }
    now = timezone.now()
    rows: list[RecordEntry] = []
    seen: set[tuple[str, str]] = set()
    for mapped, patient_id in batch:
        key = (mapped.resource_type, mapped.source_id)
        stored = held.get(key)
        if key in seen:
            # Only content-derived ids repeat within a batch (named ids are de-duplicated by the pipeline), and
            # the same id means the same content.
            result.unchanged += 1
            continue
        seen.add(key)
        if stored is not None and (
            (stored.content_hash == mapped.content_hash and stored.patient_id == patient_id)
            or is_older(
                mapped.source_version,
                mapped.source_last_updated,
                stored.source_version,
                stored.source_last_updated,
            )
        ):
            result.unchanged += 1
            continue
        if stored is None:
            result.created += 1
        else:
            result.updated += 1
            result.touched_patient_ids.add(stored.patient_id)
        result.touched_patient_ids.add(patient_id)
        rows.append(_row(mapped, patient_id, feed, run, now))
    if rows:
        RecordEntry.objects.bulk_create(
            rows, update_conflicts=True, unique_fields=_UNIQUE_FIELDS, update_fields=_UPDATE_FIELDS
        )
    return result


def _row(mapped: MappedEntry, patient_id: int, feed: Feed, run: IngestRun, now: datetime) -> RecordEntry:
    return RecordEntry(
        patient_id=patient_id,
        organisation_id=feed.organisation_id,
        feed=feed,
        ingest_run=run,
        section=mapped.section,
        resource_type=mapped.resource_type,
        source_id=mapped.source_id,
        source_version=mapped.source_version,
        source_last_updated=mapped.source_last_updated,
        effective_at=mapped.effective_at,
        effective_end=mapped.effective_end,
        recorded_at=mapped.recorded_at,
        code_system=mapped.code_system,
        code=mapped.code,
        display=mapped.display,
        status=mapped.status,
        summary=mapped.summary,
        resource=mapped.resource,
        content_hash=mapped.content_hash,
        is_sensitive=mapped.is_sensitive,
        is_confidential=mapped.is_confidential,
        is_entered_in_error=mapped.is_entered_in_error,
        created_at=now,
        updated_at=now,
    )
