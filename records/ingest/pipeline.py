"""One ingest run: partner files in, record entries and quarantined records out, and an IngestRun that adds up.

The feed's format decides how bytes become FHIR resources: FHIR R4 as sent (`readers`), CSV extracts through the
feed's declared mapping (`csv_extract`), HL7 v2 ADT messages (`hl7v2`). From there every format takes the same path.

What always holds:
- every resource read is counted exactly once, as created, updated, unchanged or quarantined (Patient resources
  included; `patients_created` and `patients_updated` say how many of the created and updated were patients), and
  a run whose counts do not add up is not allowed to succeed;
- bad input never stops the good: it is quarantined with its reason, location and raw text, and nothing about it
  raises out of the pipeline;
- everything one run writes commits in one transaction, so a run that fails leaves no half-written record; its
  IngestRun is then marked failed, with the error, and shows zero counts because nothing of it was kept;
- one run at a time per feed (a PostgreSQL advisory lock held until the transaction ends);
- running the same input twice changes nothing the second time;
- a transaction DELETE marks the stored entry deleted at source (kept for the audit trail, never shown), unless a
  copy of the same resource comes later in the run; an unknown target is counted unchanged;
- a Patient that is `replaced-by` another (or an HL7 A40) merges the two records (`merges`), and every reference to
  a retired patient's NHS number reaches its survivor;
- a quarantined record keeps the NHS number it names, and once a run that created patients commits, the records
  quarantined for those unknown patients are queued for replay.

A run goes over its input twice. The first pass checksums the bytes, quarantines what cannot be read, applies every
Patient resource and notes which copy of each resource is the newest; the second maps and writes everything else.
Patients go first so that a clinical resource finds its Patient wherever in the run it is, whatever the file order.
The second pass reuses what the first parsed, up to `KEEP_PARSED_BYTES` of input a run; files beyond that are read
and parsed again rather than held in memory.

A resource whose content (hash) and patient are those of the entry the partner already holds is counted unchanged
without being validated, mapped or written again (`held_unchanged`): it was validated when it was stored. With
INGEST_VALIDATION_PROCESSES over 1, worker processes validate and map each input, piece by piece, while the run
goes on, and the run takes pieces no worker has reached whenever it would otherwise wait (`validation_pool.ValidationPool`);
what they find is exactly what the run would have found itself.

When one run holds several copies of the same resource (same type and id), only the newest is written (the latest
meta.lastUpdated, then the highest numeric meta.versionId, then the last in the run); the other copies are checked
and counted as unchanged. Without that rule the copies would overwrite one another and a second run of the same
input would "update" them again.
"""

from __future__ import annotations

import bisect
import gc
import hashlib
import os
import pathlib
import sys
from array import array
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, fields, replace
from datetime import date, datetime, timedelta
from functools import partial
from itertools import count, islice, takewhile
from operator import attrgetter, itemgetter
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from tqdm import tqdm

from consent.services import relationships_refresh
from records import nhs_number as nhs_numbers
from records.ingest import csv_extract, hl7v2
from records.ingest.fhir import (
    InvalidResource,
    JsonObject,
    content_hash,
    is_resource_type,
    text,
    validate_json,
    validate_xml,
    version_key,
)
from records.ingest.mapping import SUPPORTED_TYPES, MappedEntry, MappedJson, map_resource
from records.ingest.matching import (
    NHS_NUMBER_SYSTEM,
    NhsNumber,
    PatientIndex,
    Reason,
    Unmatched,
    check_nhs_number,
    named_nhs_number,
    nhs_number_of,
    subject_target,
    well_formed,
)
from records.ingest.merges import patients_merge, replaced_by, survivors
from records.ingest.patients import (
    PatientCandidate,
    PatientResult,
    demographics_mismatch,
    partner_ids_record,
    patients_upsert,
)
from records.ingest.readers import (
    SUFFIXES,
    Deletion,
    ExpectedPatient,
    Reader,
    Rejection,
    ResourceUnit,
    Source,
    clean,
    new_checksum,
    read_bytes,
    read_source,
    sources_for_path,
)
from records.ingest.upsert import QuarantineRow, entries_held, entries_upsert, quarantined_insert
from records.ingest.validation_pool import ValidationPool
from records.ingest.validation_worker import Verdict, piece_verdicts
from records.models import Feed, IngestRun, Patient, RecordEntry
from sharedcare import advisory_locks

BATCH_SIZE = 500
# What the first pass found stored for a resource, besides the patient of a stored entry with the same content.
_UNKNOWN = -1  # not looked up, or stored with other content
_ABSENT = -2  # nothing stored: the upsert need not look again
# Input (bytes as sent) whose parsed resources the first pass keeps for the second, so that it is parsed once: the
# parsed form takes about five times the bytes, so this bounds what a run holds at once to under 100 MB.
KEEP_PARSED_BYTES = 16 * 1024 * 1024
# A run that creates at least this many entries refreshes the table's statistics once it commits. Until autovacuum
# next analyses the table (a minute or more), the planner may take a partner that now holds thousands of entries to
# hold none, and look every key of its next run up through the organisation index, reading all of its entries for
# each (a redelivered 40,000-record run took over 45 s that way; see docs/benchmarks.md).
ANALYZE_AFTER_CREATED = 5_000
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


def suffixes_for(feed: Feed) -> frozenset[str]:
    """The file suffixes a folder given to this feed is searched for."""
    if feed.format == Feed.Format.CSV:
        return csv_extract.SUFFIXES
    if feed.format == Feed.Format.HL7V2:
        return hl7v2.SUFFIXES
    return SUFFIXES


def reader_for(feed: Feed) -> Reader:
    """How this feed's bytes become resources; a CSV feed with a mapping that is not valid raises CsvMappingError."""
    if feed.format == Feed.Format.CSV:
        return csv_extract.reader(feed)
    if feed.format == Feed.Format.HL7V2:
        return hl7v2.reader(feed)
    return read_bytes


def ingest_path(
    feed: Feed,
    path: pathlib.Path,
    *,
    progress: bool = False,
    trigger: str = IngestRun.Trigger.COMMAND,
) -> IngestRun:
    """Ingest a file, or every file of the feed's format below a folder (sorted), as one run of `feed`.

    A folder is searched for .json/.ndjson/.jsonl/.xml (FHIR), .csv/.txt (CSV) or .hl7/.txt (HL7 v2) files by
    the feed's format. Returns the succeeded IngestRun; raises IngestFailed (the run row kept, marked failed) if
    the run could not complete, and FileNotFoundError before any run starts if the path does not exist.
    """
    if not path.exists():
        raise FileNotFoundError(f"no such file or folder: {path}")
    sources = sources_for_path(path, suffixes_for(feed))
    return _ingest(feed, sources, source_name=str(path), progress=progress, trigger=trigger)


def ingest_texts(
    feed: Feed,
    texts: Iterable[tuple[str, bytes]],
    *,
    source_name: str = "",
    progress: bool = False,
    trigger: str = IngestRun.Trigger.COMMAND,
) -> IngestRun:
    """Ingest (location, bytes) pairs as one run of `feed`, in the order given; as `ingest_path` otherwise."""
    sources = [Source(location=location, data=data) for location, data in texts]
    return _ingest(feed, sources, source_name=source_name, progress=progress, trigger=trigger)


@contextmanager
def _fewer_collector_pauses() -> Iterator[None]:
    """Run the cyclic garbage collector less often during a run.

    A run allocates millions of short-lived, acyclic objects (parsed JSON, pydantic models), and the default
    thresholds make the collector rescan them over and over: measured by `make bench`, about a fifth of a run.
    """
    thresholds = gc.get_threshold()
    gc.set_threshold(50_000, 20, 100)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)


def _ingest(
    feed: Feed, sources: Sequence[Source], *, source_name: str, progress: bool, trigger: str
) -> IngestRun:
    run = IngestRun.objects.create(feed=feed, source_name=source_name[:500], trigger=trigger)
    try:
        with _fewer_collector_pauses(), transaction.atomic():
            advisory_locks.feed_ingest_lock(feed.pk)
            work = _Run(feed, run, sources, progress=progress)
            work.execute()
            if work.tally.created >= ANALYZE_AFTER_CREATED:
                # robust: statistics are an optimisation; failing to refresh them must not fail a committed run.
                transaction.on_commit(entries_analyze, robust=True)
            arrived = sorted(work.tally.created_patient_ids | work.tally.named_patient_ids)
            if arrived:
                # After commit only: the replay must see the new patients, and must not run for a run rolled back.
                transaction.on_commit(partial(unknown_patients_replay_enqueue, arrived))
    except Exception as error:
        IngestRun.objects.filter(pk=run.pk).update(
            status=IngestRun.Status.FAILED,
            finished_at=timezone.now(),
            error=clean(f"{type(error).__name__}: {error}"),
        )
        run.refresh_from_db()
        raise IngestFailed(run) from error
    return run


# The columns whose statistics the run refreshes: those the lookup of what is held and the record page filter on.
# Not the resource's JSON, nor the rest: sampling them is most of a full ANALYZE's time (measured on 17,000 entries:
# 0.16 s against 0.045 s), and autovacuum keeps their statistics as before.
ANALYZED_COLUMNS = ("organisation_id", "resource_type", "source_id", "patient_id", "section")


def usable_cores() -> int:
    """The CPUs this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def validation_processes(wanted: int, run: IngestRun) -> int:
    """How many processes `run` may validate in now: `wanted` (INGEST_VALIDATION_PROCESSES), but no more than the
    cores the other runs going on leave it, and at least its own. The validation pool asks before its workers
    start, and again as it hands over each further input: a run that has to share the cores hands them no more.

    A validation worker uses a core another run would otherwise use, and costs a run about a sixth more CPU in
    all (`make bench`): with every core busy it would slow the machine down. A run counts as going on while it is
    marked running and started within the task time limit (a run a dead worker left marked running counts no
    longer); runs on other machines sharing the database count too, which errs on the side of fewer workers.
    """
    since = timezone.now() - timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT)
    others = (
        IngestRun.objects.filter(status=IngestRun.Status.RUNNING, started_at__gte=since)
        .exclude(pk=run.pk)
        .count()
    )
    return max(1, min(wanted, usable_cores() - others))


def entries_analyze() -> None:
    """Refresh the planner's statistics of the record entries (see ANALYZE_AFTER_CREATED)."""
    quote = connection.ops.quote_name
    columns = ", ".join(quote(column) for column in ANALYZED_COLUMNS)
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {quote(RecordEntry._meta.db_table)} ({columns})")


# The fields of a MappedJson but its resource, in order: what a validation worker sends back of a mapping
# (`_mapped_apart`), a tuple because it pickles, and is made a MappedJson again, in a fraction of the time.
_APART = tuple(mapped_field.name for mapped_field in fields(MappedJson) if mapped_field.name != "resource")
_apart = attrgetter(*_APART)


def _mapped_apart(resource: JsonObject) -> tuple[Any, ...]:
    """`map_resource` in a validation worker, without the resource itself: the run holds that already."""
    values: tuple[Any, ...] = _apart(map_resource(resource))
    return values


def _mapped_with(mapped: MappedEntry | tuple[Any, ...], resource: JsonObject) -> MappedEntry:
    """A mapping made here, or one a worker sent back (`_mapped_apart`) given back its resource."""
    if isinstance(mapped, MappedEntry):
        return mapped
    return MappedJson(resource=resource, **dict(zip(_APART, mapped, strict=True)))


def unknown_patients_replay_enqueue(patient_ids: list[int]) -> None:
    """Queue the replay of records quarantined as unknown-patient for these newly created patients."""
    # Imported here: the tasks module reaches the pipeline through the feed runners.
    from records.tasks import unknown_patients_replay_task

    unknown_patients_replay_task.delay(patient_ids)


@dataclass
class _Pending:
    unit: ResourceUnit
    mapped: MappedEntry | None  # None: held unchanged (see held_unchanged), neither mapped nor written
    target: int | NhsNumber
    # A newer copy of the same resource comes elsewhere in this run (or a later DELETE of it); this one is read but
    # not written.
    is_superseded: bool
    position: int
    expected: ExpectedPatient | None = None


@dataclass(frozen=True)
class _MergeCandidate:
    """A Patient resource saying its record is replaced by another: the retired record, to merge."""

    unit: ResourceUnit
    retired_number: str
    survivor: JsonObject  # the link's `other` reference
    raw: str


@dataclass(frozen=True)
class _HeldPatient:
    survivor_id: int  # the patient itself, or the one it was merged into
    family_name: str
    birth_date: date | None


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
    # Resources that went through FHIR validation, here or in a worker, valid or not (for `make bench`).
    validated: int = 0
    touched_patient_ids: set[int] = field(default_factory=set)
    created_patient_ids: set[int] = field(default_factory=set)
    # Patients a partner's Patient id led to for the first time (or anew): what waits for that id can be replayed.
    named_patient_ids: set[int] = field(default_factory=set)


class _Run:
    def __init__(self, feed: Feed, run: IngestRun, sources: Sequence[Source], *, progress: bool) -> None:
        self.feed = feed
        self.run = run
        self.sources = sources
        self.progress = progress
        self.max_bytes: int = settings.INGEST_MAX_FILE_BYTES
        self.tally = _Tally()
        self.index = PatientIndex(feed.organisation_id)
        # (resource type, id) -> (version, occurrence) of the newest copy in this run.
        self.newest: dict[tuple[str, str], tuple[tuple[datetime, int], int]] = {}
        # (resource type, id) -> occurrence of the last DELETE of it, and of the last copy of it, in this run.
        self.deleted_at: dict[tuple[str, str], int] = {}
        self.sent_at: dict[tuple[str, str], int] = {}
        self.deletions: list[tuple[Deletion, int]] = []
        self.nhs_numbers: dict[str, _HeldPatient | None] = {}
        self.pending: list[_Pending] = []
        self.quarantine: list[QuarantineRow] = []
        # By source index: the position of its first item, and (within KEEP_PARSED_BYTES) the items the second
        # pass needs, with their positions, as the first pass read them.
        self.starts: list[int] = []
        self.kept: dict[int, list[tuple[int, Deletion | ResourceUnit]]] = {}
        # Built here rather than at module level: a CSV feed's mapping is checked now, and a bad one fails the run.
        self.read: Reader = reader_for(feed)
        # Validation in worker processes (INGEST_VALIDATION_PROCESSES), and what they found, by position.
        self.pool: ValidationPool | None = None
        self.verdicts: dict[int, Verdict] = {}
        # What the first pass found stored for each resource, by position: the stored entry's patient when its
        # content (hash) is the same (see held_unchanged), _ABSENT when nothing was stored, else _UNKNOWN; and the
        # resources still to check, with their positions.
        self.held = array("q")
        self.holds_entries: bool | None = None  # whether the partner holds any entry: asked once, when needed
        self.unchecked: list[tuple[int, int, ResourceUnit]] = []
        # By source index: how many of its resources a worker could validate, and how many of those are held.
        self.to_validate: list[int] = []
        self.held_in: list[list[int]] = []
        self.submitted = 0  # sources before this one are with the pool

    def execute(self) -> None:
        with ValidationPool(
            self.sources,
            processes=settings.INGEST_VALIDATION_PROCESSES,
            allowed=partial(validation_processes, run=self.run),
            max_bytes=self.max_bytes,
            types=SUPPORTED_TYPES,
            read=self.read,
            mapper=_mapped_apart,
        ) as self.pool:
            checksum = self.first_pass()
            self.second_pass()
        self.finish(checksum)

    # First pass: read everything once; apply Patient resources; find the newest copy of each resource.

    def first_pass(self) -> str:
        checksum = new_checksum()
        candidates: list[PatientCandidate] = []
        merges: list[_MergeCandidate] = []
        occurrence = count()
        kept_bytes = 0
        bar = tqdm(self.sources, desc="reading", unit="file", disable=not self.progress, file=sys.stderr)
        for index, source in enumerate(bar):
            self.starts.append(self.tally.read)
            self.to_validate.append(0)
            self.held_in.append([])
            size = source.size()
            kept: list[tuple[int, Deletion | ResourceUnit]] | None = None
            if kept_bytes + size <= KEEP_PARSED_BYTES:
                kept = self.kept[index] = []
                kept_bytes += size
            for item in read_source(source, max_bytes=self.max_bytes, checksum=checksum, read=self.read):
                position = next(occurrence)
                self.tally.read += 1
                self.held.append(_UNKNOWN)
                if kept is not None and (
                    isinstance(item, Deletion)
                    or (isinstance(item, ResourceUnit) and item.resource_type != "Patient")
                ):
                    kept.append((position, item))
                if isinstance(item, Rejection):
                    self.reject(
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
                    candidate = self.patient_candidate(item, position)
                    if isinstance(candidate, _MergeCandidate):
                        merges.append(candidate)
                    elif candidate is not None:
                        candidates.append(candidate)
                else:
                    self.tally.clinical += 1
                    self.note_version(item, position)
                    if item.resource_type not in SUPPORTED_TYPES:
                        continue
                    self.to_validate[index] += 1
                    if item.json is not None and item.source_id:
                        self.unchecked.append((index, position, item))
                        if len(self.unchecked) >= BATCH_SIZE:
                            self.check_held()
                            self.submit_validation(index)
            if not self.unchecked:
                self.submit_validation(index + 1)
        self.check_held()
        self.submit_validation(len(self.sources))
        self.apply_patients(candidates)
        self.apply_merges(merges)
        return str(checksum.hexdigest())

    def check_held(self) -> None:
        """Note the resources whose content (hash) is that of the entry this partner holds for them, in one query.

        What was read before any patient was applied: a merge in this run can only make a held patient differ
        from the one the resource leads to, which means validating it after all. A partner that holds no entry at
        all (its first load) is asked once, not 500 keys at a time: the first pass writes no entry.
        """
        if self.holds_entries is None:
            self.holds_entries = RecordEntry.objects.filter(
                organisation_id=self.feed.organisation_id
            ).exists()
        held = (
            entries_held(self.feed, {(unit.resource_type, unit.source_id) for _, _, unit in self.unchecked})
            if self.holds_entries
            else {}
        )
        for index, position, unit in self.unchecked:
            stored = held.get((unit.resource_type, unit.source_id))
            if stored is None:
                self.held[position] = _ABSENT
            elif not stored.is_deleted_at_source and content_hash(unit.json or {}) == stored.content_hash:
                self.held[position] = stored.patient_id
                self.held_in[index].append(position)
        self.unchecked.clear()

    def submit_validation(self, end: int) -> None:
        """Hand the sources before `end`, read and checked, to the validation pool; those with nothing to validate
        are not sent at all."""
        for index in range(self.submitted, end):
            held = self.held_in[index]
            if self.pool is not None and len(held) < self.to_validate[index]:
                stop = self.starts[index + 1] if index + 1 < len(self.starts) else self.tally.read
                self.pool.submit(index, range(self.starts[index], stop), frozenset(held))
            self.held_in[index] = []
        self.submitted = max(self.submitted, end)

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

    def patient_candidate(
        self, unit: ResourceUnit, position: int
    ) -> PatientCandidate | _MergeCandidate | None:
        try:
            resource = self.validate(unit)
        except InvalidResource as error:
            self.reject_unit(unit, Reason.INVALID_RESOURCE, str(error))
            self.index_patient(unit, Unmatched(Reason.INVALID_RESOURCE, str(error)))
            return None
        number = check_nhs_number(nhs_number_of(resource), "The Patient resource")
        if isinstance(number, Unmatched):
            self.reject_unit(unit, number.reason, number.detail, number.nhs_number)
            self.index_patient(unit, number)
            return None
        # Keep the validated JSON and the raw text, not the XML element, which would hold its whole file in memory.
        light = replace(unit, json=resource, element=None)
        survivor = replaced_by(resource)
        if survivor is not None:
            return _MergeCandidate(unit=light, retired_number=number, survivor=survivor, raw=unit.raw())
        return PatientCandidate(
            unit=light, resource=resource, nhs_number=number, occurrence=position, raw=unit.raw()
        )

    def apply_patients(self, candidates: list[PatientCandidate]) -> None:
        results = patients_upsert(self.feed, candidates)
        self.tally.named_patient_ids |= partner_ids_record(self.feed, candidates, results)
        # A patient merged into another earlier: what refers to it in this run belongs to the survivor.
        ends = survivors({r.patient_id for r in results.values() if isinstance(r, PatientResult)})
        for candidate in candidates:
            result = results[candidate.occurrence]
            if isinstance(result, Unmatched):
                # The raw text as sent: the light unit no longer holds an XML resource's element.
                self.reject_unit(
                    candidate.unit, result.reason, result.detail, result.nhs_number, candidate.raw
                )
                self.index_patient(candidate.unit, result)
                continue
            self.count_patient(result)
            self.index.add(
                container=candidate.unit.container,
                full_url=candidate.unit.full_url,
                source_id=candidate.unit.source_id,
                target=ends[result.patient_id],
            )

    def apply_merges(self, merges: list[_MergeCandidate]) -> None:
        """Merge each retired patient into its survivor, after every Patient of the run is applied.

        The survivor is found by the link's reference to a Patient of this run when it has one (so a survivor
        quarantined in this run stops the merge), else by the NHS number identifier on the link.
        """
        for merge in merges:
            unit = merge.unit
            survivor = self.survivor_target(merge)
            if isinstance(survivor, Unmatched):
                number = survivor.nhs_number or merge.retired_number
                self.reject_unit(unit, survivor.reason, survivor.detail, number, merge.raw)
                self.index_patient(unit, survivor)
                continue
            result = patients_merge(merge.retired_number, survivor)
            if isinstance(result, Unmatched):
                self.reject_unit(unit, result.reason, result.detail, merge.retired_number, merge.raw)
                self.index_patient(unit, result)
                continue
            if result.outcome == "updated":
                self.tally.updated += 1
                self.tally.patients_updated += 1
            else:
                self.tally.unchanged += 1
            self.tally.touched_patient_ids |= result.touched_patient_ids
            self.index.add(
                container=unit.container,
                full_url=unit.full_url,
                source_id=unit.source_id,
                target=result.survivor_id,
            )

    def survivor_target(self, merge: _MergeCandidate) -> int | Unmatched:
        reference = text(merge.survivor.get("reference"))
        if reference:
            found = self.index.resolve(reference, merge.unit.container)
            if isinstance(found, int):
                return found
            if isinstance(found, Unmatched):
                return Unmatched(
                    found.reason,
                    f"The patient it is replaced by could not be used. {found.detail}",
                    found.nhs_number,
                )
        identifier = merge.survivor.get("identifier")
        value = text(identifier.get("value")) if isinstance(identifier, dict) else ""
        if not isinstance(identifier, dict) or identifier.get("system") != NHS_NUMBER_SYSTEM:
            return Unmatched(
                Reason.UNKNOWN_PATIENT,
                "The patient it is replaced by is named neither by a Patient resource of this run nor by an "
                "NHS number identifier.",
            )
        checked = check_nhs_number(nhs_numbers.normalise(value), "The replaced-by link")
        if isinstance(checked, Unmatched):
            return checked
        held = Patient.objects.filter(nhs_number=checked).values_list("pk", flat=True).first()
        if held is None:
            return Unmatched(
                Reason.UNKNOWN_PATIENT,
                "No patient is held for the NHS number of the patient it is replaced by, so nothing was merged.",
                checked,
            )
        return held

    def count_patient(self, result: PatientResult) -> None:
        if result.outcome == "created":
            self.tally.created += 1
            self.tally.patients_created += 1
            self.tally.created_patient_ids.add(result.patient_id)
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
            target=Unmatched(reason, detail, problem.nhs_number or named_nhs_number(unit.json or {})),
        )

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
                    if len(chunk) >= BATCH_SIZE:
                        self.ingest_chunk(chunk, bar)
                        chunk = []
            self.ingest_chunk(chunk, bar)
        self.flush()
        self.apply_deletions()

    def ingest_chunk(self, chunk: list[tuple[int, Deletion | ResourceUnit]], bar: tqdm) -> None:
        held = self.held_unchanged([(p, item) for p, item in chunk if isinstance(item, ResourceUnit)])
        for position, item in chunk:
            if isinstance(item, Deletion):
                self.deletions.append((item, position))
            else:
                self.ingest_unit(item, position, is_held=position in held)
            bar.update(1)

    def held_unchanged(self, units: list[tuple[int, ResourceUnit]]) -> set[int]:
        """Positions of the JSON resources whose content (hash) and patient are those of the entry stored for them.

        Such a resource is neither validated nor mapped again, and is counted unchanged without going to the
        upsert: the same content passed the same validation when it was stored, and the upsert would not write it
        (same content, same patient, not deleted at source), so nothing unvalidated is ever stored. After an
        upgrade of fhir.resources, such a resource keeps the verdict it had when stored until its content changes.
        """
        matches: list[tuple[int, int | NhsNumber, int]] = []
        for position, unit in units:
            patient_id = self.held[position]
            if patient_id < 0 or unit.json is None:
                continue
            target = subject_target(unit.json, unit.container, self.index)
            if not isinstance(target, Unmatched):
                matches.append((position, target, patient_id))
        self.look_up_nhs_numbers({t.value for _, t, _ in matches if isinstance(t, NhsNumber)})
        same = set()
        for position, target, patient_id in matches:
            if isinstance(target, NhsNumber):
                found = self.nhs_numbers[target.value]
                if found is None:
                    continue
                target = found.survivor_id
            if target == patient_id:
                same.add(position)
        return same

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
            # Held unchanged (see held_unchanged): validated when it was stored.
            resource, mapped = (
                (unit.json, None) if is_held and unit.json is not None else self.checked(unit, position)
            )
        except InvalidResource as error:
            self.reject_unit(unit, Reason.INVALID_RESOURCE, str(error))
            return
        target = subject_target(resource, unit.container, self.index)
        if isinstance(target, Unmatched):
            self.reject_unit(
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
        if len(self.pending) >= BATCH_SIZE:
            self.flush()

    def flush(self) -> None:
        self.look_up_nhs_numbers()
        batch: list[tuple[MappedEntry, int]] = []
        absent: set[tuple[str, str]] = set()
        for pending in self.pending:
            target = pending.target
            if isinstance(target, NhsNumber):
                held = self.nhs_numbers[target.value]
                if held is None:
                    detail = "No patient is held for the NHS number on its subject reference."
                    self.reject_unit(pending.unit, Reason.UNKNOWN_PATIENT, detail, target.value)
                    continue
                expected = pending.expected
                problem = expected and demographics_mismatch(
                    held.family_name, held.birth_date, expected.family_name, expected.birth_date
                )
                if problem:
                    self.reject_unit(pending.unit, Reason.DEMOGRAPHIC_MISMATCH, problem, target.value)
                    continue
                target = held.survivor_id
            if pending.is_superseded or pending.mapped is None:
                self.tally.unchanged += 1
                continue
            batch.append((pending.mapped, target))
            if self.held[pending.position] == _ABSENT:
                absent.add((pending.mapped.resource_type, pending.mapped.source_id))
        result = entries_upsert(self.feed, self.run, batch, absent=absent)
        self.tally.created += result.created
        self.tally.updated += result.updated
        self.tally.unchanged += result.unchanged
        self.tally.touched_patient_ids |= result.touched_patient_ids
        self.pending.clear()
        self.write_quarantine()

    def look_up_nhs_numbers(self, numbers: Iterable[str] | None = None) -> None:
        """Find the patients held for these NHS numbers (by default, those of the pending resources)."""
        if numbers is None:
            numbers = {p.target.value for p in self.pending if isinstance(p.target, NhsNumber)}
        wanted = {number for number in numbers if number not in self.nhs_numbers}
        if not wanted:
            return
        found = {
            number: (pk, merged_into_id, family_name, birth_date)
            for number, pk, merged_into_id, family_name, birth_date in Patient.objects.filter(
                nhs_number__in=wanted
            ).values_list("nhs_number", "pk", "merged_into_id", "family_name", "birth_date")
        }
        # Only a batch that names a merged patient costs a look-up of survivors.
        merged = {pk for pk, merged_into_id, _, _ in found.values() if merged_into_id is not None}
        ends = survivors(merged) if merged else {}
        for number in wanted:
            row = found.get(number)
            self.nhs_numbers[number] = (
                None if row is None else _HeldPatient(ends.get(row[0], row[0]), row[2], row[3])
            )

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

    # Shared.

    def checked(self, unit: ResourceUnit, position: int) -> tuple[JsonObject, MappedEntry | None]:
        """The validated resource and, when a validation worker made it, its mapping; raises InvalidResource.

        A worker's verdict on the same resource is what `validate` would have given (the same functions on the
        same input); whatever no worker answered for is validated here.
        """
        verdict = self.verdicts.pop(position, None)
        if verdict is None and self.pool is not None:
            # The first verdict asked for of a piece the pool shares: the worker's answers, or the run's to do.
            self.verdicts.update(self.pool.verdicts(position, self.validate_piece))
            verdict = self.verdicts.pop(position, None)
        if verdict is not None and verdict[:2] == (unit.resource_type, unit.source_id):
            _, _, outcome, mapped = verdict
            if isinstance(outcome, str):
                self.tally.validated += 1
                raise InvalidResource(outcome)
            resource = unit.json if outcome is None else outcome
            if resource is not None and (outcome is None) == (unit.json is not None):
                self.tally.validated += 1
                return resource, _mapped_with(mapped, resource) if mapped is not None else None
        return self.validate(unit), None

    def validate_piece(self, index: int, positions: range, skip: frozenset[int]) -> dict[int, Verdict] | None:
        """Verdicts (see `validation_pool.Verdict`) on the resources at `positions` of input `index`, but `skip`, made here
        while the run waits for a validation worker; None when the run no longer holds that input's items."""
        kept = self.kept.get(index)
        if kept is None:
            return None
        first = bisect.bisect_left(kept, positions.start, key=itemgetter(0))
        items = takewhile(lambda entry: entry[0] < positions.stop, islice(kept, first, None))
        return piece_verdicts(items, types=SUPPORTED_TYPES, skip=skip, mapper=map_resource)

    def validate(self, unit: ResourceUnit) -> JsonObject:
        self.tally.validated += 1
        if unit.json is not None:
            return validate_json(unit.json)
        return validate_xml(unit.element)

    def reject_unit(
        self,
        unit: ResourceUnit,
        reason: str,
        detail: str,
        nhs_number: str = "",
        raw: str | None = None,
        *,
        patient_reference: str = "",
    ) -> None:
        self.reject(
            unit.location,
            reason,
            detail,
            unit.raw() if raw is None else raw,
            unit.resource_type,
            unit.source_id,
            nhs_number=well_formed(nhs_number) or named_nhs_number(unit.json or {}),
            part=unit.part,
            patient_reference=patient_reference,
        )

    def reject(
        self,
        location: str,
        reason: str,
        detail: str,
        raw: str,
        resource_type: str,
        source_id: str,
        *,
        nhs_number: str = "",
        part: str = "",
        patient_reference: str = "",
    ) -> None:
        self.tally.quarantined += 1
        # Resources made from one partner message share its text; each keeps its own row by hashing its part too.
        hashed = f"{part}\n{raw}" if part else raw
        self.quarantine.append(
            (
                reason,
                clean(detail),
                resource_type[:64],
                source_id[:200],
                location[:500],
                raw,
                hashlib.sha256(hashed.encode("utf-8", "surrogateescape")).hexdigest(),
                well_formed(nhs_number),
                patient_reference,
                timezone.now(),
            )
        )
        if len(self.quarantine) >= BATCH_SIZE:
            self.write_quarantine()

    def write_quarantine(self) -> None:
        # A payload already pending for the same reason stays as the one row to fix and replay.
        quarantined_insert(self.feed, self.run, self.quarantine)
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
        # Freshness is about what the partner sent: replaying quarantined records must not hide a stale feed.
        if run.trigger != IngestRun.Trigger.REPLAY:
            self.feed.last_success_at = run.finished_at
            self.feed.save(update_fields=["last_success_at"])
