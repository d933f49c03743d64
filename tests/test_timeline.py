"""The patient timeline: one chronological list of encounters, results, documents, referrals and medications
across partners, showing only what the record page would show for the same decision, filtered, paged, and
audited as a view of the record named timeline."""

from __future__ import annotations

import html
import re
import uuid
from datetime import datetime, timedelta

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from audit.models import AccessEvent
from consent.models import Objection
from consent.roles import JobRole
from records.models import Patient, RecordEntry
from records.portal.selectors import OBJECTION_WITHHELD, ROLE_DEMOGRAPHICS_ONLY, SENSITIVE_WITHHELD
from records.portal.timeline_forms import RANGE_BACKWARDS
from records.portal.timeline_selectors import TIMELINE_PAGE_SIZE, TIMELINE_SECTIONS
from records.sections import Section
from tests.builders import demo_loaded, ingest, make_entry, make_user, ods_reference, referral

# What the timeline page costs, whatever the size of the record: the session and user (2), the role profiles with
# their roles and the frame's break-glass grants (2), the door's savepoint, patient, decision, audit write (lock,
# head, row; no savepoint of its own) and release (9), the partners
# holding visible entries, the count of events, the page of events and its entries (4).
TIMELINE_QUERIES = 17
DEMO_PASSWORD = "demo-Fenland-heron-42"


def timeline_url(patient: Patient) -> str:
    return reverse("records:patient-timeline", kwargs={"public_id": patient.public_id})


# Where each resource type names what it is (records.ingest.mapping.CONCEPT_FIELDS); a DocumentReference by its
# description.
_CONCEPT_FIELD = {
    "Encounter": "type",
    "MedicationStatement": "medicationCodeableConcept",
    "DocumentReference": "description",
}


def name_every_entry() -> None:
    """Give every entry's resource its summary as its concept's text, as partners send it: `make_entry` writes a
    bare resource, which the page would name by its type."""
    for entry in RecordEntry.objects.all():
        field = _CONCEPT_FIELD.get(entry.resource_type, "code")
        named = entry.summary if field == "description" else {"text": entry.summary}
        RecordEntry.objects.filter(pk=entry.pk).update(resource={**entry.resource, field: named})


def open_timeline(client, user, patient: Patient, query: dict[str, str] | None = None) -> str:
    name_every_entry()
    client.force_login(user)
    response = client.get(timeline_url(patient), query or {})
    assert response.status_code == 200
    return response.content.decode()


def rows(page: str) -> list[dict[str, str]]:
    """The table's rows as their cells' text, by column."""
    found = []
    for row in re.findall(r"<tr>\s*(<td.*?)</tr>", page, flags=re.S):
        cells = re.findall(r'<td data-label="([^"]+)"[^>]*>(.*?)</td>', row, flags=re.S)
        found.append(
            {
                label: html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", text))).strip()
                for label, text in cells
            }
        )
    return found


def choices(page: str, field: str) -> list[str]:
    select = re.search(rf'<select name="{field}".*?</select>', page, flags=re.S)
    assert select is not None
    return [value for value in re.findall(r'<option value="([^"]*)"', select.group(0)) if value]


def days_ago(days: int) -> datetime:
    return timezone.now() - timedelta(days=days)


@pytest.fixture
def history(cast):
    """Patient A's events across partners and sections, with known dates; her problem and care plan are not
    events and stay off the timeline."""
    make_entry(
        cast.patient_a,
        cast.cuh_feed,
        Section.INVESTIGATIONS,
        "Haemoglobin A1c",
        resource_type="Observation",
        effective_at=days_ago(10),
    )
    make_entry(
        cast.patient_a,
        cast.cuh_feed,
        Section.DOCUMENTS,
        "Discharge summary",
        resource_type="DocumentReference",
        effective_at=days_ago(20),
    )
    make_entry(
        cast.patient_a,
        cast.gp_a_feed,
        Section.REFERRALS,
        "Referral to diabetes clinic",
        resource_type="ServiceRequest",
        effective_at=days_ago(40),
    )
    make_entry(
        cast.patient_a,
        cast.gp_a_feed,
        Section.MEDICATIONS,
        "Gliclazide 80mg tablets",
        resource_type="MedicationStatement",
        effective_at=days_ago(60),
        effective_end=days_ago(5),
    )
    make_entry(
        cast.patient_a,
        cast.county_feed,
        Section.REFERRALS,
        "Referral for a carer's assessment",
        resource_type="ServiceRequest",
        effective_at=days_ago(30),
    )
    return cast


def test_gp_sees_events_from_every_partner_most_recent_first_each_with_its_source(client, history):
    page = open_timeline(client, history.gp_ada, history.patient_a)

    listed = rows(page)
    assert [row["What happened"] for row in listed] == [
        "Emergency department attendance",
        "Started: Metformin 500mg tablets",
        "Stopped: Gliclazide 80mg tablets",
        "Haemoglobin A1c",
        "Discharge summary",
        "Referral for a carer's assessment",
        "Referral to diabetes clinic",
        "Started: Gliclazide 80mg tablets",
    ]
    assert listed[2] == {
        "Date": f"{timezone.localtime(days_ago(5)):%-d %b %Y}",
        "What happened": "Stopped: Gliclazide 80mg tablets",
        "Section": "Medications",
        "Source": "Riverside Surgery (D81001)",
    }
    assert listed[3]["Source"] == "Cambridge University Hospitals (RGT)"
    assert listed[5]["Source"] == "Cambridgeshire County Council (CCC01)"
    # Problems and care plans are not events.
    for text in ("Type 2 diabetes", "Community mental health care plan", "Care Act needs assessment"):
        assert text not in page
    assert "stack-table" in page
    assert "Some information has been withheld" not in page


def test_a_document_links_to_its_own_page(client, history):
    document = RecordEntry.objects.get(summary="Discharge summary")

    page = open_timeline(client, history.gp_ada, history.patient_a)

    url = reverse(
        "records:document-view", kwargs={"public_id": history.patient_a.public_id, "entry_id": document.pk}
    )
    assert f'<a href="{url}">Discharge summary</a>' in page
    assert page.count("/documents/") == 1


def test_filtering_by_partner_lists_only_that_partners_events(client, history):
    page = open_timeline(client, history.gp_ada, history.patient_a, {"partner": "RGT"})

    assert {row["Source"] for row in rows(page)} == {"Cambridge University Hospitals (RGT)"}
    assert len(rows(page)) == 3
    assert 'value="RGT" selected' in page


def test_filtering_by_section_lists_only_that_sections_events(client, history):
    page = open_timeline(client, history.gp_ada, history.patient_a, {"section": Section.REFERRALS.value})

    assert [row["What happened"] for row in rows(page)] == [
        "Referral for a carer's assessment",
        "Referral to diabetes clinic",
    ]


def test_filtering_by_dates_keeps_the_events_within_them_a_stopped_medication_by_its_end(client, history):
    query = {
        "date_from": timezone.localdate(days_ago(45)).isoformat(),
        "date_to": timezone.localdate(days_ago(5)).isoformat(),
    }

    page = open_timeline(client, history.gp_ada, history.patient_a, query)

    assert [row["What happened"] for row in rows(page)] == [
        "Stopped: Gliclazide 80mg tablets",
        "Haemoglobin A1c",
        "Discharge summary",
        "Referral for a carer's assessment",
        "Referral to diabetes clinic",
    ]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"partner": "XXX99"}, "Choose a partner from the list."),
        ({"section": "not-a-section"}, "Choose a section from the list."),
        ({"date_from": "31/12/2025"}, "Enter the date date from as a real date"),
        ({"date_to": "2026-02-30"}, "Enter the date date to as a real date"),
        ({"date_from": "2026-03-01", "date_to": "2026-02-01"}, RANGE_BACKWARDS),
    ],
)
def test_a_filter_that_is_not_valid_is_explained_on_the_form_and_lists_nothing(
    client, history, query, message
):
    page = open_timeline(client, history.gp_ada, history.patient_a, query)

    assert "There is a problem" in page
    assert message in page
    assert rows(page) == []
    assert "Correct the filter to see the timeline." in page
    event = AccessEvent.objects.get()
    assert (event.outcome, event.partners_shown) == ("allowed", [])


def test_the_timeline_pages_fifty_at_a_time_most_recent_first(client, cast):
    for day in range(TIMELINE_PAGE_SIZE + 5):
        make_entry(
            cast.patient_b,
            cast.gp_b_feed,
            Section.INVESTIGATIONS,
            f"Result {day:02d}",
            resource_type="Observation",
            effective_at=days_ago(day + 1),
        )

    first = open_timeline(client, cast.gp_ben, cast.patient_b)
    second = open_timeline(client, cast.gp_ben, cast.patient_b, {"page": "2"})
    past_the_end = open_timeline(client, cast.gp_ben, cast.patient_b, {"page": "99"})
    not_a_page = open_timeline(client, cast.gp_ben, cast.patient_b, {"page": "two"})

    assert [row["What happened"] for row in rows(first)] == [f"Result {day:02d}" for day in range(50)]
    assert [row["What happened"] for row in rows(second)] == [f"Result {day:02d}" for day in range(50, 55)]
    assert "Showing 1 to 50 of 55 events." in first
    assert 'href="?&amp;page=2"' in first
    assert rows(past_the_end) == rows(second)
    assert rows(not_a_page) == rows(first)


def test_page_links_carry_the_filter(client, cast):
    for day in range(TIMELINE_PAGE_SIZE + 1):
        make_entry(
            cast.patient_b,
            cast.gp_b_feed,
            Section.INVESTIGATIONS,
            f"Result {day:02d}",
            resource_type="Observation",
            effective_at=days_ago(day + 1),
        )

    page = open_timeline(
        client, cast.gp_ben, cast.patient_b, {"partner": "D81002", "section": "", "page": "1"}
    )

    assert 'href="?partner=D81002&amp;page=2"' in page


def test_social_care_role_sees_no_medications_encounters_or_results(client, history):
    page = open_timeline(client, history.social_eli, history.patient_a)

    assert [row["What happened"] for row in rows(page)] == [
        "Referral for a carer's assessment",
        "Referral to diabetes clinic",
    ]
    assert choices(page, "section") == [Section.REFERRALS.value]
    for text in ("Gliclazide", "Metformin", "Haemoglobin", "Emergency department", "Discharge summary"):
        assert text not in page
    assert "Your role does not open these sections, so they are not shown" in page
    refused = open_timeline(
        client, history.social_eli, history.patient_a, {"section": Section.MEDICATIONS.value}
    )
    assert "Choose a section from the list." in refused


def test_receptionist_sees_no_events_and_is_told_why(client, history):
    page = open_timeline(client, history.reception_dan, history.patient_a)

    assert rows(page) == []
    assert ROLE_DEMOGRAPHICS_ONLY in page
    assert choices(page, "partner") == []
    assert choices(page, "section") == []


def test_a_partner_withheld_by_an_objection_is_absent_and_the_notice_says_only_that_something_is(
    client, history
):
    Objection.objects.create(
        reference="OB-TIME",
        channel=Objection.Channel.WEB_FORM,
        given_name=history.patient_a.given_name,
        family_name=history.patient_a.family_name,
        birth_date=history.patient_a.birth_date,
        contact_by=Objection.ContactBy.EMAIL,
        contact_detail="patient@example.org",
        due_at=timezone.now() + timedelta(days=30),
        patient=history.patient_a,
        status=Objection.Status.UPHELD,
        upheld_from_partners=["RGT"],
    )

    page = open_timeline(client, history.gp_ada, history.patient_a)

    for text in ("Cambridge University Hospitals", "RGT", "Haemoglobin", "Discharge summary", "OB-TIME"):
        assert text not in page
    assert OBJECTION_WITHHELD in page
    assert choices(page, "partner") == ["CCC01", "D81001"]
    asked = open_timeline(client, history.gp_ada, history.patient_a, {"partner": "RGT"})
    assert "Choose a partner from the list." in asked
    assert "RGT" not in AccessEvent.objects.order_by("pk").first().partners_shown


def test_sensitive_entries_from_another_partner_are_counted_never_shown(client, cast):
    make_entry(
        cast.patient_sensitive,
        cast.cuh_feed,
        Section.ENCOUNTERS,
        "Sexual health clinic attendance",
        resource_type="Encounter",
        is_sensitive=True,
    )
    make_entry(
        cast.patient_sensitive,
        cast.cpft_feed,
        Section.DOCUMENTS,
        "Sealed letter",
        resource_type="DocumentReference",
        is_confidential=True,
    )
    make_entry(
        cast.patient_sensitive,
        cast.gp_a_feed,
        Section.INVESTIGATIONS,
        "Practice's own chlamydia screen",
        resource_type="Observation",
        is_sensitive=True,
    )

    page = open_timeline(client, cast.gp_ada, cast.patient_sensitive)

    assert [row["What happened"] for row in rows(page)] == ["Practice's own chlamydia screen"]
    for text in ("Sexual health clinic", "Sealed letter", "RGT", "RT1"):
        assert text not in page
    assert SENSITIVE_WITHHELD in page
    # A partner whose only entries are withheld is not offered as a filter either.
    assert choices(page, "partner") == ["D81001"]
    assert "sensitive-entries:2" in AccessEvent.objects.get().withheld


def test_entered_in_error_and_deleted_at_source_are_never_shown_nor_counted(client, history):
    make_entry(
        history.patient_a,
        history.cpft_feed,
        Section.ENCOUNTERS,
        "Attendance recorded in error",
        resource_type="Encounter",
        is_entered_in_error=True,
    )
    deleted = make_entry(
        history.patient_a,
        history.cpft_feed,
        Section.REFERRALS,
        "Referral the source deleted",
        resource_type="ServiceRequest",
    )
    RecordEntry.objects.filter(pk=deleted.pk).update(is_deleted_at_source=True)

    page = open_timeline(client, history.gp_ada, history.patient_a)

    for text in ("recorded in error", "source deleted", "RT1"):
        assert text not in page
    assert "RT1" not in choices(page, "partner")
    assert "Some information has been withheld" not in page


def test_a_restricted_patients_practice_is_named_nowhere_to_a_role_without_b1611(client, cast):
    nurse = make_user("mh.nell", cast.cpft, JobRole.NURSE)
    Patient.objects.filter(pk=cast.patient_b.pk).update(is_restricted=True)
    ingest(cast.gp_b_feed, referral("r1", cast.patient_b, [ods_reference("RT1")]))

    page = open_timeline(client, nurse, cast.patient_b)

    assert [row["Source"] for row in rows(page)] == [
        "The patient's GP practice (not shown: restricted record)"
    ]
    for value in ("Fenland Practice", "D81002"):
        assert value not in page
    assert choices(page, "partner") == []


def test_every_view_writes_one_view_record_event_naming_the_timeline_and_what_it_showed(client, history):
    open_timeline(client, history.gp_ada, history.patient_a, {"section": Section.REFERRALS.value})

    event = AccessEvent.objects.get()
    assert (event.action, event.outcome, event.patient_id) == ("view-record", "allowed", history.patient_a.pk)
    assert (event.query, event.reason) == ("timeline", "timeline")
    assert event.sections_shown == [Section.DEMOGRAPHICS.value, Section.REFERRALS.value]
    assert event.partners_shown == ["CCC01", "D81001"]
    assert event.basis.startswith("registered-practice:D81001")
    open_timeline(client, history.gp_ada, history.patient_a)
    assert AccessEvent.objects.count() == 2


def test_a_stranger_gets_404_with_nothing_of_the_patient_and_the_refusal_is_audited(client, history):
    client.force_login(history.gp_ben)
    entries_before = RecordEntry.objects.count()

    response = client.get(timeline_url(history.patient_a))

    assert response.status_code == 404
    body = response.content.decode()
    for value in ("Ashby", "999 000 0018", "Gliclazide", "Riverside"):
        assert value not in body
    event = AccessEvent.objects.get()
    assert (event.action, event.outcome, event.patient_id) == ("view-record", "denied", history.patient_a.pk)
    assert event.query == "timeline"
    assert event.reason.startswith("timeline: ")
    assert RecordEntry.objects.count() == entries_before


def test_a_patient_who_does_not_exist_gets_the_same_404(client, cast):
    client.force_login(cast.gp_ada)
    response = client.get(reverse("records:patient-timeline", kwargs={"public_id": uuid.UUID(int=0)}))
    assert response.status_code == 404
    event = AccessEvent.objects.get()
    assert (event.outcome, event.reason) == ("not-found", "timeline")


@pytest.mark.parametrize("entries", [1, 3])
def test_the_timeline_takes_the_same_exact_queries_however_long_the_record(
    client, cast, django_assert_num_queries, entries
):
    for number in range(entries * 30):
        make_entry(
            cast.patient_a,
            [cast.gp_a_feed, cast.cuh_feed, cast.cpft_feed][number % 3],
            TIMELINE_SECTIONS[number % len(TIMELINE_SECTIONS)],
            f"Event {number}",
            effective_at=days_ago(number + 1),
            effective_end=days_ago(number) if number % 2 else None,
        )
    name_every_entry()
    client.force_login(cast.gp_ada)
    client.get(reverse("records:home"))

    with django_assert_num_queries(TIMELINE_QUERIES):
        response = client.get(timeline_url(cast.patient_a), {"partner": "RGT", "page": "2"})

    assert response.status_code == 200


# Acceptance: the demo.


def test_demo_gp_ada_filters_her_grandmothers_timeline_by_partner(db, monkeypatch):
    demo_loaded(monkeypatch, DEMO_PASSWORD)
    patient = Patient.objects.get(nhs_number="9990000034")
    client = Client()
    client.force_login(get_user_model().objects.get(username="gp.ada"))
    visible = RecordEntry.objects.filter(
        patient=patient,
        section__in=TIMELINE_SECTIONS,
        is_entered_in_error=False,
        is_deleted_at_source=False,
        is_sensitive=False,
        is_confidential=False,
    )

    everything = client.get(timeline_url(patient)).content.decode()
    hospital = client.get(timeline_url(patient), {"partner": "RGT"}).content.decode()

    offered = choices(everything, "partner")
    assert set(offered) == set(visible.values_list("organisation__ods_code", flat=True))
    assert {"D81001", "RGT"} <= set(offered)
    sources = {row["Source"] for row in rows(hospital)}
    assert len(sources) == 1
    assert sources.pop().endswith("(RGT)")
    assert len(rows(hospital)) == visible.filter(organisation__ods_code="RGT").count()
    assert len(rows(everything)) > len(rows(hospital))
    dates = [
        datetime.fromisoformat(iso)
        for iso in re.findall(r'<time datetime="([^"]+)">', everything.split('id="events-heading"')[1])
    ]
    assert dates == sorted(dates, reverse=True)
