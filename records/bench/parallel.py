"""Runs at once, in forked processes, as a two-core machine's two Celery workers run them."""

from __future__ import annotations

import contextlib
import ctypes
import gc
import multiprocessing
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

from django.db import connections

from records.bench.databases import another_database
from records.bench.floor import copy_floor, floor_table_create
from records.bench.inputs import Texts, synthea_feed, synthea_texts
from records.bench.rows import BenchmarkError, Row
from records.bench.runs import counted_validations, entries_written
from records.demo.loader import demo_partners_upsert
from records.demo.partners import LIVE_FEEDS
from records.ingest import pipeline
from records.models import Feed, IngestRun

_PARALLEL_RUNS = 2


def _ingest_in_child(feed_id: int, texts: Texts) -> tuple[int, int, int, bool]:
    """In a worker process: one run; (resources read, validated, entries written, whether it succeeded and added
    up)."""
    feed = Feed.objects.select_related("organisation").get(pk=feed_id)
    with counted_validations() as validated:
        run = pipeline.ingest_texts(feed, texts, source_name="synthea (parallel)")
    adds_up = run.created + run.updated + run.unchanged + run.quarantined == run.resources_read
    connections.close_all()
    succeeded = run.status == IngestRun.Status.SUCCEEDED and adds_up
    return run.resources_read, sum(validated), entries_written(run), succeeded


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


def _demo_feeds_in_child(feed_ids: list[int], folder: Path) -> tuple[int, int, int, bool]:
    """In a worker process: the demo feeds given, one run each, in order; summed as `_ingest_in_child` does."""
    read = validated_total = written = 0
    succeeded = True
    with counted_validations() as validated:
        for feed_id in feed_ids:
            feed = Feed.objects.select_related("organisation").get(pk=feed_id)
            run = pipeline.ingest_path(feed, folder / feed.code)
            read += run.resources_read
            written += entries_written(run)
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
    with another_database():
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
        floor_table_create()
        return replace(row, floor=copy_floor("demo (runs at once)", sorted(feed.pk for feed in with_data)))
