"""One ingest run: partner files in, record entries and quarantined records out, and an IngestRun that adds up.

The feed's format decides how bytes become FHIR resources: FHIR R4 as sent (`readers`), CSV extracts through the
feed's declared mapping (`csv_extract`), HL7 v2 ADT messages (`hl7v2`). From there every format takes the same path:
this module holds the run (its row, lock, transaction and outcome); `ingestion.Ingestion` does its two passes, with
the Patient resources (`patient_pass`), what the partner already holds (`held`), validation (`run_validation`,
`validation_pool`) and what it quarantines (`rejections`).

What always holds:
- every resource read is counted exactly once, as created, updated, unchanged or quarantined (Patient resources
  included; `patients_created` and `patients_updated` say how many of the created and updated were patients), and
  a run whose counts do not add up is not allowed to succeed;
- bad input never stops the good: it is quarantined with its reason, location and raw text, and nothing about it
  raises out of the pipeline;
- everything one run writes commits in one transaction, so a run that fails leaves no half-written record; its
  IngestRun is then marked failed, with the error, and shows zero counts because nothing of it was kept;
- one run at a time per feed (a PostgreSQL advisory lock held until the transaction ends,
  `sharedcare.advisory_locks`);
- running the same input twice changes nothing the second time;
- a Patient that is `replaced-by` another (or an HL7 A40) merges the two records (`merges`), and every reference to
  a retired patient's NHS number reaches its survivor;
- a quarantined record keeps the NHS number it names, and the run returned says which patients arrived
  (`IngestRun.arrived_patient_ids`: created, or newly named by a partner's Patient id), so that its caller can
  queue the replay of the records quarantined for them once it commits (`records.tasks`). The pipeline knows
  nothing of Celery: it returns what arrived, and the task layer chains the follow-up work.

With INGEST_VALIDATION_PROCESSES over 1, worker processes validate and map each input, piece by piece, while the run
goes on, and the run takes pieces no worker has reached whenever it would otherwise wait
(`validation_pool.ValidationPool`); what they find is exactly what the run would have found itself.
"""

from __future__ import annotations

import gc
import os
import pathlib
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from functools import partial

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from consent.sensitive import sensitive_codes_refresh
from records.ingest.formats import csv_extract, hl7v2
from records.ingest.formats.readers import SUFFIXES, read_bytes, sources_for_path
from records.ingest.ingestion import Ingestion
from records.ingest.items import Reader, Source, clean
from records.ingest.mapping import SUPPORTED_TYPES
from records.ingest.run_validation import mapped_apart
from records.ingest.validation_pool import ValidationPool
from records.models import Feed, IngestRun, RecordEntry
from sharedcare import advisory_locks

# A run that creates at least this many entries refreshes the table's statistics once it commits. Until autovacuum
# next analyses the table (a minute or more), the planner may take a partner that now holds thousands of entries to
# hold none, and look every key of its next run up through the organisation index, reading all of its entries for
# each (a redelivered 40,000-record run took over 45 s that way; see docs/benchmarks.md).
ANALYZE_AFTER_CREATED = 5_000
# The columns whose statistics the run refreshes: those the lookup of what is held and the record page filter on.
# Not the resource's JSON, nor the rest: sampling them is most of a full ANALYZE's time (measured on 17,000 entries:
# 0.16 s against 0.045 s), and autovacuum keeps their statistics as before.
ANALYZED_COLUMNS = ("organisation_id", "resource_type", "source_id", "patient_id", "section")


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
    the feed's format. Returns the succeeded IngestRun, with the patients that arrived (`arrived_patient_ids`);
    raises IngestFailed (the run row kept, marked failed) if the run could not complete, and FileNotFoundError
    before any run starts if the path does not exist.
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
            work = _execute(feed, run, sources, progress=progress)
            if work.tally.created >= ANALYZE_AFTER_CREATED:
                # robust: statistics are an optimisation; failing to refresh them must not fail a committed run.
                transaction.on_commit(entries_analyze, robust=True)
    except Exception as error:
        IngestRun.objects.filter(pk=run.pk).update(
            status=IngestRun.Status.FAILED,
            finished_at=timezone.now(),
            error=clean(f"{type(error).__name__}: {error}"),
        )
        run.refresh_from_db()
        raise IngestFailed(run) from error
    run.arrived_patient_ids = work.tally.arrived_patient_ids
    return run


def _execute(feed: Feed, run: IngestRun, sources: Sequence[Source], *, progress: bool) -> Ingestion:
    """Both passes of the run, with validation workers beside it while they go on, then its outcome recorded."""
    # Built here rather than at module level: a CSV feed's mapping is checked now, and a bad one fails the run.
    read = reader_for(feed)
    # Once per run, before any resource is mapped and before validation workers fork with this process's sets.
    sensitive_codes_refresh()
    with ValidationPool(
        sources,
        processes=settings.INGEST_VALIDATION_PROCESSES,
        allowed=partial(validation_processes, run=run),
        max_bytes=settings.INGEST_MAX_FILE_BYTES,
        types=SUPPORTED_TYPES,
        read=read,
        mapper=mapped_apart,
    ) as pool:
        work = Ingestion(feed, run, sources, read=read, pool=pool, progress=progress)
        checksum = work.execute()
    work.finish(checksum)
    return work


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
