"""`record_page_build` against decisions the current roles cannot yet produce: objections, sensitive access."""

from dataclasses import replace
from datetime import date, timedelta

from django.http import QueryDict
from django.utils import timezone

from consent.policy import Action, Decision, decide
from records.models import Patient
from records.portal.selectors import (
    OBJECTION_WITHHELD,
    SENSITIVE_WITHHELD,
    data_availability_get,
    record_page_build,
)
from records.sections import CLINICAL_SECTIONS, DEMOGRAPHIC_SECTIONS, Section

EVERYTHING = Decision(allowed=True, basis="test", sections=DEMOGRAPHIC_SECTIONS | CLINICAL_SECTIONS)


def summaries(page) -> set[str]:
    return {entry.summary for section in page.sections for entry in section.entries}


def test_objection_removes_its_sections_and_partners_and_says_so(cast):
    decision = replace(
        EVERYTHING, withheld_sections=frozenset({Section.PLANS}), withheld_partners=frozenset({"RGT"})
    )
    page, shown = record_page_build(cast.patient_a, decision, requested_pages=QueryDict())
    assert Section.PLANS.value not in [section.key for section in page.sections]
    assert "Emergency department attendance" not in summaries(page)
    assert "Type 2 diabetes mellitus" in summaries(page)
    # The page says something is withheld at the patient's request, never what: the audit row says what.
    assert page.withheld == [OBJECTION_WITHHELD]
    for words in ("Care and support plans", "Cambridge University Hospitals", "RGT"):
        assert words not in OBJECTION_WITHHELD
    assert "RGT" not in shown.partners
    assert Section.PLANS.value not in shown.sections
    assert "objection-sections:care-and-support-plans" in shown.withheld
    assert "objection-partners:RGT" in shown.withheld


def test_decision_that_shows_sensitive_items_shows_them_without_a_notice(cast):
    decision = replace(EVERYTHING, withholds_sensitive=False)
    page, shown = record_page_build(cast.patient_sensitive, decision, requested_pages=QueryDict())
    assert {"Hypertension", "Chlamydia infection"} <= summaries(page)
    assert SENSITIVE_WITHHELD not in page.withheld
    assert shown.withheld == ""


def test_role_with_the_sensitive_records_activity_sees_restricted_demographics(cast):
    Patient.objects.filter(pk=cast.patient_a.pk).update(is_restricted=True)
    patient = Patient.objects.select_related("registered_practice").get(pk=cast.patient_a.pk)
    page, shown = record_page_build(
        patient, replace(EVERYTHING, shows_restricted_demographics=True), requested_pages=QueryDict()
    )
    assert page.demographics.address == "1 Mill Road, Cambridge"
    assert page.demographics.phone == "01223 000001"
    assert page.demographics.practice == cast.practice_a
    assert not page.demographics.is_restricted_hidden
    assert Section.GP_PRACTICE.value in shown.sections
    hidden, _ = record_page_build(patient, EVERYTHING, requested_pages=QueryDict())
    assert (hidden.demographics.address, hidden.demographics.phone, hidden.demographics.practice) == (
        "",
        "",
        None,
    )


def _age_of(patient: Patient, birth_date: date) -> str:
    Patient.objects.filter(pk=patient.pk).update(birth_date=birth_date)
    page, _ = record_page_build(Patient.objects.get(pk=patient.pk), EVERYTHING, requested_pages=QueryDict())
    return page.demographics.age


def test_babies_have_their_age_in_days_and_young_children_in_months(cast):
    today = timezone.localdate()
    assert _age_of(cast.patient_b, today - timedelta(days=9)) == "9 days"
    assert _age_of(cast.patient_b, today - timedelta(days=100)) == "3 months"
    assert _age_of(cast.patient_b, today - timedelta(days=800)) == "2 years"


def test_the_page_builder_reads_only_what_the_real_decision_allows(cast):
    decision = decide(cast.social_eli, cast.patient_a, Action.VIEW_RECORD)
    page, shown = record_page_build(cast.patient_a, decision, requested_pages=QueryDict())
    assert {section.key for section in page.sections} == {section.value for section in decision.sections} - {
        section.value for section in DEMOGRAPHIC_SECTIONS
    }
    assert set(shown.sections) - {"person-demographics", "gp-practice"} == {
        section.key for section in page.sections
    }


def test_data_availability_puts_partners_without_a_live_feed_under_not_yet_joined(cast):
    availability = data_availability_get()
    live = {
        partner.organisation.ods_code: [feed.name for feed in partner.feeds] for partner in availability.live
    }
    assert live == {
        "RGT": ["Hospital EPR"],
        "CCC01": ["Social care"],
        "RT1": ["Mental health record"],
        "D81001": ["GP record"],
        "D81002": ["GP record"],
    }
    assert [organisation.ods_code for organisation in availability.not_joined] == ["QUE"]
