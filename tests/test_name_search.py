"""Finding a patient by family name and date of birth: only patients the user may see, a close spelling is enough,
capped, audited one event per patient listed (or one not-found), counted against the search limit, by POST only."""

import re
from datetime import date, timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from audit.models import AccessEvent, Alert
from consent.access_report import patient_access_lines
from consent.models import BreakGlassGrant, NationalOptOut, Objection
from consent.policy import Action, decide
from consent.services import relationships_refresh
from records.access import break_glass_for_user
from records.access_search import (
    NAME_SEARCH_LISTED,
    NameSearchCriteria,
    name_similarity,
    patient_name_search_for_user,
)
from records.models import Patient
from records.portal.forms import NOT_FOUND_MESSAGE

SEARCH = "records:patient-search"
ALICE_BORN = "1950-03-14"
ALICE_QUERY = "by name: family name ASH... (5 letters), born 1950-03-14"


def by_name(client, family_name: str, birth_date: str, **more: str):
    return client.post(
        reverse(SEARCH), {"search": "name", "family_name": family_name, "birth_date": birth_date, **more}
    )


def results(response) -> str:
    """The results table's body: what the search listed, without the page's frame or the form's kept input."""
    found = re.search(r"<tbody>(.*?)</tbody>", response.content.decode(), re.S)
    return found.group(1) if found else ""


def detail_url(patient: Patient) -> str:
    return reverse("records:patient-detail", kwargs={"public_id": patient.public_id})


@pytest.fixture
def restricted(cast) -> Patient:
    """A restricted (PDS "R") patient of practice A: their postcode and practice are for B1611 roles only."""
    patient = Patient.objects.create(
        nhs_number="9990000042",
        given_name="Rosa",
        family_name="Redmayne",
        birth_date=date(1985, 5, 5),
        sex=Patient.Sex.FEMALE,
        address="7 Hidden Lane, Cambridge",
        postcode="CB4 1XY",
        registered_practice=cast.practice_a,
        is_restricted=True,
    )
    relationships_refresh([patient.pk])
    return patient


@pytest.mark.parametrize("typed", ["Ashby", "ashby", "ASHBY", "Ashbey", "Asbby", "Ashbi"])
def test_gp_finds_her_practices_patient_by_family_name_and_birth_date_even_misspelt(client, cast, typed):
    client.force_login(cast.gp_ada)
    response = by_name(client, typed, ALICE_BORN)
    assert response.status_code == 200
    listed = results(response)
    assert "Alice ASHBY" in listed
    assert f'href="{detail_url(cast.patient_a)}"' in listed
    assert "14 Mar 1950" in listed and "Female" in listed and "999 000 0018" in listed
    assert "CB1 2AB" in listed and "Riverside Surgery (D81001)" in listed
    assert 'data-label="NHS number"' in listed
    event = AccessEvent.objects.get()
    assert (event.action, event.outcome, event.patient_id) == (
        AccessEvent.Action.SEARCH,
        AccessEvent.Outcome.ALLOWED,
        cast.patient_a.pk,
    )
    assert event.username == "gp.ada" and event.basis.startswith("registered-practice:D81001")
    assert event.reason == "listed 1 of 1"


def test_a_name_too_far_from_the_family_name_finds_nobody(client, cast):
    client.force_login(cast.gp_ada)
    assert name_similarity("Ashby", "Ashford") < 0.3
    response = by_name(client, "Ashford", ALICE_BORN)
    assert results(response) == ""
    assert "No patient found with those details" in response.content.decode()


def test_another_practices_patient_is_not_found_by_exact_name_and_birth_date(client, cast):
    """gp.ada has no relationship with Brian Barton (practice B): a name search neither lists him nor offers a way
    in; the page is the same as for nobody at all."""
    client.force_login(cast.gp_ada)
    response = by_name(client, "Barton", "1962-07-01", given_name="Brian")
    text = response.content.decode()
    assert response.status_code == 200
    assert results(response) == ""
    assert "No patient found with those details" in text
    for leaked in ("BARTON", "999 000 0026", "9990000026", "Fenland", str(cast.patient_b.public_id)):
        assert leaked not in text
    event = AccessEvent.objects.get()
    assert (event.outcome, event.patient_id) == (AccessEvent.Outcome.NOT_FOUND, None)
    assert event.query == "by name: family name BAR... (6 letters), born 1962-07-01; with given name"
    # Nothing to give oneself access to: the session holds no offer.
    assert not client.session.get("portal_claimable_patients")


def test_the_same_search_finds_him_for_his_own_gp(client, cast):
    client.force_login(cast.gp_ben)
    assert "Brian BARTON" in results(by_name(client, "Barton", "1962-07-01"))


def test_the_birth_date_must_match_exactly(client, cast):
    client.force_login(cast.gp_ada)
    assert results(by_name(client, "Ashby", "1950-03-15")) == ""


def test_given_name_sex_and_postcode_narrow_the_answer(client, cast):
    client.force_login(cast.gp_ada)
    assert "Alice ASHBY" in results(by_name(client, "Ashby", ALICE_BORN, given_name="Ali"))
    assert "Alice ASHBY" in results(by_name(client, "Ashby", ALICE_BORN, given_name="Alise", sex="female"))
    assert "Alice ASHBY" in results(by_name(client, "Ashby", ALICE_BORN, postcode="cb12ab"))
    assert "Alice ASHBY" in results(by_name(client, "Ashby", ALICE_BORN, postcode="CB1"))
    assert results(by_name(client, "Ashby", ALICE_BORN, given_name="Margaret")) == ""
    assert results(by_name(client, "Ashby", ALICE_BORN, sex="male")) == ""
    assert results(by_name(client, "Ashby", ALICE_BORN, postcode="PE1 1AA")) == ""


def test_receptionist_finds_the_patient_and_a_restricted_patients_whereabouts_stay_hidden(
    client, cast, restricted
):
    client.force_login(cast.reception_dan)
    listed = results(by_name(client, "Ashby", ALICE_BORN))
    assert "Alice ASHBY" in listed and "CB1 2AB" in listed

    # A postcode typed does not narrow a restricted patient's match, so the answer never confirms it.
    for postcode in ("", "PE1 1AA"):
        response = by_name(client, "Redmayne", "1985-05-05", postcode=postcode)
        listed = results(response)
        assert "Rosa REDMAYNE" in listed and "999 000 0042" in listed
        assert "CB4 1XY" not in listed and "Riverside" not in listed and "Hidden Lane" not in listed
        assert listed.count("Not shown: restricted record") == 2

    opened = client.get(detail_url(cast.patient_a))
    assert opened.status_code == 200
    assert "Type 2 diabetes" not in opened.content.decode()


def test_a_gp_with_the_sensitive_records_activity_sees_a_restricted_patients_whereabouts(
    client, cast, restricted
):
    client.force_login(cast.gp_ada)
    listed = results(by_name(client, "Redmayne", "1985-05-05"))
    assert "CB4 1XY" in listed and "Riverside Surgery (D81001)" in listed
    assert "Not shown" not in listed


def test_a_merged_record_lists_its_survivor_once(client, cast):
    Patient.objects.create(
        nhs_number="9990000034",
        given_name="Alice",
        family_name="Ashwell",
        birth_date=date(1950, 3, 14),
        merged_into=cast.patient_a,
    )
    Patient.objects.create(
        nhs_number="9990000050", family_name="Ashby", birth_date=date(1950, 3, 14), merged_into=cast.patient_a
    )
    client.force_login(cast.gp_ada)
    for typed in ("Ashwell", "Ashby"):
        listed = results(by_name(client, typed, ALICE_BORN))
        assert listed.count("Alice ASHBY") == 1 and listed.count('class="name-search-row"') == 1
        assert "999 000 0018" in listed and "999 000 0034" not in listed
    assert set(AccessEvent.objects.values_list("patient_id", flat=True)) == {cast.patient_a.pk}


GIVEN_NAMES = [
    "Olivia",
    "Amelia",
    "Isla",
    "Ava",
    "Mia",
    "Ivy",
    "Lily",
    "Freya",
    "Grace",
    "Rosie",
    "Florence",
    "Willow",
]
NUMBERS = [
    "9990000107",
    "9990000115",
    "9990000123",
    "9990000131",
    "9990000158",
    "9990000166",
    "9990000174",
    "9990000182",
    "9990000190",
    "9990000204",
    "9990000212",
    "9990000220",
]


def test_the_list_is_capped_closest_first_and_says_more_matched(client, cast):
    """Three Smiths and nine Smyths of practice A born the same day: ten are listed, the exact spelling first."""
    patients = [
        Patient.objects.create(
            nhs_number=number,
            given_name=given,
            family_name="Smith" if index < 3 else "Smyth",
            birth_date=date(1971, 9, 9),
            registered_practice=cast.practice_a,
        )
        for index, (given, number) in enumerate(zip(GIVEN_NAMES, NUMBERS, strict=True))
    ]
    assert len(patients) == NAME_SEARCH_LISTED + 2
    relationships_refresh([patient.pk for patient in patients])
    client.force_login(cast.gp_ada)
    response = by_name(client, "Smith", "1971-09-09")
    text = response.content.decode()
    assert f"More than {NAME_SEARCH_LISTED} patients matched" in text
    assert "Add the given name or postcode" in text
    names = re.findall(r">(\w+ SM[IY]TH)</a>", results(response))
    assert len(names) == NAME_SEARCH_LISTED
    assert names[:4] == ["Amelia SMITH", "Isla SMITH", "Olivia SMITH", "Ava SMYTH"]
    events = list(AccessEvent.objects.order_by("id"))
    assert len(events) == NAME_SEARCH_LISTED
    assert {event.outcome for event in events} == {AccessEvent.Outcome.ALLOWED}
    assert [event.reason for event in events] == [
        f"listed {position} of {NAME_SEARCH_LISTED}; more matched"
        for position in range(1, NAME_SEARCH_LISTED + 1)
    ]

    narrowed = by_name(client, "Smith", "1971-09-09", given_name="Willow")
    assert re.findall(r">(\w+ SM[IY]TH)</a>", results(narrowed)) == ["Willow SMYTH"]
    assert "More than" not in narrowed.content.decode()


def test_each_listed_patient_sees_the_search_in_their_access_report(client, cast):
    client.force_login(cast.gp_ada)
    by_name(client, "Ashby", ALICE_BORN)
    lines = patient_access_lines(cast.patient_a)
    assert [(line.event.username, line.action, line.outcome) for line in lines] == [
        ("gp.ada", "Search", "Allowed")
    ]
    assert lines[0].event.query == ALICE_QUERY
    assert "Ashby" not in lines[0].event.query and "ASHBY" not in lines[0].event.query


def test_the_typed_details_are_kept_after_a_miss(client, cast):
    client.force_login(cast.gp_ada)
    response = by_name(
        client, "Ashbee", "1950-03-15", given_name="Alicia", postcode="CB1 2AB", sex=Patient.Sex.FEMALE
    )
    text = response.content.decode()
    assert "No patient found with those details" in text
    assert 'value="Ashbee"' in text and 'value="1950-03-15"' in text and 'value="Alicia"' in text
    assert 'value="CB1 2AB"' in text
    assert re.search(r'<option value="female"[^>]*selected', text)
    assert "<title>Error" not in text


def test_the_typed_nhs_number_is_kept_after_a_miss(client, cast):
    client.force_login(cast.gp_ada)
    text = client.post(reverse(SEARCH), {"nhs_number": "944 930-5552"}).content.decode()
    assert NOT_FOUND_MESSAGE in text
    assert 'value="944 930-5552"' in text


@pytest.mark.parametrize(
    ("typed", "field", "message"),
    [
        ({"family_name": "", "birth_date": ALICE_BORN}, "family_name", "Enter the family name."),
        (
            {"family_name": "A", "birth_date": ALICE_BORN},
            "family_name",
            "Enter at least 2 letters of the family",
        ),
        ({"family_name": "Ashby", "birth_date": ""}, "birth_date", "Enter the date of birth."),
        ({"family_name": "Ashby", "birth_date": "1950-02-30"}, "birth_date", "Enter a real date of birth"),
        ({"family_name": "Ashby", "birth_date": "2999-01-01"}, "birth_date", "must be today or in the past"),
        ({"family_name": "Ashby", "birth_date": "1850-01-01"}, "birth_date", "must be after 1880"),
        (
            {"family_name": "Ashby", "birth_date": ALICE_BORN, "postcode": "12345"},
            "postcode",
            "Enter a postcode",
        ),
    ],
)
def test_bad_input_gets_a_clear_field_error_and_no_search(client, cast, typed, field, message):
    client.force_login(cast.gp_ada)
    response = client.post(reverse(SEARCH), {"search": "name", **typed})
    text = response.content.decode()
    assert response.status_code == 200
    assert message in text
    assert f'<a href="#id_{field}">' in text
    assert 'aria-invalid="true"' in text
    assert "<title>Error: Find a patient" in text
    assert not AccessEvent.objects.exists()


def test_a_typed_date_without_a_date_box_is_understood(client, cast):
    client.force_login(cast.gp_ada)
    assert "Alice ASHBY" in results(by_name(client, "Ashby", "14/03/1950"))


def test_a_name_in_a_query_string_is_ignored_and_not_searched(client, cast):
    client.force_login(cast.gp_ada)
    response = client.get(
        reverse(SEARCH), {"search": "name", "family_name": "Ashby", "birth_date": ALICE_BORN}
    )
    assert response.status_code == 200
    assert results(response) == ""
    assert not AccessEvent.objects.exists()


def test_the_search_page_offers_both_searches_and_home_links_to_the_name_search(client, cast):
    client.force_login(cast.gp_ada)
    text = client.get(reverse(SEARCH)).content.decode()
    for field, label in (
        ("nhs_number", "NHS number"),
        ("family_name", "Family name"),
        ("birth_date", "Date of birth"),
        ("given_name", "Given name (optional)"),
        ("sex", "Sex (optional)"),
        ("postcode", "Postcode (optional)"),
    ):
        assert re.search(rf'<label\s+for="id_{field}"[^>]*>\s*{re.escape(label)}', text), label
    assert 'type="date"' in text and text.count(f'method="post" action="{reverse(SEARCH)}"') == 2
    home = client.get(reverse("records:home")).content.decode()
    assert f'href="{reverse(SEARCH)}#name-search"' in home
    assert 'id="id_nhs_number"' in home


def test_name_searches_count_against_the_hourly_search_limit(client, cast, settings):
    settings.PATIENT_SEARCHES_PER_HOUR = 2
    client.force_login(cast.gp_ada)
    assert by_name(client, "Ashby", ALICE_BORN).status_code == 200
    assert client.post(reverse(SEARCH), {"nhs_number": cast.patient_a.nhs_number}).status_code == 303
    refused = by_name(client, "Ashby", ALICE_BORN)
    assert refused.status_code == 429
    assert "Search limit reached" in refused.content.decode()
    assert "ASHBY" not in refused.content.decode()
    denied = AccessEvent.objects.get(outcome=AccessEvent.Outcome.DENIED)
    assert (denied.patient_id, denied.query) == (None, ALICE_QUERY)
    assert Alert.objects.get().kind == Alert.Kind.SEARCH_LIMIT
    # Bad input is not a search and does not count.
    settings.PATIENT_SEARCHES_PER_HOUR = 3
    client.force_login(cast.gp_ben)
    for _ in range(4):
        assert by_name(client, "", "").status_code == 200


def objection_upheld(patient: Patient, reference: str, **scope) -> Objection:
    return Objection.objects.create(
        reference=reference,
        channel=Objection.Channel.LETTER,
        given_name=patient.given_name,
        family_name=patient.family_name,
        birth_date=patient.birth_date,
        contact_by=Objection.ContactBy.POST,
        contact_detail="1 Mill Road, Cambridge",
        due_at=timezone.now() + timedelta(days=30),
        patient=patient,
        status=Objection.Status.UPHELD,
        **scope,
    )


@pytest.mark.parametrize("opt_out_counts", [False, True])
def test_a_patient_is_listed_exactly_when_decide_allows_the_search(cast, settings, opt_out_counts):
    """The rules are asked about one day's patients only; for every user and patient of the cast, with objections,
    an opt-out and break-glass grants in force, the name search lists exactly whom `decide()` allows."""
    settings.NDOP_HIDES_DIRECT_CARE = opt_out_counts
    objection_upheld(cast.patient_a, "OB-HOSPITAL", upheld_to_partners=["RGT"], break_glass_may_override=True)
    objection_upheld(cast.patient_b, "OB-ALL", upheld_whole_record=True)
    NationalOptOut.objects.create(patient=cast.patient_sensitive, source=NationalOptOut.Source.FEED)
    for user, patient, reason in (
        (cast.ed_cara, cast.patient_b, BreakGlassGrant.Reason.SAFEGUARDING),
        (cast.gp_ada, cast.patient_b, BreakGlassGrant.Reason.EMERGENCY),
    ):
        break_glass_for_user(
            user=user,
            public_id=patient.public_id,
            reason_code=reason,
            reason_text="Seen in clinic",
            request=None,
        )
    users = [cast.gp_ada, cast.gp_ben, cast.ed_cara, cast.reception_dan, cast.social_eli, cast.privacy_fay]
    allowed = []
    for user in users:
        for patient in (cast.patient_a, cast.patient_b, cast.patient_sensitive):
            criteria = NameSearchCriteria(family_name=patient.family_name, birth_date=patient.birth_date)
            found = patient_name_search_for_user(user=user, criteria=criteria, request=None)
            expected = decide(user, patient, Action.SEARCH).allowed
            assert [row.public_id for row in found.listed] == ([patient.public_id] if expected else []), (
                user.username,
                patient.family_name,
            )
            allowed.append(expected)
    assert any(allowed) and not all(allowed)


# 1. the session; 2. the user; 3. the role profiles with their organisations and roles; 4. the ids of the patients
# born that day (and their survivors), by the birth date's index; 5. the door's savepoint; 6. the patients the user
# may see among those ids, with their practices and survivors (one query: the relationships, grants and objections
# of `visible_patients`, read for those ids only, through the patients' key, so the count and the work do not grow
# with the population); for each patient listed, `decide()`: 7. the relationships, 8. the grants, 9. the objections
# in force; then its audit event, 10-12. chain lock, last hash, new access event (no savepoint of its own); 13. the
# door's savepoint released; the page's frame adds 14. the break-glass grants.
NAME_SEARCH_ONE_LISTED_QUERIES = 14
# Each further patient listed adds its decision (3) and its audit event (3).
NAME_SEARCH_PER_PATIENT_QUERIES = 6
# Nobody listed: 1-6 as above, then the not-found event (3), the release and the frame's grants.
NAME_SEARCH_NOBODY_QUERIES = 11


def test_a_name_search_takes_exact_queries(client, cast, django_assert_num_queries):
    twin = Patient.objects.create(
        nhs_number="9990000107",
        given_name="Amy",
        family_name="Ashbie",
        birth_date=date(1950, 3, 14),
        registered_practice=cast.practice_a,
    )
    relationships_refresh([twin.pk])
    client.force_login(cast.gp_ada)
    with django_assert_num_queries(NAME_SEARCH_ONE_LISTED_QUERIES):
        assert "Alice ASHBY" in results(by_name(client, "Ashby", ALICE_BORN, given_name="Alice"))
    with django_assert_num_queries(NAME_SEARCH_ONE_LISTED_QUERIES + NAME_SEARCH_PER_PATIENT_QUERIES):
        assert "Amy ASHBIE" in results(by_name(client, "Ashby", ALICE_BORN))
    with django_assert_num_queries(NAME_SEARCH_NOBODY_QUERIES):
        assert results(by_name(client, "Barton", "1962-07-01")) == ""


def test_too_many_patients_born_that_day_is_said_plainly_and_audited(client, cast, monkeypatch):
    monkeypatch.setattr("records.access_search.CANDIDATES_MAX", 1)
    twin = Patient.objects.create(
        nhs_number="9990000107",
        family_name="Zephyr",
        birth_date=date(1950, 3, 14),
        registered_practice=cast.practice_a,
    )
    relationships_refresh([twin.pk])
    client.force_login(cast.gp_ada)
    response = by_name(client, "Ashby", ALICE_BORN)
    assert results(response) == ""
    assert "Too many of the patients you may see share that date of birth" in response.content.decode()
    event = AccessEvent.objects.get()
    assert (event.outcome, event.patient_id) == (AccessEvent.Outcome.NOT_FOUND, None)
    assert event.reason == "too many patients share the birth date to search by name"
