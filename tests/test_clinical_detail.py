"""What a clinician reads in an entry: medicines with their course, dose, quantity and issues; results with their
unit, reference range and flag, gathered under their report; and words, never bare codes, for every concept.

Read from real UK Core example resources (XML, as the partners' systems write them) and from the demo, loaded once
through the real ingestion."""

from __future__ import annotations

import copy
import io
import re
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.db import transaction
from django.utils import timezone
from lxml import etree

from records.clinical import EntryDetail, ResultGroup, describe, group_results
from records.ingest.fhir import safe_xml_parser, validate_xml
from records.ingest.mapping import map_resource
from records.models import RecordEntry
from records.terminology import KNOWN_CODES

UKCORE = Path(__file__).resolve().parents[2] / "shared" / "data" / "ukcore-examples"
CHARLOTTE = "9990000034"
UCUM = "http://unitsofmeasure.org"
INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"


def ukcore(name: str) -> dict[str, Any]:
    """A UK Core example as the pipeline stores it: validated, as FHIR JSON."""
    root = etree.fromstring((UKCORE / f"{name}.xml").read_bytes(), parser=safe_xml_parser())
    return validate_xml(root)


def entry(resource: dict[str, Any], organisation_id: int = 1) -> RecordEntry:
    mapped = map_resource(resource)
    return RecordEntry(
        organisation_id=organisation_id,
        resource_type=mapped.resource_type,
        source_id=mapped.source_id,
        summary=mapped.summary,
        resource=resource,
    )


def facts(detail: EntryDetail) -> dict[str, str]:
    return {fact.label: fact.value for fact in detail.facts}


def with_value(resource: dict[str, Any], value: float, **extra: Any) -> dict[str, Any]:
    changed = copy.deepcopy(resource)
    changed["valueQuantity"]["value"] = value
    changed.update(extra)
    return changed


# Medicines.


def test_a_uk_core_repeat_shows_its_course_dose_issues_made_and_when_its_authorisation_ends():
    detail = describe(entry(ukcore("Extension-UKCore-RepeatInformation-Example")))

    shown = facts(detail)
    assert shown["Course"] == "Repeat dispensing"
    assert shown["Dose"] == "1 drop in each affected eye twice daily, approximately 12 hours apart."
    assert shown["Issues made"] == "1"
    assert shown["Authorised until"] == "10 Sep 2022"
    assert shown["Status"] == "Completed"
    assert [fact.label for fact in detail.facts][:2] == ["Course", "Dose"]


def test_a_uk_core_acute_prescription_says_acute_and_when_it_was_issued():
    shown = facts(describe(entry(ukcore("UKCore-MedicationRequest-EyeDrops-Example"))))

    assert shown["Course"] == "Acute"
    assert shown["Issued"] == "10 Sep 2022"
    assert "Last issued" not in shown


def test_a_repeat_prescription_shows_quantity_with_its_unit_and_supply_and_the_repeats_the_sender_allows():
    resource = ukcore("UKCore-MedicationRequest-Amoxicillin-Example")
    resource["courseOfTherapyType"] = {
        "coding": [
            {
                "system": "http://terminology.hl7.org/CodeSystem/medicationrequest-course-of-therapy",
                "code": "continuous",
            }
        ]
    }
    resource["intent"] = "order"
    resource["dispenseRequest"] = {
        "numberOfRepeatsAllowed": 5,
        "quantity": {"value": 21, "unit": "capsule"},
        "expectedSupplyDuration": {"value": 7, "unit": "days", "system": UCUM, "code": "d"},
        "validityPeriod": {"start": "2023-06-15", "end": "2023-12-15"},
    }

    detail = describe(entry(resource))

    assert detail.title == "Amoxicillin 500mg capsules"
    shown = facts(detail)
    assert shown["Course"] == "Repeat"
    assert shown["Quantity"] == "21 capsule (supply for 7 days)"
    assert shown["Last issued"] == "15 Jun 2023"
    assert shown["Repeats allowed"] == "5"
    assert shown["End"] == "15 Dec 2023"


def test_a_medication_statement_shows_the_uk_core_last_issue_date():
    detail = describe(entry(ukcore("Extension-UKCore-MedicationStatementLastIssueDate-Example")))

    assert detail.title == "Amoxicillin 250mg capsules"
    assert facts(detail)["Last issued"] == "24 Feb 2017"


def test_a_dispense_shows_what_was_handed_over_and_when():
    detail = describe(entry(ukcore("UKCore-MedicationDispense-Amoxicillin-Example")))

    shown = facts(detail)
    assert shown["Quantity"] == "21 capsule"
    assert shown["Issued"] == "15 Jun 2023"


# Results.


def test_a_result_within_its_reference_range_shows_value_unit_and_range_and_no_flag():
    detail = describe(entry(ukcore("UKCore-Observation-Lab-WhiteCellCount-Example")))

    assert detail.title == "White blood cell count in fluid"
    assert facts(detail)["Result"] == "11.2 \u00d710\u2079/L"
    assert facts(detail)["Reference range"] == "4\u201317 \u00d710\u2079/L"
    assert (detail.flag, detail.flag_text) == ("", "")


def test_a_result_below_its_range_with_no_interpretation_is_flagged_as_outside_the_range():
    detail = describe(entry(ukcore("UKCore-Observation-Lab-RedCellCount-Example")))

    assert facts(detail)["Result"] == "3.9 \u00d710\u00b9\u00b2/L"
    assert (detail.flag, detail.flag_text) == ("low", "Below the reference range")


@pytest.mark.parametrize(
    ("code", "flag", "words"),
    [
        ("H", "high", "High"),
        ("L", "low", "Low"),
        ("HH", "critical", "Critically high"),
        ("LL", "critical", "Critically low"),
        ("A", "abnormal", "Abnormal"),
        ("AA", "critical", "Critically abnormal"),
    ],
)
def test_the_labs_interpretation_is_the_flag_in_words(code, flag, words):
    resource = ukcore("UKCore-Observation-Lab-WhiteCellCount-Example")
    resource["interpretation"] = [{"coding": [{"system": INTERPRETATION, "code": code}]}]

    detail = describe(entry(resource))

    assert (detail.flag, detail.flag_text) == (flag, words)


def test_the_labs_normal_wins_over_the_range_and_a_range_in_another_unit_is_never_compared():
    normal = with_value(
        ukcore("UKCore-Observation-Lab-WhiteCellCount-Example"),
        18.0,
        interpretation=[{"coding": [{"system": INTERPRETATION, "code": "N"}]}],
    )
    other_unit = with_value(ukcore("UKCore-Observation-Lab-WhiteCellCount-Example"), 18.0)
    other_unit["referenceRange"] = [
        {"low": {"value": 4000, "unit": "/uL"}, "high": {"value": 17000, "unit": "/uL"}}
    ]
    above = with_value(ukcore("UKCore-Observation-Lab-WhiteCellCount-Example"), 18.0)

    assert describe(entry(normal)).flag == ""
    assert describe(entry(other_unit)).flag == ""
    assert (describe(entry(above)).flag, describe(entry(above)).flag_text) == (
        "high",
        "Above the reference range",
    )


def test_a_blood_pressure_is_one_value_systolic_over_diastolic():
    detail = describe(entry(ukcore("UKCore-Observation-VitalSigns-BloodPressure-Example")))

    assert detail.title == "Blood pressure"
    assert facts(detail)["Result"].startswith("142/94 ")
    assert entry(ukcore("UKCore-Observation-VitalSigns-BloodPressure-Example")).summary.startswith(
        "Blood pressure: 142/94"
    )


def test_a_report_heads_the_results_it_points_at_through_a_uk_core_group_and_others_stand_alone():
    albumin = entry(ukcore("UKCore-Observation-Lab-Albumin-Example"))
    report = entry(ukcore("UKCore-DiagnosticReport-Lab-DiagnosticStudiesReport-Example"))
    group = entry(ukcore("UKCore-Observation-Group-FullBloodCount-Example"))
    white = entry(ukcore("UKCore-Observation-Lab-WhiteCellCount-Example"))
    red = entry(ukcore("UKCore-Observation-Lab-RedCellCount-Example"))

    groups = group_results([albumin, red, report, white, group])

    assert groups == [
        ResultGroup(title="", report=None, results=[albumin]),
        ResultGroup(title="Diagnostic studies report", report=report, results=[white, red]),
    ]


def test_a_group_with_no_report_on_the_page_heads_its_own_members():
    group = entry(ukcore("UKCore-Observation-Group-FullBloodCount-Example"))
    white = entry(ukcore("UKCore-Observation-Lab-WhiteCellCount-Example"))
    red = entry(ukcore("UKCore-Observation-Lab-RedCellCount-Example"))

    assert group_results([white, group, red]) == [
        ResultGroup(title="Full blood count", report=group, results=[white, red])
    ]


def test_a_report_never_claims_another_partners_result_of_the_same_id():
    report = entry(ukcore("UKCore-DiagnosticReport-Lab-DiagnosticStudiesReport-Example"), organisation_id=1)
    group = entry(ukcore("UKCore-Observation-Group-FullBloodCount-Example"), organisation_id=2)
    white = entry(ukcore("UKCore-Observation-Lab-WhiteCellCount-Example"), organisation_id=2)

    groups = group_results([report, group, white])

    assert groups[0] == ResultGroup(title="Diagnostic studies report", report=report, results=[])
    assert groups[1] == ResultGroup(title="Full blood count", report=group, results=[white])


# Words for codes.


def test_a_concept_sent_as_a_code_only_is_named_from_the_known_codes_or_said_to_have_no_description():
    known = ukcore("UKCore-Condition-BleedingFromEar-Example")
    known["code"] = {"coding": [{"system": "http://snomed.info/sct", "code": "49436004"}]}
    unknown = copy.deepcopy(known)
    unknown["code"] = {"coding": [{"system": "http://snomed.info/sct", "code": "123456789"}]}
    local = copy.deepcopy(known)
    local["code"] = {"coding": [{"system": "https://example.org/local-codes", "code": "X12"}]}

    assert describe(entry(known)).title == "Atrial fibrillation"
    assert describe(entry(unknown)).title == "Code 123456789 (SNOMED CT), no description sent"
    assert describe(entry(local)).title == "Code X12 (the sender's own code system), no description sent"
    assert entry(unknown).summary == "Code 123456789 (SNOMED CT), no description sent"


def test_a_snomed_expression_in_the_text_shows_as_its_term():
    detail = describe(entry(ukcore("UKCore-AllergyIntolerance-Sn-DrugAllergy-Example")))

    assert detail.title == "Septrin"


def test_a_questionnaire_response_is_named_for_its_form_never_by_its_url():
    response = ukcore("UKCore-QuestionnaireResponse-FitnessForWork-Example")
    internal = copy.deepcopy(response)
    internal["questionnaire"] = "https://forms.example/Questionnaire/CareAct2014NeedsAssessment|2"

    assert describe(entry(response)).title == "Fitness For Work"
    assert entry(response).summary == "Questionnaire response: Fitness For Work"
    assert describe(entry(internal)).title == "Care Act 2014 Needs Assessment"
    assert facts(describe(entry(response)))["I find you"] == "Fit for work with restrictions"


# Other types.


def test_an_allergy_shows_its_reaction_and_severity():
    detail = describe(entry(ukcore("UKCore-AllergyIntolerance-Amoxicillin-Example")))

    assert detail.title == "Amoxicillin"
    assert facts(detail)["Reaction"] == "Urticarial rash"
    assert facts(detail)["Severity"] == "Mild"


def test_a_condition_an_encounter_a_vaccination_and_an_alert_show_their_own_facts():
    condition = facts(describe(entry(ukcore("UKCore-Condition-BleedingFromEar-Example"))))
    encounter = facts(describe(entry(ukcore("UKCore-Encounter-InpatientEncounter-Example"))))
    vaccination = facts(describe(entry(ukcore("UKCore-Immunization-Sn-ProtocolApplied-Example"))))
    alert = facts(describe(entry(ukcore("UKCore-Flag-FoodAllergy-Example"))))

    assert condition["Status"] == "Active"
    assert encounter["Class"] == "Inpatient encounter"
    assert encounter["When"] == "10 Dec 2019, 13:00 to 11 Dec 2019, 13:00"
    assert vaccination["Dose"] == "1"
    assert alert["Period"] == "from 10 Dec 2019"


# The demo, loaded once through the real ingestion.


@pytest.fixture(scope="module")
def demo(django_db_setup, django_db_blocker) -> list[RecordEntry]:
    """Every entry of a small demo, read into memory; the database is left as it was."""
    with django_db_blocker.unblock(), transaction.atomic():
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("DEMO_PASSWORD", "demo-Fenland-heron-42")
            call_command(
                "demo_load",
                "--patients",
                "12",
                "--reference-date",
                timezone.localdate().isoformat(),
                stdout=io.StringIO(),
            )
        entries = list(
            RecordEntry.objects.select_related("patient").order_by(
                "patient__nhs_number", "-effective_at", "pk"
            )
        )
        transaction.set_rollback(True)
    return entries


def charlotte(demo: list[RecordEntry], resource_type: str) -> list[RecordEntry]:
    return [e for e in demo if e.patient.nhs_number == CHARLOTTE and e.resource_type == resource_type]


_IDENTIFIER = re.compile(
    r"^(?:https?://\S+|urn:\S+|[A-Za-z]+[a-z0-9]+[A-Z]\w*|\d[\d.\-]*|(?=\S*\d)[A-Za-z0-9.\-]+)$"
)


# The mark makes pytest-django set up the test database the module's demo is loaded into.
@pytest.mark.django_db
def test_no_demo_entry_is_titled_with_a_bare_code_an_internal_name_or_a_url(demo):
    assert len(demo) > 300
    titles = {entry.resource_type: [] for entry in demo}
    for found in demo:
        titles[found.resource_type].append(describe(found).title)

    bad = sorted(
        {title for names in titles.values() for title in names if not title or _IDENTIFIER.match(title)}
    )
    assert bad == []
    assert not [summary for summary in (e.summary for e in demo) if "CareAct2014" in summary]
    assert "Care Act 2014 assessment of needs" in titles["QuestionnaireResponse"]


@pytest.mark.django_db
def test_every_code_the_demo_sends_is_a_known_code_with_the_same_words(demo):
    for found in demo:
        if found.code and found.code_system in {"http://snomed.info/sct", "http://loinc.org"}:
            assert KNOWN_CODES[(found.code_system, found.code)] == found.display, found.display


@pytest.mark.django_db
def test_charlotte_has_a_repeat_and_an_acute_medicine_with_their_issues(demo):
    details = [describe(found) for found in charlotte(demo, "MedicationRequest")]
    by_course = {facts(detail)["Course"]: detail for detail in details}

    repeat, acute = facts(by_course["Repeat"]), facts(by_course["Acute"])
    assert by_course["Repeat"].title == "Paracetamol 500mg tablets"
    assert repeat["Quantity"] == "100 tablet (supply for 14 days)"
    assert re.fullmatch(r"\d{1,2} [A-Z][a-z]{2} \d{4}", repeat["Last issued"])
    assert int(repeat["Issues made"]) >= 1
    assert repeat["Authorised until"]
    assert acute["Issued"] and acute["Quantity"] and acute["Status"] == "Completed"


@pytest.mark.django_db
def test_charlotte_has_a_full_blood_count_and_u_and_e_as_panels_with_ranges_and_a_flagged_result(demo):
    results = [
        e
        for e in demo
        if e.patient.nhs_number == CHARLOTTE and e.resource_type in {"Observation", "DiagnosticReport"}
    ]

    panels = [group for group in group_results(results) if group.report is not None]

    titles = [panel.title for panel in panels]
    assert "Full blood count" in titles and "Urea and electrolytes" in titles
    count = next(panel for panel in panels if panel.title == "Full blood count")
    assert [describe(result).title for result in count.results] == [
        "Haemoglobin",
        "White cell count",
        "Platelet count",
    ]
    assert all(facts(describe(result))["Reference range"] for panel in panels for result in panel.results)
    flagged = [describe(result) for panel in panels for result in panel.results if describe(result).flag]
    assert flagged and {detail.flag for detail in flagged} <= {"high", "low"}
    assert {detail.flag_text for detail in flagged} <= {"High", "Low"}


@pytest.mark.django_db
def test_charlotte_has_the_ambulances_vital_signs_with_a_blood_pressure_as_one_value(demo):
    vitals = {describe(found).title: facts(describe(found)) for found in charlotte(demo, "Observation")}

    assert re.fullmatch(r"\d{2,3}/\d{2,3} mmHg", vitals["Blood pressure"]["Result"])
    assert re.fullmatch(r"\d{2,3}/min", vitals["Heart rate"]["Result"])
    assert vitals["Body temperature"]["Result"].endswith("\u00b0C")
