"""The record page: what each role sees, what is withheld and said to be, paging, the data banner."""

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from audit.models import AccessEvent, Alert
from consent.models import BreakGlassGrant, LegitimateRelationship, Objection
from consent.roles import JobRole
from records.access import break_glass_for_user
from records.models import Feed, Organisation, Patient
from records.portal.selectors import OBJECTION_WITHHELD, ROLE_DEMOGRAPHICS_ONLY, SENSITIVE_WITHHELD
from records.sections import CLINICAL_SECTIONS, Section
from records.services import feed_upsert, organisation_upsert
from tests.builders import (
    SOCIAL_CARE_CLINICAL_SECTIONS,
    ingest,
    make_entry,
    make_user,
    ods_reference,
    referral,
)

NHS_NUMBER_FORMS = ("9990000018", "999 000 0018", "999-000-0018", "999+000+0018", "999%20000%200018")


def record_url(patient: Patient) -> str:
    return reverse("records:patient-detail", kwargs={"public_id": patient.public_id})


def open_record(client, user, patient: Patient, query: dict[str, str] | None = None) -> str:
    client.force_login(user)
    response = client.get(record_url(patient), query or {})
    assert response.status_code == 200
    return response.content.decode()


def section_html(page: str, key: str) -> str:
    start = page.index(f'<section id="{key}"')
    return page[start : page.index("</section>", start)]


def notice_html(page: str, css_class: str) -> str:
    found = re.search(rf'<section class="[^"]*\b{css_class}\b.*?</section>', page, re.S)
    assert found is not None, css_class
    return found.group(0).replace("&#x27;", "'")


def section_headings(page: str) -> list[str]:
    return re.findall(r'<h2 id="([a-z-]+)-heading"', page)


def test_gp_sees_entries_from_every_partner_each_labelled_with_its_source(client, cast):
    page = open_record(client, cast.gp_ada, cast.patient_a)
    expected = {
        Section.PROBLEMS: ("Type 2 diabetes mellitus", "Riverside Surgery", "D81001"),
        Section.ENCOUNTERS: ("Emergency department attendance", "Cambridge University Hospitals", "RGT"),
        Section.PLANS: ("Community mental health care plan", "Cambridgeshire and Peterborough NHS FT", "RT1"),
        Section.ASSESSMENTS: ("Care Act needs assessment", "Cambridgeshire County Council", "CCC01"),
    }
    for section, (summary, partner, ods_code) in expected.items():
        rows = re.findall(r"<tr>(.*?)</tr>", section_html(page, section.value), re.S)
        row = next(row for row in rows if summary in row)
        assert f'{partner} <span class="ods">({ods_code})</span>' in row
        assert "<time datetime=" in row


def test_gp_sees_demographics_and_gp_practice_first(client, cast):
    page = open_record(client, cast.gp_ada, cast.patient_a)
    demographics = section_html(page, "person-demographics")
    for value in (
        "Alice ASHBY",
        "999 000 0018",
        "14 Mar 1950",
        "Female",
        "1 Mill Road, Cambridge",
        "01223 000001",
    ):
        assert value in demographics
    assert "Riverside Surgery" in section_html(page, "gp-practice")
    headings = section_headings(page)
    assert headings.index("person-demographics") < headings.index("gp-practice") < headings.index("alerts")
    assert page.count("<h1") == 1


def test_every_clinical_section_appears_in_standard_order_with_an_empty_message(client, cast):
    page = open_record(client, cast.gp_ada, cast.patient_a)
    clinical = [heading for heading in section_headings(page) if heading in CLINICAL_SECTIONS]
    assert clinical == [section.value for section in Section if section in CLINICAL_SECTIONS]
    assert "No entries from partners" in section_html(page, Section.ALLERGIES)
    assert f'<a href="#{Section.ALLERGIES.value}">' in page


def test_patient_without_a_practice_says_no_known_gp_practice(client, cast):
    Patient.objects.filter(pk=cast.patient_a.pk).update(registered_practice=None)
    # Registration gone, but an open care event still gives the council a relationship.
    page = open_record(client, cast.social_eli, cast.patient_a)
    assert "No known GP practice" in section_html(page, "gp-practice")


def test_date_of_death_and_age_at_death_are_shown(client, cast):
    Patient.objects.filter(pk=cast.patient_a.pk).update(death_date=datetime(2020, 3, 13).date())
    page = open_record(client, cast.gp_ada, cast.patient_a)
    demographics = section_html(page, "person-demographics")
    assert "Date of death" in demographics
    assert "13 Mar 2020" in demographics
    assert "(aged 69 years)" in demographics


def test_receptionist_sees_demographics_and_no_clinical_section_or_item(client, cast):
    page = open_record(client, cast.reception_dan, cast.patient_a)
    assert "999 000 0018" in page
    assert "1 Mill Road, Cambridge" in page
    assert ROLE_DEMOGRAPHICS_ONLY in page
    assert "Some information has been withheld" in page
    assert not set(section_headings(page)) & {section.value for section in CLINICAL_SECTIONS}
    for section in CLINICAL_SECTIONS:
        assert f">{section.label}<" not in page
    for text in (
        "Type 2 diabetes",
        "Metformin",
        "Emergency department",
        "care plan",
        "Care Act",
        "social care case",
    ):
        assert text not in page


def test_social_worker_sees_social_care_sections_only(client, cast):
    page = open_record(client, cast.social_eli, cast.patient_a)
    shown = set(section_headings(page)) & {section.value for section in CLINICAL_SECTIONS}
    assert shown == SOCIAL_CARE_CLINICAL_SECTIONS
    for text in ("Care Act needs assessment", "Adult social care case", "Community mental health care plan"):
        assert text in page
    for text in ("Type 2 diabetes", "Metformin", "Emergency department attendance"):
        assert text not in page
    assert "Your role does not open these sections, so they are not shown" in page


def test_sensitive_entry_is_withheld_and_the_notice_says_so(client, cast):
    page = open_record(client, cast.gp_ada, cast.patient_sensitive)
    assert "Hypertension" in page
    assert "Chlamydia" not in page
    assert "Some information has been withheld" in page
    assert SENSITIVE_WITHHELD in page
    # The count in the contents is of what is shown, so it does not hint at the hidden entry either.
    assert (
        '<a href="#problems-and-issues">Problems and diagnoses</a> <span class="text-body-secondary">(1<'
        in page
    )
    event = AccessEvent.objects.get()
    assert "sensitive-entries:1" in event.withheld


def test_the_source_organisations_own_clinician_sees_its_sensitive_and_confidential_entries(client, cast):
    make_entry(cast.patient_a, cast.gp_a_feed, Section.PROBLEMS, "Genital herpes", is_sensitive=True)
    make_entry(cast.patient_a, cast.gp_a_feed, Section.PROBLEMS, "Sealed practice note", is_confidential=True)
    make_entry(cast.patient_a, cast.cuh_feed, Section.PROBLEMS, "Hospital gender clinic", is_sensitive=True)

    page = open_record(client, cast.gp_ada, cast.patient_a)

    assert "Genital herpes" in page
    assert "Sealed practice note" in page
    assert "Hospital gender clinic" not in page
    assert SENSITIVE_WITHHELD in page
    assert "sensitive-entries:1" in AccessEvent.objects.get().withheld


def test_entry_the_source_marked_confidential_is_withheld(client, cast):
    make_entry(
        cast.patient_a, cast.cpft_feed, Section.PROBLEMS, "Sealed psychiatric history", is_confidential=True
    )
    page = open_record(client, cast.gp_ada, cast.patient_a)
    assert "Sealed psychiatric history" not in page
    assert SENSITIVE_WITHHELD in page


def test_nothing_withheld_means_no_withheld_notice(client, cast):
    page = open_record(client, cast.gp_ada, cast.patient_a)
    assert "Some information has been withheld" not in page
    assert AccessEvent.objects.get().withheld == ""


def objection_upheld(patient: Patient, **scope) -> Objection:
    return Objection.objects.create(
        reference="OB-PAGE",
        channel=Objection.Channel.WEB_FORM,
        given_name=patient.given_name,
        family_name=patient.family_name,
        birth_date=patient.birth_date,
        contact_by=Objection.ContactBy.EMAIL,
        contact_detail="patient@example.org",
        due_at=timezone.now() + timedelta(days=30),
        patient=patient,
        status=Objection.Status.UPHELD,
        **scope,
    )


def test_an_objection_is_said_to_withhold_something_never_what(client, cast):
    objection_upheld(cast.patient_a, upheld_sections=[Section.PLANS], upheld_from_partners=["RGT"])

    page = open_record(client, cast.gp_ada, cast.patient_a)

    notice = notice_html(page, "withheld-notice")
    assert OBJECTION_WITHHELD in notice
    for named in ("Care and support plans", "Cambridge University Hospitals", "RGT", "OB-PAGE"):
        assert named not in notice
    assert Section.PLANS.value not in section_headings(page)
    assert f'href="#{Section.PLANS.value}"' not in page
    for withheld in ("Community mental health care plan", "Emergency department attendance"):
        assert withheld not in page
    assert "Type 2 diabetes mellitus" in page
    assert "objection-override-notice" not in page
    event = AccessEvent.objects.get()
    assert (
        "objection:OB-PAGE; objection-sections:care-and-support-plans; objection-partners:RGT"
        in event.withheld
    )
    assert "RGT" not in event.partners_shown


def test_a_record_withheld_whole_by_objection_shows_nothing_of_the_patient(client, cast):
    objection_upheld(cast.patient_a, upheld_whole_record=True)
    client.force_login(cast.gp_ada)

    response = client.get(record_url(cast.patient_a))

    # Refused like any record the user may not open; what the refusal tells them is the view's to say.
    assert response.status_code != 200
    body = response.content.decode()
    for value in ("Ashby", "999 000 0018", "Mill Road", "01223 000001", "Type 2 diabetes", "OB-PAGE"):
        assert value not in body
    event = AccessEvent.objects.get()
    assert (event.outcome, event.patient_id) == ("denied", cast.patient_a.pk)
    assert Objection.objects.get().status == Objection.Status.UPHELD


def test_a_safeguarding_override_of_an_objection_is_announced_in_red(client, cast):
    objection_upheld(cast.patient_a, upheld_whole_record=True, break_glass_may_override=True)
    grant = break_glass_for_user(
        user=cast.gp_ben,
        public_id=cast.patient_a.public_id,
        reason_code=BreakGlassGrant.Reason.SAFEGUARDING,
        reason_text="Disclosure by a neighbour",
        request=None,
    )

    page = open_record(client, cast.gp_ben, cast.patient_a)

    notice = notice_html(page, "objection-override-notice")
    assert "overriding this patient's objection to sharing" in notice
    assert grant.reference in notice
    assert "<time datetime=" in notice
    assert "Type 2 diabetes mellitus" in page
    assert OBJECTION_WITHHELD not in page
    assert [event.action for event in AccessEvent.objects.order_by("id")] == [
        "break-glass",
        "view-record",
        "objection-override",
    ]
    assert Alert.objects.filter(kind=Alert.Kind.OBJECTION_OVERRIDE, reference=grant.reference).count() == 1


def test_a_safeguarding_break_glass_that_sets_no_objection_aside_announces_no_override(client, cast):
    break_glass_for_user(
        user=cast.gp_ben,
        public_id=cast.patient_a.public_id,
        reason_code=BreakGlassGrant.Reason.SAFEGUARDING,
        reason_text="Disclosure by a neighbour",
        request=None,
    )

    page = open_record(client, cast.gp_ben, cast.patient_a)

    assert "break-glass-notice" in page
    assert "objection-override-notice" not in page
    assert not AccessEvent.objects.filter(action="objection-override").exists()


def test_entered_in_error_entries_are_never_shown(client, cast):
    make_entry(
        cast.patient_a, cast.gp_a_feed, Section.PROBLEMS, "Asthma recorded in error", is_entered_in_error=True
    )
    page = open_record(client, cast.gp_ada, cast.patient_a)
    assert "Asthma recorded in error" not in page
    assert (
        '<a href="#problems-and-issues">Problems and diagnoses</a> <span class="text-body-secondary">(1<'
        in page
    )


def test_restricted_patient_address_phone_and_practice_are_hidden_from_a_role_without_b1611(client, cast):
    Patient.objects.filter(pk=cast.patient_a.pk).update(is_restricted=True)
    page = open_record(client, cast.reception_dan, cast.patient_a)
    for value in ("Mill Road", "CB1 2AB", "01223 000001"):
        assert value not in page
    assert "Riverside Surgery" not in section_html(page, "gp-practice")
    assert "record is restricted" in section_html(page, "person-demographics")
    assert "Some information has been withheld" in page
    event = AccessEvent.objects.get()
    assert "restricted-demographics" in event.withheld
    assert Section.GP_PRACTICE.value not in event.sections_shown
    assert "restricted-demographics" not in event.sections_shown


def test_a_restricted_patients_practice_is_named_nowhere_on_the_page_of_a_role_without_b1611(client, cast):
    # A mental-health nurse (no B1611) holds a relationship from the GP's referral: the practice sent the
    # referral and its entries, and the relationship's provenance would name it.
    nurse = make_user("mh.nell", cast.cpft, JobRole.NURSE)
    Patient.objects.filter(pk=cast.patient_b.pk).update(is_restricted=True)
    run = ingest(cast.gp_b_feed, referral("r1", cast.patient_b, [ods_reference("RT1")]))

    page = open_record(client, nurse, cast.patient_b)

    assert "Referral received" in page
    # Only the list of every partner sharing data (the same for every patient) names the practice.
    about_the_patient = page.replace(section_html(page, "data-availability"), "")
    for value in ("Fenland Practice", "D81002", cast.gp_b_feed.code):
        assert value not in about_the_patient
    assert "The patient's GP practice" in section_html(page, "problems-and-issues")
    event = AccessEvent.objects.get()
    # The trail still names the relationship and the data that made it.
    found = LegitimateRelationship.objects.get(content_object=cast.patient_b, group=cast.cpft.group)
    entry = cast.patient_b.entries.get(source_id="r1")
    assert (
        event.basis
        == f"referral:RT1 relationship {found.pk} (feed gp-d81002, run {run.pk}, entry {entry.pk})"
    )
    assert "D81002" in event.partners_shown  # and the partner whose entries were shown


def test_the_practice_of_a_restricted_patient_is_named_to_b1611_with_where_the_relationship_came_from(
    client, cast
):
    Patient.objects.filter(pk=cast.patient_b.pk).update(is_restricted=True)

    page = open_record(client, cast.gp_ben, cast.patient_b)

    assert "Fenland Practice (D81002)" in page.replace('<span class="ods">', "").replace("</span>", "")
    assert cast.gp_b_feed.code in page


def test_restricted_patient_whereabouts_are_shown_to_b1611_and_the_showing_is_audited(client, cast):
    Patient.objects.filter(pk=cast.patient_a.pk).update(is_restricted=True)
    page = open_record(client, cast.gp_ada, cast.patient_a)
    for value in ("Mill Road", "CB1 2AB", "01223 000001"):
        assert value in page
    assert "Riverside Surgery" in section_html(page, "gp-practice")
    event = AccessEvent.objects.get()
    assert {"restricted-demographics", Section.GP_PRACTICE.value} <= set(event.sections_shown)
    assert "restricted-demographics" not in event.withheld


def test_an_unrestricted_patient_view_does_not_claim_restricted_demographics_were_shown(client, cast):
    open_record(client, cast.gp_ada, cast.patient_a)
    assert "restricted-demographics" not in AccessEvent.objects.get().sections_shown


def test_record_view_audits_sections_and_partners_shown(client, cast):
    open_record(client, cast.gp_ada, cast.patient_a)
    event = AccessEvent.objects.get()
    assert (event.action, event.outcome) == (AccessEvent.Action.VIEW_RECORD, AccessEvent.Outcome.ALLOWED)
    assert event.patient_id == cast.patient_a.pk
    relationship = LegitimateRelationship.objects.get(
        content_object=cast.patient_a, group=cast.practice_a.group
    )
    # The relationship, and where it came from by ids that outlive it (relationships are rewritten as care changes).
    assert event.basis == f"registered-practice:D81001 relationship {relationship.pk} (feed gp-d81001)"
    assert event.partners_shown == ["CCC01", "D81001", "RGT", "RT1"]
    assert {"person-demographics", "gp-practice", "problems-and-issues", "encounters"} <= set(
        event.sections_shown
    )
    assert event.request_id


def _many_problems(cast, how_many: int) -> None:
    for number in range(1, how_many + 1):
        make_entry(
            cast.patient_a,
            cast.gp_a_feed,
            Section.PROBLEMS,
            f"Problem {number:02d}",
            effective_at=datetime(2020, 1, 1, tzinfo=UTC) + timedelta(days=number),
        )


def test_long_sections_page_most_recent_first(client, cast, settings):
    settings.RECORD_PAGE_SIZE = 10
    _many_problems(cast, 25)  # with the cast's own problem: 26, so pages of 10, 10 and 6
    first = section_html(open_record(client, cast.gp_ada, cast.patient_a), Section.PROBLEMS)
    assert first.index("Type 2 diabetes mellitus") < first.index("Problem 25") < first.index("Problem 17")
    assert "Problem 16" not in first
    assert "Showing 1 to 10 of 26." in first
    last = section_html(
        open_record(client, cast.gp_ada, cast.patient_a, {Section.PROBLEMS.value: "3"}), Section.PROBLEMS
    )
    assert last.index("Problem 06") < last.index("Problem 01")
    assert "Problem 07" not in last
    assert "Showing 21 to 26 of 26." in last
    assert 'href="?problems-and-issues=2#problems-and-issues">Previous' in last.replace(
        record_url(cast.patient_a), ""
    )


@pytest.mark.parametrize(
    ("asked", "shown"), [("abc", "Showing 1 to 10"), ("0", "Showing 1 to 10"), ("99", "Showing 11")]
)
def test_page_number_that_is_not_a_page_falls_back_to_a_real_one(client, cast, settings, asked, shown):
    settings.RECORD_PAGE_SIZE = 10
    _many_problems(cast, 14)
    page = open_record(client, cast.gp_ada, cast.patient_a, {Section.PROBLEMS.value: asked})
    assert shown in section_html(page, Section.PROBLEMS)


def test_each_section_pages_on_its_own_and_entries_without_a_date_come_last(client, cast, settings):
    settings.RECORD_PAGE_SIZE = 10
    _many_problems(cast, 14)
    for number in range(1, 12):
        make_entry(
            cast.patient_a,
            cast.cuh_feed,
            Section.MEDICATIONS,
            f"Medicine {number:02d}",
            resource_type="MedicationStatement",
            effective_at=datetime(2021, 1, 1, tzinfo=UTC) + timedelta(days=number),
        )
    undated = make_entry(cast.patient_a, cast.cuh_feed, Section.MEDICATIONS, "Undated medicine")
    type(undated).objects.filter(pk=undated.pk).update(effective_at=None)
    query = {Section.PROBLEMS.value: "2", Section.MEDICATIONS.value: "2"}
    page = open_record(client, cast.gp_ada, cast.patient_a, query)
    problems = section_html(page, Section.PROBLEMS)
    medicines = section_html(page, Section.MEDICATIONS)
    assert "Showing 11 to 15 of 15." in problems
    assert "Showing 11 to 13 of 13." in medicines
    assert medicines.index("Medicine 01") < medicines.index("Undated medicine")
    assert "Not recorded" in medicines
    # A page link for one section keeps the other section where it is.
    assert (
        'href="' + record_url(cast.patient_a) + "?medications-and-medical-devices=2#problems-and-issues"
        in problems
    )


def test_page_links_carry_section_pages_only(client, cast, settings):
    settings.RECORD_PAGE_SIZE = 10
    _many_problems(cast, 14)
    page = open_record(client, cast.gp_ada, cast.patient_a, {"problems-and-issues": "2", "nhs": "9990000018"})
    links = re.findall(r'href="([^"]*)"', section_html(page, Section.PROBLEMS))
    assert links
    assert all("nhs" not in link for link in links)


def test_no_url_in_any_portal_page_carries_the_nhs_number(client, cast, settings):
    settings.RECORD_PAGE_SIZE = 10
    _many_problems(cast, 25)
    client.force_login(cast.gp_ada)
    pages = [
        client.get(reverse("records:home")),
        client.get(reverse("records:patient-search")),
        client.post(reverse("records:patient-search"), {"nhs_number": "999 000 0019"}),
        client.get(record_url(cast.patient_a)),
        client.get(record_url(cast.patient_a), {Section.PROBLEMS.value: "2"}),
    ]
    hit = client.post(reverse("records:patient-search"), {"nhs_number": "999 000 0018"})
    urls = [hit["Location"]]
    for response in pages:
        assert response.status_code == 200
        urls += re.findall(r'(?:href|action|src)="([^"]*)"', response.content.decode())
    assert len(urls) > 20
    for url in urls:
        for form in NHS_NUMBER_FORMS:
            assert form not in url


def _availability(page: str) -> str:
    return section_html(page, "data-availability")


def test_banner_shows_live_datasets_with_last_success_and_partners_not_yet_joined(client, cast):
    Feed.objects.filter(pk=cast.cuh_feed.pk).update(last_success_at=datetime(2026, 1, 5, 7, 30, tzinfo=UTC))
    feed_upsert(code="cuh-pathology", organisation=cast.cuh, name="Pathology results", sections=[])
    feed_upsert(
        code="que-onboarding",
        organisation=cast.icb,
        name="ICB dataset",
        sections=[],
        state=Feed.State.ONBOARDING,
    )
    dormant = organisation_upsert(
        ods_code="RYC", name="East of England Ambulance Service", kind=Organisation.Kind.AMBULANCE_TRUST
    )
    gone = organisation_upsert(
        ods_code="RGN", name="Departed Trust", kind=Organisation.Kind.ACUTE_TRUST, is_active=False
    )
    feed_upsert(code="rgn-epr", organisation=gone, name="Old EPR", sections=[])
    banner = _availability(open_record(client, cast.gp_ada, cast.patient_a))
    live, not_joined = banner.split("Not yet joined")
    assert "Hospital EPR" in live
    assert "Pathology results" in live
    assert "5 Jan 2026, 07:30" in live
    assert "never" in live
    for partner in ("Riverside Surgery", "Fenland Practice", "Cambridgeshire County Council"):
        assert partner in live
    assert cast.icb.name in not_joined
    assert dormant.name in not_joined
    assert "ICB dataset" not in banner
    assert "Departed Trust" not in banner
    assert "Every partner sharing data (5)" in banner
    assert "2 partners have not yet joined" in banner


def test_a_stale_feed_is_flagged_in_the_banner_and_in_a_notice_outside_the_details(client, cast):
    now = timezone.now()
    Feed.objects.filter(pk=cast.cuh_feed.pk).update(
        last_success_at=datetime(2026, 1, 5, 7, 30, tzinfo=UTC), schedule_minutes=60
    )
    Feed.objects.filter(pk=cast.gp_a_feed.pk).update(last_success_at=now - timedelta(minutes=90))
    Feed.objects.exclude(pk__in=[cast.cuh_feed.pk, cast.gp_a_feed.pk]).update(last_success_at=now)

    page = open_record(client, cast.gp_ada, cast.patient_a)

    notice = section_html(page, "stale-notice")
    assert "This record may be out of date" in notice
    assert "Cambridge University Hospitals, Hospital EPR" in notice
    assert "no data since" in notice and "5 Jan 2026, 07:30" in notice
    assert "Riverside Surgery" not in notice
    banner = _availability(page)
    # The patient's own partners, outside the fold, say which of theirs is stale; the fold counts every one.
    assert "Stale</span> no data since" in banner.split("<details>")[0]
    assert "1 dataset is stale" in banner
    rows = re.findall(r"<tr>(.*?)</tr>", banner, re.S)
    hospital = next(row for row in rows if "Hospital EPR" in row)
    assert "Stale</span> no data since" in hospital
    assert "5 Jan 2026, 07:30" in hospital
    practice = next(row for row in rows if "Riverside Surgery" in row)
    assert "Stale" not in practice
    assert "<time datetime=" in practice


def test_no_stale_feed_means_no_stale_notice(client, cast):
    Feed.objects.update(last_success_at=timezone.now())
    page = open_record(client, cast.gp_ada, cast.patient_a)
    assert "stale-notice" not in page
    assert "Stale" not in _availability(page)


def test_entries_deleted_at_the_source_are_never_shown_nor_counted(client, cast):
    deleted = make_entry(cast.patient_a, cast.gp_a_feed, Section.PROBLEMS, "Asthma the practice deleted")
    type(deleted).objects.filter(pk=deleted.pk).update(is_deleted_at_source=True)
    sensitive = make_entry(
        cast.patient_a, cast.gp_a_feed, Section.PROBLEMS, "Deleted sensitive entry", is_sensitive=True
    )
    type(sensitive).objects.filter(pk=sensitive.pk).update(is_deleted_at_source=True)

    page = open_record(client, cast.gp_ada, cast.patient_a)

    assert "Asthma the practice deleted" not in page
    assert (
        '<a href="#problems-and-issues">Problems and diagnoses</a> <span class="text-body-secondary">(1<'
        in page
    )
    # Not even counted as withheld: a deleted entry is not part of the record at all.
    assert SENSITIVE_WITHHELD not in page
    assert AccessEvent.objects.get().withheld == ""


def test_the_patients_own_practice_and_no_one_else_is_offered_to_record_an_objection_from_the_record(
    client, cast
):
    link = reverse("records:objection-new-for-patient", kwargs={"public_id": cast.patient_a.public_id})

    assert link in open_record(client, cast.gp_ada, cast.patient_a)
    assert link not in open_record(client, cast.ed_cara, cast.patient_a)
