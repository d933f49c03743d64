"""What `make bench` measures, on a migrated (scratch) database; Django must be set up before this is imported.

1. The whole ingestion path (parse, validate, match, map, upsert, quarantine, relationships) on the Synthea
   bundles of ../shared/data, made matchable in memory: each Patient gets a valid NHS number from the 999 test
   range. First run (everything is new), then the same input again (nothing may be written), in one process
   (INGEST_VALIDATION_PROCESSES=1); then both again for new patients at another practice with
   INGEST_VALIDATION_PROCESSES=2 (validation in a worker process beside the run, as a lone run gets by default).
   Before anything is timed, one untimed run of one bundle imports what a worker imports on its first run (the
   FHIR model classes, about 0.2 s), so that every row measures a worker that has run before (`--cold` does not).
2. The same on the demo (`records.demo`), feed by feed, GP feeds first, as `make run` loads it; then its first run
   again, in a second scratch database (the demo's patients are fixed), with its feeds taken two at a time by two
   processes, GP feeds first: what two Celery workers do with the demo's feeds.
3. Two Synthea runs at once, each in its own process with half the bundles, for new patients at two practices:
   what a two-core machine does with two Celery workers, as `make run` starts them, with the default settings
   (each run forks a validation worker only while no other run takes the other core).
4. The floor: a plain PostgreSQL COPY of the record-entry rows each of those runs wrote, into an empty table with
   the same columns, indexes, constraints and foreign keys, in the same run on the same server.
5. R4B validation alone (pydantic, one core) on the Synthea resources, and on the UK Core XML examples, for
   reference.

Each run's row gives resources read and resources validated (valid or not, in the run's process or a worker), and
both per second: the speed target is set in validated resources a second.

It measures and prints; it asserts nothing about speed. It does refuse to print numbers for runs that failed,
did not add up, wrote nothing, or wrote again on a re-run, because those numbers would mean nothing. The files in
../shared/data are only read, never changed.
"""

from __future__ import annotations

import contextlib
import cProfile
import ctypes
import gc
import inspect
import io
import json
import multiprocessing
import os
import platform
import pstats
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from datetime import date
from itertools import count
from pathlib import Path
from typing import Any, TextIO

import django
import fhir.resources
import psycopg
import pydantic
from django.core.management import call_command
from django.db import connection, connections, transaction
from django.test import override_settings
from fhir.resources.R4B import get_fhir_model_class
from lxml import etree

from records import nhs_number
from records.bench.ingest import scratch_database, using_database
from records.demo.generator import DEFAULT_PATIENTS, DEFAULT_SEED, write_demo_bundles
from records.demo.loader import demo_ingest, demo_partners_upsert
from records.demo.partners import LIVE_FEEDS
from records.ingest import pipeline, validation_pool
from records.ingest.fhir import FHIR_NAMESPACE, InvalidResource, safe_xml_parser, validate_xml
from records.ingest.matching import NHS_NUMBER_SYSTEM
from records.models import Feed, IngestRun, Organisation, RecordEntry
from records.services import feed_upsert, organisation_upsert

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
SYNTHEA = DATA / "synthea-r4"
UKCORE = DATA / "ukcore-examples"
_FLOOR_TABLE = "bench_copy_floor"
_PARALLEL_RUNS = 2
# INGEST_VALIDATION_PROCESSES for the rows that validate in worker processes: the run's own and one worker.
_VALIDATION_PROCESSES = 2
# NHS number serials per use, far enough apart that the patients of one use are never those of another.
_SERIALS_PER_USE = 10_000

Texts = list[tuple[str, bytes]]


class BenchmarkError(Exception):
    """The benchmark found something wrong (not slow: wrong), and its numbers would mean nothing."""


@dataclass(frozen=True)
class Row:
    path: str
    resources: int
    entries: int
    seconds: float
    # Time the cyclic garbage collector paused this process; None where it was not measured.
    gc_seconds: float | None = None
    # The COPY floor of the same rows, for the ratio; None for the floor itself and for validation alone.
    floor: Row | None = None
    # Resources that went through FHIR validation (valid or not); None for the floor and validation alone.
    validated: int | None = None

    @property
    def rate(self) -> float:
        return self.resources / self.seconds if self.seconds > 0 else 0.0

    @property
    def validated_rate(self) -> float | None:
        if self.validated is None:
            return None
        return self.validated / self.seconds if self.seconds > 0 else 0.0


def _synthea_nhs_numbers(use: int) -> Iterator[str]:
    """Valid NHS numbers from 999 8xx xxxx: the 999 range is never issued to people, and the demo counts up from
    999 000 0001, so the two never meet. Each `use` gets its own numbers, so its patients are new."""
    for serial in count(use * _SERIALS_PER_USE):
        first_nine = f"9998{serial:05d}"
        check = nhs_number.check_digit(first_nine)
        if check is not None:
            yield f"{first_nine}{check}"


def synthea_texts(limit: int | None, *, use: int = 0) -> Texts:
    """The first `limit` Synthea bundles (all when None) as (name, bytes), an NHS number added to each Patient.

    Synthea refers to the Patient by the Bundle entry's fullUrl (urn:uuid:...), which the ingester resolves
    within the Bundle, so no reference needs rewriting: the NHS number on the Patient is what was missing.
    """
    numbers = _synthea_nhs_numbers(use)
    texts: Texts = []
    for path in sorted(SYNTHEA.glob("*.json"))[:limit]:
        bundle = json.loads(path.read_bytes())
        for entry in bundle["entry"]:
            resource = entry["resource"]
            if resource["resourceType"] == "Patient":
                identifier = {"system": NHS_NUMBER_SYSTEM, "value": next(numbers)}
                resource["identifier"] = [identifier, *resource.get("identifier", [])]
        texts.append((path.name, json.dumps(bundle, ensure_ascii=False).encode("utf-8")))
    if not texts:
        raise BenchmarkError(f"no Synthea bundles found in {SYNTHEA}")
    return texts


def synthea_feed(ods_code: str) -> Feed:
    """A GP practice's feed, allowed to create patients as GP feeds are."""
    organisation = organisation_upsert(
        ods_code=ods_code, name=f"Synthea practice {ods_code}", kind=Organisation.Kind.GP_PRACTICE
    )
    return feed_upsert(
        code=f"bench-{ods_code.lower()}",
        organisation=organisation,
        name="Synthea GP record",
        sections=[],
        can_create_patients=True,
    )


@contextlib.contextmanager
def _gc_pauses() -> Iterator[list[float]]:
    """Yield a one-item list that ends up holding the seconds the cyclic garbage collector ran meanwhile."""
    total = [0.0]
    started = [0.0]

    def note(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            total[0] += time.perf_counter() - started[0]

    gc.callbacks.append(note)
    try:
        yield total
    finally:
        gc.callbacks.remove(note)


def _written(run: IngestRun) -> int:
    """Record entries the run created or updated (patients are counted apart)."""
    return run.created + run.updated - run.patients_created - run.patients_updated


def _check_runs(name: str, runs: Sequence[IngestRun], *, is_rerun: bool) -> tuple[int, int]:
    """(resources read, entries written); refuses runs that failed, wrote nothing new, or wrote on a re-run."""
    for run in runs:
        if run.status != IngestRun.Status.SUCCEEDED:
            raise BenchmarkError(f"{name}: run {run.pk} did not succeed: {run.error}")
        if run.created + run.updated + run.unchanged + run.quarantined != run.resources_read:
            raise BenchmarkError(f"{name}: run {run.pk} counts do not add up")
    read = sum(run.resources_read for run in runs)
    changed = sum(run.created + run.updated for run in runs)
    if is_rerun and changed:
        raise BenchmarkError(
            f"{name}: the same input again wrote {changed} rows; ingestion is not idempotent"
        )
    if not is_rerun and not changed:
        raise BenchmarkError(f"{name}: nothing was written; the data did not match any patient")
    return read, sum(_written(run) for run in runs)


@contextlib.contextmanager
def _validations() -> Iterator[list[int]]:
    """Yield a list that ends up holding, per run finished meanwhile, the resources it validated.

    The pipeline counts them (in its own process or from a worker's verdicts) but does not store the count; a
    run's count is read from its tally as it finishes, once per run, so nothing is added per resource.
    """
    counted: list[int] = []
    finish = pipeline._Run.finish

    def counting(self: pipeline._Run, checksum: str) -> None:
        counted.append(self.tally.validated)
        finish(self, checksum)

    pipeline._Run.finish = counting  # type: ignore[method-assign]
    try:
        yield counted
    finally:
        pipeline._Run.finish = finish  # type: ignore[method-assign]


def _measure(name: str, action: Callable[[], list[IngestRun]], *, is_rerun: bool) -> tuple[Row, list[int]]:
    """Time one ingestion (one or several runs); the row, and the feeds it wrote to."""
    with _validations() as validated, _gc_pauses() as paused:
        started = time.perf_counter()
        runs = action()
        seconds = time.perf_counter() - started
    read, written = _check_runs(name, runs, is_rerun=is_rerun)
    row = Row(name, read, written, seconds, paused[0], validated=sum(validated))
    return row, [run.feed_id for run in runs]


def _ingest_in_child(feed_id: int, texts: Texts) -> tuple[int, int, int, bool]:
    """In a worker process: one run; (resources read, validated, entries written, whether it succeeded and added
    up)."""
    feed = Feed.objects.select_related("organisation").get(pk=feed_id)
    with _validations() as validated:
        run = pipeline.ingest_texts(feed, texts, source_name="synthea (parallel)")
    adds_up = run.created + run.updated + run.unchanged + run.quarantined == run.resources_read
    connections.close_all()
    succeeded = run.status == IngestRun.Status.SUCCEEDED and adds_up
    return run.resources_read, sum(validated), _written(run), succeeded


def _release_free_memory() -> None:
    """Hand the memory the runs before freed back to the system before forking, as a fresh worker would hold.

    A child writing into memory it shares with its parent copies each page first; the more freed memory this
    process still holds, the more of that the children do (measured: up to 0.1 s of the two runs), which Celery's
    prefork workers, forked when the worker starts, never pay.
    """
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _nothing() -> None:
    """A task that does nothing: its answer says the pool's processes are up."""


@contextlib.contextmanager
def _started_pool(processes: int) -> Iterator[ProcessPoolExecutor]:
    """A pool of `processes` forked processes, already started when it is yielded, as Celery's prefork workers are
    when a task reaches them: the rows that use it time the runs, not the forks.

    fork: the children start with Django and the FHIR models already imported, as Celery's prefork workers do. A
    pool that forks launches all its processes at its first task.
    """
    with ProcessPoolExecutor(max_workers=processes, mp_context=multiprocessing.get_context("fork")) as pool:
        pool.submit(_nothing).result()
        yield pool


def parallel_synthea(limit: int | None) -> tuple[Row, list[int]]:
    """Two runs at once, in two processes, each with half the bundles and new patients at its own practice."""
    texts = synthea_texts(limit, use=1)
    runs = min(_PARALLEL_RUNS, len(texts))
    halves = [texts[start::runs] for start in range(runs)]
    feeds = [synthea_feed(f"SYNP{number}") for number in range(runs)]
    # The children open their own connections; a connection shared across fork would interleave their traffic.
    connections.close_all()
    _release_free_memory()
    with _started_pool(runs) as pool:
        started = time.perf_counter()
        futures = [
            pool.submit(_ingest_in_child, feed.pk, half) for feed, half in zip(feeds, halves, strict=True)
        ]
        results = [future.result() for future in futures]
        seconds = time.perf_counter() - started
    if not all(succeeded for *_, succeeded in results) or not all(written for _, _, written, _ in results):
        raise BenchmarkError("Synthea, runs at once: a run failed, did not add up or wrote nothing")
    read = sum(read for read, _, _, _ in results)
    validated = sum(validated for _, validated, _, _ in results)
    written = sum(written for _, _, written, _ in results)
    name = f"Synthea, {runs} runs at once" if runs > 1 else "Synthea, 1 run at once (one bundle only)"
    return Row(name, read, written, seconds, validated=validated), [feed.pk for feed in feeds]


@contextlib.contextmanager
def _another_database() -> Iterator[None]:
    """Point Django's connection at another new scratch database on the same server, migrated, while inside.

    The demo's patients (its NHS numbers) and partners (their ODS codes) are fixed, so a second first run of it
    needs a database of its own; the first is used again afterwards.
    """
    with scratch_database(os.environ["DATABASE_URL"], suffix="_2") as url, using_database(url):
        call_command("migrate", verbosity=0, interactive=False)
        yield


def _demo_feeds_in_child(feed_ids: list[int], folder: Path) -> tuple[int, int, int, bool]:
    """In a worker process: the demo feeds given, one run each, in order; summed as `_ingest_in_child` does."""
    read = validated_total = written = 0
    succeeded = True
    with _validations() as validated:
        for feed_id in feed_ids:
            feed = Feed.objects.select_related("organisation").get(pk=feed_id)
            run = pipeline.ingest_path(feed, folder / feed.code)
            read += run.resources_read
            written += _written(run)
            adds_up = run.created + run.updated + run.unchanged + run.quarantined == run.resources_read
            succeeded = succeeded and run.status == IngestRun.Status.SUCCEEDED and adds_up
        validated_total = sum(validated)
    connections.close_all()
    return read, validated_total, written, succeeded


def _shares(feeds: list[Feed], folder: Path, parts: int) -> list[list[int]]:
    """The feeds split into `parts` lists of about equal input, largest first, as idle workers would take them."""
    sizes = {
        feed.pk: sum(path.stat().st_size for path in (folder / feed.code).glob("*.json")) for feed in feeds
    }
    shares: list[list[int]] = [[] for _ in range(parts)]
    loads = [0] * parts
    for feed in sorted(feeds, key=lambda feed: -sizes[feed.pk]):
        lightest = loads.index(min(loads))
        shares[lightest].append(feed.pk)
        loads[lightest] += sizes[feed.pk]
    return [share for share in shares if share]


def parallel_demo(folder: Path) -> Row:
    """The demo's first run with its feeds taken two at a time by two processes, in a database of its own, with its
    floor: the GP feeds first (only they create patients; each practice its own), then the others, as `make run`'s
    two Celery workers would take scheduled runs from the queue."""
    with _another_database():
        demo_partners_upsert()
        with_data = [
            feed
            for feed in Feed.objects.select_related("organisation").filter(
                code__in=[spec.code for spec in LIVE_FEEDS]
            )
            if any((folder / feed.code).glob("*.json"))
        ]
        phases = [
            [feed for feed in with_data if feed.can_create_patients],
            [feed for feed in with_data if not feed.can_create_patients],
        ]
        connections.close_all()
        _release_free_memory()
        results = []
        with _started_pool(_PARALLEL_RUNS) as pool:
            started = time.perf_counter()
            for phase in phases:
                futures = [
                    pool.submit(_demo_feeds_in_child, share, folder)
                    for share in _shares(phase, folder, _PARALLEL_RUNS)
                ]
                results += [future.result() for future in futures]
            seconds = time.perf_counter() - started
        if not all(succeeded for *_, succeeded in results):
            raise BenchmarkError("demo, runs at once: a run failed or did not add up")
        row = Row(
            f"demo, first run, {_PARALLEL_RUNS} runs at once",
            sum(read for read, _, _, _ in results),
            sum(written for _, _, written, _ in results),
            seconds,
            validated=sum(validated for _, validated, _, _ in results),
        )
        _create_floor_table()
        return replace(row, floor=copy_floor("demo (runs at once)", sorted(feed.pk for feed in with_data)))


def _columns() -> list[str]:
    return [str(field.column) for field in RecordEntry._meta.concrete_fields if not field.primary_key]


def _create_floor_table() -> None:
    """An empty table like record entries: same columns, defaults, indexes, constraints and foreign keys."""
    table = RecordEntry._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE TABLE {_FLOOR_TABLE} (LIKE {table} INCLUDING ALL)")
        cursor.execute(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'f'",
            [table],
        )
        for number, (definition,) in enumerate(cursor.fetchall()):
            cursor.execute(
                f"ALTER TABLE {_FLOOR_TABLE} ADD CONSTRAINT {_FLOOR_TABLE}_fk{number} {definition}"
            )


def copy_floor(name: str, feed_ids: list[int]) -> Row:
    """COPY the entries of `feed_ids` (binary, as PostgreSQL sent them) into the empty twin table; time the load.

    The rows are fetched first and not timed, so the floor is the server's own cost of storing them: parsing
    JSONB, writing the heap and both indexes, checking the unique key and the foreign keys, and committing.
    """
    columns = ", ".join(_columns())
    select = f"SELECT {columns} FROM {RecordEntry._meta.db_table} WHERE feed_id = ANY(%s)"  # noqa: S608
    buffer = bytearray()
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {_FLOOR_TABLE}")
        with cursor.copy(f"COPY ({select}) TO STDOUT (FORMAT BINARY)", [feed_ids]) as copy:
            for chunk in copy:
                buffer += chunk
        data = bytes(buffer)
        rows = RecordEntry.objects.filter(feed_id__in=feed_ids).count()
        started = time.perf_counter()
        with (
            transaction.atomic(),
            cursor.copy(f"COPY {_FLOOR_TABLE} ({columns}) FROM STDIN (FORMAT BINARY)") as copy,
        ):
            copy.write(data)
        seconds = time.perf_counter() - started
    return Row(f"COPY floor: {name} entries", rows, rows, seconds)


def validation_alone(texts: Texts) -> Row:
    """R4B `model_validate` on each resource, nothing else: the figure the data README quotes per core."""
    resources = [entry["resource"] for _, data in texts for entry in json.loads(data)["entry"]]

    def validate_all() -> None:
        for resource in resources:
            get_fhir_model_class(resource["resourceType"]).model_validate(resource)

    # Once untimed: pydantic builds each model's validator on its first use, which a long-lived worker pays once.
    validate_all()
    started = time.perf_counter()
    validate_all()
    seconds = time.perf_counter() - started
    return Row("R4B validation alone, Synthea, 1 core", len(resources), 0, seconds, validated=len(resources))


def xml_validation_alone() -> Row:
    """`fhir.validate_xml` (R4B's XML reader, then the JSON the record stores) on every UK Core example resource.

    The one example that is itself invalid is counted like the others: refusing it is the same work.
    """
    elements = []
    for path in sorted(UKCORE.glob("*.xml")):
        root = etree.fromstring(path.read_bytes(), parser=safe_xml_parser())
        if etree.QName(root).localname != "Bundle":
            elements.append(root)
            continue
        for holder in root.iterfind(f"{{{FHIR_NAMESPACE}}}entry/{{{FHIR_NAMESPACE}}}resource"):
            elements += [child for child in holder if isinstance(child.tag, str)]

    def validate_all() -> None:
        for element in elements:
            with contextlib.suppress(InvalidResource):
                validate_xml(element)

    validate_all()  # untimed, as for JSON above
    started = time.perf_counter()
    validate_all()
    seconds = time.perf_counter() - started
    return Row("R4B XML validation, UK Core, 1 core", len(elements), 0, seconds, validated=len(elements))


def _machine() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        (server,) = cursor.fetchone() or ("?",)
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = ", load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()) if hasattr(os, "getloadavg") else ""
    return [
        f"machine   {platform.platform()}, {os.cpu_count()} CPUs ({usable} usable by this process){load}",
        f"versions  Python {platform.python_version()}, Django {django.get_version()}, psycopg "
        f"{psycopg.__version__} (libpq {psycopg.pq.version()}), PostgreSQL {server}, fhir.resources "
        f"{fhir.resources.__version__}, pydantic {pydantic.VERSION}",
    ]


def _headline(row: Row) -> float:
    """The rate a row is judged by: validated resources a second, or resources a second where none are counted."""
    validated_rate = row.validated_rate
    return row.rate if validated_rate is None else validated_rate


def _table(rows: list[Row], repetitions: list[list[Row]] | None = None) -> str:
    spans = list(zip(*repetitions, strict=True)) if repetitions and len(repetitions) > 1 else []
    header = (
        f"{'path':<40} {'resources':>9} {'validated':>9} {'entries':>8} {'seconds':>8} {'resources/s':>11} "
        f"{'validated/s':>11} {'GC s':>5} {'vs COPY':>8}" + (f" {'range':>13}" if spans else "")
    )
    lines = [header, "-" * len(header)]
    for number, row in enumerate(rows):
        rates = [_headline(measured) for measured in spans[number]] if spans else []
        span = f" {min(rates):>6.0f}-{max(rates):<6.0f}" if rates else ""
        ratio = f"{row.rate / row.floor.rate:.2f}" if row.floor and row.floor.rate else ""
        paused = f"{row.gc_seconds:.2f}" if row.gc_seconds is not None else ""
        validated = "" if row.validated is None else str(row.validated)
        validated_rate = "" if row.validated_rate is None else f"{row.validated_rate:.0f}"
        lines.append(
            f"{row.path:<40} {row.resources:>9} {validated:>9} {row.entries:>8} {row.seconds:>8.3f} "
            f"{row.rate:>11.0f} {validated_rate:>11} {paused:>5} {ratio:>8}{span}"
        )
    return "\n".join(lines)


# The pipeline's stages, by the function that does each; each is timed by wall clock, exclusive of the others.
_STAGES = (
    ("read and parse the files", "read_source"),
    ("validate (R4B)", "validate_json"),
    ("validate XML (R4B)", "validate_xml"),
    ("apply Patient resources", "patients_upsert"),
    ("find the patient", "subject_target"),
    ("map to entries", "map_resource"),
    ("upsert entries", "entries_upsert"),
    ("refresh relationships", "relationships_refresh"),
)


def _timing(function: Callable[..., Any], spent: dict[str, float], name: str) -> Callable[..., Any]:
    """`function`, adding the wall time spent inside it to spent[name] (for a generator, inside each step)."""
    if inspect.isgeneratorfunction(function):

        def stepped(*args: Any, **kwargs: Any) -> Iterator[Any]:
            steps = function(*args, **kwargs)
            while True:
                started = time.perf_counter()
                try:
                    item = next(steps)
                except StopIteration:
                    return
                finally:
                    spent[name] += time.perf_counter() - started
                yield item

        return stepped

    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            spent[name] += time.perf_counter() - started

    return timed


def stage_times(texts: Texts, out: TextIO) -> None:
    """Ingest Synthea once more (new patients, a new practice) with each stage timed, and print the split."""
    spent = dict.fromkeys([label for label, _ in _STAGES] + ["write quarantined records"], 0.0)
    originals: list[tuple[Any, str, Any]] = []
    for label, name in _STAGES:
        if hasattr(pipeline, name):
            originals.append((pipeline, name, getattr(pipeline, name)))
            setattr(pipeline, name, _timing(getattr(pipeline, name), spent, label))
    originals.append((pipeline._Run, "write_quarantine", pipeline._Run.write_quarantine))
    pipeline._Run.write_quarantine = _timing(  # type: ignore[method-assign]
        pipeline._Run.write_quarantine, spent, "write quarantined records"
    )
    feed = synthea_feed("SYNS")
    try:
        with _gc_pauses() as paused:
            started = time.perf_counter()
            pipeline.ingest_texts(feed, texts, source_name="synthea (stages timed)")
            total = time.perf_counter() - started
    finally:
        for owner, name, original in originals:
            setattr(owner, name, original)
    out.write(f"\nwhere the time goes (Synthea first run, each stage timed, {total:.2f} s):\n")
    for label, seconds in [*spent.items(), ("everything else", total - sum(spent.values()))]:
        out.write(f"  {label:<28} {seconds:>6.2f} s  {100 * seconds / total:>5.1f}%\n")
    out.write(f"  (the cyclic GC paused the run for {paused[0]:.2f} s of that, spread over the stages)\n")


def top_functions(texts: Texts, out: TextIO) -> None:
    """Ingest Synthea once more under cProfile and print the functions with the most time of their own."""
    feed = synthea_feed("SYNC")
    profiler = cProfile.Profile()
    profiler.enable()
    pipeline.ingest_texts(feed, texts, source_name="synthea (profiled)")
    profiler.disable()
    out.write(
        "\nfunctions with the most time of their own (cProfile, which slows Python code more than C):\n"
    )
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(15)


def measure_once(
    *, synthea_bundles: int | None, demo_patients: int | None, warm_up: bool, out: TextIO | None
) -> list[Row]:
    """Migrate the (new, empty) database, measure every row once, and return the rows; the machine, versions and
    data lines go to `out` (the first repetition's)."""
    started = time.perf_counter()
    call_command("migrate", verbosity=0, interactive=False)
    texts = synthea_texts(synthea_bundles)
    feeds = demo_partners_upsert()
    feed = synthea_feed("SYN1")
    patients = demo_patients or DEFAULT_PATIENTS
    setup = time.perf_counter() - started
    warmed = time.perf_counter()
    if warm_up:
        pipeline.ingest_texts(synthea_feed("SYNW"), synthea_texts(1, use=5), source_name="synthea (warm-up)")
    if out is not None:
        warming = (
            f"untimed warm-up run of one bundle {time.perf_counter() - warmed:.2f} s"
            if warm_up
            else "no warm-up"
        )
        out.write("\n".join(_machine()) + "\n")
        out.write(
            f"data      {len(texts)} Synthea bundles (NHS numbers added in memory), demo of {patients} patients; "
            f"setup {setup:.1f} s, {warming}\n"
        )
        refused = validation_pool.fork_refusal()
        if refused:
            out.write(
                f"note      the worker-process rows validate in the run's own process here ({refused})\n"
            )
        out.flush()

    def synthea() -> list[IngestRun]:
        with override_settings(INGEST_VALIDATION_PROCESSES=1):
            return [pipeline.ingest_texts(feed, texts, source_name="synthea")]

    synthea_first, synthea_feeds = _measure("Synthea, first run, one process", synthea, is_rerun=False)
    synthea_again, _ = _measure("Synthea, re-run, one process", synthea, is_rerun=True)
    pooled_feed = synthea_feed("SYNV")
    pooled_texts = synthea_texts(synthea_bundles, use=4)

    def pooled() -> list[IngestRun]:
        with override_settings(INGEST_VALIDATION_PROCESSES=_VALIDATION_PROCESSES):
            return [
                pipeline.ingest_texts(pooled_feed, pooled_texts, source_name="synthea (worker processes)")
            ]

    name = f"Synthea, first run, {_VALIDATION_PROCESSES} processes"
    pooled_first, pooled_feeds = _measure(name, pooled, is_rerun=False)
    pooled_again, _ = _measure(f"Synthea, re-run, {_VALIDATION_PROCESSES} processes", pooled, is_rerun=True)
    with tempfile.TemporaryDirectory(prefix="sharedcare-bench-") as folder:
        write_demo_bundles(Path(folder), patients=patients, seed=DEFAULT_SEED, reference=date.today())

        def demo() -> list[IngestRun]:
            return [load.run for load in demo_ingest(feeds, Path(folder)) if load.run is not None]

        demo_first, demo_feeds = _measure("demo, first run, feed by feed", demo, is_rerun=False)
        demo_again, _ = _measure("demo, re-run, feed by feed", demo, is_rerun=True)
        demo_pooled = parallel_demo(Path(folder))
    parallel, parallel_feeds = parallel_synthea(synthea_bundles)
    _create_floor_table()
    synthea_floor = copy_floor("Synthea", synthea_feeds)
    pooled_floor = copy_floor("2-process", pooled_feeds)
    demo_floor = copy_floor("demo", sorted(set(demo_feeds)))
    parallel_floor = copy_floor("parallel runs'", parallel_feeds)
    return [
        replace(synthea_first, floor=synthea_floor),
        replace(synthea_again, floor=synthea_floor),
        replace(pooled_first, floor=pooled_floor),
        replace(pooled_again, floor=pooled_floor),
        replace(demo_first, floor=demo_floor),
        replace(demo_again, floor=demo_floor),
        demo_pooled,
        replace(parallel, floor=parallel_floor),
        synthea_floor,
        pooled_floor,
        demo_floor,
        parallel_floor,
        validation_alone(texts),
        xml_validation_alone(),
    ]


def medians(repetitions: list[list[Row]]) -> list[Row]:
    """Per row, the repetition with the median time (of an even number, the slower of the two middle ones)."""
    return [
        sorted(measured, key=lambda row: row.seconds)[len(measured) // 2]
        for measured in zip(*repetitions, strict=True)
    ]


def report(repetitions: list[list[Row]], out: TextIO) -> None:
    """Print the table: each row's median repetition, and with more than one, the range over all of them."""
    out.write("\n" + _table(medians(repetitions), repetitions) + "\n")
    shown = (
        f"Each row is the median of {len(repetitions)} repetitions, each in a new database (of an even number,"
        " the slower middle\none); range: the lowest and highest validated/s (resources/s for the floors) over"
        " all of them.\n"
        if len(repetitions) > 1
        else ""
    )
    out.write(
        "\nresources: read by the run, patients and quarantined ones included; validated: those that went through"
        " FHIR\nvalidation, valid or not (not those quarantined before it, as unreadable or of an unsupported type,"
        " nor those\nheld unchanged); entries: record-entry rows it wrote.\nGC s: time the cyclic garbage collector"
        " paused the run. vs COPY: the run's resources/s over the COPY floor's\nrows/s for the rows that run wrote"
        " (1.00 would be ingesting as fast as PostgreSQL can store them).\n" + shown
    )
    out.flush()


def where_the_time_goes(synthea_bundles: int | None, out: TextIO) -> None:
    """Stage times, then cProfile's top functions, on Synthea runs in one process for new patients (`--profile`)."""
    buffer = io.StringIO()
    with override_settings(INGEST_VALIDATION_PROCESSES=1):
        stage_times(synthea_texts(synthea_bundles, use=2), buffer)
        top_functions(synthea_texts(synthea_bundles, use=3), buffer)
    out.write(buffer.getvalue())
    out.flush()
