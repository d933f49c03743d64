"""Timing ingestion runs in this process, and refusing the numbers of runs that failed or did not add up."""

from __future__ import annotations

import contextlib
import gc
import time
from collections.abc import Callable, Iterator, Sequence

from records.bench.rows import BenchmarkError, Row
from records.ingest import ingestion
from records.models import IngestRun


@contextlib.contextmanager
def gc_pauses() -> Iterator[list[float]]:
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


def entries_written(run: IngestRun) -> int:
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
    return read, sum(entries_written(run) for run in runs)


@contextlib.contextmanager
def counted_validations() -> Iterator[list[int]]:
    """Yield a list that ends up holding, per run finished meanwhile, the resources it validated.

    The pipeline counts them (in its own process or from a worker's verdicts) but does not store the count; a
    run's count is read from its tally as it finishes, once per run, so nothing is added per resource.
    """
    counted: list[int] = []
    finish = ingestion.Ingestion.finish

    def counting(self: ingestion.Ingestion, checksum: str) -> None:
        counted.append(self.tally.validated)
        finish(self, checksum)

    ingestion.Ingestion.finish = counting  # type: ignore[method-assign]
    try:
        yield counted
    finally:
        ingestion.Ingestion.finish = finish  # type: ignore[method-assign]


def timed_runs(name: str, action: Callable[[], list[IngestRun]], *, is_rerun: bool) -> tuple[Row, list[int]]:
    """Time one ingestion (one or several runs); the row, and the feeds it wrote to."""
    with counted_validations() as validated, gc_pauses() as paused:
        started = time.perf_counter()
        runs = action()
        seconds = time.perf_counter() - started
    read, written = _check_runs(name, runs, is_rerun=is_rerun)
    row = Row(name, read, written, seconds, paused[0], validated=sum(validated))
    return row, [run.feed_id for run in runs]
