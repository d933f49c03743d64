"""Matching on the NHS number: creating and updating patients, cross-checking them, and finding a resource's patient."""

import json
from datetime import date

import pytest

from consent.models import LegitimateRelationship
from records.ingest.pipeline import ingest_texts
from records.models import IngestRun, Patient, QuarantinedRecord, RecordEntry
from tests.builders import NHS

Reason = QuarantinedRecord.Reason
ODS = "https://fhir.nhs.uk/Id/ods-organization-code"
NEW_NUMBER = "9990000042"


def patient_json(resource_id: str = "p1", number: str | None = NEW_NUMBER, **extra: object) -> dict:
    resource = {
        "resourceType": "Patient",
        "id": resource_id,
        "name": [{"family": "Dale", "given": ["Dina"]}],
        "birthDate": "1975-06-07",
    }
    if number is not None:
        resource["identifier"] = [{"system": NHS, "value": number}]
    return resource | extra


def condition_json(resource_id: str, subject: dict | None) -> dict:
    resource = {
        "resourceType": "Condition",
        "id": resource_id,
        "code": {
            "coding": [{"system": "http://snomed.info/sct", "code": "38341003", "display": "Hypertension"}]
        },
    }
    if subject is not None:
        resource["subject"] = subject
    return resource


def ingest(feed, *resources: dict) -> IngestRun:
    return ingest_texts(feed, [(f"r{n}.json", json.dumps(r).encode()) for n, r in enumerate(resources)])


def reasons(run: IngestRun) -> list[tuple[str, str]]:
    return list(
        QuarantinedRecord.objects.filter(ingest_run=run)
        .order_by("location")
        .values_list("resource_type", "reason")
    )


def test_a_feed_that_may_create_patients_creates_one_with_its_demographics(cast):
    resource = patient_json(
        name=[
            {"use": "old", "family": "Former", "given": ["Dina"]},
            {"use": "official", "family": "Dale", "given": ["Dina", "May"]},
        ],
        gender="female",
        address=[
            {"use": "old", "line": ["9 Old Street"], "postalCode": "PE1 1AA"},
            {"use": "home", "line": ["2 Mill Lane", "Histon"], "city": "Cambridge", "postalCode": "cb24 9aa"},
        ],
        telecom=[{"system": "email", "value": "d@example.org"}, {"system": "phone", "value": "01223 000042"}],
        deceasedDateTime="2024-01-02T03:04:05+00:00",
        generalPractitioner=[{"identifier": {"system": ODS, "value": "D81002"}}],
        meta={
            "security": [{"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "R"}]
        },
    )

    run = ingest(cast.gp_a_feed, resource)

    assert (run.created, run.patients_created, run.quarantined) == (1, 1, 0)
    patient = Patient.objects.get(nhs_number=NEW_NUMBER)
    assert (patient.given_name, patient.family_name, patient.birth_date, patient.sex) == (
        "Dina May",
        "Dale",
        date(1975, 6, 7),
        Patient.Sex.FEMALE,
    )
    assert (patient.address, patient.postcode, patient.phone) == (
        "2 Mill Lane, Histon, Cambridge",
        "CB24 9AA",
        "01223 000042",
    )
    assert patient.death_date == date(2024, 1, 2)
    assert patient.registered_practice == cast.practice_b
    assert patient.is_restricted
    assert patient.source_organisation == cast.practice_a
    assert LegitimateRelationship.objects.filter(
        content_object_id=patient.pk,
        group=cast.practice_b.group,
        basis=LegitimateRelationship.Basis.REGISTERED_PRACTICE,
        valid_until__isnull=True,
    ).exists()


def test_a_practice_we_do_not_hold_leaves_the_patient_with_no_known_practice(cast):
    ingest(
        cast.gp_a_feed, patient_json(generalPractitioner=[{"identifier": {"system": ODS, "value": "Z99999"}}])
    )

    patient = Patient.objects.get(nhs_number=NEW_NUMBER)
    assert patient.registered_practice is None
    assert not LegitimateRelationship.objects.filter(content_object_id=patient.pk).exists()


def test_a_demographics_feed_updates_a_known_patient_only_when_something_differs(cast):
    patient = cast.patient_a
    resource = patient_json(
        number=patient.nhs_number,
        name=[{"family": "Ashby", "given": ["Alice"]}],
        birthDate="1950-03-14",
        gender="female",
        address=[{"line": ["1 Mill Road", "Cambridge"], "postalCode": "CB1 2AB"}],
        telecom=[{"system": "phone", "value": "01223 999999"}],
        generalPractitioner=[{"identifier": {"system": ODS, "value": "D81001"}}],
    )

    first = ingest(cast.gp_a_feed, resource)
    patient.refresh_from_db()
    stamp = patient.updated_at
    second = ingest(cast.gp_a_feed, resource)

    assert (first.updated, first.patients_updated, first.created) == (1, 1, 0)
    assert patient.phone == "01223 999999"
    assert (second.updated, second.unchanged) == (0, 1)
    patient.refresh_from_db()
    assert patient.updated_at == stamp


@pytest.mark.parametrize(
    ("number", "reason"),
    [
        ("9876544321", Reason.INVALID_NHS_NUMBER),
        ("999 123 4560", Reason.INVALID_NHS_NUMBER),
        (None, Reason.NO_NHS_NUMBER),
    ],
)
def test_a_patient_without_a_valid_nhs_number_and_everything_about_them_is_quarantined(cast, number, reason):
    patients_before = Patient.objects.count()

    run = ingest(
        cast.gp_a_feed, patient_json("p1", number), condition_json("c1", {"reference": "Patient/p1"})
    )

    assert (run.resources_read, run.quarantined, run.created) == (2, 2, 0)
    assert reasons(run) == [("Patient", reason), ("Condition", reason)]
    condition = QuarantinedRecord.objects.get(ingest_run=run, resource_type="Condition")
    assert "Patient/p1" in condition.detail
    assert Patient.objects.count() == patients_before


def test_a_feed_that_may_not_create_patients_quarantines_an_unknown_one(cast):
    run = ingest(cast.cuh_feed, patient_json("p1"), condition_json("c1", {"reference": "Patient/p1"}))

    assert reasons(run) == [("Patient", Reason.UNKNOWN_PATIENT), ("Condition", Reason.UNKNOWN_PATIENT)]
    assert not Patient.objects.filter(nhs_number=NEW_NUMBER).exists()


def test_a_feed_that_may_not_create_patients_attaches_data_to_a_matching_one_without_changing_it(cast):
    patient = cast.patient_b
    stamp = patient.updated_at
    resource = patient_json(
        number=patient.nhs_number, name=[{"family": "BARTON", "given": ["B"]}], birthDate="1962-07-01"
    )

    run = ingest(cast.cuh_feed, resource, condition_json("c1", {"reference": "Patient/p1"}))

    assert (run.created, run.unchanged, run.quarantined, run.patients_created) == (1, 1, 0, 0)
    assert RecordEntry.objects.get(ingest_run=run).patient == patient
    patient.refresh_from_db()
    assert (patient.given_name, patient.updated_at) == ("Brian", stamp)


def test_a_demographic_mismatch_is_quarantined_with_the_data_that_refers_to_it(cast):
    resource = patient_json(
        number=cast.patient_b.nhs_number, name=[{"family": "Barton"}], birthDate="1999-01-01"
    )

    run = ingest(cast.cuh_feed, resource, condition_json("c1", {"reference": "Patient/p1"}))

    assert reasons(run) == [
        ("Patient", Reason.DEMOGRAPHIC_MISMATCH),
        ("Condition", Reason.DEMOGRAPHIC_MISMATCH),
    ]
    assert "birth date" in QuarantinedRecord.objects.get(ingest_run=run, resource_type="Patient").detail
    cast.patient_b.refresh_from_db()
    assert cast.patient_b.birth_date == date(1962, 7, 1)


def test_a_reference_carrying_an_nhs_number_finds_a_patient_we_already_hold(cast):
    run = ingest(
        cast.cuh_feed,
        condition_json("c1", {"identifier": {"system": NHS, "value": "999 000 0018"}}),
        condition_json("c2", {"identifier": {"system": NHS, "value": NEW_NUMBER}}),
        condition_json("c3", {"identifier": {"system": NHS, "value": "9876544321"}}),
    )

    assert (run.created, run.quarantined) == (1, 2)
    assert RecordEntry.objects.get(ingest_run=run).patient == cast.patient_a
    assert reasons(run) == [("Condition", Reason.UNKNOWN_PATIENT), ("Condition", Reason.INVALID_NHS_NUMBER)]


@pytest.mark.parametrize(
    ("subject", "reason"),
    [
        (None, Reason.NO_SUBJECT),
        ({"reference": "Group/ward-7"}, Reason.NO_SUBJECT),
        ({"display": "Someone"}, Reason.NO_SUBJECT),
        ({"reference": "Patient/not-in-this-run"}, Reason.UNKNOWN_PATIENT),
        ({"reference": "urn:uuid:6a1b2c3d-0000-4000-8000-000000000000"}, Reason.UNKNOWN_PATIENT),
    ],
)
def test_a_resource_whose_patient_cannot_be_found_is_quarantined(cast, subject, reason):
    # An Observation, because R4 lets it have no subject at all (a Condition without one is invalid).
    observation = {"resourceType": "Observation", "id": "o1", "status": "final", "code": {"text": "Pulse"}}
    if subject is not None:
        observation["subject"] = subject

    run = ingest(cast.gp_a_feed, patient_json("p1"), observation)

    assert reasons(run) == [("Observation", reason)]


def test_allergy_and_immunisation_find_their_patient_through_the_patient_element(cast):
    allergy = {
        "resourceType": "AllergyIntolerance",
        "id": "a1",
        "code": {"text": "Penicillin"},
        "patient": {"reference": "https://partner.example/fhir/Patient/p1/_history/3"},
    }
    run = ingest(cast.gp_a_feed, patient_json("p1"), allergy)

    assert (run.created, run.quarantined) == (2, 0)


def test_several_copies_of_one_patient_in_a_run_apply_the_newest_whatever_the_order(cast):
    older = patient_json("p1", meta={"lastUpdated": "2024-01-01T00:00:00Z"}, name=[{"family": "Old"}])
    newer = patient_json("p2", meta={"lastUpdated": "2024-06-01T00:00:00Z"}, name=[{"family": "New"}])

    first = ingest(cast.gp_a_feed, newer, older)
    second = ingest(cast.gp_a_feed, older, newer)

    assert Patient.objects.get(nhs_number=NEW_NUMBER).family_name == "New"
    assert (first.created, first.unchanged, first.patients_created) == (1, 1, 1)
    assert (second.created, second.updated, second.unchanged) == (0, 0, 2)


def test_a_quarantined_xml_patient_keeps_the_xml_the_partner_sent(cast):
    document = f"""<Patient xmlns="http://hl7.org/fhir"><id value="x1"/>
      <identifier><system value="{NHS}"/><value value="{NEW_NUMBER}"/></identifier>
    </Patient>""".encode()

    run = ingest_texts(cast.cuh_feed, [("patient.xml", document)])

    rejected = QuarantinedRecord.objects.get(ingest_run=run)
    assert (rejected.reason, rejected.resource_type, rejected.source_id) == (
        Reason.UNKNOWN_PATIENT,
        "Patient",
        "x1",
    )
    assert rejected.raw_payload.startswith("<Patient")
    assert NEW_NUMBER in rejected.raw_payload


def test_demographics_older_than_those_held_are_never_applied_whichever_run_or_partner_sends_them(cast):
    """An older copy of a patient, sent in a later run or by another authoritative partner, changes nothing, and
    what refers to it still reaches the patient."""
    newer = patient_json("p1", meta={"lastUpdated": "2024-06-01T00:00:00Z"}, name=[{"family": "New"}])
    older = patient_json("p1", meta={"lastUpdated": "2024-01-01T00:00:00Z"}, name=[{"family": "Old"}])
    subject = {"identifier": {"system": NHS, "value": NEW_NUMBER}}
    ingest(cast.gp_a_feed, newer)

    late = ingest(cast.gp_a_feed, older, condition_json("c1", subject))
    elsewhere = ingest(cast.gp_b_feed, older)

    patient = Patient.objects.get(nhs_number=NEW_NUMBER)
    assert patient.family_name == "New"
    assert (patient.source_last_updated.isoformat(), patient.source_organisation) == (
        "2024-06-01T00:00:00+00:00",
        cast.practice_a,
    )
    assert (late.patients_updated, late.unchanged, late.created, late.quarantined) == (0, 1, 1, 0)
    assert RecordEntry.objects.get(source_id="c1").patient == patient
    assert (elsewhere.patients_updated, elsewhere.unchanged) == (0, 1)

    newest = patient_json("p1", meta={"lastUpdated": "2024-09-01T00:00:00Z"}, name=[{"family": "Newest"}])
    taken = ingest(cast.gp_b_feed, newest)
    patient.refresh_from_db()
    assert (taken.patients_updated, patient.family_name, patient.source_organisation) == (
        1,
        "Newest",
        cast.practice_b,
    )


def test_a_version_id_compares_only_with_one_the_same_partner_sent(cast):
    def version(number: str, family: str) -> dict:
        return patient_json("p1", meta={"versionId": number}, name=[{"family": family}])

    ingest(cast.gp_a_feed, version("7", "Seventh"))
    ingest(cast.gp_a_feed, version("3", "Third"))
    assert Patient.objects.get(nhs_number=NEW_NUMBER).family_name == "Seventh"

    # Another partner's counter says nothing about ours: its copy, with no time to compare, is applied.
    ingest(cast.gp_b_feed, version("2", "Elsewhere"))
    patient = Patient.objects.get(nhs_number=NEW_NUMBER)
    assert (patient.family_name, patient.source_version) == ("Elsewhere", "2")


def test_a_reference_to_a_patient_the_partner_sent_in_an_earlier_run_finds_them(cast):
    """An incremental feed (an HTTP pull since the watermark) brings new observations, not the unchanged Patient
    they refer to: a relative `Patient/<id>` finds the patient that id led to before, at this partner only."""
    ingest(cast.gp_a_feed, patient_json("p1"))
    patient = Patient.objects.get(nhs_number=NEW_NUMBER)

    later = ingest(
        cast.gp_a_feed,
        condition_json("c1", {"reference": "Patient/p1"}),
        condition_json("c2", {"reference": "Patient/p1/_history/3"}),
        condition_json("c3", {"reference": "https://elsewhere.example/fhir/Patient/p1"}),
        condition_json("c4", {"reference": "Patient/p2"}),
    )
    elsewhere = ingest(cast.gp_b_feed, condition_json("c5", {"reference": "Patient/p1"}))

    assert (later.created, later.quarantined) == (2, 2)
    assert set(RecordEntry.objects.filter(patient=patient).values_list("source_id", flat=True)) == {
        "c1",
        "c2",
    }
    assert reasons(later) == [("Condition", Reason.UNKNOWN_PATIENT)] * 2
    assert (elsewhere.created, reasons(elsewhere)) == (0, [("Condition", Reason.UNKNOWN_PATIENT)])


def test_a_patient_id_sent_earlier_follows_the_patient_it_now_names_and_any_merge(cast):
    ingest(cast.gp_a_feed, patient_json("p1", number=cast.patient_b.nhs_number, name=[{"family": "Bell"}]))
    # The partner's id p1 now stands for another patient (a correction at their end).
    ingest(cast.gp_a_feed, patient_json("p1", number=cast.patient_a.nhs_number, name=[{"family": "Ashby"}]))
    first = ingest(cast.gp_a_feed, condition_json("c1", {"reference": "Patient/p1"}))
    assert RecordEntry.objects.get(ingest_run=first).patient == cast.patient_a

    Patient.objects.filter(pk=cast.patient_a.pk).update(merged_into=cast.patient_b)
    second = ingest(cast.gp_a_feed, condition_json("c2", {"reference": "Patient/p1"}))
    assert RecordEntry.objects.get(ingest_run=second).patient == cast.patient_b


def test_a_cross_checked_patient_is_remembered_and_a_quarantined_one_is_not(cast):
    """A feed that may not create patients names them too: its Patient ids count once they pass the check."""
    held = patient_json(
        "t1", number=cast.patient_a.nhs_number, name=[{"family": "Ashby"}], birthDate="1950-03-14"
    )
    wrong = patient_json("t2", number=cast.patient_b.nhs_number, name=[{"family": "Nobody"}])
    ingest(cast.cuh_feed, held, wrong)

    later = ingest(
        cast.cuh_feed,
        condition_json("c1", {"reference": "Patient/t1"}),
        condition_json("c2", {"reference": "Patient/t2"}),
    )

    assert RecordEntry.objects.get(ingest_run=later).patient == cast.patient_a
    assert reasons(later) == [("Condition", Reason.UNKNOWN_PATIENT)]
