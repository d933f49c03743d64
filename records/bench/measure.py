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

import tempfile
import time
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import TextIO

from django.core.management import call_command
from django.test import override_settings

from records.bench.floor import copy_floor, floor_table_create
from records.bench.inputs import synthea_feed, synthea_texts
from records.bench.parallel import parallel_demo, parallel_synthea
from records.bench.rows import Row, machine_lines
from records.bench.runs import timed_runs
from records.bench.validation import validation_alone, xml_validation_alone
from records.demo.generator import DEFAULT_PATIENTS, DEFAULT_SEED, write_demo_bundles
from records.demo.loader import demo_ingest, demo_partners_upsert
from records.ingest import pipeline
from records.ingest.validation_worker import fork_refusal
from records.models import IngestRun

# INGEST_VALIDATION_PROCESSES for the rows that validate in worker processes: the run's own and one worker.
_VALIDATION_PROCESSES = 2


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
        out.write("\n".join(machine_lines()) + "\n")
        out.write(
            f"data      {len(texts)} Synthea bundles (NHS numbers added in memory), demo of {patients} patients; "
            f"setup {setup:.1f} s, {warming}\n"
        )
        refused = fork_refusal()
        if refused:
            out.write(
                f"note      the worker-process rows validate in the run's own process here ({refused})\n"
            )
        out.flush()

    def synthea() -> list[IngestRun]:
        with override_settings(INGEST_VALIDATION_PROCESSES=1):
            return [pipeline.ingest_texts(feed, texts, source_name="synthea")]

    synthea_first, synthea_feeds = timed_runs("Synthea, first run, one process", synthea, is_rerun=False)
    synthea_again, _ = timed_runs("Synthea, re-run, one process", synthea, is_rerun=True)
    pooled_feed = synthea_feed("SYNV")
    pooled_texts = synthea_texts(synthea_bundles, use=4)

    def pooled() -> list[IngestRun]:
        with override_settings(INGEST_VALIDATION_PROCESSES=_VALIDATION_PROCESSES):
            return [
                pipeline.ingest_texts(pooled_feed, pooled_texts, source_name="synthea (worker processes)")
            ]

    name = f"Synthea, first run, {_VALIDATION_PROCESSES} processes"
    pooled_first, pooled_feeds = timed_runs(name, pooled, is_rerun=False)
    pooled_again, _ = timed_runs(f"Synthea, re-run, {_VALIDATION_PROCESSES} processes", pooled, is_rerun=True)
    with tempfile.TemporaryDirectory(prefix="sharedcare-bench-") as folder:
        write_demo_bundles(Path(folder), patients=patients, seed=DEFAULT_SEED, reference=date.today())

        def demo() -> list[IngestRun]:
            return [load.run for load in demo_ingest(feeds, Path(folder)) if load.run is not None]

        demo_first, demo_feeds = timed_runs("demo, first run, feed by feed", demo, is_rerun=False)
        demo_again, _ = timed_runs("demo, re-run, feed by feed", demo, is_rerun=True)
        demo_pooled = parallel_demo(Path(folder))
    parallel, parallel_feeds = parallel_synthea(synthea_bundles)
    floor_table_create()
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
