"""Codes of the four national exclusion sets, as partners send them, ingested through the real pipeline: each stored
entry is flagged sensitive, whatever coding system or part of the resource carries the code."""

import pytest
from django.urls import reverse

from audit.models import AccessEvent
from consent.models import SensitiveCode
from consent.sensitive import CTV3, ICD_10, ICD_10_UK, READ_V2, SNOMED_CT
from records.models import RecordEntry
from records.portal.selectors import SENSITIVE_WITHHELD
from tests.builders import coded_concept, coded_condition, condition, ingest, workers_for_every_run

# Held here, apart from the curated default's own files: codes a partner may send, most of them below or beside
# the default's concepts rather than in its list (descendants reached through the hierarchy, ICD-10 codes under
# their category, Read v2 codes with their term ids).
HELD_SENSITIVE = [
    (SNOMED_CT, "240589008", "Chlamydia trachomatis infection"),
    (SNOMED_CT, "165816005", "HIV positive"),
    (SNOMED_CT, "62479008", "Acquired immune deficiency syndrome"),
    (SNOMED_CT, "111880001", "Acute HIV infection"),
    (SNOMED_CT, "91947003", "Asymptomatic human immunodeficiency virus infection"),
    (SNOMED_CT, "420403001", "Pneumocystosis associated with AIDS"),
    (SNOMED_CT, "15628003", "Gonorrhea"),
    (SNOMED_CT, "33839006", "Genital herpes simplex"),
    (SNOMED_CT, "714812005", "Induced termination of pregnancy"),
    (SNOMED_CT, "274973002", "Dilation of cervix uteri and curettage for termination of pregnancy"),
    (SNOMED_CT, "10231000132102", "In-vitro fertilization pregnancy"),
    (SNOMED_CT, "58533008", "Artificial insemination"),
    (SNOMED_CT, "407377005", "Female-to-male transsexual"),
    (ICD_10, "A56.0", "Chlamydial infection of lower genitourinary tract"),
    (ICD_10, "A54.9", "Gonococcal infection, unspecified"),
    (ICD_10, "A60.0", "Herpesviral infection of genitalia and urogenital tract"),
    (ICD_10, "A51.0", "Primary genital syphilis"),
    (ICD_10_UK, "B20.1", "HIV disease resulting in other bacterial infections"),
    (ICD_10_UK, "B24X", "Unspecified human immunodeficiency virus [HIV] disease"),
    (ICD_10, "Z21", "Asymptomatic human immunodeficiency virus [HIV] infection status"),
    (ICD_10, "O04.9", "Medical abortion, complete or unspecified, without complication"),
    (ICD_10_UK, "O049", "Medical abortion, complete or unspecified, without complication"),
    (ICD_10, "Z31.2", "In vitro fertilization"),
    (ICD_10, "F64.0", "Transsexualism"),
    (READ_V2, "A7880", "Acute human immunodeficiency virus infection"),
    (READ_V2, "43C3.11", "HIV positive"),
]
HELD_NOT_SENSITIVE = [
    (SNOMED_CT, "195967001", "Asthma"),
    (SNOMED_CT, "17369002", "Miscarriage"),
    (ICD_10, "O03.9", "Spontaneous abortion, complete or unspecified, without complication"),
    (ICD_10, "Z31.4", "Procreative investigation and testing"),
    (ICD_10, "B30.9", "Viral conjunctivitis, unspecified"),
    (READ_V2, "H33..", "Asthma"),
    ("http://example.org/local-codes", "B20.1", "Not ICD-10"),
]


@pytest.mark.parametrize(("system", "code", "display"), HELD_SENSITIVE)
def test_each_held_sensitive_code_makes_the_stored_entry_sensitive(cast, system, code, display):
    run = ingest(cast.cuh_feed, coded_condition("held-1", cast.patient_a, system, code, display))

    entry = RecordEntry.objects.get(ingest_run=run)
    assert entry.is_sensitive
    assert not entry.is_confidential


@pytest.mark.parametrize(("system", "code", "display"), HELD_NOT_SENSITIVE)
def test_codes_outside_the_sets_leave_the_stored_entry_not_sensitive(cast, system, code, display):
    run = ingest(cast.cuh_feed, coded_condition("held-1", cast.patient_a, system, code, display))

    assert not RecordEntry.objects.get(ingest_run=run).is_sensitive


def test_a_sensitive_code_anywhere_in_the_resource_counts(cast):
    hiv = coded_concept(ICD_10_UK, "B20.1", "HIV disease resulting in other bacterial infections")
    about = {"reference": "Patient/p1"}
    subject = condition("x", cast.patient_a)["subject"]
    encounter = {
        "resourceType": "Encounter",
        "id": "visit-1",
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "subject": subject,
        "reasonCode": [hiv],
    }
    observation = {
        "resourceType": "Observation",
        "id": "result-1",
        "status": "final",
        "code": coded_concept(SNOMED_CT, "27113001", "Body weight"),
        "subject": subject,
        "valueCodeableConcept": coded_concept(SNOMED_CT, "165816005", "HIV positive"),
    }
    procedure = {
        "resourceType": "Procedure",
        "id": "procedure-1",
        "status": "completed",
        "code": {"text": "Procedure", "coding": [{"system": "http://example.org/local", "code": "P1"}]},
        "subject": subject,
        "extension": [
            {"url": "http://example.org/reason", "valueCoding": {"system": READ_V2, "code": "A788."}}
        ],
    }
    asthma = condition("asthma-1", cast.patient_a, note=[{"text": f"not HIV: {about['reference']}"}])

    run = ingest(cast.cuh_feed, encounter, observation, procedure, asthma)

    flags = dict(RecordEntry.objects.filter(ingest_run=run).values_list("source_id", "is_sensitive"))
    assert flags == {"visit-1": True, "result-1": True, "procedure-1": True, "asthma-1": False}


def test_a_code_the_back_office_added_counts_from_the_next_run(cast):
    SensitiveCode.objects.create(
        sensitive_set=SensitiveCode.Set.SEXUALLY_TRANSMITTED_INFECTION, system=CTV3, code="XaBcD"
    )

    run = ingest(cast.cuh_feed, coded_condition("local-1", cast.patient_a, CTV3, "XaBcD", "Local STI code"))

    assert RecordEntry.objects.get(ingest_run=run).is_sensitive


def test_validation_workers_match_with_the_sets_the_run_loaded(cast, settings, monkeypatch):
    SensitiveCode.objects.create(
        sensitive_set=SensitiveCode.Set.SEXUALLY_TRANSMITTED_INFECTION, system=CTV3, code="XaBcE"
    )
    workers_for_every_run(settings, monkeypatch)

    run = ingest(
        cast.cuh_feed,
        coded_condition("local-1", cast.patient_a, CTV3, "XaBcE", "Local STI code"),
        coded_condition("held-1", cast.patient_a, SNOMED_CT, "240589008", "Chlamydia trachomatis infection"),
        condition("asthma-1", cast.patient_a),
    )

    flags = dict(RecordEntry.objects.filter(ingest_run=run).values_list("source_id", "is_sensitive"))
    assert flags == {"local-1": True, "held-1": True, "asthma-1": False}


def test_another_partners_descendant_and_icd_10_codes_are_withheld_from_the_gp_and_shown_to_their_source(
    client, cast
):
    # Neither code is in the curated list itself: one is a SNOMED CT descendant, the other an ICD-10 code.
    ingest(
        cast.cuh_feed,
        coded_condition("hiv-1", cast.patient_a, SNOMED_CT, "111880001", "Acute HIV infection"),
        coded_condition(
            "chl-1", cast.patient_a, ICD_10, "A56.0", "Chlamydial infection of lower genitourinary tract"
        ),
    )
    url = reverse("records:patient-detail", kwargs={"public_id": cast.patient_a.public_id})

    client.force_login(cast.gp_ada)
    gp_page = client.get(url).content.decode()
    client.force_login(cast.ed_cara)
    source_page = client.get(url).content.decode()

    for words in ("Acute HIV infection", "Chlamydial infection"):
        assert words not in gp_page
        assert words in source_page
    assert SENSITIVE_WITHHELD in gp_page
    gp_event, source_event = AccessEvent.objects.filter(action=AccessEvent.Action.VIEW_RECORD).order_by("pk")
    assert "sensitive-entries:2" in gp_event.withheld
    assert not any(fact.startswith("sensitive-entries") for fact in source_event.withheld)
