"""The worker's side of a push: a pending batch becomes one ingest run, once, and its payload is never lost."""

import hashlib
import json
import threading

import pytest
from django.db import connection, transaction

import records.ingest.ingestion as ingestion
from records.feeds.push.keys import partner_credential_create
from records.feeds.push.process import pushed_batch_process, pushed_batches_requeue
from records.models import IngestRun, PushedBatch, QuarantinedRecord, RecordEntry
from tests.builders import bundle, condition, push, status_of

# Nothing a view queues reaches the broker; tests run the service themselves.
pytestmark = pytest.mark.usefixtures("_no_queueing")

Status = PushedBatch.Status


@pytest.fixture
def make_batch(cast, hospital_feed):
    credential, _ = partner_credential_create(organisation=cast.cuh, name="Hospital EPR interface")

    def make(payload: bytes, content_type: str = "application/fhir+json") -> PushedBatch:
        return PushedBatch.objects.create(
            feed=hospital_feed,
            credential=credential,
            content_type=content_type,
            payload=payload,
            size=len(payload),
            checksum=hashlib.sha256(payload).hexdigest(),
        )

    return make


def test_processing_a_batch_ingests_it_as_one_push_run_and_marks_it_done(cast, make_batch):
    payload = bundle(condition("c1", cast.patient_a), condition("c2", cast.patient_a, "Hay fever"))
    batch = make_batch(payload)

    run = pushed_batch_process(batch.pk)

    batch.refresh_from_db()
    assert (batch.status, batch.ingest_run, batch.error) == (Status.DONE, run, "")
    assert (run.status, run.trigger, run.created, run.quarantined) == (
        IngestRun.Status.SUCCEEDED,
        "push",
        2,
        0,
    )
    assert run.checksum == batch.checksum
    assert str(batch.public_id) in run.source_name
    assert set(RecordEntry.objects.filter(ingest_run=run).values_list("source_id", flat=True)) == {"c1", "c2"}
    assert bytes(batch.payload) == payload


def test_processing_a_batch_twice_changes_nothing(cast, make_batch):
    batch = make_batch(bundle(condition("c1", cast.patient_a)))
    first = pushed_batch_process(batch.pk)
    runs, entries = IngestRun.objects.count(), list(RecordEntry.objects.values_list("pk", "updated_at"))

    second = pushed_batch_process(batch.pk)

    assert second == first
    assert IngestRun.objects.count() == runs
    assert list(RecordEntry.objects.values_list("pk", "updated_at")) == entries


def test_the_same_payload_pushed_twice_creates_nothing_the_second_time(cast, make_batch):
    payload = bundle(condition("c1", cast.patient_a))
    pushed_batch_process(make_batch(payload).pk)

    again = pushed_batch_process(make_batch(payload).pk)

    assert (again.created, again.updated, again.unchanged) == (0, 0, 1)


def test_a_truncated_bundle_is_quarantined_whole_and_the_batch_is_done_with_its_payload(cast, make_batch):
    payload = bundle(condition("c1", cast.patient_a))[:-7]
    batch = make_batch(payload)

    run = pushed_batch_process(batch.pk)

    batch.refresh_from_db()
    assert batch.status == Status.DONE
    assert (run.resources_read, run.quarantined, run.created) == (1, 1, 0)
    record = QuarantinedRecord.objects.get(ingest_run=run)
    assert record.reason == QuarantinedRecord.Reason.UNREADABLE
    assert record.location == f"batch {batch.public_id}.json"
    assert bytes(batch.payload) == payload


def test_an_ndjson_batch_with_one_broken_line_ingests_the_others(cast, make_batch):
    lines = [
        json.dumps(condition("c1", cast.patient_a)),
        '{"resourceType": "Cond',
        json.dumps(condition("c2", cast.patient_a)),
    ]
    batch = make_batch("\n".join(lines).encode(), "application/fhir+ndjson")

    run = pushed_batch_process(batch.pk)

    assert (run.created, run.quarantined) == (2, 1)
    assert QuarantinedRecord.objects.get(ingest_run=run).location == f"batch {batch.public_id}.ndjson:2"


def test_a_run_that_fails_marks_the_batch_failed_keeps_the_payload_and_tells_the_partner_plainly(
    api, cast, hospital_feed, hospital_key, monkeypatch
):
    response = push(api, hospital_feed.code, bundle(condition("c1", cast.patient_a)), hospital_key)
    batch = PushedBatch.objects.get()

    def refuse(*args, **kwargs):
        raise RuntimeError(f"disk on fire near {cast.patient_a.nhs_number}")

    monkeypatch.setattr(ingestion, "entries_upsert", refuse)
    run = pushed_batch_process(batch.pk)

    batch.refresh_from_db()
    assert (batch.status, batch.ingest_run, run.status) == (Status.FAILED, run, IngestRun.Status.FAILED)
    assert "disk on fire" in batch.error
    assert bytes(batch.payload) == bundle(condition("c1", cast.patient_a))
    assert not RecordEntry.objects.filter(ingest_run=run).exists()
    status = status_of(api, response.json()["status_url"], hospital_key)
    assert status.json()["status"] == "failed"
    assert "nothing from it was kept" in status.json()["result"]["error"]
    assert cast.patient_a.nhs_number not in status.content.decode()
    # Failed is final for the worker: a redelivered task does not try again on its own.
    assert pushed_batch_process(batch.pk) == run


def test_a_failed_batch_requeued_after_a_fix_is_processed_again(cast, make_batch, monkeypatch):
    batch = make_batch(bundle(condition("c1", cast.patient_a)))
    with monkeypatch.context() as patch:
        patch.setattr(ingestion, "entries_upsert", lambda *args, **kwargs: 1 / 0)
        failed_run = pushed_batch_process(batch.pk)

    assert pushed_batches_requeue([batch.pk]) == [batch.pk]
    run = pushed_batch_process(batch.pk)

    batch.refresh_from_db()
    assert (batch.status, batch.ingest_run, batch.error) == (Status.DONE, run, "")
    assert run != failed_run
    assert IngestRun.objects.get(pk=failed_run.pk).status == IngestRun.Status.FAILED
    assert run.created == 1


def test_only_failed_batches_are_requeued(cast, make_batch):
    done = make_batch(bundle(condition("c1", cast.patient_a)))
    pushed_batch_process(done.pk)
    pending = make_batch(bundle(condition("c2", cast.patient_a)))

    assert pushed_batches_requeue([done.pk, pending.pk]) == []


def test_a_batch_left_processing_by_a_dead_worker_is_picked_up_again(cast, make_batch):
    # A worker that dies mid-run leaves `processing` committed and its run rolled back with its connection.
    batch = make_batch(bundle(condition("c1", cast.patient_a)))
    PushedBatch.objects.filter(pk=batch.pk).update(status=Status.PROCESSING)

    run = pushed_batch_process(batch.pk)

    batch.refresh_from_db()
    assert (batch.status, run.created) == (Status.DONE, 1)


def test_a_missing_batch_is_nothing_to_do(db):
    assert pushed_batch_process(987654) is None


@pytest.mark.django_db(transaction=True)
def test_a_batch_another_worker_holds_is_left_to_it(cast, make_batch):
    batch = make_batch(bundle(condition("c1", cast.patient_a)))
    locked, release = threading.Event(), threading.Event()

    def other_worker():
        try:
            with transaction.atomic():
                PushedBatch.objects.select_for_update().get(pk=batch.pk)
                locked.set()
                release.wait(timeout=30)
        finally:
            connection.close()

    thread = threading.Thread(target=other_worker)
    thread.start()
    try:
        assert locked.wait(timeout=30)
        assert pushed_batch_process(batch.pk) is None
        assert PushedBatch.objects.get(pk=batch.pk).status == Status.PENDING
        assert not IngestRun.objects.filter(feed=batch.feed, trigger="push").exists()
    finally:
        release.set()
        thread.join()

    assert pushed_batch_process(batch.pk).created == 1


def test_an_hl7_batch_is_read_by_the_feeds_hl7_reader(cast, make_batch):
    batch = make_batch(
        "\r".join(
            [
                "MSH|^~\\&|PAS|RGT|SCR|QUE|20260101093000||ADT^A01|MSG0001|P|2.4",
                "PID|1||9990000018^^^NHS^NH||ASHBY^ALICE||19500314|F",
                "PV1|1|E|ED^^^RGT||||||||||||||||V0001|||||||||||||||||||||||||20260101090000",
            ]
        ).encode(),
        "application/hl7-v2",
    )
    batch.feed.format = batch.feed.Format.HL7V2
    batch.feed.save()

    run = pushed_batch_process(batch.pk)

    batch.refresh_from_db()
    assert batch.status == Status.DONE
    # The ADT message's Patient (already known) and its Encounter, nothing quarantined.
    assert (run.quarantined, run.created) == (0, 1), run.error
