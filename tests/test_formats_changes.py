"""Change from the source: deletions, merges through Patient.link, and what happens after a run creates patients."""

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from consent.models import LegitimateRelationship
from records.ingest.pipeline import ingest_texts
from records.models import IngestRun, Patient, QuarantinedRecord, RecordEntry
from tests.builders import NHS, ingest

Reason = QuarantinedRecord.Reason
NEW_NUMBER = "9990000034"


def about(number: str) -> dict:
    return {"identifier": {"system": NHS, "value": number}}


def condition(resource_id: str, number: str = "9990000018", **extra: object) -> dict:
    return {
        "resourceType": "Condition",
        "id": resource_id,
        "code": {"text": "Asthma"},
        "subject": about(number),
    } | extra


def transaction(*entries: dict) -> bytes:
    return json.dumps({"resourceType": "Bundle", "type": "transaction", "entry": list(entries)}).encode()


def delete(url: str) -> dict:
    return {"request": {"method": "DELETE", "url": url}}


def put(resource: dict) -> dict:
    return {
        "resource": resource,
        "request": {"method": "PUT", "url": f"{resource['resourceType']}/{resource['id']}"},
    }


def test_a_delete_marks_the_entry_deleted_at_source_and_an_unknown_one_changes_nothing(cast):
    ingest(cast.cuh_feed, condition("c1"))

    run = ingest_texts(
        cast.cuh_feed, [("tx.json", transaction(delete("Condition/c1"), delete("Condition/never-sent")))]
    )
    again = ingest_texts(cast.cuh_feed, [("tx.json", transaction(delete("Condition/c1")))])

    assert (run.resources_read, run.updated, run.unchanged, run.quarantined) == (2, 1, 1, 0)
    assert (again.updated, again.unchanged) == (0, 1)
    entry = RecordEntry.objects.get(source_id="c1")
    assert (entry.is_deleted_at_source, entry.ingest_run) == (True, run)


def test_a_resource_sent_again_after_its_delete_is_shown_again(cast):
    ingest(cast.cuh_feed, condition("c1"))
    ingest_texts(cast.cuh_feed, [("tx.json", transaction(delete("Condition/c1")))])

    resent = ingest(cast.cuh_feed, condition("c1"))
    again = ingest(cast.cuh_feed, condition("c1"))

    assert (resent.created, resent.updated, resent.unchanged) == (0, 1, 0)
    assert (again.updated, again.unchanged) == (0, 1)
    assert RecordEntry.objects.get(source_id="c1").is_deleted_at_source is False


def test_a_delete_names_the_resource_absolute_or_versioned_and_only_this_partners_copy(cast):
    ingest(cast.cuh_feed, condition("c1"), condition("c2"))
    ingest(cast.cpft_feed, condition("c1"))

    ingest_texts(
        cast.cuh_feed,
        [
            (
                "tx.json",
                transaction(
                    delete("https://epr.example/fhir/Condition/c1"), delete("Condition/c2/_history/3")
                ),
            )
        ],
    )

    assert set(
        RecordEntry.objects.filter(is_deleted_at_source=True).values_list("organisation", "source_id")
    ) == {
        (cast.cuh.pk, "c1"),
        (cast.cuh.pk, "c2"),
    }


def test_a_deleted_encounter_no_longer_gives_a_relationship(cast):
    patient = cast.patient_b
    encounter = {
        "resourceType": "Encounter",
        "id": "e1",
        "status": "in-progress",
        "class": {"code": "IMP"},
        "subject": about(patient.nhs_number),
        "period": {"start": (timezone.now() - timedelta(days=1)).isoformat()},
    }
    ingest(cast.cuh_feed, encounter)
    assert LegitimateRelationship.objects.filter(content_object_id=patient.pk, group=cast.cuh.group).exists()

    ingest_texts(cast.cuh_feed, [("tx.json", transaction(delete("Encounter/e1")))])

    assert not LegitimateRelationship.objects.filter(
        content_object_id=patient.pk, group=cast.cuh.group
    ).exists()


def test_a_copy_sent_after_its_delete_in_the_same_run_stands_and_one_sent_before_does_not(cast):
    ingest(cast.cuh_feed, condition("c1"), condition("c2"))

    run = ingest_texts(
        cast.cuh_feed,
        [
            ("1.json", transaction(delete("Condition/c1"), put(condition("c2", note=[{"text": "changed"}])))),
            ("2.json", transaction(put(condition("c1", note=[{"text": "back"}])), delete("Condition/c2"))),
        ],
    )

    assert run.resources_read == 4
    c1, c2 = RecordEntry.objects.filter(source_id__in=["c1", "c2"]).order_by("source_id")
    assert (c1.is_deleted_at_source, c1.resource["note"]) == (False, [{"text": "back"}])
    assert (c2.is_deleted_at_source, "note" in c2.resource) == (True, False)


def test_entered_in_error_from_the_source_flags_the_entry(cast):
    ingest(cast.cuh_feed, condition("c1"))

    error = {
        "coding": [
            {
                "system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                "code": "entered-in-error",
            }
        ]
    }
    run = ingest(cast.cuh_feed, condition("c1", verificationStatus=error))

    assert run.updated == 1
    assert RecordEntry.objects.get(source_id="c1").is_entered_in_error


def retired_patient(number: str, other: dict, resource_id: str = "old") -> dict:
    return {
        "resourceType": "Patient",
        "id": resource_id,
        "identifier": [{"system": NHS, "value": number}],
        "active": False,
        "link": [{"other": other, "type": "replaced-by"}],
    }


def test_a_patient_replaced_by_another_is_merged_into_it_and_never_deleted(cast):
    retired, survivor = cast.patient_b, cast.patient_a
    moved = set(
        RecordEntry.objects.filter(patient=retired).values_list(
            "pk", "organisation", "resource_type", "source_id"
        )
    )

    run = ingest(cast.gp_a_feed, retired_patient(retired.nhs_number, about(survivor.nhs_number)))
    again = ingest(cast.gp_a_feed, retired_patient(retired.nhs_number, about(survivor.nhs_number)))

    assert (run.updated, run.patients_updated, again.unchanged) == (1, 1, 1)
    retired.refresh_from_db()
    assert retired.merged_into == survivor
    assert retired.nhs_number == "9990000026"
    assert (
        set(
            RecordEntry.objects.filter(patient=survivor, pk__in=[row[0] for row in moved]).values_list(
                "pk", "organisation", "resource_type", "source_id"
            )
        )
        == moved
    )
    assert not LegitimateRelationship.objects.filter(content_object_id=retired.pk).exists()
    assert LegitimateRelationship.objects.filter(
        content_object_id=survivor.pk, group=cast.practice_a.group
    ).exists()


def test_a_merge_by_reference_reaches_a_survivor_created_in_the_same_bundle_and_what_names_the_old_record(
    cast,
):
    survivor = {
        "resourceType": "Patient",
        "id": "new",
        "identifier": [{"system": NHS, "value": NEW_NUMBER}],
        "name": [{"family": "Barton", "given": ["Brian"]}],
        "birthDate": "1962-07-01",
    }
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {
                "fullUrl": "urn:uuid:old",
                "resource": retired_patient("9990000026", {"reference": "Patient/new"}),
            },
            {"fullUrl": "urn:uuid:new", "resource": survivor},
            {
                "resource": condition("c-old", note=[{"text": "x"}])
                | {"subject": {"reference": "urn:uuid:old"}}
            },
        ],
    }

    run = ingest_texts(cast.gp_a_feed, [("merge.json", json.dumps(bundle).encode())])

    assert (run.resources_read, run.created, run.updated, run.quarantined) == (3, 2, 1, 0)
    new = Patient.objects.get(nhs_number=NEW_NUMBER)
    assert Patient.objects.get(nhs_number="9990000026").merged_into == new
    assert RecordEntry.objects.get(source_id="c-old").patient == new


def test_a_chain_of_merges_stays_one_step_long(cast):
    third = Patient.objects.create(nhs_number=NEW_NUMBER, family_name="Cole")
    ingest(cast.gp_a_feed, retired_patient("9990000026", about("9990000018")))

    ingest(cast.gp_a_feed, retired_patient("9990000018", about(NEW_NUMBER)))

    assert set(Patient.objects.filter(merged_into=third).values_list("nhs_number", flat=True)) == {
        "9990000018",
        "9990000026",
    }


@pytest.mark.parametrize(
    ("other", "reason", "number"),
    [
        (about(NEW_NUMBER), Reason.UNKNOWN_PATIENT, NEW_NUMBER),
        (about("9990000026"), Reason.INVALID_RESOURCE, "9990000026"),
        (about("9876544321"), Reason.INVALID_NHS_NUMBER, "9876544321"),
        ({"reference": "Patient/not-here"}, Reason.UNKNOWN_PATIENT, "9990000026"),
    ],
    ids=["unknown-survivor", "itself", "invalid-survivor", "unresolvable-reference"],
)
def test_a_merge_that_cannot_be_made_is_quarantined_and_changes_nothing(cast, other, reason, number):
    run = ingest(cast.gp_a_feed, retired_patient("9990000026", other))

    rejected = QuarantinedRecord.objects.get(ingest_run=run)
    assert (rejected.reason, rejected.resource_type, rejected.nhs_number) == (reason, "Patient", number)
    assert Patient.objects.filter(merged_into__isnull=False).count() == 0


def test_a_quarantined_record_keeps_the_nhs_number_it_names(cast):
    patient = {"resourceType": "Patient", "id": "p1", "identifier": [{"system": NHS, "value": NEW_NUMBER}]}
    referring = condition("c1") | {"subject": {"reference": "Patient/p1"}}

    run = ingest(
        cast.cuh_feed, condition("c0", NEW_NUMBER), patient, referring, condition("c2", "9876544321")
    )

    assert sorted(
        QuarantinedRecord.objects.filter(ingest_run=run).values_list("source_id", "reason", "nhs_number")
    ) == [
        ("c0", Reason.UNKNOWN_PATIENT, NEW_NUMBER),
        ("c1", Reason.UNKNOWN_PATIENT, NEW_NUMBER),
        ("c2", Reason.INVALID_NHS_NUMBER, "9876544321"),
        ("p1", Reason.UNKNOWN_PATIENT, NEW_NUMBER),
    ]


def test_a_run_that_creates_patients_says_which_arrived_and_their_replay_is_queued_after_commit(
    cast, monkeypatch, django_capture_on_commit_callbacks
):
    from records import tasks

    sent: list[tuple] = []
    monkeypatch.setattr(tasks.unknown_patients_replay_task, "delay", lambda *args: sent.append(args))
    patients = [
        {"resourceType": "Patient", "id": f"p{n}", "identifier": [{"system": NHS, "value": number}]}
        for n, number in enumerate(["9990000042", NEW_NUMBER, "9990000018"])
    ]

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        run = ingest(cast.gp_a_feed, *patients)
        tasks.arrived_patients_replay_enqueue([run])
    assert sent == []  # nothing before the commit

    for callback in callbacks:
        callback()
    created = sorted(
        Patient.objects.filter(nhs_number__in=["9990000042", NEW_NUMBER]).values_list("pk", flat=True)
    )
    assert run.patients_created == 2
    # And the patient held already: this partner's id p2 now leads to them, and records may wait for that id.
    assert run.arrived_patient_ids == tuple(sorted([*created, cast.patient_a.pk]))
    assert sent == [(list(run.arrived_patient_ids),)]
    sent.clear()

    with django_capture_on_commit_callbacks(execute=True):
        again = ingest(cast.gp_a_feed, *patients)
        tasks.arrived_patients_replay_enqueue([again])
    assert again.arrived_patient_ids == ()
    assert sent == [], "nothing new is known: nothing to replay"


def test_a_run_that_creates_no_patient_queues_nothing(cast, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        run = ingest(cast.cuh_feed, condition("c1"))

    assert callbacks == []
    assert run.arrived_patient_ids == ()


def test_the_replay_is_queued_once_as_the_task_with_patient_ids_only(
    cast, monkeypatch, django_capture_on_commit_callbacks
):
    from records import tasks

    sent: list[tuple] = []
    monkeypatch.setattr(tasks.unknown_patients_replay_task, "delay", lambda *args: sent.append(args))
    first, second = IngestRun(), IngestRun()
    first.arrived_patient_ids, second.arrived_patient_ids = (3, 7), (7, 9)

    with django_capture_on_commit_callbacks(execute=True):
        tasks.arrived_patients_replay_enqueue([first, second])

    assert sent == [([3, 7, 9],)]


def test_the_trigger_is_recorded_on_the_run(cast):
    run = ingest_texts(
        cast.cuh_feed, [("c.json", json.dumps(condition("c1")).encode())], trigger=IngestRun.Trigger.PUSH
    )

    run.refresh_from_db()
    assert run.trigger == IngestRun.Trigger.PUSH
