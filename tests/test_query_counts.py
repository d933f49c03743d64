"""Exact query counts on the pages that must stay cheap: the record page, the NHS-number search and the feed monitor.

Each count is exact, not a ceiling, and each is listed query by query, so that a new query (an N+1 above all) fails
here and has to be explained. Where the page shows a list, the count is the same for a short list and a long one.
"""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from consent.models import NationalOptOut, Objection
from consent.services import relationships_refresh
from records.models import Organisation, Patient
from records.sections import Section
from records.services import feed_upsert, organisation_upsert
from tests.builders import NEWCOMER, OTHER_NEWCOMER, add_run, condition, ingest, make_entry

# Every portal page a user is shown carries a frame (`records.portal.context`): the role they act under, the alert
# queue's link for privacy officers, and the break-glass banner. The role profiles and the role are read once per
# request (`consent.policy.REQUEST_CACHE_ATTRIBUTE`), so the frame shares them with the door; what it adds of its
# own is the user's break-glass grants in force. A search that redirects renders no frame.

# 1. the session; 2. the user; 3. the user's role profiles with their organisations and their roles' rows, in one
# query (asked first by the role-choice check, then kept for the request); 4. the door's savepoint; 5. the patient
# with the registered practice; 6. the legitimate relationships with the patient held by the organisation or the
# user's teams; 7. the user's current self-claim or break-glass grants on the patient (both kinds in one query);
# 8. the patient's objections in force (with their national data opt-out, where the deployment counts it), asked
# whether or not there are any; 9. how many entries each section has and shows; 10. the first page of every
# section, in one query (a window over sections); 11. the active organisations with their live feeds, in one
# query, for the banner of who shares data; 12. the lock that chains access events (the audit write takes no
# savepoint of its own); 13. the last event's hash; 14. the new access event; 15. the door's savepoint released;
# 16. the frame's break-glass grants.
RECORD_PAGE_QUERIES = 16
# 1. the session; 2. the user; 3. the door's savepoint; 4. the patient by NHS number; 5. the role profiles with
# their organisations and roles; 6. the relationships; 7. the grants; 8. the objections in force; 9-11. the audit
# write as on the record page (chain lock, last hash, new access event); 12. the door's savepoint released.
SEARCH_FOUND_QUERIES = 12
# A search the user is refused asks the door the same questions (1-12), so it takes as long; its page then adds the
# frame's break-glass grants (the profiles and role are already read).
SEARCH_REFUSED_QUERIES = SEARCH_FOUND_QUERIES + 1
# A refusal whose role may declare a relationship asks the same questions, then keeps the offered patient in the
# session for the access page (savepoint, session update, release) and redirects there.
SEARCH_REFUSED_WITH_OFFER_QUERIES = SEARCH_FOUND_QUERIES + 3
# 1-4 as above, 5. the role profiles with their roles (for the audit row's who), then the audit write and the
# release (6-9): no patient, so no relationship or grant is asked about by the door. Its page adds 10. the
# break-glass grants (the frame's alert link reads the role already read with the profiles).
SEARCH_NO_SUCH_PATIENT_QUERIES = 10
# 1. the session; 2. the user. The form refuses the number before the door; the page's frame then reads 3. the role
# profiles with their roles and 4. the break-glass grants.
SEARCH_MALFORMED_QUERIES = 4
# 1. the session; 2. the user; 3. the session's second-factor device (django-otp reloads it, so a reset ends the
# verification at once); 4. the user's role profiles, which the session checks are those it was granted on
# (sharedcare/sessions.py; a portal page reads them anyway, a back-office page only for this); 5. whether the user is
# of the registration authority (asked once, for the whole page); 6. the feeds with their organisations; 7. each
# feed's last run; 8. each feed's runs, failures, resources read and quarantined over seven days; 9. each feed's
# pending quarantine; 10. each feed's runs per day, for the chart.
MONITOR_QUERIES = 10

SECTIONS = [Section.PROBLEMS, Section.ENCOUNTERS, Section.PLANS, Section.ASSESSMENTS, Section.DOCUMENTS]


def patient_with_entries(cast, how_many: int, extra_partners: int) -> Patient:
    """A patient of practice A with `how_many` entries spread over five sections and the cast's feeds, plus
    `extra_partners` more partners' feeds."""
    patient = Patient.objects.create(
        nhs_number=NEWCOMER, given_name="Nia", family_name="Newcomer", registered_practice=cast.practice_a
    )
    feeds = [cast.gp_a_feed, cast.cuh_feed, cast.cpft_feed, cast.county_feed]
    for number in range(extra_partners):
        partner = organisation_upsert(
            ods_code=f"X{number:04d}", name=f"Partner {number}", kind=Organisation.Kind.ACUTE_TRUST
        )
        feeds.append(feed_upsert(code=f"partner-{number}", organisation=partner, name="EPR", sections=[]))
    for number in range(how_many):
        make_entry(patient, feeds[number % len(feeds)], SECTIONS[number % len(SECTIONS)], f"Entry {number}")
    relationships_refresh([patient.pk])
    return patient


def objections_add(patient: Patient, how_many: int) -> None:
    """`how_many` upheld objections, each withholding a section no entry is in, from another partner."""
    for number in range(how_many):
        Objection.objects.create(
            reference=f"OB-COUNT{number}",
            channel=Objection.Channel.LETTER,
            given_name=patient.given_name,
            family_name=patient.family_name,
            birth_date=timezone.localdate(),
            contact_by=Objection.ContactBy.POST,
            contact_detail="1 Mill Road",
            due_at=timezone.now() + timedelta(days=30),
            patient=patient,
            status=Objection.Status.UPHELD if number % 2 else Objection.Status.PARTLY_UPHELD,
            upheld_sections=[Section.VACCINATIONS],
            upheld_from_partners=[f"Y{number:04d}"],
        )


@pytest.mark.parametrize(("entries", "extra_partners"), [(2, 0), (40, 3)])
@pytest.mark.parametrize(("objections", "opt_out_counts"), [(0, False), (3, False), (0, True), (3, True)])
def test_the_record_page_takes_the_same_exact_queries_for_a_short_record_and_a_long_one(
    client, cast, settings, django_assert_num_queries, entries, extra_partners, objections, opt_out_counts
):
    settings.RECORD_PAGE_SIZE = 10  # the long record runs to more than one page in two sections
    # Whether the opt-out counts, whether the patient objected or not: the patient's choices are one query.
    settings.NDOP_HIDES_DIRECT_CARE = opt_out_counts
    patient = patient_with_entries(cast, entries, extra_partners)
    objections_add(patient, objections)
    NationalOptOut.objects.create(patient=cast.patient_b, source=NationalOptOut.Source.STAFF)
    client.force_login(cast.gp_ada)
    url = reverse("records:patient-detail", kwargs={"public_id": patient.public_id})

    with django_assert_num_queries(RECORD_PAGE_QUERIES):
        response = client.get(url)

    assert response.status_code == 200
    assert f"Entry {entries - 1}" in response.content.decode()
    assert ("asked for it not to be shared" in response.content.decode()) is bool(objections)


@pytest.mark.parametrize("other_patients", [0, 40])
def test_a_search_that_finds_a_patient_takes_the_same_exact_queries_however_many_patients_there_are(
    client, cast, django_assert_num_queries, other_patients
):
    for number in range(other_patients):
        Patient.objects.create(
            nhs_number=f"80000000{number:02d}", given_name="Other", family_name=f"Patient {number}"
        )
    client.force_login(cast.gp_ada)

    with django_assert_num_queries(SEARCH_FOUND_QUERIES):
        response = client.post(reverse("records:patient-search"), {"nhs_number": cast.patient_a.nhs_number})

    assert response.status_code == 303


def test_a_search_for_a_patient_the_user_may_not_see_asks_the_door_what_a_search_that_finds_one_asks(
    client, cast, django_assert_num_queries
):
    client.force_login(
        cast.reception_dan
    )  # a role that may neither declare a relationship nor break the glass

    with django_assert_num_queries(SEARCH_REFUSED_QUERIES):
        response = client.post(reverse("records:patient-search"), {"nhs_number": cast.patient_b.nhs_number})

    assert response.status_code == 200


def test_a_search_refused_because_the_patient_objected_asks_the_door_what_any_refused_search_asks(
    client, cast, django_assert_num_queries
):
    objections_add(cast.patient_a, 1)
    Objection.objects.filter(patient=cast.patient_a).update(upheld_whole_record=True)
    client.force_login(cast.gp_ada)

    # The same questions, then the break-glass offer kept in the session (the role may break the glass for
    # safeguarding) and a redirect to the record's page, which tells the user the patient objected.
    with django_assert_num_queries(SEARCH_REFUSED_WITH_OFFER_QUERIES):
        response = client.post(reverse("records:patient-search"), {"nhs_number": cast.patient_a.nhs_number})

    assert response.status_code == 303
    assert response["Location"] == reverse(
        "records:patient-detail", kwargs={"public_id": cast.patient_a.public_id}
    )


def test_a_refused_search_that_offers_a_relationship_asks_the_same_questions_before_it_offers(
    client, cast, django_assert_num_queries
):
    client.force_login(cast.gp_ada)

    with django_assert_num_queries(SEARCH_REFUSED_WITH_OFFER_QUERIES):
        response = client.post(reverse("records:patient-search"), {"nhs_number": cast.patient_b.nhs_number})

    assert response.status_code == 303
    assert response["Location"] == reverse(
        "records:patient-access", kwargs={"public_id": cast.patient_b.public_id}
    )


def test_a_search_for_a_number_no_patient_holds_looks_for_no_relationship(
    client, cast, django_assert_num_queries
):
    client.force_login(cast.gp_ada)

    with django_assert_num_queries(SEARCH_NO_SUCH_PATIENT_QUERIES):
        response = client.post(reverse("records:patient-search"), {"nhs_number": OTHER_NEWCOMER})

    assert response.status_code == 200


def test_a_malformed_nhs_number_is_refused_before_any_patient_query(client, cast, django_assert_num_queries):
    client.force_login(cast.gp_ada)

    with django_assert_num_queries(SEARCH_MALFORMED_QUERIES):
        response = client.post(reverse("records:patient-search"), {"nhs_number": "999 000 0019"})

    assert response.status_code == 200


@pytest.mark.parametrize("extra_feeds", [0, 6])
def test_the_feed_monitor_takes_the_same_exact_queries_for_few_feeds_and_many(
    client, cast, django_assert_num_queries, extra_feeds
):
    now = timezone.now()
    for number in range(extra_feeds):
        feed = feed_upsert(
            code=f"extra-{number}", organisation=cast.county, name=f"Extra {number}", sections=[]
        )
        for days in range(12):
            add_run(feed, now - timedelta(days=days, hours=number))
        ingest(feed, condition("c1", NEWCOMER))  # a pending quarantined record
    client.force_login(cast.admin_gus)

    with django_assert_num_queries(MONITOR_QUERIES):
        response = client.get(reverse("admin:records_feed_monitor"))

    assert response.status_code == 200
    assert response.content.decode().count('class="feed-row') == 5 + extra_feeds
