"""One ingestion: the work of one IngestRun over its inputs, in two passes, and the counts it finishes with.

A run goes over its input twice. The first pass checksums the bytes, quarantines what cannot be read, checks every
Patient resource (`patient_pass`) and notes which copy of each resource is the newest; once it has read everything
it applies the patients. The second maps and writes everything else. Patients go first so that a clinical resource
finds its Patient wherever in the run it is, whatever the file order. The second pass reuses what the first parsed,
up to `KEEP_PARSED_BYTES` of input a run; files beyond that are read and parsed again rather than held in memory.

When one run holds several copies of the same resource (same type and id), only the newest is written (the latest
meta.lastUpdated, then the highest numeric meta.versionId, then the last in the run); the other copies are checked
and counted as unchanged. Without that rule the copies would overwrite one another and a second run of the same
input would "update" them again.

A transaction DELETE marks the stored entry deleted at source (kept for the audit trail, never shown), unless a
copy of the same resource comes later in the run; an unknown target is counted unchanged.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import count
from typing import Never

from django.conf import settings
from django.utils import timezone
from tqdm import tqdm

from consent.opt_outs import national_opt_outs_from_run
from consent.services import relationships_refresh
from records.ingest.fhir import InvalidResource, is_resource_type, version_key
from records.ingest.formats.readers import read_source
from records.ingest.held import UNKNOWN, HeldContent
from records.ingest.items import (
    Deletion,
    ExpectedPatient,
    Reader,
    Rejection,
    ResourceUnit,
    Source,
    new_checksum,
)
from records.ingest.mapping import SUPPORTED_TYPES, MappedEntry, map_resource
from records.ingest.matching import NhsNumber, PatientIndex, Reason, Unmatched, subject_target
from records.ingest.patient_pass import PatientPass
from records.ingest.patients import demographics_mismatch
from records.ingest.rejections import Rejections
from records.ingest.run_validation import Kept, RunValidation
from records.ingest.tally import Tally
from records.ingest.upsert import entries_upsert
from records.ingest.validation_pool import ValidationPool
from records.models import Feed, IngestRun, RecordEntry

BATCH_SIZE = 500
# Input (bytes as sent) whose parsed resources the first pass keeps for the second, so that it is parsed once: the
# parsed form takes about five times the bytes, so this bounds what a run holds at once to under 100 MB.
KEEP_PARSED_BYTES = 16 * 1024 * 1024


@dataclass
class _Pending:
    unit: ResourceUnit
    mapped: (
        MappedEntry | None
    )  # None: held unchanged (see held.HeldContent.unchanged), neither mapped nor written
    target: int | NhsNumber
    # A newer copy of the same resource comes elsewhere in this run (or a later DELETE of it); this one is read but
    # not written.
    is_superseded: bool
    position: int
    expected: ExpectedPatient | None = None


class Ingestion:
    """The work of one run: `execute` (both passes) inside the run's transaction, then `finish`."""

    def __init__(
        self,
        feed: Feed,
        run: IngestRun,
        sources: Sequence[Source],
        *,
        read: Reader,
        pool: ValidationPool | None,
        progress: bool,
    ) -> None:
        self.feed = feed
        self.run = run
        self.sources = sources
        self.read = read
        self.progress = progress
        self.max_bytes: int = settings.INGEST_MAX_FILE_BYTES
        self.batch_size = BATCH_SIZE
        self.tally = Tally()
        self.index = PatientIndex(feed.organisation_id)
        # (resource type, id) -> (version, occurrence) of the newest copy in this run.
        self.newest: dict[tuple[str, str], tuple[tuple[datetime, int], int]] = {}
        # (resource type, id) -> occurrence of the last DELETE of it, and of the last copy of it, in this run.
        self.deleted_at: dict[tuple[str, str], int] = {}
        self.sent_at: dict[tuple[str, str], int] = {}
        self.deletions: list[tuple[Deletion, int]] = []
        self.pending: list[_Pending] = []
        # By source index: the position of its first item, and (within KEEP_PARSED_BYTES) the items the second
        # pass needs, with their positions, as the first pass read them.
        self.starts: list[int] = []
        self.kept: Kept = {}
        self.rejections = Rejections(feed, run, self.tally, batch_size=self.batch_size)
        self.held = HeldContent(feed, self.index)
        self.validation = RunValidation(self.tally, pool, self.kept)
        self.patients = PatientPass(feed, self.tally, self.index, self.rejections, self.validation)

    def execute(self) -> str:
        """Both passes; returns the checksum of the input."""
        checksum = self.first_pass()
        self.second_pass()
        return checksum

    # First pass: read everything once; check Patient resources; find the newest copy of each resource.

    def first_pass(self) -> str:
        checksum = new_checksum()
        occurrence = count()
        kept_bytes = 0
        held = self.held
        bar = tqdm(self.sources, desc="reading", unit="file", disable=not self.progress, file=sys.stderr)
        for index, source in enumerate(bar):
            self.starts.append(self.tally.read)
            self.validation.to_validate.append(0)
            held.held_in.append([])
            size = source.size()
            kept: list[tuple[int, Deletion | ResourceUnit]] | None = None
            if kept_bytes + size <= KEEP_PARSED_BYTES:
                kept = self.kept[index] = []
                kept_bytes += size
            for item in read_source(source, max_bytes=self.max_bytes, checksum=checksum, read=self.read):
                position = next(occurrence)
                self.tally.read += 1
                held.held.append(UNKNOWN)
                if kept is not None and (
                    isinstance(item, Deletion)
                    or (isinstance(item, ResourceUnit) and item.resource_type != "Patient")
                ):
                    kept.append((position, item))
                if isinstance(item, Rejection):
                    self.rejections.add(
                        item.location,
                        item.reason,
                        item.detail,
                        item.raw,
                        item.resource_type,
                        item.source_id,
                        nhs_number=item.nhs_number,
                    )
                elif isinstance(item, Deletion):
                    self.tally.clinical += 1
                    self.deleted_at[(item.resource_type, item.source_id)] = position
                elif item.resource_type == "Patient":
                    self.patients.add(item, position)
                else:
                    self.tally.clinical += 1
                    self.note_version(item, position)
                    if item.resource_type not in SUPPORTED_TYPES:
                        continue
                    self.validation.to_validate[index] += 1
                    if item.json is not None and item.source_id:
                        held.unchecked.append((index, position, item))
                        if len(held.unchecked) >= self.batch_size:
                            held.check()
                            self.submit_validation(index)
            if not held.unchecked:
                self.submit_validation(index + 1)
        held.check()
        self.submit_validation(len(self.sources))
        self.patients.apply()
        return str(checksum.hexdigest())

    def submit_validation(self, end: int) -> None:
        self.validation.submit(end, self.starts, self.tally.read, self.held.held_in)

    def note_version(self, unit: ResourceUnit, position: int) -> None:
        if not unit.source_id:
            return
        key = (unit.resource_type, unit.source_id)
        self.sent_at[key] = position
        version = version_key(unit.version_id, unit.last_updated)
        current = self.newest.get(key)
        # Later in the run wins a tie, as if the copies had arrived one after another.
        if current is None or version >= current[0]:
            self.newest[key] = (version, position)

    # Second pass: validate, match and map every other resource, and write in batches.

    def second_pass(self) -> None:
        bar = tqdm(
            total=self.tally.clinical,
            desc="ingesting",
            unit="resource",
            disable=not self.progress,
            file=sys.stderr,
        )
        with bar:
            chunk: list[tuple[int, Deletion | ResourceUnit]] = []
            for index, source in enumerate(self.sources):
                for entry in self.second_items(index, source):
                    chunk.append(entry)
                    if len(chunk) >= self.batch_size:
                        self.ingest_chunk(chunk, bar)
                        chunk = []
            self.ingest_chunk(chunk, bar)
        self.flush()
        self.apply_deletions()

    def ingest_chunk(self, chunk: list[tuple[int, Deletion | ResourceUnit]], bar: tqdm[Never]) -> None:
        held = self.held.unchanged([(p, item) for p, item in chunk if isinstance(item, ResourceUnit)])
        for position, item in chunk:
            if isinstance(item, Deletion):
                self.deletions.append((item, position))
            else:
                self.ingest_unit(item, position, is_held=position in held)
            bar.update(1)

    def second_items(self, index: int, source: Source) -> Iterator[tuple[int, Deletion | ResourceUnit]]:
        """The clinical resources and deletions of one source, with their positions in the run, read once only
        when the first pass did not keep them."""
        kept = self.kept.get(index)
        if kept is not None:
            yield from kept
            # Kept until here: while it waits for a validation worker, the run may validate some of them.
            del self.kept[index]
            return
        occurrence = count(self.starts[index])
        for item in read_source(source, max_bytes=self.max_bytes, read=self.read):
            position = next(occurrence)
            if isinstance(item, Rejection) or (
                isinstance(item, ResourceUnit) and item.resource_type == "Patient"
            ):
                continue  # counted in the first pass
            yield position, item

    def ingest_unit(self, unit: ResourceUnit, position: int, *, is_held: bool = False) -> None:
        reject = self.rejections.of_unit
        if not is_resource_type(unit.resource_type):
            detail = (
                f"{unit.resource_type or 'A resource with no resourceType'} is not a FHIR R4 resource type."
            )
            reject(unit, Reason.INVALID_RESOURCE, detail)
            return
        if unit.resource_type not in SUPPORTED_TYPES:
            detail = f"{unit.resource_type} resources are not part of the shared care record."
            reject(unit, Reason.UNSUPPORTED_TYPE, detail)
            return
        try:
            # Held unchanged (see held.HeldContent.unchanged): validated when it was stored.
            resource, mapped = (
                (unit.json, None)
                if is_held and unit.json is not None
                else self.validation.checked(unit, position)
            )
        except InvalidResource as error:
            reject(unit, Reason.INVALID_RESOURCE, str(error))
            return
        target = subject_target(resource, unit.container, self.index)
        if isinstance(target, Unmatched):
            reject(
                unit,
                target.reason,
                target.detail,
                target.nhs_number,
                patient_reference=target.patient_reference,
            )
            return
        key = (unit.resource_type, unit.source_id)
        newest = self.newest.get(key)
        superseded = (newest is not None and newest[1] != position) or self.deleted_at.get(key, -1) > position
        if not is_held:
            mapped = mapped or map_resource(resource)
        self.pending.append(_Pending(unit, mapped, target, superseded, position, unit.expected))
        if len(self.pending) >= self.batch_size:
            self.flush()

    def flush(self) -> None:
        self.held.look_up_nhs_numbers(
            {p.target.value for p in self.pending if isinstance(p.target, NhsNumber)}
        )
        batch: list[tuple[MappedEntry, int]] = []
        absent: set[tuple[str, str]] = set()
        for pending in self.pending:
            target = pending.target
            if isinstance(target, NhsNumber):
                held = self.held.patient(target.value)
                if held is None:
                    detail = "No patient is held for the NHS number on its subject reference."
                    self.rejections.of_unit(pending.unit, Reason.UNKNOWN_PATIENT, detail, target.value)
                    continue
                expected = pending.expected
                problem = expected and demographics_mismatch(
                    held.family_name, held.birth_date, expected.family_name, expected.birth_date
                )
                if problem:
                    self.rejections.of_unit(pending.unit, Reason.DEMOGRAPHIC_MISMATCH, problem, target.value)
                    continue
                target = held.survivor_id
            if pending.is_superseded or pending.mapped is None:
                self.tally.unchanged += 1
                continue
            batch.append((pending.mapped, target))
            if self.held.is_absent(pending.position):
                absent.add((pending.mapped.resource_type, pending.mapped.source_id))
        result = entries_upsert(self.feed, self.run, batch, absent=absent)
        self.tally.created += result.created
        self.tally.updated += result.updated
        self.tally.unchanged += result.unchanged
        self.tally.touched_patient_ids |= result.touched_patient_ids
        self.pending.clear()
        self.rejections.write()

    def apply_deletions(self) -> None:
        """Mark each entry a DELETE names as deleted at source, unless a later copy of it in this run re-sent it.

        Counted as updated when a stored entry changes, unchanged when there is none (or it is already marked),
        because deleting what we never held, or hold deleted already, leaves the record as it was.
        """
        wanted: dict[tuple[str, str], Deletion] = {}
        for deletion, position in self.deletions:
            key = (deletion.resource_type, deletion.source_id)
            if self.sent_at.get(key, -1) > position or key in wanted:
                self.tally.unchanged += 1
            else:
                wanted[key] = deletion
        self.deletions.clear()
        if not wanted:
            return
        held = RecordEntry.objects.filter(
            organisation=self.feed.organisation,
            resource_type__in={key[0] for key in wanted},
            source_id__in={key[1] for key in wanted},
            is_deleted_at_source=False,
        ).values_list("pk", "resource_type", "source_id", "patient_id")
        marked = {(resource_type, source_id): (pk, patient) for pk, resource_type, source_id, patient in held}
        hits = [marked[key] for key in wanted if key in marked]
        RecordEntry.objects.filter(pk__in=[pk for pk, _ in hits]).update(
            is_deleted_at_source=True, ingest_run=self.run, updated_at=timezone.now()
        )
        self.tally.updated += len(hits)
        self.tally.unchanged += len(wanted) - len(hits)
        self.tally.touched_patient_ids |= {patient for _, patient in hits}

    def finish(self, checksum: str) -> None:
        """Write what is left, check the counts add up, refresh relationships and the national data opt-outs the
        run sent, and mark the run succeeded."""
        self.rejections.write()
        tally = self.tally
        if tally.accounted != tally.read:
            raise RuntimeError(f"counts do not add up: read {tally.read}, accounted for {tally.accounted}")
        relationships_refresh(tally.touched_patient_ids)
        national_opt_outs_from_run(self.run.pk)
        run = self.run
        run.status = IngestRun.Status.SUCCEEDED
        run.finished_at = timezone.now()
        run.resources_read = tally.read
        run.created, run.updated, run.unchanged = tally.created, tally.updated, tally.unchanged
        run.quarantined = tally.quarantined
        run.patients_created, run.patients_updated = tally.patients_created, tally.patients_updated
        run.checksum = checksum
        run.save()
        # Freshness is about what the partner sent: replaying quarantined records must not hide a stale feed.
        if run.trigger != IngestRun.Trigger.REPLAY:
            self.feed.last_success_at = run.finished_at
            self.feed.save(update_fields=["last_success_at"])
