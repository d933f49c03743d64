"""One ingest run: partner files in, record entries and quarantined records out, and an IngestRun that adds up.

What always holds:
- every resource read is counted exactly once, as created, updated, unchanged or quarantined (Patient resources
  included; `patients_created` and `patients_updated` say how many of the created and updated were patients), and
  a run whose counts do not add up is not allowed to succeed;
- bad input never stops the good: it is quarantined with its reason, location and raw text, and nothing about it
  raises out of the pipeline;
- everything one run writes commits in one transaction, so a run that fails leaves no half-written record; its
  IngestRun is then marked failed, with the error, and shows zero counts because nothing of it was kept;
- one run at a time per feed (a PostgreSQL advisory lock held until the transaction ends);
- running the same input twice changes nothing the second time.

A run reads its input twice. The first pass checksums the bytes, quarantines what cannot be read, applies every
Patient resource and notes which copy of each resource is the newest; the second maps and writes everything else.
Patients go first so that a clinical resource finds its Patient wherever in the run it is, whatever the file order.

When one run holds several copies of the same resource (same type and id), only the newest is written (the latest
meta.lastUpdated, then the highest numeric meta.versionId, then the last in the run); the other copies are checked
and counted as unchanged. Without that rule the copies would overwrite one another and a second run of the same
input would "update" them again.
"""

from __future__ import annotations

import hashlib
import pathlib
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from itertools import count

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from tqdm import tqdm

from consent.services import relationships_refresh
from records.ingest.fhir import (
    InvalidResource,
    JsonObject,
    is_resource_type,
    validate_json,
    validate_xml,
    version_key,
)
from records.ingest.mapping import SUPPORTED_TYPES, MappedEntry, map_resource
from records.ingest.matching import (
    NhsNumber,
    PatientIndex,
    Reason,
    Unmatched,
    check_nhs_number,
    nhs_number_of,
    subject_target,
)
from records.ingest.patients import PatientCandidate, PatientResult, patients_upsert
from records.ingest.readers import (
    Rejection,
    ResourceUnit,
    Source,
    clean,
    new_checksum,
    read_source,
    sources_for_path,
)
from records.ingest.upsert import entries_upsert
from records.models import Feed, IngestRun, Patient, QuarantinedRecord

BATCH_SIZE = 500
# First key of the two-key advisory lock; the second is the feed's id.
_ADVISORY_LOCK_NAMESPACE = 7_301_001
# Reasons a referenced Patient resource passes on to the resources that refer to it; any other becomes
# unknown-patient, because the referring resource itself is not invalid.
_PASSED_ON = frozenset(
    {Reason.NO_NHS_NUMBER, Reason.INVALID_NHS_NUMBER, Reason.UNKNOWN_PATIENT, Reason.DEMOGRAPHIC_MISMATCH}
)


class IngestFailed(Exception):
    """The run failed and wrote nothing; `run` is its IngestRun, marked failed with the error."""

    def __init__(self, run: IngestRun) -> None:
        super().__init__(f"ingest run {run.pk} failed: {run.error}")
        self.run = run


def ingest_path(feed: Feed, path: pathlib.Path, *, progress: bool = False) -> IngestRun:
    """Ingest a file, or every .json/.ndjson/.jsonl/.xml file below a folder (sorted), as one run of `feed`.

    Returns the succeeded IngestRun; raises IngestFailed (the run row kept, marked failed) if the run could not
    complete, and FileNotFoundError before any run starts if the path does not exist.
    """
    if not path.exists():
        raise FileNotFoundError(f"no such file or folder: {path}")
    return _ingest(feed, sources_for_path(path), source_name=str(path), progress=progress)


def ingest_texts(
    feed: Feed, texts: Iterable[tuple[str, bytes]], *, source_name: str = "", progress: bool = False
) -> IngestRun:
    """Ingest (location, bytes) pairs as one run of `feed`, in the order given; as `ingest_path` otherwise."""
    sources = [Source(location=location, data=data) for location, data in texts]
    return _ingest(feed, sources, source_name=source_name, progress=progress)


def _ingest(feed: Feed, sources: Sequence[Source], *, source_name: str, progress: bool) -> IngestRun:
    run = IngestRun.objects.create(feed=feed, source_name=source_name[:500])
    try:
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [_ADVISORY_LOCK_NAMESPACE, feed.pk])
            _Run(feed, run, sources, progress=progress).execute()
    except Exception as error:
        IngestRun.objects.filter(pk=run.pk).update(
            status=IngestRun.Status.FAILED,
            finished_at=timezone.now(),
            error=clean(f"{type(error).__name__}: {error}"),
        )
        run.refresh_from_db()
        raise IngestFailed(run) from error
    return run


@dataclass
class _Pending:
    unit: ResourceUnit
    mapped: MappedEntry
    target: int | NhsNumber
    # A newer copy of the same resource comes elsewhere in this run; this one is read but not written.
    is_superseded: bool


@dataclass
class _Tally:
    read: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    quarantined: int = 0
    patients_created: int = 0
    patients_updated: int = 0
    clinical: int = 0  # resources left for the second pass, for its progress bar
    touched_patient_ids: set[int] = field(default_factory=set)


class _Run:
    def __init__(self, feed: Feed, run: IngestRun, sources: Sequence[Source], *, progress: bool) -> None:
        self.feed = feed
        self.run = run
        self.sources = sources
        self.progress = progress
        self.max_bytes: int = settings.INGEST_MAX_FILE_BYTES
        self.tally = _Tally()
        self.index = PatientIndex()
        # (resource type, id) -> (version, occurrence) of the newest copy in this run.
        self.newest: dict[tuple[str, str], tuple[tuple[datetime, int], int]] = {}
        self.nhs_numbers: dict[str, int | None] = {}
        self.pending: list[_Pending] = []
        self.quarantine: list[QuarantinedRecord] = []

    def execute(self) -> None:
        checksum = self.first_pass()
        self.second_pass()
        self.finish(checksum)

    # First pass: read everything once; apply Patient resources; find the newest copy of each resource.

    def first_pass(self) -> str:
        checksum = new_checksum()
        candidates: list[PatientCandidate] = []
        occurrence = count()
        bar = tqdm(self.sources, desc="reading", unit="file", disable=not self.progress, file=sys.stderr)
        for source in bar:
            for item in read_source(source, max_bytes=self.max_bytes, checksum=checksum):
                position = next(occurrence)
                self.tally.read += 1
                if isinstance(item, Rejection):
                    self.reject(
                        item.location, item.reason, item.detail, item.raw, item.resource_type, item.source_id
                    )
                elif item.resource_type == "Patient":
                    candidate = self.patient_candidate(item, position)
                    if candidate is not None:
                        candidates.append(candidate)
                else:
                    self.tally.clinical += 1
                    self.note_version(item, position)
        self.apply_patients(candidates)
        return str(checksum.hexdigest())

    def note_version(self, unit: ResourceUnit, position: int) -> None:
        if not unit.source_id:
            return
        key = (unit.resource_type, unit.source_id)
        version = version_key(unit.version_id, unit.last_updated)
        current = self.newest.get(key)
        # Later in the run wins a tie, as if the copies had arrived one after another.
        if current is None or version >= current[0]:
            self.newest[key] = (version, position)

    def patient_candidate(self, unit: ResourceUnit, position: int) -> PatientCandidate | None:
        try:
            resource = self.validate(unit)
        except InvalidResource as error:
            self.reject_unit(unit, Reason.INVALID_RESOURCE, str(error))
            self.index_patient(unit, Unmatched(Reason.INVALID_RESOURCE, str(error)))
            return None
        number = check_nhs_number(nhs_number_of(resource), "The Patient resource")
        if isinstance(number, Unmatched):
            self.reject_unit(unit, number.reason, number.detail)
            self.index_patient(unit, number)
            return None
        # Keep the validated JSON and the raw text, not the XML element, which would hold its whole file in memory.
        light = replace(unit, json=resource, element=None)
        return PatientCandidate(
            unit=light, resource=resource, nhs_number=number, occurrence=position, raw=unit.raw()
        )

    def apply_patients(self, candidates: list[PatientCandidate]) -> None:
        results = patients_upsert(self.feed, candidates)
        for candidate in candidates:
            result = results[candidate.occurrence]
            if isinstance(result, Unmatched):
                unit = candidate.unit
                self.reject(
                    unit.location, result.reason, result.detail, candidate.raw, "Patient", unit.source_id
                )
                self.index_patient(candidate.unit, result)
                continue
            self.count_patient(result)
            self.index.add(
                container=candidate.unit.container,
                full_url=candidate.unit.full_url,
                source_id=candidate.unit.source_id,
                target=result.patient_id,
            )

    def count_patient(self, result: PatientResult) -> None:
        if result.outcome == "created":
            self.tally.created += 1
            self.tally.patients_created += 1
        elif result.outcome == "updated":
            self.tally.updated += 1
            self.tally.patients_updated += 1
        else:
            self.tally.unchanged += 1
        if result.outcome != "unchanged":
            self.tally.touched_patient_ids.add(result.patient_id)

    def index_patient(self, unit: ResourceUnit, problem: Unmatched) -> None:
        """Resources that refer to a Patient resource we could not use are quarantined with its reason."""
        reason = problem.reason if problem.reason in _PASSED_ON else Reason.UNKNOWN_PATIENT
        name = f"Patient/{unit.source_id}" if unit.source_id else unit.full_url or unit.location
        detail = f"The patient it refers to ({name}, at {unit.location}) was quarantined: {problem.detail}"
        self.index.add(
            container=unit.container,
            full_url=unit.full_url,
            source_id=unit.source_id,
            target=Unmatched(reason, detail),
        )

    # Second pass: validate, match and map every other resource, and write in batches.

    def second_pass(self) -> None:
        occurrence = count()
        bar = tqdm(
            total=self.tally.clinical,
            desc="ingesting",
            unit="resource",
            disable=not self.progress,
            file=sys.stderr,
        )
        with bar:
            for source in self.sources:
                for item in read_source(source, max_bytes=self.max_bytes):
                    position = next(occurrence)
                    if isinstance(item, Rejection) or item.resource_type == "Patient":
                        continue  # counted in the first pass
                    self.ingest_unit(item, position)
                    bar.update(1)
        self.flush()

    def ingest_unit(self, unit: ResourceUnit, position: int) -> None:
        if not is_resource_type(unit.resource_type):
            detail = (
                f"{unit.resource_type or 'A resource with no resourceType'} is not a FHIR R4 resource type."
            )
            self.reject_unit(unit, Reason.INVALID_RESOURCE, detail)
            return
        if unit.resource_type not in SUPPORTED_TYPES:
            detail = f"{unit.resource_type} resources are not part of the shared care record."
            self.reject_unit(unit, Reason.UNSUPPORTED_TYPE, detail)
            return
        try:
            resource = self.validate(unit)
        except InvalidResource as error:
            self.reject_unit(unit, Reason.INVALID_RESOURCE, str(error))
            return
        target = subject_target(resource, unit.container, self.index)
        if isinstance(target, Unmatched):
            self.reject_unit(unit, target.reason, target.detail)
            return
        newest = self.newest.get((unit.resource_type, unit.source_id))
        superseded = newest is not None and newest[1] != position
        self.pending.append(_Pending(unit, map_resource(resource), target, superseded))
        if len(self.pending) >= BATCH_SIZE:
            self.flush()

    def flush(self) -> None:
        self.look_up_nhs_numbers()
        batch: list[tuple[MappedEntry, int]] = []
        for pending in self.pending:
            target = pending.target
            if isinstance(target, NhsNumber):
                patient_id = self.nhs_numbers[target.value]
                if patient_id is None:
                    detail = "No patient is held for the NHS number on its subject reference."
                    self.reject_unit(pending.unit, Reason.UNKNOWN_PATIENT, detail)
                    continue
                target = patient_id
            if pending.is_superseded:
                self.tally.unchanged += 1
                continue
            batch.append((pending.mapped, target))
        result = entries_upsert(self.feed, self.run, batch)
        self.tally.created += result.created
        self.tally.updated += result.updated
        self.tally.unchanged += result.unchanged
        self.tally.touched_patient_ids |= result.touched_patient_ids
        self.pending.clear()
        self.write_quarantine()

    def look_up_nhs_numbers(self) -> None:
        wanted = {
            p.target.value
            for p in self.pending
            if isinstance(p.target, NhsNumber) and p.target.value not in self.nhs_numbers
        }
        if not wanted:
            return
        found = dict(Patient.objects.filter(nhs_number__in=wanted).values_list("nhs_number", "pk"))
        for number in wanted:
            self.nhs_numbers[number] = found.get(number)

    # Shared.

    def validate(self, unit: ResourceUnit) -> JsonObject:
        if unit.json is not None:
            return validate_json(unit.json)
        return validate_xml(unit.element)

    def reject_unit(self, unit: ResourceUnit, reason: str, detail: str) -> None:
        self.reject(unit.location, reason, detail, unit.raw(), unit.resource_type, unit.source_id)

    def reject(
        self, location: str, reason: str, detail: str, raw: str, resource_type: str, source_id: str
    ) -> None:
        self.tally.quarantined += 1
        self.quarantine.append(
            QuarantinedRecord(
                feed=self.feed,
                ingest_run=self.run,
                reason=reason,
                detail=clean(detail),
                resource_type=resource_type[:64],
                source_id=source_id[:200],
                location=location[:500],
                raw_payload=raw,
                payload_hash=hashlib.sha256(raw.encode("utf-8", "surrogateescape")).hexdigest(),
            )
        )
        if len(self.quarantine) >= BATCH_SIZE:
            self.write_quarantine()

    def write_quarantine(self) -> None:
        # A payload already pending for the same reason stays as the one row to fix and replay.
        QuarantinedRecord.objects.bulk_create(self.quarantine, ignore_conflicts=True)
        self.quarantine.clear()

    def finish(self, checksum: str) -> None:
        self.write_quarantine()
        tally = self.tally
        accounted = tally.created + tally.updated + tally.unchanged + tally.quarantined
        if accounted != tally.read:
            raise RuntimeError(f"counts do not add up: read {tally.read}, accounted for {accounted}")
        relationships_refresh(tally.touched_patient_ids)
        run = self.run
        run.status = IngestRun.Status.SUCCEEDED
        run.finished_at = timezone.now()
        run.resources_read = tally.read
        run.created, run.updated, run.unchanged = tally.created, tally.updated, tally.unchanged
        run.quarantined = tally.quarantined
        run.patients_created, run.patients_updated = tally.patients_created, tally.patients_updated
        run.checksum = checksum
        run.save()
        self.feed.last_success_at = run.finished_at
        self.feed.save(update_fields=["last_success_at"])
