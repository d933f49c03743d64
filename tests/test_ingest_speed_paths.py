"""The speed paths of a run change nothing it stores: validation in worker processes, parsing the input once, and
resources held unchanged, which are neither validated nor written again."""

import json
import multiprocessing
import os
import signal
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

import records.ingest.formats.readers as readers
import records.ingest.ingestion as ingestion
import records.ingest.items as items
import records.ingest.pipeline as pipeline
import records.ingest.run_validation as run_validation
import records.ingest.validation_pool as validation_pool
import records.ingest.validation_worker as validation_worker
from records.ingest.fhir import validate_json
from records.ingest.pipeline import ingest_path, ingest_texts
from records.models import IngestRun, QuarantinedRecord, RecordEntry
from tests.builders import condition, counts, forget, mixed_input, quarantined, stored, workers_for_every_run

UKCORE = Path(__file__).resolve().parents[2] / "shared" / "data" / "ukcore-examples"


@pytest.fixture
def workers(settings, monkeypatch) -> list[int]:
    """Validation in a worker process for every run, however small; yields the verdicts the workers gave."""
    workers_for_every_run(settings, monkeypatch)
    given: list[int] = []
    original = validation_pool.ValidationPool.verdicts

    def counted(self, position, meanwhile=None):
        found = original(self, position, meanwhile)
        given.append(len(found))
        return found

    monkeypatch.setattr(validation_pool.ValidationPool, "verdicts", counted)
    return given


def test_worker_processes_store_and_quarantine_exactly_what_one_process_does(cast, settings, workers):
    settings.INGEST_VALIDATION_PROCESSES = 1
    alone = ingest_texts(cast.cuh_feed, mixed_input(cast))
    expected = forget(alone)
    assert sum(workers) == 0

    settings.INGEST_VALIDATION_PROCESSES = 2
    shared = ingest_texts(cast.cuh_feed, mixed_input(cast))

    assert sum(workers) > 0, "no worker gave a verdict"
    assert (stored(shared), quarantined(shared)) == expected
    assert counts(shared) == counts(alone) == (39, 35, 0, 0, 4)
    reasons = dict(QuarantinedRecord.objects.filter(ingest_run=shared).values_list("source_id", "reason"))
    assert reasons["no-status"] == reasons["bad-date"] == QuarantinedRecord.Reason.INVALID_RESOURCE
    assert reasons["claim-1"] == QuarantinedRecord.Reason.UNSUPPORTED_TYPE


def test_worker_processes_validate_xml_as_one_process_does(cast, settings, workers):
    settings.INGEST_VALIDATION_PROCESSES = 1
    alone = ingest_path(cast.gp_a_feed, UKCORE)
    expected = forget(alone)

    settings.INGEST_VALIDATION_PROCESSES = 2
    shared = ingest_path(cast.gp_a_feed, UKCORE)

    assert sum(workers) > 0, "no worker gave a verdict"
    assert (stored(shared), quarantined(shared)) == expected
    assert len(expected[0]) > 50
    assert (shared.resources_read, shared.quarantined) == (alone.resources_read, alone.quarantined)


def test_a_run_that_must_share_the_cores_starts_no_worker_or_hands_it_no_more(
    cast, settings, workers, monkeypatch, caplog
):
    """Other runs going on take the cores (pipeline.validation_processes): a run then starts no worker, or stops
    handing the one it has more inputs; whatever the worker was not handed, the run validates itself."""
    settings.INGEST_VALIDATION_PROCESSES = 1
    alone = ingest_texts(cast.cuh_feed, mixed_input(cast))
    expected = forget(alone)
    settings.INGEST_VALIDATION_PROCESSES = 2
    monkeypatch.setattr(validation_pool, "_SHARE_CHECK_SECONDS", 0.0)

    monkeypatch.setattr(pipeline, "validation_processes", lambda wanted, run: 1)
    unshared = ingest_texts(cast.cuh_feed, mixed_input(cast))
    assert workers and sum(workers) == 0, "no worker should have started"
    assert counts(unshared) == counts(alone)
    assert forget(unshared) == expected

    # A core is free when the first input is handed over, and no longer when the second is.
    answers = iter([2])
    monkeypatch.setattr(pipeline, "validation_processes", lambda wanted, run: next(answers, 1))
    workers.clear()
    with caplog.at_level("INFO", logger="records.ingest.validation_pool"):
        shared = ingest_texts(cast.cuh_feed, mixed_input(cast))

    assert sum(workers) > 0, "the worker should have answered for the first input"
    assert "get no more work" in caplog.text
    assert (stored(shared), quarantined(shared)) == expected
    assert counts(shared) == counts(alone)

    # Three processes wanted, two allowed: one worker starts, not two.
    forget(shared)
    settings.INGEST_VALIDATION_PROCESSES = 3
    monkeypatch.setattr(pipeline, "validation_processes", lambda wanted, run: min(wanted, 2))
    caplog.clear()
    with caplog.at_level("INFO", logger="records.ingest.validation_pool"):
        capped = ingest_texts(cast.cuh_feed, mixed_input(cast))
    assert caplog.text.count("started beside process") == 1
    assert (stored(capped), quarantined(capped)) == expected


def _broken(*args: object, **kwargs: object) -> None:
    raise RuntimeError("the worker failed")


def test_a_failing_worker_leaves_the_run_to_validate_everything_itself(cast, settings, workers, monkeypatch):
    settings.INGEST_VALIDATION_PROCESSES = 1
    alone = ingest_texts(cast.cuh_feed, mixed_input(cast))
    expected = forget(alone)
    # A module-level function, so that the worker can be sent it: it raises there.
    monkeypatch.setattr(validation_worker, "verdicts", _broken)

    settings.INGEST_VALIDATION_PROCESSES = 2
    run = ingest_texts(cast.cuh_feed, mixed_input(cast))

    assert run.status == IngestRun.Status.SUCCEEDED
    assert workers and sum(workers) == 0, "the run should have asked, and had no verdict"
    assert counts(run) == counts(alone)
    assert (stored(run), quarantined(run)) == expected


def test_no_worker_is_forked_from_a_daemonic_process_or_beside_other_threads(monkeypatch):
    sources = [items.Source(location="big.json", data=b" " * validation_pool.VALIDATION_POOL_MIN_BYTES)]

    def workers() -> int:
        types = frozenset({"Condition"})
        with validation_pool.ValidationPool(
            sources, processes=2, max_bytes=10**9, types=types, read=readers.read_bytes
        ) as pool:
            return pool._workers

    main = threading.main_thread()
    monkeypatch.setattr(threading, "enumerate", lambda: [main])
    assert (validation_pool.fork_refusal(), workers()) == ("", 1)

    # Another thread: a lock it holds at the fork would stay held in the worker.
    other = threading.Thread(target=lambda: None)
    monkeypatch.setattr(threading, "enumerate", lambda: [main, other])
    assert (validation_pool.fork_refusal(), workers()) == ("other threads", 0)

    # A Celery prefork child is daemonic: on Linux PR_SET_PDEATHSIG takes its workers down with it, so it may
    # fork them (tests/test_feeds_worker.py shows it under a real worker); elsewhere it validates on its own.
    monkeypatch.setattr(threading, "enumerate", lambda: [main])
    monkeypatch.setattr(multiprocessing, "current_process", lambda: SimpleNamespace(daemon=True))
    monkeypatch.setattr(sys, "platform", "linux")
    assert (validation_pool.fork_refusal(), workers()) == ("", 1)
    monkeypatch.setattr(sys, "platform", "darwin")
    assert (validation_pool.fork_refusal(), workers()) == ("daemonic process", 0)


def test_a_worker_ignores_the_terminals_interrupt_and_ends_with_the_pool(monkeypatch):
    """Ctrl-C reaches the whole process group: the run decides what stops, and its workers end with the pool."""
    monkeypatch.setattr(validation_pool, "VALIDATION_POOL_MIN_BYTES", 0)
    monkeypatch.setattr(validation_pool, "fork_refusal", lambda: "")
    resource = {"resourceType": "Condition", "id": "c1", "subject": {"reference": "Patient/p1"}}
    sources = [items.Source(location="one.json", data=json.dumps(resource).encode())]
    with validation_pool.ValidationPool(
        sources, processes=2, max_bytes=10**9, types=frozenset({"Condition"}), read=readers.read_bytes
    ) as pool:
        pool.submit(0, range(0, 1), frozenset())
        [worker] = pool._processes
        deadline = time.monotonic() + 120  # only so that a broken test cannot hang
        while not pool._work.claims[0] and time.monotonic() < deadline:
            time.sleep(0.01)
        assert pool._work.claims[0], "the worker should have taken the piece"
        os.kill(worker.pid, signal.SIGINT)
        worker.join(0.5)
        assert worker.is_alive()
    assert not worker.is_alive()


def test_a_small_run_or_one_process_forks_no_worker(cast):
    sources = [items.Source(location="small.json", data=b"{}")]
    types = frozenset({"Condition"})
    with validation_pool.ValidationPool(
        sources, processes=2, max_bytes=10**9, types=types, read=readers.read_bytes
    ) as pool:
        pool.submit(0, range(0, 1), frozenset())
        assert pool._work is None
    with validation_pool.ValidationPool(
        sources, processes=1, max_bytes=10**9, types=types, read=readers.read_bytes
    ) as pool:
        pool.submit(0, range(0, 1), frozenset())
        assert pool._work is None


@pytest.fixture
def validated(monkeypatch) -> list[str]:
    """The ids of the resources the run validates itself."""
    seen: list[str] = []

    def counting(resource):
        seen.append(resource.get("id", ""))
        return validate_json(resource)

    monkeypatch.setattr(run_validation, "validate_json", counting)
    return seen


def test_a_resource_held_unchanged_is_not_validated_again_and_a_changed_one_is(cast, validated):
    resources = [condition(f"c{n}", cast.patient_a, f"Problem {n}") for n in range(4)]
    text = [("extract.ndjson", "\n".join(json.dumps(r) for r in resources).encode())]
    ingest_texts(cast.cuh_feed, text)
    assert sorted(validated) == ["c0", "c1", "c2", "c3"]
    validated.clear()
    # Stored for another patient (as after a correction at our end), and deleted at source: both are written
    # again, so both are validated again.
    RecordEntry.objects.filter(feed=cast.cuh_feed, source_id="c1").update(patient=cast.patient_b)
    RecordEntry.objects.filter(feed=cast.cuh_feed, source_id="c2").update(is_deleted_at_source=True)
    resources[3] = condition("c3", cast.patient_a, "Severe asthma")
    text = [("extract.ndjson", "\n".join(json.dumps(r) for r in resources).encode())]

    again = ingest_texts(cast.cuh_feed, text)

    assert sorted(validated) == ["c1", "c2", "c3"]
    assert (again.created, again.updated, again.unchanged, again.quarantined) == (0, 3, 1, 0)
    # The cast's own entries from this feed (the sensitive patient's) are not this extract's.
    entries = RecordEntry.objects.filter(feed=cast.cuh_feed, source_id__in=[r["id"] for r in resources])
    assert set(entries.values_list("patient", flat=True)) == {cast.patient_a.pk}
    assert not entries.filter(is_deleted_at_source=True).exists()
    assert entries.get(source_id="c3").display == "Severe asthma"


def test_the_input_is_parsed_once_unless_it_is_larger_than_what_a_run_keeps(cast, monkeypatch):
    reads: list[str] = []
    original = ingestion.read_source

    def counting(source, **kwargs):
        reads.append(source.location)
        return original(source, **kwargs)

    monkeypatch.setattr(ingestion, "read_source", counting)
    once = ingest_texts(cast.cuh_feed, mixed_input(cast))
    assert reads == ["extract.ndjson", "bundle.json"]
    expected = forget(once)
    reads.clear()
    monkeypatch.setattr(ingestion, "KEEP_PARSED_BYTES", 0)

    twice = ingest_texts(cast.cuh_feed, mixed_input(cast))

    assert reads == ["extract.ndjson", "bundle.json", "extract.ndjson", "bundle.json"]
    assert counts(twice) == counts(once)
    assert (stored(twice), quarantined(twice)) == expected
