"""Issue 3's acceptance: a file of 1,000 records with one bad record ingests 999 and quarantines one with its
reason; replay after the fix ingests it, and a replay without a fix leaves it quarantined, nothing lost."""

from records.ingest.quarantine import quarantine_replay
from records.models import IngestRun, Patient, QuarantinedRecord, RecordEntry
from tests.builders import NEWCOMER, NHS, condition, ingest, invalid_condition

RECORDS = 1_000
BAD_LINE = 637
Status = QuarantinedRecord.Status


def extract(cast, bad: dict) -> list[dict]:
    """1,000 Conditions for the cast's patients, the one at BAD_LINE replaced by `bad`."""
    patients = [cast.patient_a, cast.patient_b, cast.patient_sensitive]
    resources = [
        condition(f"c{number}", patients[number % 3].nhs_number, f"Problem {number}")
        for number in range(1, RECORDS + 1)
    ]
    resources[BAD_LINE - 1] = bad
    return resources


def ingest_extract(cast, bad: dict) -> tuple[IngestRun, QuarantinedRecord]:
    run = ingest(cast.cuh_feed, *extract(cast, bad), location="extract.ndjson")
    assert run.status == IngestRun.Status.SUCCEEDED
    assert (run.resources_read, run.created, run.quarantined) == (RECORDS, RECORDS - 1, 1)
    assert RecordEntry.objects.filter(ingest_run=run).count() == RECORDS - 1
    assert run.duration_seconds is not None
    assert run.resources_per_second is not None
    record = QuarantinedRecord.objects.get(ingest_run=run)
    assert record.status == Status.PENDING
    assert record.location == f"extract.ndjson:{BAD_LINE}"
    assert record.source_id == "bad"
    return run, record


def test_one_bad_record_in_a_thousand_is_quarantined_and_replayed_once_its_patient_arrives(cast):
    first, record = ingest_extract(cast, condition("bad", NEWCOMER, "Fractured wrist"))
    assert record.reason == QuarantinedRecord.Reason.UNKNOWN_PATIENT
    assert "No patient is held" in record.detail

    # The fix happens at the source of truth: the patient's practice sends their demographics.
    gp_run = ingest(
        cast.gp_a_feed,
        {
            "resourceType": "Patient",
            "id": "p-new",
            "identifier": [{"system": NHS, "value": NEWCOMER}],
            "name": [{"family": "Newcomer", "given": ["Nia"]}],
            "birthDate": "1980-01-01",
            "gender": "female",
        },
    )
    assert gp_run.patients_created == 1
    replay = quarantine_replay([record.pk], user_id=cast.admin_gus.pk)

    [run] = replay.runs
    assert (run.trigger, run.resources_read, run.created, run.quarantined) == (
        IngestRun.Trigger.REPLAY,
        1,
        1,
        0,
    )
    entry = RecordEntry.objects.get(source_id="bad")
    assert entry.patient == Patient.objects.get(nhs_number=NEWCOMER)
    assert entry.summary == "Fractured wrist"
    assert RecordEntry.objects.filter(ingest_run__in=[first, run]).count() == RECORDS
    record.refresh_from_db()
    assert (record.status, record.replayed_by) == (Status.REPLAYED, run)
    assert not QuarantinedRecord.objects.filter(status=Status.PENDING).exists()


def test_one_invalid_record_in_a_thousand_replayed_without_a_fix_stays_quarantined(cast):
    first, record = ingest_extract(cast, invalid_condition("bad", cast.patient_a.nhs_number))
    assert record.reason == QuarantinedRecord.Reason.INVALID_RESOURCE
    assert "clinicalStatus" in record.detail

    replay = quarantine_replay([record.pk], user_id=cast.admin_gus.pk)

    [run] = replay.runs
    assert (run.resources_read, run.created, run.quarantined) == (1, 0, 1)
    record.refresh_from_db()
    assert (record.status, record.replayed_by) == (Status.REPLAYED, run)
    again = QuarantinedRecord.objects.get(status=Status.PENDING)
    assert (again.ingest_run, again.reason, again.raw_payload) == (run, record.reason, record.raw_payload)
    assert not RecordEntry.objects.filter(source_id="bad").exists()
    assert RecordEntry.objects.filter(ingest_run__in=[first, run]).count() == RECORDS - 1
