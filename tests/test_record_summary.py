"""The record page opens on a summary: banners of what must not be missed, then what still holds and what happened
last, each item with its source and date; vital signs apart from other results; the partners holding this patient's
data; and only what the decision opens, in a number of queries that does not grow with the record."""

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from audit.models import AccessEvent
from consent.models import Objection
from records.models import Feed, Patient, RecordEntry
from records.sections import Section
from tests.builders import make_entry

# 1. the session; 2. the user; 3. the role profiles with their roles; 4. the door's savepoint; 5. the patient; 6. the
# relationships; 7. the grants; 8. the objections in force; 9. every part of the page counted per partner (the
# sections, vital signs, what still holds, the sensitive entries withheld, the partners holding data), in one query;
# 10. every part's current page and the summary's entries, in one query (two windows over the parts); 11. the
# active organisations with their live feeds, in one query, for who shares data and how fresh it is; 12-14. the
# audit write (chain lock, last hash, the event); 15. the door's savepoint released; 16. the frame's break-glass
# grants. The summary adds no query of its own.
RECORD_PAGE_QUERIES = 16
VITAL_SIGNS = [
    {
        "coding": [
            {"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}
        ]
    }
]
LABORATORY = [
    {
        "coding": [
            {"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}
        ]
    }
]


def entry(
    patient, feed, section, display, resource_type, days_ago=3, status="active", **resource
) -> RecordEntry:
    """An entry whose resource names what it is, as a partner's would."""
    made = make_entry(
        patient,
        feed,
        section,
        display,
        resource_type=resource_type,
        status=status,
        effective_at=timezone.now() - timedelta(days=days_ago),
        is_sensitive=resource.pop("is_sensitive", False),
    )
    concept = {"text": display}
    field = {
        "MedicationStatement": "medicationCodeableConcept",
        "Consent": "scope",
        "Encounter": "type",
        "DocumentReference": "type",
    }.get(resource_type, "code")
    body = {"resourceType": resource_type, "id": made.source_id, "status": status}
    body[field] = [concept] if resource_type in ("Encounter", "DocumentReference") else concept
    if resource_type == "CareTeam":
        body["name"] = display
    body.update(resource)
    RecordEntry.objects.filter(pk=made.pk).update(resource=body)
    return made


def summary_record(cast, patient: Patient | None = None) -> Patient:
    patient = patient or cast.patient_a
    entry(patient, cast.gp_a_feed, Section.ALLERGIES, "Allergy to peanut", "AllergyIntolerance", days_ago=400)
    entry(
        patient,
        cast.gp_a_feed,
        Section.ALLERGIES,
        "Allergy to plasters",
        "AllergyIntolerance",
        status="resolved",
    )
    entry(patient, cast.gp_a_feed, Section.ALERTS, "Needs a British Sign Language interpreter", "Flag", 900)
    entry(patient, cast.gp_a_feed, Section.ALERTS, "Two staff members for home visits", "Flag", 800)
    entry(
        patient, cast.county_feed, Section.SAFEGUARDING, "Adult safeguarding enquiry in progress", "Flag", 200
    )
    entry(patient, cast.gp_a_feed, Section.LEGAL, "Advance decision to refuse treatment", "Consent", 700)
    entry(patient, cast.gp_a_feed, Section.PROBLEMS, "Heart failure", "Condition", 60)
    entry(patient, cast.gp_a_feed, Section.MEDICATIONS, "Metformin 500mg tablets", "MedicationStatement", 30)
    entry(
        patient,
        cast.gp_a_feed,
        Section.MEDICATIONS,
        "Amoxicillin 500mg capsules",
        "MedicationStatement",
        2,
        "stopped",
    )
    entry(
        patient,
        cast.cuh_feed,
        Section.INVESTIGATIONS,
        "Heart rate",
        "Observation",
        1,
        "final",
        category=VITAL_SIGNS,
    )
    entry(
        patient,
        cast.cuh_feed,
        Section.INVESTIGATIONS,
        "Haemoglobin",
        "Observation",
        1,
        "final",
        category=LABORATORY,
    )
    entry(patient, cast.cuh_feed, Section.DOCUMENTS, "Discharge letter", "DocumentReference", 1, "current")
    return patient


def record_url(patient: Patient) -> str:
    return reverse("records:patient-detail", kwargs={"public_id": patient.public_id})


def open_record(client, user, patient: Patient, query: dict | None = None) -> str:
    client.force_login(user)
    response = client.get(record_url(patient), query or {})
    assert response.status_code == 200
    return response.content.decode().replace("&#x27;", "'")


def between(page: str, start: str, end: str) -> str:
    begin = page.index(start)
    return page[begin : page.index(end, begin)]


def banners(page: str) -> str:
    return between(page, 'id="must-not-miss"', 'class="row g-4')


def summary_parts(page: str) -> str:
    return between(page, 'class="record-summary-parts"', 'class="row g-4')


def full_section(page: str, key: str) -> str:
    return between(page, f'<section id="{key}"', "</section>")


def test_the_banners_come_first_with_source_and_date_and_only_what_still_holds(client, cast):
    summary_record(cast)

    page = open_record(client, cast.gp_ada, cast.patient_a)

    top = banners(page)
    assert page.index('id="must-not-miss"') < page.index('id="person-demographics"')
    allergies = between(top, "record-banner-allergies", "</section>")
    assert (
        "Allergy to peanut" in allergies
        and "Riverside Surgery" in allergies
        and "<time datetime=" in allergies
    )
    assert "Allergy to plasters" not in top  # resolved: in its section, not on the summary
    assert "Allergy to plasters" in full_section(page, Section.ALLERGIES)
    communication = between(top, "record-banner-communication", "</section>")
    assert "British Sign Language interpreter" in communication
    alerts = between(top, "record-banner-alerts", "</section>")
    assert "Two staff members" in alerts and "Sign Language" not in alerts
    assert "Adult safeguarding enquiry" in between(top, "record-banner-safeguarding", "</section>")
    assert "Cambridgeshire County Council" in between(top, "record-banner-safeguarding", "</section>")
    assert "Advance decision to refuse treatment" in between(top, "record-banner-legal", "</section>")
    # Every banner is one click from its full section.
    for key in (Section.ALLERGIES, Section.ALERTS, Section.SAFEGUARDING, Section.LEGAL):
        assert f'href="#{key.value}"' in top


def test_the_summary_shows_current_medicines_latest_results_and_vitals_each_linked_to_its_section(
    client, cast
):
    summary_record(cast)

    parts = summary_parts(open_record(client, cast.gp_ada, cast.patient_a))

    medicines = between(parts, "record-summary-medications", "</section>")
    assert "Metformin" in medicines and "Amoxicillin" not in medicines
    assert "Haemoglobin" in between(parts, "record-summary-results", "</section>")
    vitals = between(parts, "record-summary-vitals", "</section>")
    assert "Heart rate" in vitals and "Haemoglobin" not in vitals
    assert "Cambridge University Hospitals" in vitals
    assert 'href="#vital-signs"' in vitals
    assert "Heart failure" in between(parts, "record-summary-problems", "</section>")


def test_vital_signs_are_their_own_section_paged_apart_and_audited_as_investigation_results(
    client, cast, settings
):
    settings.RECORD_PAGE_SIZE = 10
    for number in range(12):
        entry(
            cast.patient_a,
            cast.cuh_feed,
            Section.INVESTIGATIONS,
            f"Pulse {number:02d}",
            "Observation",
            number + 1,
            "final",
            category=VITAL_SIGNS,
        )
    entry(
        cast.patient_a,
        cast.cuh_feed,
        Section.INVESTIGATIONS,
        "Haemoglobin",
        "Observation",
        1,
        "final",
        category=LABORATORY,
    )

    page = open_record(client, cast.gp_ada, cast.patient_a, {"vital-signs": "2"})

    vitals = full_section(page, "vital-signs")
    assert '<h2 id="vital-signs-heading">Vital signs</h2>' in vitals
    assert "Showing 11 to 12 of 12." in vitals and "Pulse 11" in vitals and "Pulse 00" not in vitals
    results = full_section(page, Section.INVESTIGATIONS)
    assert "Haemoglobin" in results and "Pulse" not in results
    assert 'href="' + record_url(cast.patient_a) + '#vital-signs"' in vitals  # page 1 carries no page number
    shown = AccessEvent.objects.get().sections_shown
    assert Section.INVESTIGATIONS.value in shown and "vital-signs" not in shown


def test_vital_signs_are_hidden_exactly_when_investigation_results_are(client, cast):
    summary_record(cast)

    page = open_record(client, cast.social_eli, cast.patient_a)

    assert "vital-signs" not in page and "Heart rate" not in page and "Vital signs" not in page


def test_a_receptionist_sees_no_summary_only_demographics_and_the_notice(client, cast):
    summary_record(cast)

    page = open_record(client, cast.reception_dan, cast.patient_a)

    assert "must-not-miss" in page  # the frame is there, empty
    for text in (
        "Allergy to peanut",
        "Sign Language",
        "safeguarding enquiry",
        "Advance decision",
        "Metformin",
        "Heart rate",
        "record-banner ",
        "record-summary-parts",
        "Allergies and adverse reactions",
    ):
        assert text not in page
    assert "Your role shows demographics only" in page
    assert "No partner holds information about this patient that you may see." in page
    event = AccessEvent.objects.get()
    assert event.partners_shown == []


def test_a_social_worker_sees_no_medicines_on_the_summary(client, cast):
    summary_record(cast)

    page = open_record(client, cast.social_eli, cast.patient_a)

    assert "Metformin" not in page and "Current medications" not in page
    assert "Adult safeguarding enquiry" in banners(page)
    assert "Allergy to peanut" in banners(page)
    assert "Your role does not open these sections" in page


def test_a_section_an_objection_withholds_is_not_on_the_summary_and_is_announced(client, cast):
    summary_record(cast)
    Objection.objects.create(
        reference="OB-SUMMARY",
        channel=Objection.Channel.LETTER,
        given_name=cast.patient_a.given_name,
        family_name=cast.patient_a.family_name,
        birth_date=cast.patient_a.birth_date,
        contact_by=Objection.ContactBy.POST,
        contact_detail="1 Mill Road",
        due_at=timezone.now() + timedelta(days=30),
        patient=cast.patient_a,
        status=Objection.Status.UPHELD,
        upheld_sections=[Section.SAFEGUARDING],
        upheld_from_partners=["RGT"],
    )

    page = open_record(client, cast.gp_ada, cast.patient_a)

    assert "safeguarding enquiry" not in page and "record-banner-safeguarding" not in page
    assert "Heart rate" not in page and "Haemoglobin" not in page  # the hospital's, withheld
    assert "Cambridge University Hospitals (RGT)" not in between(page, 'id="data-availability"', "<details>")
    notice = between(page, 'class="alert alert-warning withheld-notice"', "</section>")
    assert "asked for it not to be shared" in notice and "Safeguarding" not in notice
    assert page.index("must-not-miss") < page.index("withheld-notice") < page.index("record-summary-parts")
    assert "RGT" not in AccessEvent.objects.get().partners_shown


def test_another_partners_sensitive_entry_is_not_on_the_summary_nor_its_partner_among_the_holders(
    client, cast
):
    patient = cast.patient_sensitive
    entry(
        patient, cast.cuh_feed, Section.ALLERGIES, "Allergy to latex", "AllergyIntolerance", is_sensitive=True
    )
    entry(patient, cast.gp_a_feed, Section.PROBLEMS, "Essential hypertension", "Condition")

    page = open_record(client, cast.gp_ada, patient)

    assert "Allergy to latex" not in page and "Chlamydia" not in page
    assert "Essential hypertension" in summary_parts(page)
    holders = between(page, 'id="data-availability"', "<details>")
    assert "Riverside Surgery" in holders and "Cambridge University Hospitals" not in holders
    assert "marked them as sensitive" in page
    assert AccessEvent.objects.get().partners_shown == ["D81001"]


def test_the_partners_holding_this_patients_data_are_listed_with_their_feeds_freshness(client, cast):
    summary_record(cast)
    Feed.objects.update(last_success_at=timezone.now())
    Feed.objects.filter(pk=cast.cuh_feed.pk).update(last_success_at=datetime(2026, 1, 5, 7, 30, tzinfo=UTC))
    Feed.objects.filter(pk=cast.gp_b_feed.pk).update(last_success_at=datetime(2026, 1, 5, 7, 30, tzinfo=UTC))

    page = open_record(client, cast.gp_ada, cast.patient_a)

    holders = between(page, 'id="data-availability"', "<details>")
    rows = re.findall(r"<tr>(.*?)</tr>", holders, re.S)
    named = [re.sub(r"<[^>]+>", "", row.split("</th>")[0]).strip() for row in rows[1:]]
    assert set(named) == {
        "Riverside Surgery (D81001)",
        "Cambridge University Hospitals (RGT)",
        "Cambridgeshire and Peterborough NHS FT (RT1)",
        "Cambridgeshire County Council (CCC01)",
    }
    assert "Fenland Practice" not in holders  # shares data, but none about this patient
    hospital = next(row for row in rows if "Cambridge University Hospitals" in row)
    assert "Stale</span> no data since" in hospital
    notice = between(page, '<section id="stale-notice"', "</section>")
    assert "Cambridge University Hospitals, Hospital EPR" in notice
    assert "Fenland Practice" not in notice
    assert "1 dataset is late from partners holding nothing about this patient" in notice
    assert "Live data from" not in page


def test_every_row_labels_its_cells_documents_open_and_the_timeline_is_one_click_away(client, cast):
    summary_record(cast)
    document = RecordEntry.objects.get(summary="Discharge letter")

    page = open_record(client, cast.gp_ada, cast.patient_a)

    body_cells = re.findall(r"<td[^>]*>", between(page, 'class="row g-4', "</main>"))
    assert body_cells and all("data-label=" in cell for cell in body_cells)
    assert "table-responsive" not in page
    assert page.count('class="table table-striped align-middle entries stack-table"') >= 10
    documents = full_section(page, Section.DOCUMENTS)
    url = reverse("records:document-view", args=[cast.patient_a.public_id, document.pk])
    assert f'href="{url}"' in documents and ">Open<" in documents
    assert (
        reverse("records:patient-timeline", args=[cast.patient_a.public_id]) in page.split("must-not-miss")[0]
    )


def test_why_access_names_the_relationship_and_where_it_came_from(client, cast):
    page = open_record(client, cast.gp_ada, cast.patient_a)

    why = between(page, 'class="small why-access"', "</details>")
    assert "Registered GP practice" in why and "Riverside Surgery" in why
    assert page.index("why-access") < page.index("must-not-miss")


def test_the_printout_holds_the_summary_first(client, cast):
    summary_record(cast)
    client.force_login(cast.gp_ada)

    response = client.get(reverse("records:patient-print", kwargs={"public_id": cast.patient_a.public_id}))

    page = response.content.decode()
    assert response.status_code == 200
    assert (
        page.index("Allergy to peanut") < page.index("Person demographics") < page.index('id="allergies-and')
    )
    assert "British Sign Language" in page.split("Person demographics")[0]
    assert "document-view" not in page and "/documents/" not in page


@pytest.mark.parametrize("entries_per_section", [1, 30])
def test_the_record_page_with_its_summary_takes_the_same_exact_queries_however_long_the_record(
    client, cast, settings, django_assert_num_queries, entries_per_section
):
    settings.RECORD_PAGE_SIZE = 10
    for number in range(entries_per_section):
        summary_record(cast)
        entry(cast.patient_a, cast.cpft_feed, Section.PROFESSIONAL_CONTACTS, f"Team {number}", "CareTeam")
    client.force_login(cast.gp_ada)

    with django_assert_num_queries(RECORD_PAGE_QUERIES):
        response = client.get(record_url(cast.patient_a))

    page = response.content.decode()
    assert response.status_code == 200
    assert f"Team {entries_per_section - 1}" in page and "record-banner-allergies" in page
