"""Self-claimed relationships and break-glass: who is offered them, what they write, what they open, and for how long.

A clinician who finds a patient without a relationship is sent to an access page that shows only the number they
typed; it opens for no other patient. Each grant writes one access event and one alert in the same transaction, the
record then shows why it is open, and closing (ended early, or expired) takes effect at the next decision.
"""

import re
import uuid
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

import records.portal.views
from audit.models import AccessEvent, Alert
from consent.models import BreakGlassGrant, Role, SelfClaimedRelationship
from consent.roles import JobRole
from records.portal.forms import NOT_FOUND_MESSAGE
from records.tasks import personal_grants_tidy_task
from tests.builders import PASSWORD, add_role_profile

PATIENT_B_FIELDS = ("Brian", "BARTON", "Barton", "1 Jul 1962", "Asthma", "Fenland Practice")
REFERENCE = re.compile(r"^(SC|BG)-[A-Z0-9]{8}$")


def search(client, patient):
    return client.post(reverse("records:patient-search"), {"nhs_number": patient.nhs_number})


def access_url(patient, name: str = "records:patient-access") -> str:
    return reverse(name, kwargs={"public_id": patient.public_id})


def record_url(patient) -> str:
    return reverse("records:patient-detail", kwargs={"public_id": patient.public_id})


def declare(client, patient, **changes):
    data = {
        "claim-reason_code": "unplanned-care",
        "claim-reason_text": "Seen in ED overnight",
        "claim-hours": "24",
    }
    return client.post(access_url(patient, "records:relationship-declare"), {**data, **changes})


def break_glass(client, patient, **changes):
    data = {
        "glass-reason_code": "emergency-unable-to-consent",
        "glass-reason_text": "Unconscious on arrival",
        "glass-password": PASSWORD,
    }
    return client.post(access_url(patient, "records:break-glass"), {**data, **changes})


def grants_written() -> tuple[int, int, int, int]:
    return (
        SelfClaimedRelationship.objects.count(),
        BreakGlassGrant.objects.count(),
        Alert.objects.count(),
        AccessEvent.objects.exclude(action=AccessEvent.Action.SEARCH).count(),
    )


def assert_no_patient_b_field(body: bytes) -> None:
    text = body.decode()
    for value in PATIENT_B_FIELDS:
        assert value not in text


# Who is offered what.


def test_clinician_without_a_relationship_is_sent_to_the_access_page_that_shows_only_the_typed_number(
    client, cast
):
    client.force_login(cast.ed_cara)

    response = search(client, cast.patient_b)

    assert response.status_code == 303
    assert response["Location"] == access_url(cast.patient_b)
    event = AccessEvent.objects.get()
    assert (event.action, event.outcome) == (AccessEvent.Action.SEARCH, AccessEvent.Outcome.DENIED)
    assert event.patient_id == cast.patient_b.pk
    page = client.get(response["Location"])
    assert page.status_code == 200
    text = page.content.decode()
    assert (
        'the patient with NHS number <strong class="nhs-number">999 000 0026</strong> you searched for'
        in text
    )
    assert 'name="claim-reason_code"' in text
    assert 'name="glass-password"' in text
    assert_no_patient_b_field(page.content)
    # Reading the access page reads nothing about the patient, so it writes nothing either.
    assert grants_written() == (0, 0, 0, 0)


def test_the_length_offered_stops_at_the_roles_maximum(client, cast):
    Role.objects.filter(code=JobRole.CLINICAL_PRACTITIONER).update(self_claim_max_hours=12)
    client.force_login(cast.ed_cara)
    search(client, cast.patient_b)

    text = client.get(access_url(cast.patient_b)).content.decode()

    offered = re.findall(r'<option value="(\d+)"', text)
    assert offered == ["1", "2", "4", "8", "12"]


def test_receptionist_whose_role_may_do_neither_gets_the_usual_not_found_message(client, cast):
    client.force_login(cast.reception_dan)

    response = search(client, cast.patient_b)

    assert response.status_code == 200
    assert NOT_FOUND_MESSAGE in response.content.decode()
    assert_no_patient_b_field(response.content)
    assert AccessEvent.objects.get().outcome == AccessEvent.Outcome.DENIED
    assert client.get(access_url(cast.patient_b)).status_code == 404


def test_social_worker_may_declare_a_relationship_but_is_not_offered_break_glass(client, cast):
    client.force_login(cast.social_eli)
    search(client, cast.patient_b)

    text = client.get(access_url(cast.patient_b)).content.decode()
    refused = break_glass(client, cast.patient_b)

    assert 'name="claim-reason_code"' in text
    assert 'name="glass-password"' not in text
    assert refused.status_code == 404
    assert grants_written() == (0, 0, 0, 0)


def test_a_role_that_may_no_longer_self_claim_is_refused_by_the_door_and_the_refusal_is_audited(client, cast):
    client.force_login(cast.ed_cara)
    search(client, cast.patient_b)
    Role.objects.filter(code=JobRole.CLINICAL_PRACTITIONER).update(may_self_claim=False)

    response = declare(client, cast.patient_b)

    assert response.status_code == 404
    assert_no_patient_b_field(response.content)
    event = AccessEvent.objects.get(action=AccessEvent.Action.DECLARE_RELATIONSHIP)
    assert event.outcome == AccessEvent.Outcome.DENIED
    assert event.reason == "role may not declare relationships"
    assert (SelfClaimedRelationship.objects.count(), Alert.objects.count()) == (0, 0)


# Probing: the access page and its forms open only for a patient this session was offered.


@pytest.mark.parametrize(
    ("method", "name"),
    [
        ("get", "records:patient-access"),
        ("post", "records:relationship-declare"),
        ("post", "records:break-glass"),
    ],
)
def test_a_patient_not_searched_for_in_this_session_gets_a_404_and_nothing_is_written(
    client, cast, method, name
):
    client.force_login(cast.ed_cara)
    search(client, cast.patient_sensitive)  # offered for another patient only

    for public_id in (cast.patient_b.public_id, uuid.uuid4()):
        url = reverse(name, kwargs={"public_id": public_id})
        data = {
            "claim-reason_code": "other",
            "claim-reason_text": "x",
            "claim-hours": "24",
            "glass-reason_code": "legal-requirement",
            "glass-reason_text": "x",
            "glass-password": PASSWORD,
        }
        response = getattr(client, method)(url, data if method == "post" else None)
        assert response.status_code == 404
        assert_no_patient_b_field(response.content)
    assert grants_written() == (0, 0, 0, 0)


def test_another_session_of_the_same_user_is_not_offered_what_this_one_was(client, cast):
    client.force_login(cast.ed_cara)
    search(client, cast.patient_b)
    other = Client()
    other.force_login(cast.ed_cara)

    assert other.get(access_url(cast.patient_b)).status_code == 404
    assert declare(other, cast.patient_b).status_code == 404
    assert grants_written() == (0, 0, 0, 0)


# Self-claimed relationships.


def test_declaring_a_relationship_writes_one_grant_one_event_and_one_alert_and_opens_a_self_claimed_record(
    client, cast
):
    client.force_login(cast.ed_cara)
    search(client, cast.patient_b)
    before = timezone.now()

    response = declare(client, cast.patient_b)

    assert response.status_code == 303
    assert response["Location"] == record_url(cast.patient_b)
    claim = SelfClaimedRelationship.objects.get()
    assert REFERENCE.match(claim.reference) and claim.reference.startswith("SC-")
    assert (claim.user_id, claim.content_object_id) == (cast.ed_cara.pk, cast.patient_b.pk)
    assert claim.reason_code == SelfClaimedRelationship.Reason.UNPLANNED_CARE
    assert claim.reason_text == "Seen in ED overnight"
    assert before + timedelta(hours=24) <= claim.valid_until <= timezone.now() + timedelta(hours=24)
    event = AccessEvent.objects.get(action=AccessEvent.Action.DECLARE_RELATIONSHIP)
    assert (event.outcome, event.patient_id, event.user_id) == (
        AccessEvent.Outcome.ALLOWED,
        cast.patient_b.pk,
        cast.ed_cara.pk,
    )
    assert claim.reference in event.basis
    assert "Seen in ED overnight" in event.reason
    alert = Alert.objects.get()
    assert (alert.kind, alert.reference, alert.event_id) == (Alert.Kind.SELF_CLAIM, claim.reference, event.pk)
    assert (alert.username, alert.job_role, alert.organisation_ods) == (
        "ed.cara",
        JobRole.CLINICAL_PRACTITIONER,
        "RGT",
    )
    for value in ("Brian", "Barton", "9990000026"):
        assert value not in alert.reason

    page = client.get(response["Location"])
    assert page.status_code == 200
    text = page.content.decode()
    assert "Brian BARTON" in text
    assert "Self-claimed</span>" in text
    assert "Why can I see this?" in text
    assert f"Self-claimed relationship {claim.reference}: Direct care (unplanned)" in text
    viewed = AccessEvent.objects.get(action=AccessEvent.Action.VIEW_RECORD)
    assert viewed.basis.startswith("self-claim:RGT") and claim.reference in viewed.basis


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"claim-reason_text": "  "}, "Say in your own words why you need this patient"),
        ({"claim-reason_code": "curiosity"}, "Choose a reason from the list."),
        ({"claim-reason_code": ""}, "Choose a reason."),
        ({"claim-hours": "25"}, "Choose a length from the list."),
        ({"claim-hours": "1000"}, "Choose a length from the list."),
    ],
)
def test_bad_declarations_are_refused_with_a_message_and_nothing_is_written(client, cast, changes, message):
    client.force_login(cast.ed_cara)
    search(client, cast.patient_b)

    response = declare(client, cast.patient_b, **changes)

    assert response.status_code == 200
    text = response.content.decode()
    assert "There is a problem" in text
    assert message in text
    assert_no_patient_b_field(response.content)
    assert grants_written() == (0, 0, 0, 0)


def test_a_shorter_claim_lasts_only_as_long_as_asked(client, cast):
    client.force_login(cast.ed_cara)
    search(client, cast.patient_b)

    declare(client, cast.patient_b, **{"claim-hours": "2"})

    claim = SelfClaimedRelationship.objects.get()
    assert claim.valid_until - claim.valid_from == timedelta(hours=2)


# Break-glass.


def test_breaking_the_glass_writes_one_grant_one_event_and_one_alert_and_shows_a_banner_on_every_page(
    client, cast
):
    client.force_login(cast.ed_cara)
    search(client, cast.patient_sensitive)

    response = break_glass(client, cast.patient_sensitive)

    assert response.status_code == 303
    grant = BreakGlassGrant.objects.get()
    assert grant.reference.startswith("BG-") and REFERENCE.match(grant.reference)
    assert grant.valid_until - grant.valid_from == timedelta(hours=4)
    assert grant.reason_code == BreakGlassGrant.Reason.EMERGENCY
    event = AccessEvent.objects.get(action=AccessEvent.Action.BREAK_GLASS)
    assert (event.outcome, event.patient_id) == (AccessEvent.Outcome.ALLOWED, cast.patient_sensitive.pk)
    alert = Alert.objects.get()
    assert (alert.kind, alert.reference, alert.event_id) == (
        Alert.Kind.BREAK_GLASS,
        grant.reference,
        event.pk,
    )
    for value in ("Tamsin", "Sedgwick", "9449306613"):
        assert value not in alert.reason

    record = client.get(response["Location"]).content.decode()
    assert "You are viewing this record under break-glass access" in record
    assert "Tamsin SEDGWICK" in record
    for url in (reverse("records:home"), reverse("records:patient-search"), "/no-such-page/"):
        text = client.get(url).content.decode()
        assert "Break-glass access is on" in text
        assert grant.reference in text
        assert "Tamsin" not in text and "Sedgwick" not in text


def test_break_glass_lasts_no_longer_than_the_roles_maximum(client, cast):
    Role.objects.filter(code=JobRole.CLINICAL_PRACTITIONER).update(break_glass_max_hours=2)
    client.force_login(cast.ed_cara)
    search(client, cast.patient_sensitive)

    break_glass(client, cast.patient_sensitive)

    grant = BreakGlassGrant.objects.get()
    assert grant.valid_until - grant.valid_from == timedelta(hours=2)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"glass-password": "not-my-password"}, "The password is not right."),
        ({"glass-password": ""}, "Enter your password to confirm it is you."),
        ({"glass-reason_code": "curiosity"}, "Choose a reason from the list."),
        ({"glass-reason_text": ""}, "Say in your own words why you need this patient"),
    ],
)
def test_bad_break_glass_is_refused_with_a_message_and_nothing_is_written(client, cast, changes, message):
    client.force_login(cast.ed_cara)
    search(client, cast.patient_sensitive)

    response = break_glass(client, cast.patient_sensitive, **changes)

    assert response.status_code == 200
    text = response.content.decode()
    assert message in text
    assert "Tamsin" not in text and "Sedgwick" not in text
    assert grants_written() == (0, 0, 0, 0)
    assert client.get(record_url(cast.patient_sensitive)).status_code == 404


def test_no_page_but_the_patients_own_record_names_the_patient_a_grant_opened(client, cast):
    client.force_login(cast.ed_cara)
    search(client, cast.patient_b)
    declare(client, cast.patient_b)

    for url in (reverse("records:home"), reverse("records:patient-search")):
        assert_no_patient_b_field(client.get(url).content)


# Closing: ended early, expired.


def test_ending_break_glass_early_closes_the_record_at_once_and_is_audited(client, cast):
    client.force_login(cast.ed_cara)
    search(client, cast.patient_sensitive)
    break_glass(client, cast.patient_sensitive)
    grant = BreakGlassGrant.objects.get()

    response = client.post(reverse("records:grant-end", kwargs={"reference": grant.reference}))

    assert response.status_code == 303
    grant.refresh_from_db()
    assert grant.ended_at is not None
    event = AccessEvent.objects.get(action=AccessEvent.Action.END_GRANT)
    assert (event.outcome, event.patient_id, event.basis) == (
        AccessEvent.Outcome.ALLOWED,
        cast.patient_sensitive.pk,
        grant.reference,
    )
    assert client.get(record_url(cast.patient_sensitive)).status_code == 404
    assert "Break-glass access is on" not in client.get(reverse("records:home")).content.decode()


def test_ending_a_self_claim_early_closes_the_record_at_once(client, cast):
    client.force_login(cast.ed_cara)
    search(client, cast.patient_b)
    declare(client, cast.patient_b)
    claim = SelfClaimedRelationship.objects.get()

    client.post(reverse("records:grant-end", kwargs={"reference": claim.reference}))

    assert client.get(record_url(cast.patient_b)).status_code == 404


def test_no_one_ends_another_users_grant(client, cast):
    client.force_login(cast.ed_cara)
    search(client, cast.patient_sensitive)
    break_glass(client, cast.patient_sensitive)
    grant = BreakGlassGrant.objects.get()
    client.force_login(cast.gp_ben)

    response = client.post(reverse("records:grant-end", kwargs={"reference": grant.reference}))

    assert response.status_code == 404
    grant.refresh_from_db()
    assert grant.ended_at is None
    event = AccessEvent.objects.get(action=AccessEvent.Action.END_GRANT)
    assert (event.outcome, event.patient_id, event.user_id) == (
        AccessEvent.Outcome.NOT_FOUND,
        None,
        cast.gp_ben.pk,
    )


@pytest.mark.parametrize("kind", ["self-claim", "break-glass"])
def test_an_expired_grant_closes_the_record_without_waiting_for_the_tidy_task(client, cast, kind):
    client.force_login(cast.ed_cara)
    patient = cast.patient_b if kind == "self-claim" else cast.patient_sensitive
    search(client, patient)
    declare(client, patient) if kind == "self-claim" else break_glass(client, patient)
    assert client.get(record_url(patient)).status_code == 200
    model = SelfClaimedRelationship if kind == "self-claim" else BreakGlassGrant
    expired_at = timezone.now() - timedelta(seconds=1)
    model.objects.update(valid_until=expired_at)

    assert client.get(record_url(patient)).status_code == 404
    assert "Break-glass access is on" not in client.get(reverse("records:home")).content.decode()
    assert model.objects.get().ended_at is None

    assert personal_grants_tidy_task() == 1
    assert model.objects.get().ended_at == expired_at
    assert personal_grants_tidy_task() == 0


def test_the_tidy_task_leaves_current_grants_alone(client, cast):
    client.force_login(cast.ed_cara)
    search(client, cast.patient_sensitive)
    break_glass(client, cast.patient_sensitive)

    assert personal_grants_tidy_task() == 0
    assert BreakGlassGrant.objects.get().ended_at is None


def test_the_tidy_task_is_on_the_beat_schedule():
    from sharedcare.celery import app

    tasks = {entry["task"] for entry in app.conf.beat_schedule.values()}
    assert "records.personal_grants_tidy_task" in tasks


# The door.


@pytest.mark.parametrize(
    ("door", "act"),
    [
        ("relationship_declare_for_user", lambda client, cast: declare(client, cast.patient_b)),
        ("break_glass_for_user", lambda client, cast: break_glass(client, cast.patient_b)),
    ],
)
def test_the_grant_views_call_the_door(client, cast, monkeypatch, door, act):
    calls: list[str] = []
    original = getattr(records.portal.views, door)

    def spy(*args, **kwargs):
        calls.append(door)
        return original(*args, **kwargs)

    monkeypatch.setattr(records.portal.views, door, spy)
    client.force_login(cast.ed_cara)
    search(client, cast.patient_b)

    act(client, cast)

    assert calls == [door]


# Role profiles: a user who holds several chooses one at login.


@pytest.fixture
def two_roles(cast):
    """ed.cara also works sessions as a clinical practitioner at practice B."""
    return add_role_profile(cast.ed_cara, cast.practice_b, JobRole.CLINICAL_PRACTITIONER)


def test_a_user_with_several_roles_is_sent_to_choose_one_before_home_or_a_record(client, cast, two_roles):
    client.force_login(two_roles)

    home = client.get(reverse("records:home"))
    record = client.get(record_url(cast.patient_b))

    assert home.status_code == record.status_code == 302
    assert home["Location"].startswith(reverse("records:role-select"))
    assert record["Location"].startswith(reverse("records:role-select"))
    assert not AccessEvent.objects.exists()
    page = client.get(home["Location"]).content.decode()
    assert "Clinical practitioner, Cambridge University Hospitals (RGT)" in page
    assert "Clinical practitioner, Fenland Practice (D81002)" in page


def test_choosing_a_role_opens_what_that_role_opens_and_the_header_says_which(client, cast, two_roles):
    client.force_login(two_roles)
    at_practice_b = two_roles.staff_profiles.get(organisation=cast.practice_b)

    response = client.post(
        reverse("records:role-select"), {"profile": at_practice_b.pk, "next": record_url(cast.patient_b)}
    )

    assert response.status_code == 303
    assert response["Location"] == record_url(cast.patient_b)
    page = client.get(record_url(cast.patient_b))
    assert page.status_code == 200
    text = page.content.decode()
    assert "Clinical practitioner at Fenland Practice" in text
    assert "Change role" in text
    assert AccessEvent.objects.get().organisation_ods == "D81002"


def test_a_role_profile_that_is_not_the_users_own_is_refused_and_nothing_changes(client, cast, two_roles):
    client.force_login(two_roles)
    someone_elses = cast.gp_ada.staff_profiles.get()

    response = client.post(reverse("records:role-select"), {"profile": someone_elses.pk})

    assert response.status_code == 400
    assert "selected_staff_profile_id" not in client.session
    assert client.get(reverse("records:home")).status_code == 302


def test_changing_role_forgets_the_patients_offered_under_the_old_one(client, cast, two_roles):
    client.force_login(two_roles)
    at_cuh = two_roles.staff_profiles.get(organisation=cast.cuh)
    at_practice_b = two_roles.staff_profiles.get(organisation=cast.practice_b)
    client.post(reverse("records:role-select"), {"profile": at_cuh.pk})
    search(client, cast.patient_sensitive)
    assert client.get(access_url(cast.patient_sensitive)).status_code == 200

    client.post(reverse("records:role-select"), {"profile": at_practice_b.pk})

    assert client.get(access_url(cast.patient_sensitive)).status_code == 404


def test_a_grant_counts_only_under_the_role_it_was_made_under(client, cast, two_roles):
    client.force_login(two_roles)
    at_cuh = two_roles.staff_profiles.get(organisation=cast.cuh)
    at_practice_b = two_roles.staff_profiles.get(organisation=cast.practice_b)
    client.post(reverse("records:role-select"), {"profile": at_cuh.pk})
    search(client, cast.patient_sensitive)
    break_glass(client, cast.patient_sensitive)
    assert client.get(record_url(cast.patient_sensitive)).status_code == 200

    client.post(reverse("records:role-select"), {"profile": at_practice_b.pk})

    assert client.get(record_url(cast.patient_sensitive)).status_code == 404


def test_a_user_with_one_role_is_not_asked_to_choose(client, cast):
    client.force_login(cast.ed_cara)

    assert client.get(reverse("records:home")).status_code == 200
    assert "Change role" not in client.get(reverse("records:home")).content.decode()
