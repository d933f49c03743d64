"""From a clinical FHIR resource to a RecordEntry: section, code, dates, summary and the sensitive/confidential flags."""

import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from consent.sensitive import SENSITIVE_SETS
from records.ingest.fhir import canonical_json, content_hash
from records.ingest.mapping import SUPPORTED_TYPES, map_resource
from records.ingest.pipeline import ingest_texts
from records.models import IngestRun, QuarantinedRecord, RecordEntry
from records.sections import Section
from tests.builders import NHS, SNOMED

HEADINGS = "https://fhir.nhs.uk/CodeSystem/RecordStandardHeadings"
CONFIDENTIALITY = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
SUBJECT = {"reference": "Patient/p1"}


def concept(code: str, display: str, system: str = SNOMED) -> dict:
    return {"coding": [{"system": system, "code": code, "display": display}]}


def observation_category(code: str) -> list[dict]:
    return [concept(code, code, "http://terminology.hl7.org/CodeSystem/observation-category")]


# The smallest valid R4 resource of each supported type, about Patient/p1.
MINIMAL: dict[str, dict] = {
    "Condition": {"code": concept("195967001", "Asthma"), "subject": SUBJECT},
    "AllergyIntolerance": {"code": concept("91936005", "Allergy to penicillin"), "patient": SUBJECT},
    "MedicationRequest": {
        "status": "active",
        "intent": "order",
        "medicationCodeableConcept": concept("39732411000001106", "Amoxicillin 500mg capsules"),
        "subject": SUBJECT,
    },
    "MedicationStatement": {
        "status": "active",
        "medicationCodeableConcept": concept("39732411000001106", "Amoxicillin 500mg capsules"),
        "subject": SUBJECT,
    },
    "MedicationDispense": {
        "status": "completed",
        "medicationCodeableConcept": concept("39732411000001106", "Amoxicillin 500mg capsules"),
        "subject": SUBJECT,
    },
    "MedicationAdministration": {
        "status": "completed",
        "medicationCodeableConcept": concept("39732411000001106", "Amoxicillin 500mg capsules"),
        "subject": SUBJECT,
        "effectiveDateTime": "2024-02-03T10:00:00Z",
    },
    "Procedure": {"status": "completed", "code": concept("80146002", "Appendicectomy"), "subject": SUBJECT},
    "Observation": {"status": "final", "code": concept("27113001", "Body weight"), "subject": SUBJECT},
    "DiagnosticReport": {
        "status": "final",
        "code": concept("26604007", "Full blood count"),
        "subject": SUBJECT,
    },
    "Immunization": {
        "status": "completed",
        "vaccineCode": concept("39114911000001105", "COVID-19 vaccine"),
        "patient": SUBJECT,
        "occurrenceDateTime": "2021-07-20",
    },
    "Encounter": {
        "status": "finished",
        "class": {
            "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
            "code": "EMER",
            "display": "emergency",
        },
        "subject": SUBJECT,
    },
    "EpisodeOfCare": {"status": "active", "patient": SUBJECT},
    "CarePlan": {"status": "active", "intent": "plan", "subject": SUBJECT, "title": "Weight management plan"},
    "ServiceRequest": {
        "status": "active",
        "intent": "order",
        "code": concept("73761001", "Colonoscopy"),
        "subject": SUBJECT,
    },
    "Flag": {"status": "active", "code": concept("226201008", "Peanut-free diet"), "subject": SUBJECT},
    "DocumentReference": {
        "status": "current",
        "type": concept("373942005", "Discharge summary"),
        "content": [
            {"attachment": {"contentType": "application/pdf", "url": "https://partner.example/doc/1"}}
        ],
        "subject": SUBJECT,
    },
    "Composition": {
        "status": "final",
        "type": concept("373942005", "Discharge summary"),
        "subject": SUBJECT,
        "date": "2024-02-03",
        "author": [{"display": "Dr Paul Rastall"}],
        "title": "Discharge summary",
    },
    "Consent": {
        "status": "active",
        "scope": concept(
            "patient-privacy", "Privacy Consent", "http://terminology.hl7.org/CodeSystem/consentscope"
        ),
        "category": [concept("59284-0", "Patient Consent", "http://loinc.org")],
        "patient": SUBJECT,
    },
    "QuestionnaireResponse": {"status": "completed", "subject": SUBJECT},
    "RiskAssessment": {"status": "final", "subject": SUBJECT},
    "CareTeam": {"subject": SUBJECT, "name": "Weight management team"},
}


def resource(resource_type: str, resource_id: str = "r1", **extra: object) -> dict:
    return {"resourceType": resource_type, "id": resource_id, **MINIMAL.get(resource_type, {}), **extra}


# Alice Ashby of the cast: a hospital feed may attach data to a patient we hold, not create one.
PATIENT = {"resourceType": "Patient", "id": "p1", "identifier": [{"system": NHS, "value": "9990000018"}]}


def ingest(feed, *resources: dict) -> IngestRun:
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": r} for r in (PATIENT, *resources)],
    }
    return ingest_texts(feed, [("bundle.json", json.dumps(bundle).encode())])


def stored(run: IngestRun) -> RecordEntry:
    return RecordEntry.objects.get(ingest_run=run)


def test_every_supported_type_has_a_minimal_example_here():
    assert set(MINIMAL) == SUPPORTED_TYPES


@pytest.mark.parametrize(
    ("resource_type", "extra", "section"),
    [
        ("Condition", {}, Section.PROBLEMS),
        ("AllergyIntolerance", {}, Section.ALLERGIES),
        ("MedicationRequest", {}, Section.MEDICATIONS),
        ("MedicationStatement", {}, Section.MEDICATIONS),
        ("MedicationDispense", {}, Section.MEDICATIONS),
        ("MedicationAdministration", {}, Section.MEDICATIONS),
        ("Procedure", {}, Section.PROCEDURES),
        ("Observation", {}, Section.INVESTIGATIONS),
        ("Observation", {"category": observation_category("laboratory")}, Section.INVESTIGATIONS),
        ("Observation", {"category": observation_category("imaging")}, Section.INVESTIGATIONS),
        ("Observation", {"category": observation_category("vital-signs")}, Section.INVESTIGATIONS),
        ("Observation", {"category": observation_category("exam")}, Section.INVESTIGATIONS),
        ("Observation", {"category": observation_category("social-history")}, Section.SOCIAL_CONTEXT),
        ("Observation", {"category": observation_category("survey")}, Section.ASSESSMENTS),
        ("Observation", {"category": observation_category("assessment")}, Section.ASSESSMENTS),
        ("DiagnosticReport", {}, Section.INVESTIGATIONS),
        ("Immunization", {}, Section.VACCINATIONS),
        ("Encounter", {}, Section.ENCOUNTERS),
        ("EpisodeOfCare", {}, Section.ENCOUNTERS),
        ("CarePlan", {}, Section.PLANS),
        ("ServiceRequest", {}, Section.REFERRALS),
        ("Flag", {}, Section.ALERTS),
        ("Flag", {"category": [{"text": "Safeguarding concern"}]}, Section.SAFEGUARDING),
        ("DocumentReference", {}, Section.DOCUMENTS),
        ("Composition", {}, Section.DOCUMENTS),
        ("Consent", {}, Section.LEGAL),
        ("QuestionnaireResponse", {}, Section.ASSESSMENTS),
        ("RiskAssessment", {}, Section.ASSESSMENTS),
        ("CareTeam", {}, Section.PROFESSIONAL_CONTACTS),
    ],
)
def test_each_resource_type_lands_in_its_prsb_section(cast, resource_type, extra, section):
    run = ingest(cast.cuh_feed, resource(resource_type, **extra))

    assert (run.created, run.quarantined) == (1, 0), list(
        QuarantinedRecord.objects.values_list("detail", flat=True)
    )
    entry = stored(run)
    assert (entry.section, entry.resource_type, entry.source_id) == (section, resource_type, "r1")
    assert (entry.organisation, entry.feed) == (cast.cuh, cast.cuh_feed)
    assert entry.summary


@pytest.mark.parametrize(
    "resource_type", ["Organization", "Practitioner", "Location", "Medication", "Appointment"]
)
def test_resources_outside_the_record_are_quarantined_as_unsupported_never_dropped(cast, resource_type):
    run = ingest(cast.cuh_feed, {"resourceType": resource_type, "id": "x1"})

    assert (run.resources_read, run.quarantined) == (2, 1)
    rejected = QuarantinedRecord.objects.get(ingest_run=run)
    assert (rejected.reason, rejected.resource_type, rejected.source_id) == (
        "unsupported-type",
        resource_type,
        "x1",
    )


@pytest.mark.parametrize(
    ("tags", "section"),
    [
        ([{"system": HEADINGS, "code": "safeguarding"}], Section.SAFEGUARDING),
        ([{"system": HEADINGS, "code": "social-context"}], Section.SOCIAL_CONTEXT),
        ([{"system": "https://elsewhere.example", "code": "safeguarding"}], Section.INVESTIGATIONS),
        ([{"system": HEADINGS, "code": "person-demographics"}], Section.INVESTIGATIONS),
        ([{"system": HEADINGS, "code": "no-such-heading"}], Section.INVESTIGATIONS),
    ],
)
def test_a_record_standard_headings_tag_overrides_the_section(tags, section):
    mapped = map_resource(
        resource("Observation", meta={"tag": tags}, category=observation_category("laboratory"))
    )

    assert mapped.section == section


def test_the_summary_says_what_it_is_and_the_detail_a_clinician_looks_for():
    medication = resource("MedicationRequest", dosageInstruction=[{"text": "1 three times a day"}])
    attendance = resource("Encounter", type=[{"text": "Emergency department attendance"}])
    weight = resource("Observation", valueQuantity={"value": 72.5, "unit": "kg"})
    pressure = resource(
        "Observation",
        code=concept("75367002", "Blood pressure"),
        component=[
            {"code": {"text": "Systolic"}, "valueQuantity": {"value": 120, "unit": "mmHg"}},
            {"code": {"text": "Diastolic"}, "valueQuantity": {"value": 80, "unit": "mmHg"}},
        ],
    )
    allergy = resource(
        "AllergyIntolerance", reaction=[{"manifestation": [concept("247472004", "Urticarial rash")]}]
    )

    assert map_resource(resource("Condition")).summary == "Asthma"
    assert map_resource(medication).summary == "Amoxicillin 500mg capsules — 1 three times a day"
    assert map_resource(attendance).summary == "Emergency department attendance"
    assert map_resource(resource("Encounter")).summary == "Emergency"
    assert map_resource(weight).summary == "Body weight: 72.5 kg"
    assert map_resource(pressure).summary == "Blood pressure: Systolic 120 mmHg; Diastolic 80 mmHg"
    assert map_resource(allergy).summary == "Allergy to penicillin — Urticarial rash"
    assert map_resource(resource("RiskAssessment")).summary == "Risk assessment"
    assert len(map_resource(resource("Condition", code={"text": "x" * 900})).summary) == 500


def test_the_code_prefers_snomed_and_the_display_comes_with_it():
    code = {
        "coding": [
            {"system": "http://read.info/ctv3", "code": "H33..", "display": "Asthma (Read)"},
            {"system": SNOMED, "code": "195967001", "display": "Asthma"},
        ],
        "text": "Asthma, since childhood",
    }
    mapped = map_resource(resource("Condition", code=code))

    assert (mapped.code_system, mapped.code, mapped.display) == (SNOMED, "195967001", "Asthma")
    assert mapped.summary == "Asthma, since childhood"


def test_dates_are_timezone_aware_and_a_date_alone_is_midnight_utc():
    condition = resource(
        "Condition",
        onsetDateTime="2020-05-01",
        abatementDateTime="2021",
        recordedDate="2020-05-02T09:30:00+01:00",
    )
    encounter = resource("Encounter", period={"start": "2024-03-01T10:00:00Z", "end": "2024-03-02T11:00:00Z"})

    mapped = map_resource(condition)
    assert mapped.effective_at == datetime(2020, 5, 1, tzinfo=UTC)
    assert mapped.effective_end == datetime(2021, 1, 1, tzinfo=UTC)
    assert mapped.recorded_at == datetime(2020, 5, 2, 9, 30, tzinfo=timezone(timedelta(hours=1)))
    mapped = map_resource(encounter)
    assert (mapped.effective_at, mapped.effective_end) == (
        datetime(2024, 3, 1, 10, tzinfo=UTC),
        datetime(2024, 3, 2, 11, tzinfo=UTC),
    )
    assert map_resource(resource("MedicationRequest", authoredOn="2023-06-15")).effective_at == datetime(
        2023, 6, 15, tzinfo=UTC
    )


def test_version_hash_and_status_are_kept(cast):
    condition = resource(
        "Condition",
        meta={"versionId": "7", "lastUpdated": "2024-05-06T07:08:09Z"},
        clinicalStatus=concept(
            "active", "Active", "http://terminology.hl7.org/CodeSystem/condition-clinical"
        ),
    )
    run = ingest(cast.cuh_feed, condition)

    entry = stored(run)
    assert (entry.source_version, entry.source_last_updated) == (
        "7",
        datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC),
    )
    assert entry.status == "active"
    assert entry.resource == condition
    canonical = json.dumps(condition, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert entry.content_hash == hashlib.sha256(canonical.encode()).hexdigest()


SYNTHEA = Path(__file__).resolve().parents[2] / "shared" / "data" / "synthea-r4"


def _standard_canonical(resource: dict) -> str:
    return json.dumps(resource, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def test_the_canonical_json_is_the_standard_librarys_text_for_every_synthea_resource():
    """Hashes stored before orjson wrote the canonical JSON still match: an unchanged resource stays unchanged."""
    resources = [
        entry["resource"]
        for path in sorted(SYNTHEA.glob("*.json"))
        for entry in json.loads(path.read_bytes())["entry"]
    ]

    assert len(resources) > 7000
    assert [r for r in resources if canonical_json(r) != _standard_canonical(r)] == []


def test_what_orjson_cannot_write_the_standard_library_does():
    """An integer beyond 64 bits is valid JSON: its canonical text and hash come from the standard library."""
    observation = resource("Observation", status="final", valueInteger=2**70, code={"text": "Count"})

    assert canonical_json(observation) == _standard_canonical(observation)
    assert content_hash(observation) == hashlib.sha256(_standard_canonical(observation).encode()).hexdigest()


VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"


@pytest.mark.parametrize(
    ("verification", "expected"), [("entered-in-error", True), ("confirmed", False), ("refuted", False)]
)
def test_a_condition_entered_in_error_is_kept_and_flagged(cast, verification, expected):
    status = concept(verification, verification, VERIFICATION)
    entry = stored(ingest(cast.cuh_feed, resource("Condition", verificationStatus=status)))

    assert entry.is_entered_in_error is expected


def test_an_observation_with_status_entered_in_error_is_flagged(cast):
    entry = stored(ingest(cast.cuh_feed, resource("Observation", status="entered-in-error")))

    assert (entry.is_entered_in_error, entry.status) == (True, "entered-in-error")


@pytest.mark.parametrize(("code", "expected"), [("R", True), ("V", True), ("N", False)])
def test_items_the_source_marks_restricted_are_confidential(cast, code, expected):
    meta = {"security": [{"system": CONFIDENTIALITY, "code": code}]}
    entry = stored(ingest(cast.cuh_feed, resource("Condition", meta=meta)))

    assert entry.is_confidential is expected
    assert not entry.is_sensitive


@pytest.mark.parametrize(
    ("resource_type", "extra", "expected"),
    [
        ("Condition", {"code": concept("105629000", "Chlamydial infection")}, True),
        ("Procedure", {"code": concept("52637005", "In vitro fertilization")}, True),
        ("Procedure", {"code": concept("386639001", "Termination of pregnancy")}, True),
        ("Condition", {"code": concept("93461009", "Gender dysphoria")}, True),
        ("Encounter", {"reasonCode": [concept("15628003", "Gonorrhoea")]}, True),
        ("Condition", {"code": concept("105629000", "Not SNOMED", "http://example.org/local")}, False),
        ("Condition", {}, False),
    ],
)
def test_codes_in_the_sensitive_sets_make_an_entry_sensitive(cast, resource_type, extra, expected):
    entry = stored(ingest(cast.cuh_feed, resource(resource_type, **extra)))

    assert entry.is_sensitive is expected
    assert not entry.is_confidential


def test_the_sensitive_sets_cover_the_four_national_exclusions():
    assert set(SENSITIVE_SETS) == {
        "assisted-fertilisation",
        "gender-reassignment",
        "sexually-transmitted-infection",
        "termination-of-pregnancy",
    }
    assert all(codes and all(code.isdigit() for code in codes) for codes in SENSITIVE_SETS.values())


def test_a_resource_without_an_id_gets_one_from_its_content_and_stays_one_entry(cast):
    observation = {key: value for key, value in resource("Observation").items() if key != "id"}

    first = ingest(cast.cuh_feed, observation)
    second = ingest(cast.cuh_feed, observation)

    entry = stored(first)
    assert entry.source_id == f"sha256:{entry.content_hash}"
    assert (second.created, second.updated, second.unchanged) == (0, 0, 2)
