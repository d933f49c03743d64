"""Round 3's speed paths change nothing a run stores: the run and a worker sharing validation piece by piece, a
worker that dies, entries and quarantined records copied straight into their tables, the canonical JSON stored,
and the sensitive-code check that reads the JSON text first."""

import hashlib
import json
import os
import threading

import pytest
from django.utils import timezone

import records.ingest.pipeline as pipeline
import records.ingest.run_validation as run_validation
import records.ingest.validation_pool as validation_pool
import records.ingest.validation_worker as validation_worker
from records.ingest.mapping import is_sensitive, map_resource
from records.ingest.pipeline import ingest_texts
from records.ingest.upsert import QUARANTINE_COLUMNS, entries_upsert, quarantined_insert
from records.models import QuarantinedRecord, RecordEntry
from tests.builders import (
    SNOMED,
    condition,
    counts,
    forget,
    make_run,
    mixed_input,
    quarantined,
    stored,
    workers_for_every_run,
)

STD = "8098009"  # in the sensitive set: sexually transmitted infectious disease


@pytest.fixture
def shared(settings, monkeypatch) -> dict[str, int]:
    """A worker for every run, pieces of three positions, and the pieces split: the worker takes the even ones, the
    run the odd ones (while it waits for an even one, or as it reaches it). Yields how many pieces each did."""
    settings.INGEST_VALIDATION_PROCESSES = 2
    monkeypatch.setattr(validation_pool, "VALIDATION_POOL_MIN_BYTES", 0)
    monkeypatch.setattr(validation_pool, "VALIDATION_CHUNK", 3)
    monkeypatch.setattr(validation_pool, "fork_refusal", lambda: "")
    # Whatever cores this machine has and other tests' runs hold (see test_ingest_runs for that rule).
    monkeypatch.setattr(pipeline, "validation_processes", lambda wanted, run: wanted)
    original_claim = validation_pool._claim

    def split(claims, piece, taker):
        is_run = taker == validation_pool._RUN
        return (piece % 2 == 1) == is_run and original_claim(claims, piece, taker)

    monkeypatch.setattr(validation_pool, "_claim", split)
    done = {"worker": 0, "run": 0}
    original_verdicts = validation_pool.ValidationPool.verdicts
    original_piece = run_validation.RunValidation.validate_piece

    def answered(self, position, meanwhile=None):
        found = original_verdicts(self, position, meanwhile)
        if (
            found
            and self._pieces[validation_pool.bisect.bisect_right(self._starts, position) - 1].found is None
        ):
            done["worker"] += 1
        return found

    def by_run(self, index, positions, skip):
        done["run"] += 1
        return original_piece(self, index, positions, skip)

    monkeypatch.setattr(validation_pool.ValidationPool, "verdicts", answered)
    monkeypatch.setattr(run_validation.RunValidation, "validate_piece", by_run)
    return done


def test_the_run_and_a_worker_sharing_pieces_store_exactly_what_one_process_does(cast, settings, shared):
    settings.INGEST_VALIDATION_PROCESSES = 1
    alone = ingest_texts(cast.cuh_feed, mixed_input(cast))
    expected = forget(alone)
    settings.INGEST_VALIDATION_PROCESSES = 2

    both = ingest_texts(cast.cuh_feed, mixed_input(cast))

    assert shared["worker"] > 0, "the worker did no piece"
    assert shared["run"] > 0, "the run took no piece while it waited"
    # Nothing of the pool is left running in the run's process, which the next run's fork would then refuse.
    assert not [thread for thread in threading.enumerate() if thread.name == "QueueFeederThread"]
    assert counts(both) == counts(alone)
    assert both.quarantined == 4
    assert (stored(both), quarantined(both)) == expected


def _dies(*args: object, **kwargs: object) -> None:
    os._exit(1)


def test_a_worker_that_dies_leaves_the_run_to_finish_on_its_own(cast, settings, monkeypatch):
    settings.INGEST_VALIDATION_PROCESSES = 1
    alone = ingest_texts(cast.cuh_feed, mixed_input(cast))
    expected = forget(alone)
    # The run never takes a piece itself: it waits for the worker, which dies on the first piece it takes.
    workers_for_every_run(settings, monkeypatch)
    monkeypatch.setattr(validation_worker, "verdicts", _dies)

    run = ingest_texts(cast.cuh_feed, mixed_input(cast))

    assert counts(run) == counts(alone)
    assert (stored(run), quarantined(run)) == expected


def test_a_run_that_loses_the_lock_over_the_pieces_does_the_rest_itself(cast, settings, monkeypatch):
    settings.INGEST_VALIDATION_PROCESSES = 1
    alone = ingest_texts(cast.cuh_feed, mixed_input(cast))
    expected = forget(alone)
    # As if a worker had been killed holding the lock: the run cannot have it (the worker still may).
    workers_for_every_run(settings, monkeypatch, run_claims=None)

    run = ingest_texts(cast.cuh_feed, mixed_input(cast))

    assert counts(run) == counts(alone)
    assert (stored(run), quarantined(run)) == expected


def test_a_batch_thought_new_that_is_held_after_all_is_upserted_by_the_rules(cast):
    first, second = make_run(cast.cuh_feed), make_run(cast.cuh_feed)
    entries_upsert(cast.cuh_feed, first, [(map_resource(condition("c1", cast.patient_a)), cast.patient_a.pk)])
    changed = map_resource(condition("c1", cast.patient_a, "Severe asthma"))
    new = map_resource(condition("c2", cast.patient_a))

    # The run found both absent earlier; c1 has been stored since (by another feed of the same partner).
    result = entries_upsert(
        cast.cuh_feed,
        second,
        [(changed, cast.patient_a.pk), (new, cast.patient_a.pk)],
        absent={("Condition", "c1"), ("Condition", "c2")},
    )

    assert (result.created, result.updated, result.unchanged) == (1, 1, 0)
    entries = RecordEntry.objects.filter(organisation=cast.cuh, source_id__in=["c1", "c2"])
    assert entries.count() == 2
    assert entries.get(source_id="c1").display == "Severe asthma"
    assert set(entries.values_list("ingest_run", flat=True)) == {second.pk}


def test_new_entries_copied_straight_in_are_the_rows_the_conflict_path_writes(cast):
    mapped = [map_resource(condition(f"c{n}", cast.patient_a, f"Problem {n} \u2013 ü")) for n in range(3)]
    run, reference_run = make_run(cast.cuh_feed), make_run(cast.cpft_feed)

    direct = entries_upsert(
        cast.cuh_feed,
        run,
        [(m, cast.patient_a.pk) for m in mapped],
        absent={("Condition", f"c{n}") for n in range(3)},
    )
    staged = entries_upsert(cast.cpft_feed, reference_run, [(m, cast.patient_a.pk) for m in mapped])

    assert (direct.created, staged.created) == (3, 3)
    skip = {"id", "organisation", "feed", "ingest_run", "created_at", "updated_at"}
    names = [f.attname for f in RecordEntry._meta.concrete_fields if f.name not in skip]
    rows = [
        list(RecordEntry.objects.filter(ingest_run=r).order_by("source_id").values_list(*names))
        for r in (run, reference_run)
    ]
    assert rows[0] == rows[1]


def _row(reason: str, payload: str, source_id: str) -> tuple:
    digest = hashlib.sha256(payload.encode()).hexdigest()
    return (
        reason,
        "Why.",
        "Claim",
        source_id,
        "batch.ndjson:1",
        payload,
        digest,
        "9990000018",
        "",
        timezone.now(),
    )


def test_quarantined_rows_are_those_the_orm_writes_and_a_pending_payload_stays_once(cast):
    payloads = ['{"resourceType": "Claim", "note": "Café \\"x\\"\\ttab"}', "{not json at all\\", "third"]
    reason = QuarantinedRecord.Reason.UNSUPPORTED_TYPE
    run, reference_run = make_run(cast.cuh_feed), make_run(cast.cpft_feed)
    # Already pending for this feed: the first payload, which must not be quarantined twice.
    quarantined_insert(cast.cuh_feed, make_run(cast.cuh_feed), [_row(reason, payloads[0], "c0")])
    QuarantinedRecord.objects.bulk_create(
        [_instance(cast.cpft_feed, make_run(cast.cpft_feed), _row(reason, payloads[0], "c0"))]
    )
    # Twice in one batch: the first stays.
    rows = [_row(reason, payload, f"c{n}") for n, payload in enumerate([*payloads, payloads[1]])]

    quarantined_insert(cast.cuh_feed, run, rows)
    # The ORM's own write, skipping what the pending-once constraint refuses.
    QuarantinedRecord.objects.bulk_create(
        [_instance(cast.cpft_feed, reference_run, row) for row in rows], ignore_conflicts=True
    )

    skip = {"id", "feed", "ingest_run", "created_at"}
    names = [f.attname for f in QuarantinedRecord._meta.concrete_fields if f.name not in skip]
    written = [
        list(QuarantinedRecord.objects.filter(ingest_run=r).order_by("payload_hash").values_list(*names))
        for r in (run, reference_run)
    ]
    assert written[0] == written[1]
    assert sorted(QuarantinedRecord.objects.filter(ingest_run=run).values_list("source_id", flat=True)) == [
        "c1",
        "c2",
    ]


def _instance(feed, run, row: tuple) -> QuarantinedRecord:
    return QuarantinedRecord(feed=feed, ingest_run=run, **dict(zip(QUARANTINE_COLUMNS, row, strict=True)))


@pytest.mark.parametrize(
    "code_holder",
    [
        {"code": {"coding": [{"system": SNOMED, "code": STD}]}},
        {"code": {"coding": [{"system": SNOMED, "code": f" {STD}\t"}]}},
        {"extension": [{"url": "x", "valueCoding": {"system": SNOMED, "code": STD}}]},
        {"contained": [{"resourceType": "Condition", "code": {"coding": [{"system": SNOMED, "code": STD}]}}]},
        {"code": {"coding": [{"system": "http://example.org", "code": STD}]}},
        {"code": {"coding": [{"system": SNOMED, "code": f"1{STD}"}]}},
        {"code": {"coding": [{"system": SNOMED, "code": "195967001"}]}, "note": [{"text": f"code {STD}"}]},
        {"code": {"coding": [{"system": SNOMED, "code": "195967001"}]}},
    ],
)
def test_reading_the_json_text_first_finds_a_sensitive_code_exactly_when_the_walk_does(code_holder):
    resource = {"resourceType": "Condition", "id": "c1", **code_holder}
    canonical = json.dumps(resource, sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    assert is_sensitive(resource, canonical) == is_sensitive(resource)
    assert map_resource(resource).is_sensitive == is_sensitive(resource)
