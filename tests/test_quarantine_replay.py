"""Replaying quarantined records after a fix: one run per feed, still-bad records back as new pending rows, failed
runs leave records pending, and records waiting for an unknown patient replayed once the patient arrives."""

import threading
import time

import pytest
from auditlog.context import set_actor
from auditlog.models import LogEntry
from django.db import connection, transaction

import records.ingest.ingestion as ingestion
from records.ingest.quarantine import QuarantineReplayResult, quarantine_replay, unknown_patients_replay
from records.models import Feed, IngestRun, QuarantinedRecord, RecordEntry
from sharedcare import advisory_locks
from tests.builders import NEWCOMER, NHS, OTHER_NEWCOMER, condition, ingest, invalid_condition, newcomer

Status = QuarantinedRecord.Status
Reason = QuarantinedRecord.Reason


def test_replaying_a_record_after_its_patient_arrives_ingests_it_and_closes_the_record(cast):
    first = ingest(cast.cuh_feed, condition("c1", NEWCOMER, "Fractured wrist"))
    record = QuarantinedRecord.objects.get(ingest_run=first)
    assert (record.reason, record.status, record.nhs_number) == (
        Reason.UNKNOWN_PATIENT,
        Status.PENDING,
        NEWCOMER,
    )
    patient = newcomer()

    result = quarantine_replay([record.pk], user_id=cast.admin_gus.pk)

    [run] = result.runs
    assert (run.trigger, run.status) == (IngestRun.Trigger.REPLAY, IngestRun.Status.SUCCEEDED)
    assert (run.resources_read, run.created, run.quarantined) == (1, 1, 0)
    assert f"{record.pk}" in run.source_name
    assert result.replayed_ids == [record.pk]
    assert result.skipped_ids == result.failed_ids == []
    entry = RecordEntry.objects.get(source_id="c1")
    assert (entry.patient, entry.ingest_run, entry.summary) == (patient, run, "Fractured wrist")
    record.refresh_from_db()
    assert (record.status, record.replayed_by) == (Status.REPLAYED, run)
    assert record.closed_at is not None
    assert not QuarantinedRecord.objects.filter(status=Status.PENDING).exists()


def test_replaying_records_of_two_feeds_makes_one_replay_run_per_feed(cast):
    ingest(cast.cuh_feed, condition("c1", NEWCOMER), condition("c2", NEWCOMER, "Eczema"))
    ingest(cast.cpft_feed, condition("m1", NEWCOMER, "Depression"))
    records = list(QuarantinedRecord.objects.order_by("pk"))
    assert len(records) == 3
    newcomer()

    result = quarantine_replay([record.pk for record in records], user_id=None)

    assert sorted(run.feed.code for run in result.runs) == ["cpft-mh", "cuh-epr"]
    assert {run.feed.code: run.created for run in result.runs} == {"cuh-epr": 2, "cpft-mh": 1}
    assert sorted(result.replayed_ids) == [record.pk for record in records]
    replayed = RecordEntry.objects.filter(source_id__in=["c1", "c2", "m1"])
    assert set(replayed.values_list("patient__nhs_number", flat=True)) == {NEWCOMER}
    assert set(QuarantinedRecord.objects.values_list("status", flat=True)) == {Status.REPLAYED}


def test_a_record_still_bad_is_quarantined_again_as_a_new_pending_record_of_the_replay_run(cast):
    first = ingest(cast.cuh_feed, invalid_condition("c1", cast.patient_a.nhs_number))
    old = QuarantinedRecord.objects.get(ingest_run=first)

    result = quarantine_replay([old.pk], user_id=None)

    [run] = result.runs
    assert (run.resources_read, run.quarantined, result.quarantined_again) == (1, 1, 1)
    old.refresh_from_db()
    assert (old.status, old.replayed_by) == (Status.REPLAYED, run)
    new = QuarantinedRecord.objects.get(status=Status.PENDING)
    assert new.pk != old.pk
    assert (new.ingest_run, new.reason, new.raw_payload) == (run, Reason.INVALID_RESOURCE, old.raw_payload)
    assert new.detail
    assert new.location == old.location
    assert not RecordEntry.objects.filter(source_id="c1").exists()


def test_records_not_pending_are_skipped_and_reported(cast):
    ingest(cast.cuh_feed, condition("c1", NEWCOMER), condition("c2", OTHER_NEWCOMER))
    replayed, discarded = QuarantinedRecord.objects.order_by("pk")
    QuarantinedRecord.objects.filter(pk=discarded.pk).update(status=Status.DISCARDED)
    newcomer()
    first = quarantine_replay([replayed.pk], user_id=None)
    runs = IngestRun.objects.count()

    again = quarantine_replay([replayed.pk, discarded.pk, 999_999], user_id=None)

    assert first.replayed_ids == [replayed.pk]
    assert again.runs == again.replayed_ids == []
    assert again.skipped_ids == sorted([replayed.pk, discarded.pk, 999_999])
    assert IngestRun.objects.count() == runs
    discarded.refresh_from_db()
    assert discarded.status == Status.DISCARDED


def test_a_failed_replay_run_leaves_its_records_pending_and_writes_nothing(cast, monkeypatch):
    ingest(cast.cuh_feed, condition("c1", NEWCOMER), condition("c2", NEWCOMER))
    records = list(QuarantinedRecord.objects.order_by("pk"))
    newcomer()

    def broken(self, checksum):
        raise RuntimeError("disk full")

    monkeypatch.setattr(ingestion.Ingestion, "finish", broken)
    result = quarantine_replay([record.pk for record in records], user_id=None)

    [run] = result.runs
    assert run.status == IngestRun.Status.FAILED
    assert "disk full" in run.error
    assert result.failed_ids == [record.pk for record in records]
    assert result.replayed_ids == []
    for record in records:
        record.refresh_from_db()
        assert (record.status, record.replayed_by, record.closed_at) == (Status.PENDING, None, None)
    assert QuarantinedRecord.objects.count() == 2
    assert not RecordEntry.objects.filter(source_id__in=["c1", "c2"]).exists()

    monkeypatch.undo()
    retried = quarantine_replay([record.pk for record in records], user_id=None)
    assert retried.runs[0].created == 2


def test_a_replay_is_in_the_change_log_with_who_asked(cast):
    ingest(cast.cuh_feed, condition("c1", NEWCOMER))
    record = QuarantinedRecord.objects.get()
    newcomer()

    quarantine_replay([record.pk], user_id=cast.admin_gus.pk)

    changes = list(LogEntry.objects.get_for_object(record).order_by("timestamp", "pk"))
    assert [change.changes_dict["status"] for change in changes] == [
        ["pending", "replaying"],
        ["replaying", "replayed"],
    ]
    assert {change.actor for change in changes} == {cast.admin_gus}
    assert "raw_payload" not in changes[-1].changes_dict


def test_the_same_payload_quarantined_for_the_same_reason_stays_one_pending_record_across_replays(cast):
    bad = invalid_condition("c1", cast.patient_a.nhs_number)
    ingest(cast.cuh_feed, bad)
    first = QuarantinedRecord.objects.get()
    quarantine_replay([first.pk], user_id=None)
    # The partner sends the same bad record again while the replayed copy is pending.
    ingest(cast.cuh_feed, bad)

    assert QuarantinedRecord.objects.filter(status=Status.PENDING).count() == 1
    assert QuarantinedRecord.objects.filter(status=Status.REPLAYED).count() == 1


def test_records_waiting_for_unknown_patients_are_replayed_once_the_patients_arrive(cast):
    ingest(
        cast.cuh_feed,
        condition("c1", NEWCOMER),
        condition("c2", NEWCOMER, "Eczema"),
        condition("c3", OTHER_NEWCOMER),
        invalid_condition("c4", NEWCOMER),
    )
    ingest(cast.cpft_feed, condition("m1", NEWCOMER, "Depression"))
    assert QuarantinedRecord.objects.filter(reason=Reason.UNKNOWN_PATIENT).count() == 4
    patient = newcomer()

    replayed = unknown_patients_replay([patient.pk])

    assert len(replayed.replayed_ids) == 3
    assert set(RecordEntry.objects.filter(patient=patient).values_list("source_id", flat=True)) == {
        "c1",
        "c2",
        "m1",
    }
    waiting = QuarantinedRecord.objects.filter(status=Status.PENDING)
    assert sorted(waiting.values_list("reason", "source_id")) == [
        (Reason.INVALID_RESOURCE, "c4"),
        (Reason.UNKNOWN_PATIENT, "c3"),
    ]
    assert unknown_patients_replay([patient.pk]).replayed_ids == []


@pytest.mark.parametrize("patient_ids", [[], [999_999]])
def test_unknown_patients_replay_with_no_such_patients_replays_nothing(cast, patient_ids):
    ingest(cast.cuh_feed, condition("c1", NEWCOMER))

    assert unknown_patients_replay(patient_ids).runs == []
    assert QuarantinedRecord.objects.get().status == Status.PENDING


def test_a_replay_inside_a_request_leaves_the_request_actor_in_place(cast):
    ingest(cast.cuh_feed, condition("c1", NEWCOMER))
    record = QuarantinedRecord.objects.get()
    newcomer()
    organisation = cast.cuh

    # As AuditlogMiddleware does around every request.
    with set_actor(cast.admin_gus):
        quarantine_replay([record.pk], user_id=cast.admin_gus.pk)
        organisation.name = "Renamed after the replay"
        organisation.save()

    assert LogEntry.objects.get_for_object(organisation).latest("timestamp").actor == cast.admin_gus


def _advisory_lock_waiters() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
        return cursor.fetchone()[0]


def test_a_replay_waits_for_a_run_of_the_same_feed_instead_of_deadlocking_with_it(transactional_db, cast):
    bad = invalid_condition("c1", cast.patient_a.nhs_number)
    ingest(cast.cuh_feed, bad)
    record = QuarantinedRecord.objects.get()
    run_started, run_may_write = threading.Event(), threading.Event()
    outcomes: dict[str, object] = {}

    def partner_run() -> None:
        # A run of the same feed, in progress: it holds the feed's ingest lock, then quarantines the same payload.
        try:
            with transaction.atomic():
                with connection.cursor() as cursor:
                    cursor.execute(
                        "SELECT pg_advisory_xact_lock(%s, %s)",
                        [advisory_locks.INGEST_RUN_NAMESPACE, cast.cuh_feed.pk],
                    )
                run_started.set()
                run_may_write.wait(120)
                QuarantinedRecord.objects.bulk_create(
                    [
                        QuarantinedRecord(
                            feed=record.feed,
                            ingest_run=record.ingest_run,
                            reason=record.reason,
                            detail=record.detail,
                            raw_payload=record.raw_payload,
                            payload_hash=record.payload_hash,
                        )
                    ],
                    ignore_conflicts=True,
                )
            outcomes["run"] = "committed"
        except Exception as error:
            outcomes["run"] = error
        finally:
            connection.close()

    def replay() -> None:
        try:
            outcomes["replay"] = quarantine_replay([record.pk], user_id=None)
        except Exception as error:
            outcomes["replay"] = error
        finally:
            connection.close()

    runner = threading.Thread(target=partner_run)
    runner.start()
    assert run_started.wait(120)
    replayer = threading.Thread(target=replay)
    replayer.start()
    # The deadline only stops a broken test from hanging; a loaded machine gets there long before it.
    deadline = time.monotonic() + 120
    while _advisory_lock_waiters() == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _advisory_lock_waiters() > 0, "the replay should be waiting for the feed's ingest lock"
    run_may_write.set()
    runner.join(120)
    replayer.join(120)

    assert outcomes["run"] == "committed"
    result = outcomes["replay"]
    assert isinstance(result, QuarantineReplayResult), result
    assert result.replayed_ids == [record.pk]
    record.refresh_from_db()
    assert record.status == Status.REPLAYED
    assert QuarantinedRecord.objects.filter(status=Status.PENDING).count() == 1


def test_a_replay_does_not_make_a_stale_feed_look_fresh(cast):
    first = ingest(cast.cuh_feed, condition("c-fresh", NEWCOMER, "Fractured wrist"))
    cast.cuh_feed.refresh_from_db()
    partner_last_sent = cast.cuh_feed.last_success_at
    assert partner_last_sent == first.finished_at
    newcomer()

    result = quarantine_replay(list(QuarantinedRecord.objects.values_list("pk", flat=True)), user_id=None)

    assert result.runs[0].trigger == IngestRun.Trigger.REPLAY
    assert RecordEntry.objects.filter(source_id="c-fresh").exists()
    cast.cuh_feed.refresh_from_db()
    assert cast.cuh_feed.last_success_at == partner_last_sent


def test_records_waiting_for_a_partners_patient_id_are_replayed_once_that_patient_is_sent(
    cast, django_capture_on_commit_callbacks, monkeypatch
):
    """A partner's condition feed ran before its patient feed: what refers to `Patient/<id>` waits in quarantine
    until the partner sends that Patient, then goes in on its own. The same id at another partner does not."""
    from records import tasks

    # What every caller of the pipeline does: the task layer chains the replay of what waited (run here at once).
    monkeypatch.setattr(tasks.unknown_patients_replay_task, "delay", unknown_patients_replay)
    waiting = condition("c1", NEWCOMER, "Fractured wrist")
    waiting["subject"] = {"reference": "Patient/rgt-9"}
    ingest(cast.cuh_feed, waiting)
    record = QuarantinedRecord.objects.get()
    assert (record.reason, record.patient_reference, record.nhs_number) == (
        Reason.UNKNOWN_PATIENT,
        "rgt-9",
        "",
    )
    patient = {
        "resourceType": "Patient",
        "id": "rgt-9",
        "identifier": [{"system": NHS, "value": cast.patient_a.nhs_number}],
        "name": [{"family": "Ashby"}],
        "birthDate": "1950-03-14",
    }

    with django_capture_on_commit_callbacks(execute=True):
        tasks.arrived_patients_replay_enqueue([ingest(cast.cpft_feed, patient)])  # the same id elsewhere
    record.refresh_from_db()
    assert record.status == Status.PENDING

    patients_feed = Feed.objects.create(code="cuh-patients", organisation=cast.cuh, name="CUH patients")
    with django_capture_on_commit_callbacks(execute=True):
        tasks.arrived_patients_replay_enqueue([ingest(patients_feed, patient)])

    record.refresh_from_db()
    assert record.status == Status.REPLAYED
    entry = RecordEntry.objects.get(source_id="c1")
    assert (entry.patient, entry.feed, entry.summary) == (cast.patient_a, cast.cuh_feed, "Fractured wrist")
